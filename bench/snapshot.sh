#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Internal snapshots, `blkhost snapshot -c/-d` against `qemu-img snapshot
# -c/-d` in the same run, as whole commands (process start included),
# taking turns on the same image.  Not a test.  Three parts:
#
#  1. time: a fully allocated 1 GiB image (BENCH_ROUNDS rounds), then sparse
#     and preallocation=metadata images of BENCH_SIZES (64 KiB clusters;
#     BENCH_ROUNDS rounds at 1G, 3 at 16G, 1 above); mean wall time of each
#     command and its peak RSS (/usr/bin/time), with blkhost / qemu-img
#     ratios (below 1.0: blkhost is faster or smaller);
#  2. growth: BENCH_CYCLES (100) create+delete cycles on a 1 GiB
#     preallocation=metadata image, one per tool: `du` before and after;
#  3. a summary of the targets: time ratio <= 1 everywhere, peak RSS at the
#     largest size <= 2x qemu-img's, growth <= 2 MiB.
#
#   bench/snapshot.sh                    # BLKHOST=build/lua/blkhost
#   BENCH_SIZES="1G 16G" BENCH_ROUNDS=20 bench/snapshot.sh
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BLKHOST:=$ROOT/build/lua/blkhost}"
: "${BENCH_ROUNDS:=10}"
: "${BENCH_SIZES:=1G 16G 128G 1T}"
: "${BENCH_CYCLES:=100}"
for c in qemu-img qemu-io /usr/bin/time "$BLKHOST"; do
    command -v "$c" >/dev/null 2>&1 || { echo "bench: $c is missing (apt-get install qemu-utils time)" >&2; exit 1; }
done
DIR=$(mktemp -d /var/tmp/blkhost-bench-snap.XXXXXX)
trap 'rm -rf "$DIR"' EXIT

now() { date +%s%N; }
declare -A ns rss
fails=()
# run KEY CMD...: add CMD's wall time (ns) to ns[KEY], keep its peak RSS (KiB)
run() {
    local key=$1 t0 t1 m; shift
    t0=$(now)
    /usr/bin/time -f %M -o "$DIR/rss" "$@" >/dev/null || { echo "bench: $* failed" >&2; exit 1; }
    t1=$(now)
    ns[$key]=$(( ${ns[$key]:-0} + t1 - t0 ))
    m=$(tail -1 "$DIR/rss")
    [ "$m" -gt "${rss[$key]:-0}" ] && rss[$key]=$m
}
ms() { awk -v n="$1" -v r="$2" 'BEGIN { printf "%.1f", n / r / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# bench_row LABEL IMG ROUNDS: create/delete ROUNDS times with each tool.
bench_row() {
    local label=$1 img=$2 rounds=$3 op k r
    ns=() rss=()
    qemu-img snapshot -c base "$img"        # one snapshot already there
    for r in $(seq 1 "$rounds"); do
        run bc "$BLKHOST" snapshot -c bench "$img"
        run bd "$BLKHOST" snapshot -d bench "$img"
        run qc qemu-img snapshot -c bench "$img"
        run qd qemu-img snapshot -d bench "$img"
    done
    qemu-img check -q "$img" || { echo "bench: qemu-img check complained ($label)" >&2; fails+=("check $label"); }
    for op in create delete; do
        k=${op:0:1}
        printf '%-22s %-6s %10s %10s %6s %9s %9s %6s\n' "$label" $op \
            "$(ms ${ns[b$k]} "$rounds")" "$(ms ${ns[q$k]} "$rounds")" \
            "$(ratio ${ns[b$k]} ${ns[q$k]})" "${rss[b$k]}" "${rss[q$k]}" \
            "$(ratio ${rss[b$k]} ${rss[q$k]})"
        le "$(ratio ${ns[b$k]} ${ns[q$k]})" 1 || fails+=("time $label $op")
        last_rss_ratio[$op]=$(ratio ${rss[b$k]} ${rss[q$k]})
    done
}
declare -A last_rss_ratio

echo "== time and peak RSS: blkhost against qemu-img (mean per command, 64k clusters)"
printf '%-22s %-6s %10s %10s %6s %9s %9s %6s\n' image op "blkhost ms" "qemu ms" ratio \
    "bh KiB" "qemu KiB" ratio
IMG=$DIR/full.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k "$IMG" 1G
qemu-io -c "write -P 0xab 0 1G" "$IMG" >/dev/null
bench_row "1G fully allocated" "$IMG" "$BENCH_ROUNDS"
rm -f "$IMG"
largest=
for size in $BENCH_SIZES; do
    case $size in
        1G) rounds=$BENCH_ROUNDS ;;
        16G) rounds=3 ;;
        *) rounds=1 ;;
    esac
    for kind in sparse metadata; do
        IMG=$DIR/$size-$kind.qcow2
        o=cluster_size=64k
        [ $kind = metadata ] && o=$o,preallocation=metadata
        qemu-img create -q -f qcow2 -o $o "$IMG" "$size"
        bench_row "$size $kind" "$IMG" "$rounds"
        rm -f "$IMG"
    done
    largest=$size
done
for op in create delete; do
    le "${last_rss_ratio[$op]}" 2 || fails+=("peak RSS $largest $op ${last_rss_ratio[$op]}x")
done

echo
echo "== growth: $BENCH_CYCLES create+delete cycles, 1 GiB preallocation=metadata image"
printf '%-9s %12s %12s %12s %s\n' tool "du before" "du after" growth "image end"
for tool in blkhost qemu-img; do
    IMG=$DIR/grow-$tool.qcow2
    qemu-img create -q -f qcow2 -o cluster_size=64k,preallocation=metadata "$IMG" 1G
    before=$(du -k "$IMG" | cut -f1)
    cmd=$BLKHOST; [ $tool = qemu-img ] && cmd=qemu-img
    for i in $(seq 1 "$BENCH_CYCLES"); do
        $cmd snapshot -c cycle "$IMG" && $cmd snapshot -d cycle "$IMG" ||
            { echo "bench: $tool cycle $i failed" >&2; exit 1; }
    done
    after=$(du -k "$IMG" | cut -f1)
    qemu-img check -q "$IMG" || { echo "bench: qemu-img check complained ($tool growth)" >&2; fails+=("check growth $tool"); }
    printf '%-9s %9s KiB %9s KiB %8s KiB %s\n' $tool "$before" "$after" $((after - before)) \
        "$(qemu-img check "$IMG" | sed -n 's/Image end offset: //p')"
    [ $tool = blkhost ] && [ $((after - before)) -gt 2048 ] && fails+=("growth $((after - before)) KiB")
    rm -f "$IMG"
done

echo
if [ ${#fails[@]} -eq 0 ]; then
    echo "targets met: time ratio <= 1.00 everywhere, peak RSS at $largest <= 2x qemu-img, growth <= 2 MiB"
else
    echo "targets missed: ${fails[*]}"
fi
