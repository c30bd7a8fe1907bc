#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd` options whose effect is more than what nbdinfo shows:
# --fork, --pid-file, -t, -e, -v, -p/-b, -s, -P, --discard and
# --detect-zeroes on the image, --cache=none/--aio=native writes, and
# -L/-c/-d/-l (which wait on the NBD client, the kernel client and
# internal snapshots: until those bindings exist they must refuse clearly).
# Where Debian's qemu-nbd has the option it does the same and the results
# are compared.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/cmd/lib.sh"
need qemu-nbd qemu-img qemu-io nbdinfo nbdcopy sfdisk

plan 40
PY=/usr/bin/python3
has_api() { echo "local bh = require 'blkhost'; os.exit($1 and 0 or 1)" | "$BLKHOST" run - 2>/dev/null; }

qemu-img create -q -f raw "$T/d.raw" 4M
qemu-io -f raw -c 'write -P 0x5a 0 1M' "$T/d.raw" >/dev/null
qemu-img convert -q -f raw -O qcow2 "$T/d.raw" "$T/d.qcow2"

# ---- --fork, --pid-file, -t ----
if bh f -f raw "$T/d.raw"; then
    ok "--fork: returns 0 once the server listens"
    pid=$(cat "$T/f.pid")
    check "--fork: the socket serves at once" nbdinfo "$(uri f)"
    if wait_gone "$pid" && [ ! -e "$T/f.pid" ] && [ ! -e "$T/f.sock" ]; then
        ok "without -t: exits after the last client, removes pid file and socket"
    else
        not_ok "without -t: exits after the last client, removes pid file and socket"
    fi
else
    not_ok "--fork: returns 0 once the server listens"; diag "$(cat "$T/f.err")"
    skip "--fork failed"; skip "--fork failed"
fi

bh t -t -f raw "$T/d.raw"
pid=$(cat "$T/t.pid" 2>/dev/null)
if [ -n "$pid" ] && [ "$pid" != $$ ] && kill -0 "$pid" && grep -q "nbd" "/proc/$pid/cmdline"; then
    ok "--pid-file: holds the server's pid"
else
    not_ok "--pid-file: holds the server's pid"; diag "pid '$pid'"
fi
check_fails "--pid-file: a second server on a held pid file is refused" "cannot lock pid file" \
    "$BLKHOST" nbd -r -k "$T/t2.sock" --pid-file "$T/t.pid" "$T/d.qcow2"
nbdinfo "$(uri t)" >/dev/null; nbdinfo "$(uri t)" >/dev/null
if kill -0 "$pid" 2>/dev/null && nbdinfo "$(uri t)" >/dev/null; then
    ok "-t: still serving after clients left"
else
    not_ok "-t: still serving after clients left"
fi
stop t
if [ ! -e "$T/t.pid" ]; then ok "--pid-file: removed at exit (SIGTERM)"; else not_ok "--pid-file: removed at exit (SIGTERM)"; fi

# ---- -e ----
# clients URI N: open N connections at once.  Prints how many got in
# within 2 s, how many were still waiting for the greeting then, and how
# many of those got in once the first ones left.
clients() {
    timeout 60 $PY - "$1" "$2" <<'PYEOF'
import nbd, sys, time
uri, n = sys.argv[1], int(sys.argv[2])
hs = []
for i in range(n):
    h = nbd.NBD(); h.aio_connect_uri(uri); hs.append(h)
def settle(hs, secs):
    end = time.monotonic() + secs
    while time.monotonic() < end and any(h.aio_is_connecting() for h in hs):
        for h in hs:
            if h.aio_is_connecting():
                h.poll(10)
settle(hs, 2)
good = [h for h in hs if h.aio_is_ready()]
waiting = [h for h in hs if h.aio_is_connecting()]
for h in good:
    h.pread(512, 0)
    h.shutdown()
settle(waiting, 20)
later = [h for h in waiting if h.aio_is_ready()]
for h in later:
    h.pread(512, 0)
print(len(good), len(waiting), len(later))
PYEOF
}
# As qemu-nbd does, a client beyond -e waits un-greeted until a place
# frees, instead of being refused; both servers are run and compared.
for e in 1 2 0; do
    n=$((e == 0 ? 6 : e + 1))
    args=(-t -r -f raw); [ $e = 1 ] || args+=(-e $e)
    bh b$e "${args[@]}" "$T/d.raw"; ours=$(clients "$(uri b$e)" $n); stop b$e
    qn q$e "${args[@]}" "$T/d.raw"; theirs=$(clients "$(uri q$e)" $n); stop q$e
    case $e in
    1) want="1 1 1" desc="-e default 1: a second client waits un-greeted, then is served" ;;
    2) want="2 1 1" desc="-e 2: two clients at once, the third waits, then is served" ;;
    0) want="6 0 0" desc="--shared=0 (-e 0): no limit (6 clients at once)" ;;
    esac
    if [ "$ours" = "$want" ] && [ "$ours" = "$theirs" ]; then ok "$desc, as qemu-nbd"
    else not_ok "$desc, as qemu-nbd"; diag "blkhost: $ours, qemu-nbd: $theirs, want: $want"; fi
done

# ---- -v ----
bh v -v -f raw "$T/d.raw"
nbdinfo "$(uri v)" >/dev/null
wait_gone "$(cat "$T/v.pid" 2>/dev/null || echo 0)"
if grep -q "connected" "$T/v.err"; then ok "-v: connections are reported on stderr"; else not_ok "-v: connections are reported on stderr"; diag "$(cat "$T/v.err")"; fi

# ---- -p / -b ----
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BLKHOST" nbd --fork --pid-file "$T/p.pid" -b 127.0.0.1 -p "$port" -r -f raw "$T/d.raw" 2>"$T/p.err"
check "-b 127.0.0.1 -p PORT: serves over TCP" nbdinfo "nbd://127.0.0.1:$port"
stop p
if $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",10809))' 2>/dev/null; then
    "$BLKHOST" nbd --fork --pid-file "$T/p2.pid" -b 127.0.0.1 -r -f raw "$T/d.raw" 2>"$T/p2.err"
    check "-p defaults to 10809" nbdinfo "nbd://127.0.0.1"
    stop p2
else
    skip "-p defaults to 10809: the port is busy here"
fi
if $PY -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
    "$BLKHOST" nbd --fork --pid-file "$T/p6.pid" -b ::1 -p "$port" -r -f raw "$T/d.raw" 2>"$T/p6.err"
    check "-b ::1: serves over IPv6" nbdinfo "nbd://[::1]:$port"
    stop p6
else
    skip "-b ::1: no IPv6 here"
fi

# ---- -s ----
for fmt in raw qcow2; do
    cp "$T/d.$fmt" "$T/s.$fmt"
    before=$(md5sum <"$T/s.$fmt")
    bh sb -t -s -f $fmt "$T/s.$fmt"
    qn sq -t -s -f $fmt "$T/s.$fmt"
    for s in sb sq; do
        qemu-io -f raw -c 'write -P 0xa5 4096 8192' "$(uri $s)" >/dev/null 2>&1
    done
    if [ "$(bytes "$(uri sb)")" = "$(bytes "$(uri sq)")" ] &&
       qemu-io -f raw -c 'read -P 0xa5 4096 8192' "$(uri sb)" >/dev/null 2>&1; then
        ok "$fmt: -s: writes are served back, as qemu-nbd -s does"
    else
        not_ok "$fmt: -s: writes are served back, as qemu-nbd -s does"
    fi
    stop sb; stop sq KILL
    if [ "$(md5sum <"$T/s.$fmt")" = "$before" ]; then ok "$fmt: -s: FILE is unchanged"; else not_ok "$fmt: -s: FILE is unchanged"; fi
    left=$(ls "$T" | grep -c '^blkhost-nbd-snapshot' || true)
    if [ "$left" = 0 ]; then ok "$fmt: -s: the overlay is gone"; else not_ok "$fmt: -s: the overlay is gone"; diag "$(ls "$T")"; fi
done

# ---- -P ----
qemu-img create -q -f raw "$T/part.raw" 8M
printf 'label: gpt\nstart=2048, size=4096\nstart=6144, size=8192\n' | sfdisk -q "$T/part.raw"
qemu-io -f raw -c 'write -P 0x61 1M 4k' -c 'write -P 0x62 3M 64k' "$T/part.raw" >/dev/null
bh pb -t -r -P 2 -f raw "$T/part.raw"
qn pq -t -r --image-opts "driver=raw,offset=3145728,size=4194304,file.driver=file,file.filename=$T/part.raw"
same "-P 2 (GPT) against qemu-nbd's raw window" "$(uri pb)" "$(uri pq)"
stop pb; stop pq KILL
qemu-img convert -q -f raw -O qcow2 "$T/part.raw" "$T/part.qcow2"
bh pc -t -r -P 1 "$T/part.qcow2"
qn pcq -t -r --image-opts "driver=raw,offset=1048576,size=2097152,file.driver=qcow2,file.file.driver=file,file.file.filename=$T/part.qcow2"
same "-P 1 of a qcow2 image" "$(uri pc)" "$(uri pcq)"
stop pc; stop pcq KILL
check_fails "-P 3: a partition that does not exist" "Could not find partition 3" \
    "$BLKHOST" nbd -k "$T/px.sock" -P 3 -f raw "$T/part.raw"

# ---- --discard / --detect-zeroes on the image ----
alloc() { stat -c %b "$1"; }
for mode in "--discard=unmap --detect-zeroes=unmap" "--detect-zeroes=on"; do
    cp "$T/d.raw" "$T/zb.raw"; cp "$T/d.raw" "$T/zq.raw"
    bh zb -t $mode -f raw "$T/zb.raw"; qn zq -t $mode -f raw "$T/zq.raw"
    for s in zb zq; do
        qemu-io -f raw -c 'write -P 0 0 512k' "$(uri $s)" >/dev/null 2>&1
    done
    stop zb; stop zq KILL
    a=$(alloc "$T/zb.raw"); b=$(alloc "$T/zq.raw")
    if [ "$a" = "$b" ] && cmp -s "$T/zb.raw" "$T/zq.raw"; then
        ok "$mode: zero writes leave the file as qemu-nbd does ($a blocks)"
    else
        not_ok "$mode: zero writes leave the file as qemu-nbd does"; diag "blkhost $a blocks, qemu-nbd $b"
    fi
done
cp "$T/d.raw" "$T/tb.raw"; cp "$T/d.raw" "$T/tq.raw"
bh tb -t --discard=unmap -f raw "$T/tb.raw"; qn tq -t --discard=unmap -f raw "$T/tq.raw"
for s in tb tq; do nbdsh_ -u "$(uri $s)" -c 'h.trim(262144, 0)' 2>/dev/null || nbdsh -u "$(uri $s)" -c 'h.trim(262144, 0)'; done
stop tb; stop tq KILL
if [ "$(alloc "$T/tb.raw")" = "$(alloc "$T/tq.raw")" ] && [ "$(alloc "$T/tb.raw")" -lt "$(alloc "$T/d.raw")" ]; then
    ok "--discard=unmap: a trim punches the same hole as qemu-nbd"
else
    not_ok "--discard=unmap: a trim punches the same hole as qemu-nbd"; diag "$(alloc "$T/tb.raw") vs $(alloc "$T/tq.raw")"
fi

# ---- writes with --cache=none, --aio=native, -r ----
for mode in "-n" "--cache=none --aio=native" "--cache=directsync --aio=native" "--cache=unsafe"; do
    cp "$T/d.raw" "$T/w.raw"
    if ! bh w -t $mode -f raw "$T/w.raw"; then
        not_ok "$mode: writes reach the file"; diag "$(cat "$T/w.err")"; continue
    fi
    qemu-io -f raw -c 'write -P 0x77 1000 5000' "$(uri w)" >/dev/null 2>&1
    stop w
    if qemu-io -f raw -r -c 'read -P 0x77 1000 5000' "$T/w.raw" | grep -q "read 5000"; then
        ok "$mode: writes reach the file"
    else
        not_ok "$mode: writes reach the file"
    fi
done
bh ro -t -r -f raw "$T/d.raw"
check_fails "-r: a client's write is refused" "Operation not permitted|Permission denied|read-only" \
    qemu-io -f raw -c 'write 0 512' "$(uri ro)"
stop ro

# ---- -L, -c, -d, -l: bindings from other work ----
bh l -t -r -x one -D "first" -f raw "$T/d.raw"
if has_api "bh.nbd.list"; then
    out=$("$BLKHOST" nbd -L -k "$T/l.sock" 2>&1)
    qout=$(qemu-nbd -L -k "$T/l.sock" 2>&1)
    if grep -q "export: 'one'" <<<"$out" && grep -q "export: 'one'" <<<"$qout"; then
        ok "-L: lists the export as qemu-nbd -L does"
    else
        not_ok "-L: lists the export as qemu-nbd -L does"; diag "$out"; diag "$qout"
    fi
    # Same lines as qemu-nbd -L but flags (df needs structured replies,
    # which blkhost's lister does not negotiate) and meta contexts.
    keep='^(exports available|  *export:|  *description:|  *size:|  *(min|opt|max) block:)'
    if [ "$(grep -E "$keep" <<<"$out")" = "$(grep -E "$keep" <<<"$qout")" ]; then
        ok "-L: size, description and block sizes print as qemu-nbd -L prints them"
    else
        not_ok "-L: size, description and block sizes print as qemu-nbd -L prints them"
        diag "$out"; diag "$qout"
    fi
    if grep -qE "^  flags: 0x[0-9a-f]+ \( .*flush.* \)$" <<<"$out"; then
        ok "-L: flags are printed with their names"
    else
        not_ok "-L: flags are printed with their names"; diag "$out"
    fi
else
    check_fails "-L: refused clearly until bh.nbd.list exists" "not available.*bh.nbd.list" \
        "$BLKHOST" nbd -L -k "$T/l.sock"
    skip "-L output compared with qemu-nbd: no bh.nbd.list in this build"
    skip "-L flag names: no bh.nbd.list in this build"
fi
stop l
if has_api "bh.nbd.disconnect"; then
    check_fails "-d on a missing device: an error naming it" "/nonexistent/nbd7" \
        "$BLKHOST" nbd -d /nonexistent/nbd7
else
    check_fails "-d: refused clearly until bh.nbd.disconnect exists" "not available.*bh.nbd.disconnect" \
        "$BLKHOST" nbd -d /nonexistent/nbd7
fi
skip "-c DEV attaching a device: needs the nbd kernel module (tests/vm)"
qemu-img snapshot -c snap1 "$T/d.qcow2"
qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$T/d.qcow2" >/dev/null
if has_api "(bh.open ~= nil and debug.getregistry()['blkhost.node'].__index.snapshot_open)"; then
    bh lb -t -l snap1 "$T/d.qcow2"; qn lq -t -l snap1 "$T/d.qcow2"
    same "-l snap1 against qemu-nbd -l" "$(uri lb)" "$(uri lq)"
    stop lb; stop lq KILL
else
    check_fails "-l: refused clearly until node:snapshot_open exists" "not supported yet" \
        "$BLKHOST" nbd -k "$T/lb.sock" -l snap1 "$T/d.qcow2"
    check_fails "-l snapshot.id=1,snapshot.name=snap1: parsed, then refused clearly" "not supported yet" \
        "$BLKHOST" nbd -k "$T/lb.sock" -l snapshot.id=1,snapshot.name=snap1 "$T/d.qcow2"
fi
