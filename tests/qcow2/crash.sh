#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Crash consistency: a writer doing allocating writes (some with FUA, some
# followed by a flush) is killed with SIGKILL at random moments.  After each
# kill `qemu-img check` must exit 0 (clean) or 3 (leaked clusters only),
# never 2 (corruption), and every write the writer logged as durable (FUA
# acknowledged, or a flush completed after it) must read back.  Every
# fourth round starts a fresh image (cluster sizes and backing files vary);
# the others keep writing to the image the previous kill left behind.
# Every third round runs with 2-entry caches, so tables are written back
# on eviction rather than at flush time.
# QCOW2_CRASH_ROUNDS sets the number of kills (default 100).
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img
TOOL=$QCOW2_TOOL
ROUNDS=${QCOW2_CRASH_ROUNDS:-100}

plan 3

head -c 16M /dev/urandom > "$T/base.raw"
corrupt=0 lost=0 leaks=0 durable=0 failed_start=0
for ((r = 1; r <= ROUNDS; r++)); do
    img=$T/crash.qcow2
    if (( r % 4 == 1 )); then
        rm -f "$img"
        case $(( (r / 4) % 4 )) in
            0) "$BLKHOST" create -f qcow2 "$img" 32M >/dev/null ;;
            1) "$BLKHOST" create -f qcow2 -o cluster_size=4096 "$img" 32M >/dev/null ;;
            2) "$BLKHOST" create -f qcow2 -o cluster_size=4096 -b base.raw -F raw "$img" 32M >/dev/null ;;
            3) "$BLKHOST" create -f qcow2 -o compat=0.10,cluster_size=512 "$img" 8M >/dev/null ;;
        esac
    fi
    rm -f "$T/log"
    opts=
    if (( r % 3 == 0 )); then   # tiny caches: write-back on every eviction
        opts=l2-cache-size=1,refcount-cache-size=1
    fi
    "$TOOL" crash-writer "$img" "$T/log" $r $(( (r % 4) * 1000 )) $opts 2>"$T/writer.err" &
    pid=$!
    sleep "0.$(printf %03d $((RANDOM % 250)))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    if [ -s "$T/writer.err" ]; then
        failed_start=$((failed_start + 1))
        diag "round $r writer: $(cat "$T/writer.err")"
    fi
    out=$(qemu-img check "$img" 2>&1); rc=$?
    case $rc in
        0) ;;
        3) leaks=$((leaks + 1)) ;;
        *) corrupt=$((corrupt + 1)); diag "round $r: qemu-img check exit $rc"; diag "$out" ;;
    esac
    if ! out=$("$TOOL" crash-verify "$img" "$T/log" 2>&1); then
        lost=$((lost + 1)); diag "round $r: $out"
    else
        durable=$((durable + ${out%% *}))
    fi
done
diag "$ROUNDS kills, $leaks left leaked clusters, $durable durable writes verified"
if [ $corrupt -eq 0 ]; then
    ok "qcow2: $ROUNDS SIGKILLs during allocating writes, qemu-img check never reports corruption"
else
    not_ok "qcow2: $ROUNDS SIGKILLs during allocating writes, qemu-img check never reports corruption ($corrupt did)"
fi
if [ $lost -eq 0 ] && [ $durable -gt 0 ]; then
    ok "qcow2: every write acknowledged with FUA or followed by a flush reads back after SIGKILL"
else
    not_ok "qcow2: every write acknowledged with FUA or followed by a flush reads back after SIGKILL ($lost rounds lost data, $durable checked)"
fi
if [ $failed_start -eq 0 ]; then
    ok "qcow2: the writer reopened every crashed image without error"
else
    not_ok "qcow2: the writer reopened every crashed image without error ($failed_start failed)"
fi
