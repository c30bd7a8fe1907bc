#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# blkhost serving an RBD image against qemu-nbd serving the same image
# (issue 16): one throwaway one-node Ceph cluster (tests/ceph/cluster.sh,
# memstore, so the OSD is not the disk's benchmark), one image filled
# with random data, and fio's nbd ioengine on each server in turn:
#   blkhost:  blkhost nbd -f raw rbd:rbd/bench   (drivers/rbd, librbd aio)
#   qemu-nbd: qemu-nbd -f raw rbd:rbd/bench      (qemu-block-extra's rbd)
# The servers take turns row by row, BENCH_REPEAT rounds; the table gives
# the median IOPS (MB/s for 1M) and the median of the per-round ratios
# blkhost / qemu-nbd (the goal: 1.0 or more).
#
# With BENCH_FLEET=1 (BENCH_FLEET=only: without the first) a second table shows how it scales (docs/scale.md):
# N blkhost front-ends, each serving its own image of the one pool, all
# driven at once (4k randread QD16 each; the sum of their IOPS), and one
# front-end with multi-conn (-e 4) driven by 4 fio jobs of QD4.
#
#   bench/rbd.sh            # BENCH_RUNTIME=10 BENCH_REPEAT=3 BENCH_SIZE=256M
# Not a test: the numbers depend on the machine and its load; on a
# small machine the single OSD is the bottleneck for both servers.
set -u
: "${BENCH_SIZE:=256M}"
: "${BENCH_REPEAT:=3}"
source "$(dirname "$0")/lib.sh"
bench_init qemu-nbd rbd ceph-mon ceph-osd
[ -f "$BENCH_ROOT/build/drivers/rbd/rbd.so" ] ||
    bench_die "the rbd driver is not built (install librbd-dev, then ./dev.sh build)"
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so ] || ls /usr/lib/*/qemu/block-rbd.so >/dev/null 2>&1 ||
    bench_die "qemu-nbd has no rbd driver (apt-get install qemu-block-extra)"

# cluster.sh's hooks, for a script that is not a TAP test.
skip_all() { bench_die "$*"; }
CEPH_HOOKS=()
at_exit() { CEPH_HOOKS+=("$*"); }
source "$BENCH_ROOT/tests/ceph/cluster.sh"
size_mib=$(( $(numfmt --from=iec "$BENCH_SIZE") / 1048576 ))
# The images live in the OSD's memory, with room for RBD's objects (a
# full memstore OSD blocks every write, and the opens time out).
copies=1; [ "${BENCH_FLEET:-0}" != 0 ] && copies=4
export CEPH_MEMSTORE_MB=$(( size_mib * copies * 3 / 2 + 512 ))
trap 'bench_stop_all; for h in "${CEPH_HOOKS[@]}"; do eval "$h"; done; rm -rf "$BENCH_DIR"' EXIT
ceph_start "$BENCH_DIR/ceph" || bench_die "the one-node Ceph cluster did not come up (logs: $BENCH_DIR/ceph/log)"
rbd create --size "${size_mib}M" rbd/bench || bench_die "rbd create failed"
echo "bench: filling rbd/bench with $BENCH_SIZE of random data" >&2
head -c "$BENCH_SIZE" /dev/urandom | rbd import --no-progress - rbd/bench-src >/dev/null 2>&1 &&
    rbd rm --no-progress rbd/bench >/dev/null 2>&1 && rbd mv rbd/bench-src rbd/bench ||
    bench_die "cannot fill rbd/bench"

SOCK="$BENCH_DIR/nbd.sock"
URI="nbd+unix:///?socket=$SOCK"
start() {
    case $1 in
    blkhost) bench_start "$1" "$SOCK" "$BLKHOST" nbd -t -f raw -k "$SOCK" rbd:rbd/bench ;;
    qemu-nbd) bench_start "$1" "$SOCK" qemu-nbd -t -f raw -k "$SOCK" rbd:rbd/bench ;;
    esac
}

# label|rw|bs|iodepth|numjobs
ROWS=("4k randread QD16|randread|4k|16|1" "4k randwrite QD16|randwrite|4k|16|1"
      "1M seq read QD8|read|1M|8|1")
SERVERS=(blkhost qemu-nbd)
declare -A R    # R[server,label]: "IOPS MBPS" lines, one per round
if [ "${BENCH_FLEET:-0}" != only ]; then
bench_rounds

echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
     "$(fio --version), $(qemu-nbd --version | head -1), ceph $(ceph --version | awk '{print $3}')," \
     "one mon + one memstore OSD, ${BENCH_RUNTIME}s per row, median of $BENCH_REPEAT rounds, image $BENCH_SIZE"
echo
echo "| row | blkhost | qemu-nbd | blkhost / qemu-nbd |"
echo "|---|---|---|---|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label _ <<< "$row"
    b=${R[blkhost,$label]} q=${R[qemu-nbd,$label]}
    if [[ $label == 1M* ]]; then
        vb="$(bench_median_num $(printf '%s' "$b" | awk '{print $2}')) MB/s"
        vq="$(bench_median_num $(printf '%s' "$q" | awk '{print $2}')) MB/s"
    else
        vb="$(bench_median_num $(bench_iops "$b")) IOPS"
        vq="$(bench_median_num $(bench_iops "$q")) IOPS"
    fi
    echo "| $label | $vb | $vq | $(bench_median_num $(bench_round_ratios "$b" "$q")) |"
done
fi

[ "${BENCH_FLEET:-0}" != 0 ] || exit 0

# ---- how it scales: several front-ends over one pool, and multi-conn ----
for i in 1 2 3; do
    rbd cp --no-progress rbd/bench "rbd/bench$i" >/dev/null 2>&1 || bench_die "rbd cp failed"
done
# fleet N: N servers on images bench, bench1.. at once; prints the IOPS sum.
fleet() {
    local n=$1 i pids=() img sum=0
    for i in $(seq 0 $((n - 1))); do
        img=bench; [ $i -gt 0 ] && img=bench$i
        bench_start "fe$i" "$BENCH_DIR/fe$i.sock" "$BLKHOST" nbd -t -f raw -k "$BENCH_DIR/fe$i.sock" "rbd:rbd/$img"
    done
    for i in $(seq 0 $((n - 1))); do
        bench_fio "nbd+unix:///?socket=$BENCH_DIR/fe$i.sock" randread 4k 16 1 >"$BENCH_DIR/fe$i.out" &
        pids+=($!)
    done
    wait "${pids[@]}" || return 1
    for i in $(seq 0 $((n - 1))); do
        sum=$((sum + $(awk '{print $1}' "$BENCH_DIR/fe$i.out")))
        bench_stop "fe$i"
    done
    echo "$sum"
}
echo
echo "| front-ends (own image each, 4k randread QD16 each) | total IOPS | per front-end |"
echo "|---|---|---|"
for n in 1 2 4; do
    t=$(fleet $n) || bench_die "$n front-ends did not all run"
    echo "| $n | $t | $((t / n)) |"
done
bench_start mc "$SOCK" "$BLKHOST" nbd -t -e 4 -f raw -k "$SOCK" rbd:rbd/bench
r1=$(bench_fio "$URI" randread 4k 16 1)
r4=$(bench_fio "$URI" randread 4k 4 4)
bench_stop mc
echo
echo "| one front-end, 4k randread | IOPS |"
echo "|---|---|"
echo "| 1 connection, QD16 | $(echo "$r1" | awk '{print $1}') |"
echo "| 4 connections (-e 4, multi-conn), QD4 each | $(echo "$r4" | awk '{print $1}') |"
