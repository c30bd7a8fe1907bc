#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The FUSE export side by side: `blkhost fuse` against
# qemu-storage-daemon's `--export type=fuse`, each showing its own copy
# of the same fully allocated raw image (both take the image's write
# lock) as a regular file, read by fio with O_DIRECT so that every
# request reaches the server (a buffered read would measure the
# kernel's page cache).  The two take turns row by row; BENCH_REPEAT
# rounds (default 3) give each row's median by IOPS.
#
#   bench/fuse.sh                      # ~3 min
#   BENCH_RUNTIME=5 BENCH_REPEAT=5 bench/fuse.sh
#
# Knobs as in lib.sh (BENCH_RUNTIME 10, BENCH_SIZE 1G, BENCH_DIR,
# BENCH_KEEP); BENCH_THREADS passes --threads to blkhost fuse.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
: "${BENCH_REPEAT:=3}"
bench_init qemu-storage-daemon

bench_image "$BENCH_DIR/disk.raw" "$BENCH_SIZE"
cp --sparse=never "$BENCH_DIR/disk.raw" "$BENCH_DIR/qsd.raw"
cat "$BENCH_DIR/qsd.raw" >/dev/null
: >"$BENCH_DIR/blkhost.mnt"
: >"$BENCH_DIR/qsd.mnt"

declare -A MNT_PID
fuse_bench_stop() {
    local n pid
    for n in "${!MNT_PID[@]}"; do
        pid=${MNT_PID[$n]}
        kill -TERM "$pid" 2>/dev/null || continue
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        # qemu-storage-daemon 7.2 sometimes leaves its mount behind.
        if grep -q " $BENCH_DIR/$n.mnt " /proc/self/mountinfo; then
            umount -l "$BENCH_DIR/$n.mnt" 2>/dev/null || fusermount3 -uz "$BENCH_DIR/$n.mnt"
        fi
    done
}
trap 'fuse_bench_stop; bench_stop_all; [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BENCH_DIR"' EXIT

"$BLKHOST" fuse -f raw --fork --pid-file="$BENCH_DIR/blkhost.pid" \
    ${BENCH_THREADS:+--threads="$BENCH_THREADS"} \
    "$BENCH_DIR/disk.raw" "$BENCH_DIR/blkhost.mnt" ||
    bench_die "blkhost fuse did not mount"
MNT_PID[blkhost]=$(cat "$BENCH_DIR/blkhost.pid")
qemu-storage-daemon \
    --blockdev "driver=file,node-name=f,filename=$BENCH_DIR/qsd.raw" \
    --export "type=fuse,id=e,node-name=f,mountpoint=$BENCH_DIR/qsd.mnt,writable=on" \
    --pidfile "$BENCH_DIR/qsd.pid" --daemonize ||
    bench_die "qemu-storage-daemon did not mount"
MNT_PID[qsd]=$(cat "$BENCH_DIR/qsd.pid")

# fuse_fio FILE RW BS ENGINE IODEPTH: prints "IOPS MBPS".
fuse_fio() {
    local json
    json=$(fio --name=bench --filename="$1" --rw="$2" --bs="$3" --ioengine="$4" \
               --iodepth="$5" --direct=1 --size="$BENCH_SIZE" \
               --runtime="$BENCH_RUNTIME" --time_based --ramp_time=1 \
               --output-format=json 2>"$BENCH_DIR/fio.err") ||
        { cat "$BENCH_DIR/fio.err" >&2; echo "0 0"; return 0; }
    echo "$json" | /usr/bin/python3 -c 'import json, sys
t = sys.stdin.read()
j = json.loads(t[t.find("{"):])["jobs"][0]
print("%.0f %.1f" % (j["read"]["iops"] + j["write"]["iops"],
                     (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6))'
}

# median: of the "IOPS MBPS" lines on stdin, the middle one by IOPS.
median() {
    sort -k1,1n | awk 'NF { r[++n] = $0 } END { print r[int((n + 1) / 2)] }'
}

ROWS=("1M seq read QD1|read|1M|psync|1"
      "1M seq read QD8|read|1M|libaio|8"
      "4k randread QD1|randread|4k|psync|1"
      "4k randread QD16|randread|4k|libaio|16")
declare -A RES
for round in $(seq 1 "$BENCH_REPEAT"); do
    for row in "${ROWS[@]}"; do
        IFS='|' read -r label rw bs eng qd <<<"$row"
        for srv in blkhost qsd; do
            r=$(fuse_fio "$BENCH_DIR/$srv.mnt" "$rw" "$bs" "$eng" "$qd")
            RES["$label|$srv"]="${RES["$label|$srv"]:-}$r"$'\n'
            echo "bench: round $round $label $srv: $r" >&2
        done
    done
done

echo "medians of $BENCH_REPEAT rounds, ${BENCH_RUNTIME}s each, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
bench_header blkhost qsd
for row in "${ROWS[@]}"; do
    label=${row%%|*}
    b=$(printf '%s' "${RES["$label|blkhost"]}" | median)
    q=$(printf '%s' "${RES["$label|qsd"]}" | median)
    bench_row "$label" "$b" "$q"
done
