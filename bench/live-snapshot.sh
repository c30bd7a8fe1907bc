#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Live internal snapshots under load: blkhost (examples/export.lua with
# --control, `snapshot-create` on the control socket) against
# qemu-storage-daemon (qcow2 blockdev + NBD export, QMP
# blockdev-snapshot-internal-sync) in the same run.  Not a test.
#
# Each server gets its own qcow2 of BENCH_SIZE (16G) made with
# preallocation=metadata (so every snapshot has to raise the refcount of
# every cluster of the disk) with its first BENCH_WRITTEN (4G) written.
# fio (nbd engine) reads it at 4k random, QD16, over the written part,
# logging every read's latency; meanwhile bench/live-snapshot.py takes
# BENCH_SNAPSHOTS (10) snapshots, BENCH_GAP (1) seconds apart, and notes
# each one's window (request sent .. answer read).  Per window: the stall
# (the longest latency of a read overlapping it) and the p99 of those
# reads; then the medians and the ratio of the longest stalls
# (blkhost / qsd; the goal of issue 15 is <= 1).  The servers run one
# after the other, blkhost first.
#
#   bench/live-snapshot.sh                   # BLKHOST=build/lua/blkhost
#   BENCH_SIZE=2G BENCH_WRITTEN=512M BENCH_SNAPSHOTS=5 bench/live-snapshot.sh
set -u
: "${BENCH_SIZE:=16G}"        # before lib.sh, whose default is 1G
source "$(dirname "$0")/lib.sh"
: "${BENCH_WRITTEN:=4G}"
: "${BENCH_SNAPSHOTS:=10}"
: "${BENCH_GAP:=1}"
bench_init qemu-storage-daemon qemu-img qemu-io
trap 'bench_stop_all; [ -n "${FIO_PID:-}" ] && kill "$FIO_PID" 2>/dev/null;
      [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$BENCH_DIR"' EXIT
trap 'exit 130' INT TERM   # through the EXIT trap: servers stopped, files removed
HELPER="$BENCH_ROOT/bench/live-snapshot.py"

# live_image PATH: the metadata-preallocated qcow2, BENCH_WRITTEN of it written.
live_image() {
    echo "bench: making $1 ($BENCH_SIZE, $BENCH_WRITTEN written)" >&2
    qemu-img create -q -f qcow2 -o preallocation=metadata "$1" "$BENCH_SIZE" ||
        bench_die "cannot create $1"
    # qemu-io takes at most 2 GiB per request: 1 GiB pieces
    local left off=0 len cmds=()
    left=$(numfmt --from=iec "$BENCH_WRITTEN")
    while [ "$left" -gt 0 ]; do
        len=$(( left < 1073741824 ? left : 1073741824 ))
        cmds+=(-c "write -P 0x5a $off $len")
        off=$((off + len)); left=$((left - len))
    done
    qemu-io -f qcow2 "${cmds[@]}" "$1" >/dev/null || bench_die "cannot write $1"
}

# live_run NAME KIND CTL: fio on the socket, snapshots on CTL; leaves
# $BENCH_DIR/NAME_lat.1.log and $BENCH_DIR/NAME.windows.
live_run() {
    local name=$1 kind=$2 ctl=$3
    fio --name="$name" --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" \
        --rw=randread --bs=4k --iodepth=16 --size="$BENCH_WRITTEN" \
        --time_based --runtime=3600 --write_lat_log="$BENCH_DIR/$name" \
        --log_avg_msec=0 --log_unix_epoch=1 \
        >"$BENCH_DIR/$name.fio" 2>&1 &
    FIO_PID=$!
    sleep 2   # fio connected and reading
    kill -0 "$FIO_PID" 2>/dev/null || { cat "$BENCH_DIR/$name.fio" >&2; bench_die "fio failed"; }
    /usr/bin/python3 "$HELPER" snap "$kind" "$ctl" "$BENCH_SNAPSHOTS" "$BENCH_GAP" \
        "$BENCH_DIR/$name.windows" || bench_die "$name: snapshots failed"
    kill -INT "$FIO_PID"
    wait "$FIO_PID"
    FIO_PID=
    [ -s "$BENCH_DIR/${name}_lat.1.log" ] || { cat "$BENCH_DIR/$name.fio" >&2; bench_die "no fio log"; }
}

# live_check NAME: once its server is gone, the image holds every snapshot
# and qemu-img check finds nothing wrong (a fast snapshot must be a real one).
live_check() {
    local n
    n=$(qemu-img snapshot -l "$IMG" | grep -c ' live-[0-9]')
    [ "$n" -eq "$BENCH_SNAPSHOTS" ] || bench_die "$1: $n snapshots in $IMG, not $BENCH_SNAPSHOTS"
    qemu-img check -q "$IMG" || bench_die "$1: qemu-img check $IMG failed"
}

SOCK="$BENCH_DIR/nbd.sock"

IMG="$BENCH_DIR/blkhost.qcow2"
live_image "$IMG"
cat "$IMG" >/dev/null
bench_start blkhost "$SOCK" "$BLKHOST" run "$BENCH_ROOT/examples/export.lua" "$IMG" \
    --socket "$SOCK" --control "$BENCH_DIR/blkhost.ctl"
bench_wait_socket "$BENCH_DIR/blkhost.ctl" "${BENCH_PID[blkhost]}" || bench_die "no control socket"
live_run blkhost blkhost "$BENCH_DIR/blkhost.ctl"
bench_stop blkhost
live_check blkhost
rm -f "$IMG"

IMG="$BENCH_DIR/qsd.qcow2"
live_image "$IMG"
cat "$IMG" >/dev/null
bench_start qsd "$SOCK" qemu-storage-daemon \
    --blockdev driver=file,node-name=file0,filename="$IMG" \
    --blockdev driver=qcow2,node-name=disk0,file=file0 \
    --nbd-server addr.type=unix,addr.path="$SOCK" \
    --export type=nbd,id=e0,node-name=disk0,name=,writable=on \
    --chardev socket,id=qmp0,path="$BENCH_DIR/qmp.sock",server=on,wait=off \
    --monitor chardev=qmp0,mode=control
bench_wait_socket "$BENCH_DIR/qmp.sock" "${BENCH_PID[qsd]}" || bench_die "no QMP socket"
live_run qsd qsd "$BENCH_DIR/qmp.sock"
bench_stop qsd
live_check qsd
rm -f "$IMG"

echo "live snapshots: $BENCH_SNAPSHOTS on a $BENCH_SIZE qcow2 (metadata-preallocated," \
     "$BENCH_WRITTEN written), 4k randread QD16 over the written part"
/usr/bin/python3 "$HELPER" report "$BENCH_DIR/blkhost_lat.1.log" "$BENCH_DIR/blkhost.windows" \
    "$BENCH_DIR/qsd_lat.1.log" "$BENCH_DIR/qsd.windows"
