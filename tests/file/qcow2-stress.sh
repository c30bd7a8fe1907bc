#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# qcow2's racing writers, zeroes, discards and reads (tests/qcow2's
# qcow2-tool parallel and stress) again, over a file opened with
# cache=none and each queueing aio mode, where qcow2's data runs complete
# on the file driver's own thread: qemu-img check must be clean and the
# image equal to its mirror.  A mode the kernel refuses is skipped.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img
TOOL=$QCOW2_TOOL

plan 4

run() {
    local desc=$1 aio=$2 cmd=$3 opts=$4 out rc; shift 4
    rm -f "$T/s.qcow2" "$T/s.raw"
    "$BLKHOST" create -f qcow2 "$@" "$T/s.qcow2" 16M >/dev/null
    truncate -s 16M "$T/s.raw"
    if ! out=$("$TOOL" open "$T/s.qcow2" "cache=none,file.aio=$aio" 2>&1); then
        skip "$desc: aio=$aio refused here: $out"; return
    fi
    local seed=$RANDOM
    if ! out=$("$TOOL" "$cmd" "$T/s.qcow2" "$T/s.raw" $seed 4 1500 \
               "$opts,cache=none,file.aio=$aio" 2>&1); then
        not_ok "$desc"; diag "seed $seed: $out"; return
    fi
    out=$(qemu-img check "$T/s.qcow2" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then not_ok "$desc"; diag "check exit $rc: $out"; return; fi
    if out=$(qemu-img compare -f qcow2 -F raw "$T/s.qcow2" "$T/s.raw" 2>&1); then ok "$desc"
    else not_ok "$desc"; diag "seed $seed: $out"; fi
}
for aio in io_uring native; do
    run "qcow2 over file aio=$aio cache=none: 4 threads writing shared clusters; check clean, same as mirror" \
        $aio parallel "discard=ignore" -o cluster_size=65536
    run "qcow2 over file aio=$aio cache=none: 4 threads mixing writes, zeroes, discards, flushes, reads; check clean" \
        $aio stress "discard=unmap" -o cluster_size=4096
done
