# SPDX-License-Identifier: BSD-3-Clause
# The nbd-kernel end-to-end steps, run inside the VM by vm.sh (through
# vm-run.sh).  Prints TAP lines without a plan: vm.sh adds its host-side
# checks and the plan.  $T is the shared work dir (the host prepared the
# images there); everything else stays in the guest's /tmp.
echo "# guest start"
W=$T
source "$SOURCE_ROOT/tests/tap.sh"
G=$T
export PATH=/usr/sbin:/sbin:$PATH
# Kernel messages (dead links, I/O errors) would interleave with the TAP.
echo 1 > /proc/sys/kernel/printk
ctl() { "$BLKHOST" run "$SOURCE_ROOT/tests/vm/nbdctl.lua" "$@"; }

# attach NAME DEV k=v...: background `nbdctl connect`, wait for READY.
attach() {
    local log=$G/$1.log; shift
    "$BLKHOST" run "$SOURCE_ROOT/tests/vm/nbdctl.lua" connect "$@" >"$log" 2>&1 &
    ATTACH_PID=$!
    for _ in $(seq 600); do
        grep -q '^READY' "$log" && return 0
        kill -0 $ATTACH_PID 2>/dev/null || { wait $ATTACH_PID; diag "$(cat "$log")"; return 1; }
        sleep 0.1
    done
    diag "$(cat "$log")"
    return 1
}
# gone PID SECONDS: the process ended within SECONDS.
gone() {
    for _ in $(seq $((10 * $2))); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
        sleep 0.1
    done
    return 1
}
sectors() { cat /sys/block/$1/size; }
connected() { [ -e /sys/block/$1/pid ]; }
md5() { md5sum | cut -d' ' -f1; }
pat=$(md5 < "$W/pattern")
# dd_roundtrip DEV: write the 4 MiB pattern at 3 MiB with O_DIRECT and read
# it back through the device.
dd_roundtrip() {
    dd if="$W/pattern" of="$1" bs=1M seek=3 oflag=direct conv=fsync status=none &&
    [ "$(dd if="$1" bs=1M skip=3 count=4 iflag=direct status=none | md5)" = "$pat" ]
}

# ---- 1. raw image, in-process export ----
if attach raw /dev/nbd0 image="$W/raw.img" format=raw; then
    ok "raw: in-process export attached to /dev/nbd0"
else
    not_ok "raw: in-process export attached to /dev/nbd0"
fi
check "raw: /dev/nbd0 shows the image size (32 MiB)" test "$(sectors nbd0)" = 65536
check "raw: bh.nbd.devices() lists /dev/nbd0 as connected with its size and backend" \
    bash -c "$(declare -f ctl); ctl devices | grep -P '^/dev/nbd0\ttrue\t33554432\t[0-9]+\tblkhost:'"
check "raw: dd pattern written with O_DIRECT reads back with the same md5" dd_roundtrip /dev/nbd0
check "raw: buffered write of the last sector reads back" bash -c "
    printf 'last-sector' | dd of=/dev/nbd0 bs=512 seek=65535 conv=sync,fsync status=none &&
    echo 3 > /proc/sys/vm/drop_caches &&
    dd if=/dev/nbd0 bs=512 skip=65535 count=1 status=none | grep -q last-sector"
check_fails "bad input: /dev/nbd0 already connected is refused" "already connected" \
    ctl connect /dev/nbd0 image="$W/odd.img" format=raw
check_fails "bad input: a partition (/dev/nbd0p1) is not an NBD device" \
    "not an NBD device|partition|No such file" ctl connect /dev/nbd0p1 image="$W/odd.img"
check "raw: bh.nbd.disconnect(/dev/nbd0) succeeds" ctl disconnect /dev/nbd0
check "raw: the serving process ends once its device is disconnected" gone $ATTACH_PID 20
check "raw: /sys/block/nbd0/pid is gone after disconnect" bash -c "! test -e /sys/block/nbd0/pid"
check "raw: the image file holds the pattern" \
    test "$(dd if="$W/raw.img" bs=1M skip=3 count=4 status=none | md5)" = "$pat"
check_fails "bad input: disconnecting /dev/nbd0 when it is not connected" \
    "/dev/nbd0 is not connected" ctl disconnect /dev/nbd0

# Handle methods inside one process (nbdctl prints "ok WHAT" lines).
ctl handles /dev/nbd0 "$W/raw.img" > "$G/handles.log" 2>&1
while IFS= read -r l; do
    case $l in
        "ok "*) ok "handles: ${l#ok }" ;;
        "not ok "*) not_ok "handles: ${l#not ok }" ;;
    esac
done < "$G/handles.log"
grep -q "read-only device disconnects" "$G/handles.log" ||
    { not_ok "handles: the in-process handle script ran to its end"; diag "$(cat "$G/handles.log")"; }

# ---- 1b. a probed raw image cannot be turned into a qcow2 by the guest ----
# No format= here: the core probes raw and guards block 0, so a guest that
# writes a qcow2 header naming a host file as backing gets an I/O error
# and the image stays raw.
cp "$W/raw.img" "$G/probed.img"
qemu-img create -q -f qcow2 -b /etc/hostname -F raw "$G/hdr.qcow2" 1M &&
    head -c 512 "$G/hdr.qcow2" > "$G/hdr.bin"
if attach probed /dev/nbd0 image="$G/probed.img"; then
    ok "probed raw: attached to /dev/nbd0 without a format"
    check_fails "probed raw: dd of a qcow2 header into block 0 of /dev/nbd0 fails" "error" \
        dd if="$G/hdr.bin" of=/dev/nbd0 bs=512 count=1 oflag=direct status=none
    check "probed raw: dd of plain data into block 0 of /dev/nbd0 succeeds" \
        dd if=/dev/urandom of=/dev/nbd0 bs=512 count=1 oflag=direct status=none
    check "probed raw: disconnect and the serving process ends" \
        bash -c "$(declare -f ctl gone); ctl disconnect /dev/nbd0 && gone $ATTACH_PID 20"
    check "probed raw: the image still probes as raw, not qcow2" \
        bash -c "qemu-img info '$G/probed.img' | grep -qx 'file format: raw'"
else
    not_ok "probed raw: attached to /dev/nbd0 without a format"
fi

diag "t=${SECONDS}s"
# ---- 2. qcow2 image, in-process, two connections ----
if attach qcow2 /dev/nbd1 image="$W/disk.qcow2" format=qcow2 connections=2; then
    ok "qcow2: in-process export attached to /dev/nbd1 with 2 connections"
else
    not_ok "qcow2: in-process export attached to /dev/nbd1 with 2 connections"
fi
check "qcow2: /dev/nbd1 shows the virtual size (64 MiB)" test "$(sectors nbd1)" = 131072
check "qcow2: dd pattern reads back with the same md5" dd_roundtrip /dev/nbd1
check "qcow2: disconnect and the serving process ends" \
    bash -c "$(declare -f ctl gone); ctl disconnect /dev/nbd1 && gone $ATTACH_PID 20"

diag "t=${SECONDS}s"
# ---- 3. the ioctl interface ----
if attach ioctl /dev/nbd3 image="$W/raw.img" format=raw interface=ioctl block_size=4096; then
    ok "ioctl: raw image attached to /dev/nbd3 through the ioctl interface"
else
    not_ok "ioctl: raw image attached to /dev/nbd3 through the ioctl interface"
fi
check "ioctl: 4096-byte logical blocks" test "$(cat /sys/block/nbd3/queue/logical_block_size)" = 4096
check "ioctl: dd pattern reads back" dd_roundtrip /dev/nbd3
check "ioctl: disconnect; NBD_DO_IT returns and the process ends" \
    bash -c "$(declare -f ctl gone); ctl disconnect /dev/nbd3 && gone $ATTACH_PID 20"

diag "t=${SECONDS}s"
# ---- 4. partitioned qcow2: partitions, ext4 ----
if attach parts /dev/nbd2 image="$W/parts.qcow2" format=qcow2; then
    ok "parts: partitioned qcow2 attached to /dev/nbd2"
else
    not_ok "parts: partitioned qcow2 attached to /dev/nbd2"
fi
for _ in $(seq 50); do [ -b /dev/nbd2p5 ] && break; sleep 0.1; done
check "parts: /dev/nbd2p1 .. /dev/nbd2p5 appear after connect" \
    bash -c 'for i in 1 2 3 4 5; do test -b /dev/nbd2p$i || exit 1; done'
mkdir -p "$G/mnt"
check "parts: mkfs.ext4 on /dev/nbd2p1" mkfs.ext4 -q -F /dev/nbd2p1
check "parts: mount, write /file, unmount" bash -c "
    mount -t ext4 /dev/nbd2p1 '$G/mnt' &&
    echo 'written through /dev/nbd2p1 in the VM' > '$G/mnt/file' &&
    umount '$G/mnt'"
check "parts: disconnect and the serving process ends" \
    bash -c "$(declare -f ctl gone); ctl disconnect /dev/nbd2 && gone $ATTACH_PID 20"

diag "t=${SECONDS}s"
# ---- 5. remote export from a blkhost server over a Unix socket ----
sock=$G/s.sock
serve() {
    "$BLKHOST" run "$SOURCE_ROOT/tests/vm/nbdctl.lua" serve "$sock" "$W/remote.img" >"$G/serve.log" 2>&1 &
    SERVE_PID=$!
    for _ in $(seq 300); do grep -q READY "$G/serve.log" && return 0; sleep 0.1; done
    return 1
}
serve
uri="nbd+unix:///?socket=$sock"
check "remote: bh.nbd.list shows the server's export and description" \
    bash -c "$(declare -f ctl); ctl list '$uri' | grep -P '^\tvm test disk$'"
if attach remote /dev/nbd4 uri="$uri" connections=2; then
    ok "remote: $uri attached to /dev/nbd4 with 2 connections"
else
    not_ok "remote: $uri attached to /dev/nbd4 with 2 connections"
fi
check "remote: without persist the connecting process does not need to stay" gone $ATTACH_PID 20
# The server reports clients that reach transmission: the list above does
# not, the device's two connections do.
check "remote: the server saw 2 connections for /dev/nbd4" \
    bash -c "for i in \$(seq 50); do [ \$(grep -c CONNECT '$G/serve.log') -ge 2 ] && break; sleep 0.1; done
             sleep 0.2; [ \$(grep -c CONNECT '$G/serve.log') -eq 2 ] || { cat '$G/serve.log'; exit 1; }"
check "remote: dd pattern reads back through /dev/nbd4" dd_roundtrip /dev/nbd4
check_fails "bad input: a server that refuses the export (no export 'nosuch')" \
    "no export named 'nosuch'" ctl connect /dev/nbd6 uri="nbd+unix:///nosuch?socket=$sock"
check_fails "bad input: connecting without CAP_SYS_ADMIN (uid 65534, no capabilities)" \
    "needs root \(CAP_SYS_ADMIN\)" \
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
    "$BLKHOST" run "$SOURCE_ROOT/tests/vm/nbdctl.lua" connect /dev/nbd6 image="$W/raw.img" format=raw readonly=true
check_fails "bad input: disconnecting without CAP_SYS_ADMIN" "needs root \(CAP_SYS_ADMIN\)" \
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
    "$BLKHOST" run "$SOURCE_ROOT/tests/vm/nbdctl.lua" disconnect /dev/nbd4

kill -9 $SERVE_PID; wait $SERVE_PID 2>/dev/null
check_fails "remote: server killed without persist: I/O fails with EIO" "Input/output error" \
    dd if=/dev/nbd4 of=/dev/null bs=4096 count=1 skip=100 iflag=direct
check "remote: the dead device can still be disconnected cleanly" \
    bash -c "$(declare -f ctl); ctl disconnect /dev/nbd4 && ! test -e /sys/block/nbd4/pid"

diag "t=${SECONDS}s"
# ---- 6. persist: reconnect after the server comes back ----
serve
if attach persist /dev/nbd5 uri="$uri" persist=true dead_timeout=60; then
    ok "persist: attached /dev/nbd5 with persist"
else
    not_ok "persist: attached /dev/nbd5 with persist"
fi
kill -9 $SERVE_PID; wait $SERVE_PID 2>/dev/null
sleep 1
serve
check "persist: I/O works again after the server restarts" \
    bash -c "dd if=/dev/nbd5 bs=1M skip=3 count=4 iflag=direct status=none | md5sum | grep -q $pat"
check "persist: the client logged its reconnect" grep -q "reconnected to" "$G/persist.log"
check "persist: disconnect ends the watching process" \
    bash -c "$(declare -f ctl gone); ctl disconnect /dev/nbd5 && gone $ATTACH_PID 20"
# The ioctl interface with a remote server: NBD_DO_IT returns when the
# server dies, and the process that sat in it ends.
if attach ioctl-remote /dev/nbd7 uri="$uri" interface=ioctl; then
    ok "ioctl remote: $uri attached to /dev/nbd7 through ioctls"
else
    not_ok "ioctl remote: $uri attached to /dev/nbd7 through ioctls"
fi
kill -9 $SERVE_PID; wait $SERVE_PID 2>/dev/null
check "ioctl remote: server killed: the client process ends and /dev/nbd7 is released" \
    bash -c "$(declare -f gone); gone $ATTACH_PID 30 && ! test -e /sys/block/nbd7/pid"

diag "t=${SECONDS}s"
# ---- 7. a real peer: qemu-nbd serving read-only ----
if command -v qemu-nbd >/dev/null; then
    qemu-nbd -r -t -f raw -x exp -k "$G/q.sock" "$W/remote.img" >"$G/qemu-nbd.log" 2>&1 &
    QPID=$!
    for _ in $(seq 100); do [ -S "$G/q.sock" ] && break; sleep 0.1; done
    if attach qemu /dev/nbd6 uri="nbd+unix:///exp?socket=$G/q.sock"; then
        ok "qemu-nbd: read-only export 'exp' attached to /dev/nbd6"
    else
        not_ok "qemu-nbd: read-only export 'exp' attached to /dev/nbd6"
    fi
    check "qemu-nbd: /dev/nbd6 is read-only (server's READ_ONLY flag)" test "$(cat /sys/block/nbd6/ro)" = 1
    check "qemu-nbd: the pattern reads back through /dev/nbd6" \
        bash -c "dd if=/dev/nbd6 bs=1M skip=3 count=4 iflag=direct status=none | md5sum | grep -q $pat"
    check "qemu-nbd: disconnect" ctl disconnect /dev/nbd6
    kill $QPID; wait $QPID 2>/dev/null
    # A writable qemu-nbd export does not advertise CAN_MULTI_CONN.
    qemu-nbd -t -f raw -x exp -k "$G/q2.sock" "$W/remote.img" >"$G/qemu-nbd2.log" 2>&1 &
    QPID=$!
    for _ in $(seq 100); do [ -S "$G/q2.sock" ] && break; sleep 0.1; done
    check_fails "bad input: connections=2 to an export without CAN_MULTI_CONN (writable qemu-nbd)" \
        "no CAN_MULTI_CONN flag" ctl connect /dev/nbd6 uri="nbd+unix:///exp?socket=$G/q2.sock" connections=2
    check "qemu-nbd: /dev/nbd6 was left unconnected" bash -c '! test -e /sys/block/nbd6/pid'
    kill $QPID; wait $QPID 2>/dev/null
else
    skip "qemu-nbd: qemu-nbd is not installed"
fi

diag "t=${SECONDS}s"
# ---- 8. more bad input ----
check_fails "bad input: export size 1000000 is not a multiple of the 512-byte block size" \
    "not a multiple of the block size \(512\)" ctl connect /dev/nbd6 image="$W/odd.img" format=raw
check_fails "bad input: block_size=4096 on a 1 MiB + 512 B export" \
    "not a multiple of the block size \(4096\)" ctl connect /dev/nbd6 image="$W/odd2.img" format=raw block_size=4096
check_fails "bad input: /dev/nbd77x does not exist" "No such file or directory" \
    ctl connect /dev/nbd77x image="$W/raw.img" format=raw
check_fails "bad input: /dev/null is not an NBD device" "not an NBD device" \
    ctl connect /dev/null image="$W/raw.img" format=raw
check "no device was left connected" bash -c '! ls /sys/block/nbd*/pid 2>/dev/null | grep -q .'
echo "# guest done"
