#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost bench` (lua/cmd/bench.lua, the loop in lua/bench.c) beside
# qemu-img 7.2 bench: the same header lines, writes landing where qemu-img
# bench's land (images written by both with --pattern compared), the same
# refusals with qemu-img's messages; and, through a log filter, that
# bh.bench sends exactly COUNT requests at the offsets qemu-img's loop
# computes with at most DEPTH in flight.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io python3

plan 37

B=$BLKHOST
cd "$T" || exit 1
qemu-img create -q -f qcow2 img.qcow2 4M
qemu-io -c "write -P 0x5a 0 4M" img.qcow2 >/dev/null

# same_header DESC ARGS...: blkhost bench and qemu-img bench on img.qcow2
# both succeed, print the same first line (and flush line), and end with
# "Run completed in N.NNN seconds.".
same_header() {
    local desc=$1 brc qrc; shift
    "$B" bench "$@" img.qcow2 >b.out 2>b.err; brc=$?
    qemu-img bench "$@" img.qcow2 >q.out 2>q.err; qrc=$?
    if [ $brc -eq 0 ] && [ $qrc -eq 0 ] &&
       cmp -s <(grep '^Sending' b.out) <(grep '^Sending' q.out) &&
       [ "$(wc -l <b.out)" = "$(wc -l <q.out)" ] &&
       tail -1 b.out | grep -qE '^Run completed in [0-9]+\.[0-9]{3} seconds\.$'; then
        ok "bench: $desc prints qemu-img's lines ($(head -1 q.out))"
    else
        not_ok "bench: $desc prints qemu-img's lines"
        diag "blkhost exit $brc, qemu-img exit $qrc"; diag "$(cat b.out b.err q.out q.err)"
    fi
}
same_header "the defaults (-c 2000)" -c 2000
same_header "-d 7 -s 3000 -S 70000 -o 12345 (wrapping)" -c 300 -d 7 -s 3000 -S 70000 -o 12345
same_header "-c 0x10 -o 0x10 (hex as strtoul/strtosz read it)" -c 0x10 -o 0x10
same_header "-c 010 (octal)" -c 010
same_header "-s 64k -d 1" -c 50 -s 64k -d 1
same_header "-c 0" -c 0
same_header "-s 0" -c 4 -s 0
same_header "-q (the lines still print)" -q -c 8
same_header "-t none -i threads" -c 64 -t none -i threads
same_header "-n -t none (native AIO)" -c 64 -n -t none
same_header "-w --flush-interval=20 -d 16" -w -c 1000 -d 16 -s 512 --flush-interval=20
same_header "-w --flush-interval=10 --no-drain" -w -c 100 -d 4 --flush-interval=10 --no-drain

# same_writes DESC FMT ARGS...: blkhost bench -w and qemu-img bench -w with
# ARGS on two fresh FMT images leave them identical, and the pattern byte
# is at the first request's offset.
same_writes() {
    local desc=$1 fmt=$2 out; shift 2
    rm -f b.img q.img e.img
    qemu-img create -q -f "$fmt" b.img 4M; qemu-img create -q -f "$fmt" q.img 4M
    qemu-img create -q -f "$fmt" e.img 4M
    if ! out=$("$B" bench -f "$fmt" -w "$@" b.img 2>&1); then
        not_ok "bench: -w $desc ($fmt)"; diag "$out"; return
    fi
    qemu-img bench -f "$fmt" -w "$@" q.img >/dev/null 2>&1
    if ! out=$(qemu-img compare -f "$fmt" -F "$fmt" b.img q.img 2>&1); then
        not_ok "bench: -w $desc ($fmt): the same bytes as qemu-img bench's"; diag "$out"; return
    fi
    if qemu-img compare -q -f "$fmt" -F "$fmt" b.img e.img; then
        not_ok "bench: -w $desc ($fmt): nothing was written"; return
    fi
    ok "bench: -w $desc ($fmt): the image is byte for byte qemu-img bench's"
}
same_writes "--pattern=0xab -c 300 -d 7 -s 3000 -S 70000 -o 12345 (wraps)" qcow2 \
    --pattern=0xab -c 300 -d 7 -s 3000 -S 70000 -o 12345
same_writes "--pattern=0xab -c 300 -d 7 -s 3000 -S 70000 -o 12345 (wraps)" raw \
    --pattern=0xab -c 300 -d 7 -s 3000 -S 70000 -o 12345
same_writes "--pattern=7 -c 50 -d 64 -s 64k" qcow2 --pattern=7 -c 50 -d 64 -s 64k
same_writes "--pattern=0x11 -s 512 -S 1M -o 100k --flush-interval=20" qcow2 \
    --pattern=0x11 -c 1000 -d 16 -s 512 -S 1M -o 100k --flush-interval=20
same_writes "--pattern=255 -S 8k --flush-interval=10 --no-drain" raw \
    --pattern=255 -c 100 -d 4 -s 4k -S 8k --flush-interval=10 --no-drain

# refused DESC ARGS...: both refuse ARGS on img.qcow2 with the same
# message (qemu-img's "qemu-img: " against "blkhost bench: "), and the
# image is untouched.
sum=$(sha256sum img.qcow2)
refused() {
    local desc=$1 brc qrc bm qm; shift
    "$B" bench "$@" img.qcow2 >b.out 2>b.err; brc=$?
    timeout 10 qemu-img bench "$@" img.qcow2 >q.out 2>q.err; qrc=$?
    bm=$(head -1 b.err | sed 's/^blkhost bench: //')
    qm=$(head -1 q.err | sed 's/^qemu-img: //')
    if [ $brc -eq 1 ] && [ $qrc -eq 1 ] && [ "$bm" = "$qm" ] && [ ! -s b.out ] &&
       [ "$(sha256sum img.qcow2)" = "$sum" ]; then
        ok "bench: $desc is refused as by qemu-img ($qm)"
    else
        not_ok "bench: $desc is refused as by qemu-img"
        diag "blkhost exit $brc, qemu-img exit $qrc"; diag "$(cat b.out b.err q.out q.err)"
    fi
}
refused "-d -1" -d -1
refused "-d x" -d x
refused "-d 99999999999 (over INT_MAX)" -d 99999999999
refused "-c x" -c x
refused "-s x" -s x
refused "-s 3G (over INT_MAX)" -s 3G
refused "-S 3G" -S 3G
refused "-o -5" -o -5
refused "--pattern=256" --pattern=256
refused "--flush-interval without -w" -c 4 --flush-interval=64
refused "--flush-interval below the depth" -w -d 8 --flush-interval=4
refused "-i bogus" -i bogus
refused "-t bogus" -t bogus
refused "-w -U (force-share needs read-only)" -w -U

# -d 0: qemu-img 7.2 waits forever; blkhost refuses it with the message
# qemu-img gives any other bad depth.
out=$("$B" bench -d 0 img.qcow2 2>&1); rc=$?
if [ $rc -eq 1 ] && [ "$out" = "blkhost bench: Invalid queue depth specified" ]; then
    ok "bench: -d 0 is refused (qemu-img would hang) with qemu-img's bad-depth message"
else
    not_ok "bench: -d 0 is refused"; diag "exit $rc: $out"
fi

# No image, or two.
out=$("$B" bench -c 1 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "Expecting one image file name"; then
    ok "bench: no FILENAME: 'Expecting one image file name' as qemu-img"
else
    not_ok "bench: no FILENAME"; diag "exit $rc: $out"
fi

# A request past the end fails the run as in qemu-img: "Failed request",
# exit 1, the header printed, no "Run completed".
"$B" bench -c 4 -o 4M img.qcow2 >b.out 2>b.err; brc=$?
qemu-img bench -c 4 -o 4M img.qcow2 >q.out 2>q.err; qrc=$?
if [ $brc -eq 1 ] && [ $qrc -eq 1 ] && cmp -s b.out q.out &&
   grep -q "^blkhost bench: Failed request: " b.err; then
    ok "bench: a request past the end: 'Failed request', exit 1, as qemu-img ($(cat q.err))"
else
    not_ok "bench: a request past the end fails the run"; diag "$(cat b.out b.err q.out q.err)"
fi

# -w on a file the user may not write: both refuse at open, nothing
# changes.  Root writes anything, so as root this runs as nobody.
mkdir ro && cp img.qcow2 ro/ro.qcow2 && chmod 444 ro/ro.qcow2
as_user=()
if [ "$(id -u)" = 0 ]; then
    if command -v setpriv >/dev/null &&
       setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null &&
       chmod 755 "$T" ro && setpriv --reuid=65534 --regid=65534 --clear-groups \
           test -x "$B" -a -r ro/ro.qcow2; then
        as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    else
        as_user=(none)
    fi
fi
if [ "${as_user[0]:-}" = none ]; then
    skip "bench: -w on a read-only file (root here, and cannot run as nobody)"
else
    "${as_user[@]}" "$B" bench -w -c 4 ro/ro.qcow2 >b.out 2>b.err; brc=$?
    "${as_user[@]}" qemu-img bench -w -c 4 ro/ro.qcow2 >q.out 2>q.err; qrc=$?
    if [ $brc -eq 1 ] && [ $qrc -eq 1 ] && [ ! -s b.out ] &&
       grep -q "could not open 'ro/ro.qcow2': Permission denied" b.err &&
       grep -q "Permission denied" q.err && cmp -s img.qcow2 ro/ro.qcow2; then
        ok "bench: -w on a read-only file is refused as by qemu-img ($(cat q.err))"
    else
        not_ok "bench: -w on a read-only file is refused"; diag "$(cat b.out b.err q.out q.err)"
    fi
fi

# bh.bench through a log filter over a delay: exactly COUNT requests, at
# qemu-img's offsets (OFFSET + n*STEP modulo the size, the request order
# aside), never more than DEPTH in flight, and more than one at a time.
cat >log.lua <<'EOF'
local bh = require "blkhost"
local n <close> = bh.open("img.qcow2", { format = "qcow2", filters = {
  { "delay", delay = "30ms" }, { "log", file = "io.log" } } })
bh.bench(n, { write = arg[1] == "w", count = 40, depth = 6, offset = 3 << 20,
              size = 4096, step = 192 << 10, pattern = 9 })
EOF
for mode in r w; do
    rm -f io.log
    if ! out=$("$B" run log.lua "$mode" 2>&1); then
        not_ok "bh.bench ($mode): runs through log and delay filters"; diag "$out"; continue
    fi
    want=$(python3 -c 'print(*sorted((3 * 2**20 + i * 192 * 2**10) % 2**22 for i in range(40)))')
    { read -r n p _; read -r got; } < <(python3 "$SOURCE_ROOT/tests/toolbox/logpeak.py" io.log)
    out="$n requests, $p at most in flight"
    [ "$got" = "$want" ] && [ "$n" = 40 ] && [ "$p" -gt 1 ] && [ "$p" -le 6 ] && out="ok $out"
    if [ "${out%% *}" = ok ]; then
        ok "bh.bench ($mode): 40 requests at qemu-img's offsets, depth 6 kept (${out#ok })"
    else
        not_ok "bh.bench ($mode): 40 requests at qemu-img's offsets, depth 6 kept"; diag "$out"
    fi
done
