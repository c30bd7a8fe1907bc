#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost convert` against `qemu-img convert` in the same run, on the
# same source, taking turns row by row so the machine's load hits both.
#
#   bench/convert.sh [BUILD_DIR]
#
# The source: a BENCH_SIZE (default 4G) raw file, half data half holes
# (1 MiB of random data, then a 1 MiB hole, repeated), read once so it
# sits in the page cache.  Rows: raw -> qcow2, then qcow2 -> raw (from
# the qcow2 qemu-img made), qcow2 -> qcow2 with -c (compressed output;
# the source's first quarter of each data MiB is text, which compresses,
# the rest random, which does not and is written plainly by both), and an
# overlay on that qcow2 (1 MiB written every 64 MiB by qemu-io) -> raw,
# the backing chain flattened.  Both use their defaults (8 requests in
# flight, -m 8; writes in order) and end with a flush; BENCH_CONVERT_OPTS
# (e.g. "-W" or "-m 16 -W") are given to both.  Each row runs
# BENCH_REPEAT (default 3) times per tool and
# keeps the best; the results are checked with qemu-img compare.  Prints
# seconds and the ratio blkhost/qemu-img (below 1: blkhost is faster).
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
BLKHOST=$BUILD/lua/blkhost
: "${BENCH_SIZE:=4G}"
: "${BENCH_REPEAT:=3}"
: "${BENCH_CONVERT_OPTS:=}"
export PATH="/usr/bin:$PATH"
command -v qemu-img >/dev/null || { echo "bench/convert.sh: qemu-img is not installed" >&2; exit 1; }
[ -x "$BLKHOST" ] || { echo "bench/convert.sh: no $BLKHOST (build first)" >&2; exit 1; }

D=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-convert.XXXXXX")
trap 'rm -rf "$D"' EXIT

bytes=$("$BLKHOST" run - "$BENCH_SIZE" <<'LUA'
print(require("blkhost").parse_size(arg[1]))
LUA
)
python3 - "$D/src.raw" "$bytes" <<'PY'
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
mib = 1 << 20
with open(path, "wb") as f:
    f.truncate(size)
    for off in range(0, size, 2 * mib):
        f.seek(off)
        n = min(mib, size - off)
        text = (b"blkhost bench: a line of text that compresses\n" * 8192)[:n // 4]
        f.write(text + os.urandom(n - len(text)))
PY
cat "$D/src.raw" >/dev/null
qemu-img convert -O qcow2 "$D/src.raw" "$D/src.qcow2"
cat "$D/src.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$D/src.qcow2" -F qcow2 "$D/top.qcow2"
for off in $(seq 0 $((64 << 20)) $((bytes - (1 << 20)))); do
    echo "write -P 0x5a $((off + (512 << 10))) 1M"
done | qemu-io "$D/top.qcow2" >/dev/null
cat "$D/top.qcow2" >/dev/null

# seconds CMD...: wall time of CMD, or "fail".
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>"$D/err" || { echo fail; return; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
min() { if [ "$1" = fail ] || [ "$2" = fail ]; then echo fail;
        elif [ "$(echo "$1 < $2" | bc -l)" = 1 ]; then echo "$1"; else echo "$2"; fi; }

printf "%-16s %12s %12s %10s\n" "$BENCH_SIZE, half data" "blkhost s" "qemu-img s" "ratio${BENCH_CONVERT_OPTS:+ ($BENCH_CONVERT_OPTS)}"
# row NAME FMT SOURCE EXT [ARGS...]: both tools convert SOURCE to FMT,
# with the extra convert ARGS (-c) and BENCH_CONVERT_OPTS.
row() {
    local name=$1 fmt=$2 in=$3 ext=$4 b=999999 q=999999 i
    shift 4
    for i in $(seq 1 "$BENCH_REPEAT"); do
        rm -f "$D/b.$ext" "$D/q.$ext"
        b=$(min "$b" "$(seconds "$BLKHOST" convert $BENCH_CONVERT_OPTS "$@" -O "$fmt" "$in" "$D/b.$ext")")
        rm -f "$D/q.$ext"
        q=$(min "$q" "$(seconds qemu-img convert $BENCH_CONVERT_OPTS "$@" -O "$fmt" "$in" "$D/q.$ext")")
    done
    if [ "$b" = fail ] || [ "$q" = fail ]; then
        printf "%-16s failed: %s\n" "$name" "$(cat "$D/err")"
        return
    fi
    local same=identical
    qemu-img compare -q "$D/b.$ext" "$D/q.$ext" || same="DIFFERENT"
    [ $# -gt 0 ] && same="$same; $(stat -c %s "$D/b.$ext") and $(stat -c %s "$D/q.$ext") bytes"
    printf "%-16s %12.2f %12.2f %10.2f   (%s)\n" "$name" "$b" "$q" \
        "$(echo "$b / $q" | bc -l)" "$same"
    rm -f "$D/b.$ext" "$D/q.$ext"
}
row "raw -> qcow2" qcow2 "$D/src.raw" qcow2
row "qcow2 -> raw" raw "$D/src.qcow2" raw
row "qcow2 -> qcow2 -c" qcow2 "$D/src.qcow2" qcow2 -c
row "overlay -> raw" raw "$D/top.qcow2" raw
