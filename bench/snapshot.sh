#!/bin/bash
# Internal snapshot create and delete on a fully allocated 1 GiB qcow2
# image with 64 KiB clusters: `blkhost snapshot -c/-d` against
# `qemu-img snapshot -c/-d`, as whole commands (process start included),
# taking turns on the same image.  Prints the mean time of each and the
# ratio blkhost / qemu-img (below 1.0: blkhost is faster).  Not a test.
#
#   bench/snapshot.sh                    # BLKHOST=build/lua/blkhost
#   BENCH_ROUNDS=20 BLKHOST=/tmp/b/lua/blkhost bench/snapshot.sh
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${BLKHOST:=$ROOT/build/lua/blkhost}"
: "${BENCH_ROUNDS:=10}"
: "${BENCH_SIZE:=1G}"
for c in qemu-img qemu-io "$BLKHOST"; do
    command -v "$c" >/dev/null 2>&1 || { echo "bench: $c is missing" >&2; exit 1; }
done
DIR=$(mktemp -d /var/tmp/blkhost-bench-snap.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
IMG=$DIR/disk.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k "$IMG" "$BENCH_SIZE"
qemu-io -c "write -P 0xab 0 $BENCH_SIZE" "$IMG" >/dev/null
qemu-img snapshot -c base "$IMG"        # one snapshot already there

now() { date +%s%N; }
declare -A total=([bc]=0 [bd]=0 [qc]=0 [qd]=0)
run() {  # run KEY CMD...: add CMD's wall time (ns) to total[KEY]
    local key=$1 t0 t1; shift
    t0=$(now); "$@" >/dev/null || { echo "bench: $* failed" >&2; exit 1; }; t1=$(now)
    total[$key]=$(( ${total[$key]} + t1 - t0 ))
}
for r in $(seq 1 "$BENCH_ROUNDS"); do
    run bc "$BLKHOST" snapshot -c bench "$IMG"
    run bd "$BLKHOST" snapshot -d bench "$IMG"
    run qc qemu-img snapshot -c bench "$IMG"
    run qd qemu-img snapshot -d bench "$IMG"
done
qemu-img check -q "$IMG" || echo "bench: qemu-img check complained" >&2
ms() { awk -v n="$1" -v r="$BENCH_ROUNDS" 'BEGIN { printf "%.2f", n / r / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "snapshot create/delete, $BENCH_SIZE qcow2 (64k clusters, fully allocated), mean of $BENCH_ROUNDS"
printf '%-8s %12s %12s %8s\n' op "blkhost ms" "qemu-img ms" ratio
printf '%-8s %12s %12s %8s\n' create "$(ms ${total[bc]})" "$(ms ${total[qc]})" "$(ratio ${total[bc]} ${total[qc]})"
printf '%-8s %12s %12s %8s\n' delete "$(ms ${total[bd]})" "$(ms ${total[qd]})" "$(ratio ${total[bd]} ${total[qd]})"
echo "image end: $(stat -c %s "$IMG") bytes"
