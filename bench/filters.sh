#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The cost of a filter stack (issue 19): three pass-through filters (log
# to /dev/null, delay 0, blocksize with its defaults) over a 1 GiB memory
# disk against the bare memory disk, for blkhost and for nbdkit's same
# stack in the same run:
#   blkhost: bh.open(nil, {format="memory", size="1G", filters={
#              {"blocksize"}, {"delay"}, {"log", file="/dev/null"}}})
#   nbdkit:  nbdkit --filter=log --filter=delay --filter=blocksize \
#              memory 1G logfile=/dev/null
# (nbdkit's first --filter is the outermost, blkhost's first filter the
# innermost: the stacks are the same.)  fio's nbd engine drives each over
# a Unix socket; the four servers take turns row by row, BENCH_REPEAT
# rounds (default 3: the machine is shared).  Shown: median IOPS, and
# each server's overhead ratio, IOPS with the stack / IOPS without in the
# same round (1.00: the stack costs nothing), median over the rounds.
# Not a test.
#
#   bench/filters.sh                       # BLKHOST=build/lua/blkhost
#   BENCH_RUNTIME=5 BENCH_REPEAT=5 bench/filters.sh
set -u
: "${BENCH_REPEAT:=3}"
source "$(dirname "$0")/lib.sh"
bench_init nbdkit

SOCK="$BENCH_DIR/nbd.sock"
URI="nbd+unix:///?socket=$SOCK"
cat > "$BENCH_DIR/serve.lua" <<'LUA'
local bh = require "blkhost"
local sock, stack = arg[1], arg[2] == "stack"
local d <close> = bh.open(nil, { format = "memory", size = "1G", filters = stack and {
  { "blocksize" }, { "delay" }, { "log", file = "/dev/null" } } or nil })
local srv <close> = bh.nbd.server{ listen = { "unix:" .. sock }, persistent = true }
srv:export(d, { name = "" })
bh.loop()
srv:stop()
LUA

start() {
    case $1 in
    blkhost) bench_start "$1" "$SOCK" "$BLKHOST" run "$BENCH_DIR/serve.lua" "$SOCK" none ;;
    blkhost-stack) bench_start "$1" "$SOCK" "$BLKHOST" run "$BENCH_DIR/serve.lua" "$SOCK" stack ;;
    nbdkit) bench_start "$1" "$SOCK" nbdkit -f -U "$SOCK" memory 1G ;;
    nbdkit-stack) bench_start "$1" "$SOCK" nbdkit -f -U "$SOCK" --filter=log \
                      --filter=delay --filter=blocksize memory 1G logfile=/dev/null ;;
    esac
}

# label|rw|bs|iodepth|numjobs
ROWS=("4k randread QD16|randread|4k|16|1" "1M seq read QD8|read|1M|8|1")
SERVERS=(blkhost blkhost-stack nbdkit nbdkit-stack)
declare -A R    # R[server,label]: "IOPS MBPS" lines, one per round
bench_rounds


echo
echo "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)," \
     "$(fio --version), $(nbdkit --version), ${BENCH_RUNTIME}s per row," \
     "median of $BENCH_REPEAT rounds"
echo
echo "IOPS: medians over the rounds; ratio: the median of each round's IOPS with"
echo "the 3 filters / IOPS without (1.00: the stack costs nothing)."
echo
echo "| row | blkhost IOPS | + 3 filters | blkhost ratio | nbdkit IOPS | + 3 filters | nbdkit ratio |"
echo "|---|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label _ <<< "$row"
    cols=()
    for pair in "blkhost blkhost-stack" "nbdkit nbdkit-stack"; do
        read -r a b <<< "$pair"
        cols+=("$(bench_median_num $(bench_iops "${R[$a,$label]}"))" "$(bench_median_num $(bench_iops "${R[$b,$label]}"))"
               "$(bench_median_num $(bench_round_ratios "${R[$b,$label]}" "${R[$a,$label]}"))")
    done
    echo "| $label | ${cols[0]} | ${cols[1]} | ${cols[2]} | ${cols[3]} | ${cols[4]} | ${cols[5]} |"
    echo "bench: $label: per-round ratios blkhost $(bench_round_ratios "${R[blkhost-stack,$label]}" "${R[blkhost,$label]}" | tr '\n' ' ')" \
         "nbdkit $(bench_round_ratios "${R[nbdkit-stack,$label]}" "${R[nbdkit,$label]}" | tr '\n' ' ')" >&2
done
