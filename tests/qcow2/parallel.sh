#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Parallel writers: threads in one process write interleaved 4 KiB pieces
# of the same clusters at once (so allocations of one cluster race), then
# `qemu-img check` must be clean and the image equal to the mirror.  With
# the NBD server plugin built, 4 qemu-io clients do the same over NBD.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/qcow2/lib.sh"
need qemu-img qemu-io
TOOL=$QCOW2_TOOL

plan 6

par() {
    local desc=$1 cs=$2 threads=$3 n=$4 out rc
    rm -f "$T/p.qcow2" "$T/p.raw"
    "$BLKHOST" create -f qcow2 -o cluster_size=$cs "$T/p.qcow2" 16M >/dev/null
    truncate -s 16M "$T/p.raw"
    local seed=$RANDOM
    if ! out=$("$TOOL" parallel "$T/p.qcow2" "$T/p.raw" $seed $threads $n 2>&1); then
        not_ok "$desc"; diag "seed $seed: $out"; return
    fi
    out=$(qemu-img check "$T/p.qcow2" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then not_ok "$desc"; diag "check exit $rc: $out"; return; fi
    if out=$(qemu-img compare -f qcow2 -F raw "$T/p.qcow2" "$T/p.raw" 2>&1); then ok "$desc"
    else not_ok "$desc"; diag "$out"; fi
}
par "qcow2: 4 threads writing into shared 64 KiB clusters; check clean, same as mirror" 65536 4 3000
par "qcow2: 8 threads writing into shared 4 KiB-cluster L2 tables; check clean, same as mirror" 4096 8 2000

# Frees racing with other threads' reads and writes (a v3 image with a
# backing file: discards make zero clusters; without: unallocated).
stress() {
    local desc=$1 out rc; shift
    rm -f "$T/s.qcow2" "$T/s.raw"
    "$BLKHOST" create -f qcow2 "$@" "$T/s.qcow2" 16M >/dev/null
    truncate -s 16M "$T/s.raw"
    local seed=$RANDOM
    if ! out=$("$TOOL" stress "$T/s.qcow2" "$T/s.raw" $seed 4 4000 2>&1); then
        not_ok "$desc"; diag "seed $seed: $out"; return
    fi
    out=$(qemu-img check "$T/s.qcow2" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then not_ok "$desc"; diag "check exit $rc: $out"; return; fi
    if out=$(qemu-img compare -f qcow2 -F raw "$T/s.qcow2" "$T/s.raw" 2>&1); then ok "$desc"
    else not_ok "$desc"; diag "$out"; fi
}
stress "qcow2: 4 threads mixing writes, zeroes, discards, flushes and reads; check clean" \
    -o cluster_size=4096
truncate -s 16M "$T/zero.raw"
stress "qcow2: the same over a backing file (discards make zero clusters); check clean" \
    -o cluster_size=65536 -b zero.raw -F raw

# Four NBD clients at once through the nbd-server plugin.
if [ ! -e "$BUILD_ROOT/plugins/nbd-server/nbd-server.so" ]; then
    skip "the nbd-server plugin is not built"
    skip "the nbd-server plugin is not built"
    exit 0
fi
"$BLKHOST" create -f qcow2 "$T/n.qcow2" 16M >/dev/null
truncate -s 16M "$T/n.raw"
/usr/bin/python3 - "$T" <<'PY'
import random, sys
t = sys.argv[1]
random.seed(4)
pieces = list(range(16 * 1024 * 1024 // 4096))
random.shuffle(pieces)
with open(t + "/all.cmds", "w") as a:
    for c in range(4):
        with open("%s/c%d.cmds" % (t, c), "w") as f:
            for p in pieces[c::4]:
                inner = random.randrange(0, 4096)
                n = random.randrange(1, 4097 - inner)
                line = "write -P %d %d %d\n" % (0x10 + c, p * 4096 + inner, n)
                f.write(line)
                a.write(line)
PY
serve_nbd "$T/n.qcow2"
pids=()
for c in 0 1 2 3; do
    qemu-io -f raw "$uri" < "$T/c$c.cmds" >"$T/c$c.out" 2>&1 &
    pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait $p || fails=$((fails + 1)); done
qemu-io -f raw "$T/n.raw" < "$T/all.cmds" >/dev/null
kill -TERM $spid; wait $spid
if [ -n "$uri" ] && [ $fails -eq 0 ] && ! grep -qi "error\|failed" "$T"/c?.out; then
    ok "qcow2: 4 qemu-io clients wrote in parallel over NBD"
else
    not_ok "qcow2: 4 qemu-io clients wrote in parallel over NBD"; diag "$(cat "$T/serve.log"; grep -hi "error\|failed" "$T"/c?.out | head)"
fi
out=$(qemu-img check "$T/n.qcow2" 2>&1); rc=$?
if [ $rc -eq 0 ] && out=$(qemu-img compare -f qcow2 -F raw "$T/n.qcow2" "$T/n.raw" 2>&1); then
    ok "qcow2: after parallel NBD writers, check is clean and the image equals the mirror"
else
    not_ok "qcow2: after parallel NBD writers, check is clean and the image equals the mirror"; diag "check exit $rc: $out"
fi
