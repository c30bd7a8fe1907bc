#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The file driver without NBD: 4k random O_DIRECT reads and writes of a
# file on disk at queue depth 32, through bh_node_submit from one thread
# (the driver's io_uring / Linux AIO queue) against the synchronous path
# from 32 threads (what a worker pool does), for each aio mode; fio's own
# io_uring and libaio engines on the same file give the disk's figure.
# Median of BENCH_REPEAT rounds (3), BENCH_RUNTIME seconds each (5).
# Builds bench/submit-bench.c with cc against build/.
#
#   bench/submit.sh            # BENCH_DIRECT_SIZE=2G file under BENCH_DIR
set -u
: "${BENCH_RUNTIME:=5}"
source "$(dirname "$0")/lib.sh"
bench_init cc
[ "$BENCH_REPEAT" -ge 3 ] 2>/dev/null || BENCH_REPEAT=3
: "${BENCH_DIRECT_SIZE:=2G}"
BUILD=${BUILD:-$BENCH_ROOT/build}
IMG="$BENCH_DIR/direct.raw"
bench_image "$IMG" "$BENCH_DIRECT_SIZE"
EXE="$BENCH_DIR/submit-bench"
cc -O2 -o "$EXE" "$BENCH_ROOT/bench/submit-bench.c" -I"$BENCH_ROOT/core/include" \
    $(pkg-config --cflags --libs glib-2.0) -L"$BUILD/core" -lblkhost \
    -Wl,-rpath,"$BUILD/core" -lpthread || bench_die "cannot build bench/submit-bench.c"

declare -A R
CASES=("io_uring submit" "io_uring sync" "native submit" "native sync"
       "threads sync" "fio io_uring" "fio libaio")
for round in $(seq 1 "$BENCH_REPEAT"); do
    for rw in read write; do
        for c in "${CASES[@]}"; do
            read -r aio how <<< "$c"
            if [ "$aio" = fio ]; then
                r=$(fio --name=b --filename="$IMG" --ioengine="$how" --direct=1 \
                        --rw=rand$rw --bs=4k --iodepth=32 --runtime="$BENCH_RUNTIME" \
                        --time_based --output-format=terse 2>/dev/null |
                    awk -F';' -v rw="$rw" '{print rw == "read" ? $8 : $49}')
            else
                r=$("$EXE" "$IMG" "aio=$aio" "$how" "$rw" 32 "$BENCH_RUNTIME")
            fi
            echo "bench: round $round: $c: 4k rand$rw QD32: $r" >&2
            R[$c,$rw]="${R[$c,$rw]:-} $r"
        done
    done
done

echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
     "4k random O_DIRECT, QD32, ${BENCH_RUNTIME}s, median of $BENCH_REPEAT"
echo
printf '| %-16s | %-12s | %-12s |\n' "path" "read IOPS" "write IOPS"
printf '|------------------|--------------|--------------|\n'
for c in "${CASES[@]}"; do
    m() { printf '%s\n' $1 | sort -n | sed -n "$(( ($(printf '%s\n' $1 | wc -l) + 1) / 2 ))p"; }
    printf '| %-16s | %-12s | %-12s |\n' "$c" "$(m "${R[$c,read]}")" "$(m "${R[$c,write]}")"
done
