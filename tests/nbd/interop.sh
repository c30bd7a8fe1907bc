#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The blkhost NBD server against real clients: qemu-img, qemu-io, nbdinfo
# and nbdcopy, over Unix sockets.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"
need qemu-img qemu-io nbdinfo nbdcopy
plan 18

# 64 MiB, sparse, with 4 MiB of random data at 8 MiB and a pattern at 40 MiB.
truncate -s 64M "$T/disk.img"
dd if=/dev/urandom of="$T/disk.img" bs=1M count=4 seek=8 conv=notrunc status=none
printf 'blkhost%.0s' $(seq 1 1000) | dd of="$T/disk.img" bs=1M seek=40 conv=notrunc status=none
cp --sparse=always "$T/disk.img" "$T/orig.img"
truncate -s 64M "$T/dst.img"

S="$T/sock"
start_server srv listen="unix:$S" persistent=1 \
    export="$T/disk.img,name=,description=the disk" export="$T/dst.img,name=dst" ||
    { not_ok "server starts"; exit 1; }
U="nbd+unix:///?socket=$S"
D="nbd+unix:///dst?socket=$S"

check "qemu-img info through nbd+unix:// shows 64 MiB" \
    bash -c "qemu-img info '$U' | grep -q 'virtual size: 64 MiB'"
check "qemu-img compare: the export equals the original file" \
    qemu-img compare -f raw -F raw "$T/orig.img" "$U"
check "qemu-img convert from the export to a file" \
    bash -c "qemu-img convert -f raw -O raw '$U' '$T/conv.img' && cmp '$T/conv.img' '$T/orig.img'"
check "qemu-img convert from a file into the export (-n)" \
    bash -c "qemu-img convert -n -f raw -O raw '$T/orig.img' '$D' && qemu-img compare -f raw -F raw '$T/orig.img' '$D'"

qio() { qemu-io -f raw "$@" 2>&1; }
qio_ok() {  # desc, qemu-io args...: ok when it succeeds and verifies
    local desc=$1 out; shift
    if out=$(qio "$@") && ! echo "$out" | grep -qiE 'fail|error'; then
        ok "$desc"
    else
        not_ok "$desc"; diag "$out"
    fi
}
qio_ok "qemu-io write then read back pattern 0xab (-P)" \
    -c 'write -P 0xab 1M 64k' -c 'read -P 0xab 1M 64k' "$U"
qio_ok "qemu-io aio_write and aio_read patterns at several offsets (-P)" \
    -c 'aio_write -P 0x11 2M 4k' -c 'aio_write -P 0x22 3M 128k' \
    -c 'aio_write -P 0x33 5M 1M' -c 'aio_flush' \
    -c 'aio_read -P 0x11 2M 4k' -c 'aio_read -P 0x22 3M 128k' \
    -c 'aio_read -P 0x33 5M 1M' -c 'aio_flush' "$U"
qio_ok "qemu-io unaligned write and read (-P 0x5a at 7M+123, 1000 bytes)" \
    -c 'write -P 0x5a 7340155 1000' -c 'read -P 0x5a 7340155 1000' "$U"
qio_ok "qemu-io write -z (write zeroes) reads back as zeros" \
    -c 'write -P 0x77 6M 64k' -c 'write -z 6M 64k' -c 'read -P 0 6M 64k' "$U"
out=$(qio -c 'read -P 0xab 1M 64k' "$U")
if echo "$out" | grep -q 'read 65536/65536'; then ok "qemu-io data persists across connections"
else not_ok "qemu-io data persists across connections"; diag "$out"; fi
out=$(qio -c 'read -P 0xac 1M 4k' "$U")
if echo "$out" | grep -qi 'pattern verification failed'; then ok "qemu-io -P notices a wrong pattern (the check is real)"
else not_ok "qemu-io -P notices a wrong pattern (the check is real)"; diag "$out"; fi

out=$(nbdinfo --list "nbd+unix:///?socket=$S" 2>&1)
if echo "$out" | grep -q 'export="dst"' && echo "$out" | grep -q 'description: the disk'; then
    ok "nbdinfo --list shows both exports and the description"
else not_ok "nbdinfo --list shows both exports and the description"; diag "$out"; fi

# The map of the original layout (dst holds a sparse copy of it).
truncate -s 64M "$T/map.img"
dd if=/dev/urandom of="$T/map.img" bs=1M count=2 seek=16 conv=notrunc status=none
start_server map listen="unix:$T/msock" persistent=1 export="$T/map.img" ||
    { not_ok "second server starts"; }
out=$(nbdinfo --map "nbd+unix:///?socket=$T/msock" 2>&1)
exp=$(printf '%s\n' "0 16777216 3 hole,zero" "16777216 2097152 0 data" "18874368 48234496 3 hole,zero")
if [ "$(echo "$out" | awk '{print $1, $2, $3, $4}')" = "$exp" ]; then
    ok "nbdinfo --map over a sparse file: hole, 2 MiB data at 16 MiB, hole"
else not_ok "nbdinfo --map over a sparse file: hole, 2 MiB data at 16 MiB, hole"; diag "$out"; fi
out=$(nbdinfo --map --totals "nbd+unix:///?socket=$T/msock" 2>&1)
if echo "$out" | grep -qE '^ *2097152 +3\.1% +0 +data'; then ok "nbdinfo --map --totals counts 2 MiB of data"
else not_ok "nbdinfo --map --totals counts 2 MiB of data"; diag "$out"; fi

check "nbdcopy from the export to a file" \
    bash -c "nbdcopy '$U' '$T/c1.img' && cmp '$T/c1.img' '$T/disk.img'"
check "nbdcopy --connections=4 from a file into the export" \
    bash -c "nbdcopy --connections=4 '$T/c1.img' '$D' && cmp '$T/c1.img' '$T/dst.img'"
check "nbdcopy --connections=4 round trip back out equals the source" \
    bash -c "nbdcopy --connections=4 --requests=16 '$D' '$T/c2.img' && cmp '$T/c2.img' '$T/c1.img'"

# Sparse reads: the blank tail of the export comes back as OFFSET_HOLE
# chunks; the copy must still be byte-exact.
check "qemu-img compare after all writes: export vs nbdcopy copy" \
    qemu-img compare -f raw -F raw "$T/c2.img" "$D"

# Stress: two fio jobs (two connections) at queue depth 32 write random
# 4k blocks with checksums, then read everything back and verify.
if command -v fio >/dev/null && fio --enghelp=nbd >/dev/null 2>&1; then
    check "fio: 2 connections x QD32 random 4k writes verified by crc32c" \
        fio --name=verify --ioengine=nbd --uri="$D" --rw=randwrite --bs=4k \
            --iodepth=32 --numjobs=2 --size=16M --offset_increment=32M \
            --verify=crc32c --do_verify=1 --verify_fatal=1 --output-format=terse
else
    skip "fio with the nbd engine is not installed"
fi
