#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# qcow2 rows of the benchmark: blkhost's nbd-server + qcow2 driver against
# `qemu-nbd -f qcow2`, both on a Unix socket, driven by fio's nbd engine.
#
#   bench/qcow2.sh [BUILD_DIR] [RUNTIME_SECONDS]
#
# Rows: on one preallocated (preallocation=full) 1 GiB qcow2 image, 4k
# random read and write at QD16 and 1M sequential read and write at QD16;
# then 4k random writes at QD16 on a fresh, empty image (every write
# allocates).  Each server gets the same image file in turn.  Prints one
# line per row: IOPS or MB/s for each server and the ratio blkhost/qemu.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build}
RUNTIME=${2:-10}
BLKHOST=$BUILD/lua/blkhost
export PATH="/usr/bin:$PATH"
for c in fio qemu-nbd qemu-img; do
    command -v $c >/dev/null || { echo "bench/qcow2.sh: $c is not installed" >&2; exit 1; }
done
[ -x "$BLKHOST" ] || { echo "bench/qcow2.sh: no $BLKHOST (build first)" >&2; exit 1; }
fio --enghelp=nbd >/dev/null 2>&1 || { echo "bench/qcow2.sh: fio lacks the nbd engine" >&2; exit 1; }

D=$(mktemp -d "${TMPDIR:-/tmp}/bench-qcow2.XXXXXX")
spid=
cleanup() { [ -n "$spid" ] && kill "$spid" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT

# start SERVER IMAGE: serve IMAGE on $D/sock with blkhost or qemu-nbd.
start() {
    rm -f "$D/sock" "$D/ready"
    case $1 in
    blkhost)
        "$BLKHOST" run "$SRC/tests/qcow2/serve.lua" "$D/sock" "$2" "$D/ready" \
            >"$D/server.log" 2>&1 &
        spid=$! ;;
    qemu)
        qemu-nbd -f qcow2 -k "$D/sock" -t --cache=writeback --discard=unmap \
            "$2" >"$D/server.log" 2>&1 &
        spid=$! ;;
    esac
    for _ in $(seq 1 200); do [ -S "$D/sock" ] && return 0; sleep 0.05; done
    echo "server $1 did not start:" >&2; cat "$D/server.log" >&2; exit 1
}
stop() { kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null; spid=; }

# run RW BS: one fio job, prints "IOPS MBPS".
run() {
    timeout $((RUNTIME + 60)) fio --name=b --ioengine=nbd --uri="nbd+unix:///?socket=$D/sock" \
        --rw=$1 --bs=$2 --iodepth=16 --size=1G --time_based \
        --runtime=$RUNTIME --output-format=json 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys
text = sys.stdin.read()     # fio prints a "connected" line before the JSON
j = json.loads(text[text.index("{"):])["jobs"][0]
r = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f %.1f" % (r["iops"], r["bw_bytes"] / 1e6))'
}

printf "%-34s %14s %14s %7s\n" "row" "blkhost" "qemu-nbd" "ratio"
row() { # row NAME UNIT BLKHOST-RESULT QEMU-RESULT
    local name=$1 unit=$2 b q i
    if [ "$unit" = IOPS ]; then i=1; else i=2; fi
    b=$(echo "$3" | cut -d' ' -f$i); q=$(echo "$4" | cut -d' ' -f$i)
    printf "%-34s %9s %4s %9s %4s %7s\n" "$name" "$b" "$unit" "$q" "$unit" \
        "$(/usr/bin/python3 -c "print('%.2f' % ($b / $q if float('$q') else 0))")"
}

qemu-img create -q -f qcow2 -o preallocation=full "$D/pre.qcow2" 1G
for spec in "randread 4k IOPS" "randwrite 4k IOPS" "read 1M MB/s" "write 1M MB/s"; do
    set -- $spec
    start blkhost "$D/pre.qcow2"; rb=$(run $1 $2); stop
    start qemu "$D/pre.qcow2"; rq=$(run $1 $2); stop
    row "preallocated $1 $2 QD16" "$3" "$rb" "$rq"
done
for srv in blkhost qemu; do
    rm -f "$D/fresh.qcow2"
    qemu-img create -q -f qcow2 "$D/fresh.qcow2" 1G
    start $srv "$D/fresh.qcow2"
    eval "r_$srv=\$(run randwrite 4k)"
    stop
    qemu-img check -q "$D/fresh.qcow2" || echo "warning: $srv left a dirty image" >&2
done
row "fresh image randwrite 4k QD16" IOPS "$r_blkhost" "$r_qemu"
