#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost fuse IMAGE FILE` against the tools people use on such a file:
# cat, dd, cmp, truncate, fallocate, mkfs.ext4, e2fsck, lseek
# (SEEK_DATA/SEEK_HOLE), with qemu-img as the judge of the image and
# qemu-storage-daemon's FUSE export as the reference for what the file
# shows.  Then the life cycle: SIGTERM and SIGINT unmount, an unmount
# from outside ends the command, a busy or missing mount point is
# refused by name.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/fuse/lib.sh"
need qemu-img qemu-io python3 fallocate truncate mkfs.ext4 e2fsck
fuse_need
have_qsd=0
command -v qemu-storage-daemon >/dev/null && have_qsd=1

M=1048576
# map_is FMT IMAGE START LEN WANT: every extent qemu-img map (-U: the
# image is in use) reports over [START, START+LEN) has zero=true (WANT
# zero) or also data=false (WANT hole).
map_is() {
    qemu-img map -U --output=json -f "$1" "$2" | /usr/bin/python3 -c '
import json, sys
s, n, want = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
bad = [e for e in json.load(sys.stdin)
       if e["start"] < s + n and e["start"] + e["length"] > s
       and not (e["zero"] and (want == "zero" or not e["data"]))]
print(bad) if bad else None
sys.exit(1 if bad else 0)' "$3" "$4" "$5"
}

# ---------------------------------------------------------------- raw
qemu-img create -q -f raw "$T/a.raw" 16M
qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 5M 3M' \
    -c 'write -P 0x33 15M 1M' "$T/a.raw" >/dev/null
: >"$T/a.mnt"
if start_fuse a -f raw "$T/a.raw" "$T/a.mnt" && is_mounted "$T/a.mnt" &&
   grep -q " $(realpath "$T/a.mnt") .* fuse.blkhost " /proc/self/mountinfo; then
    ok "blkhost fuse -f raw IMG FILE: FILE becomes a fuse.blkhost mount"
else
    not_ok "blkhost fuse -f raw IMG FILE: FILE becomes a fuse.blkhost mount"
    echo "1..$tap_n"; exit 1
fi
check "cat of the mounted file equals the raw image (cmp)" \
    bash -c "cat '$T/a.mnt' | cmp - '$T/a.raw'"
check "dd bs=4k skip=1279 count=3 through the mount equals the image's bytes there" \
    bash -c "cmp <(dd if='$T/a.mnt' bs=4k skip=1279 count=3 2>/dev/null) \
                 <(dd if='$T/a.raw' bs=4k skip=1279 count=3 2>/dev/null)"
size=$(stat -c %s "$T/a.mnt")
if [ "$size" = $((16 * M)) ]; then ok "stat: the file's size is the image's 16 MiB"
else not_ok "stat: the file's size is the image's 16 MiB"; diag "size=$size"; fi

head -c $((512 * 1024)) /dev/urandom >"$T/rand"
check "dd conv=notrunc,fsync writes 512 KiB at 3 MiB through the mount" \
    dd if="$T/rand" of="$T/a.mnt" bs=64k seek=48 conv=notrunc,fsync status=none
check "the write is in the image file (cmp of that range, image read directly)" \
    cmp -n $((512 * 1024)) -i 0:$((3 * M)) "$T/rand" "$T/a.raw"
# Four writers at once on distinct ranges (the file driver is parallel,
# so several request threads serve them).
for i in 0 1 2 3; do
    dd if="$T/rand" of="$T/a.mnt" bs=64k seek=$((160 + i * 8)) conv=notrunc status=none &
done
wait
bad=0
for i in 0 1 2 3; do
    cmp -s -n $((512 * 1024)) -i 0:$(( (160 + i * 8) * 65536 )) "$T/rand" "$T/a.raw" || bad=1
done
if [ $bad = 0 ]; then ok "four dd writers at once through the mount: each range lands in the image"
else not_ok "four dd writers at once through the mount: each range lands in the image"; fi

check "fallocate --punch-hole -o 5M -l 1M on the mounted file succeeds" \
    fallocate -p -o $((5 * M)) -l $M "$T/a.mnt"
check "the punched range reads zeros through the mount" \
    cmp -n $M -i $((5 * M)):0 "$T/a.mnt" /dev/zero
check "qemu-img map: the punched range of the raw image is a hole (zero, no data)" \
    map_is raw "$T/a.raw" $((5 * M)) $M hole
check "fallocate --zero-range -o 6M -l 512k on the mounted file succeeds" \
    fallocate -z -o $((6 * M)) -l $((512 * 1024)) "$T/a.mnt"
check "the zeroed range reads zeros through the mount and in the image" \
    bash -c "cmp -n 524288 -i $((6 * M)):0 '$T/a.mnt' /dev/zero &&
             cmp -n 524288 -i $((6 * M)):0 '$T/a.raw' /dev/zero"

# SEEK_DATA / SEEK_HOLE: a raw image's extents are its file's.
"$SEEK_PY" "$T/a.mnt" >"$T/a.seek" 2>&1
"$SEEK_PY" "$T/a.raw" >"$T/a.rawseek" 2>&1
if [ -s "$T/a.seek" ] && cmp -s "$T/a.seek" "$T/a.rawseek"; then
    ok "SEEK_DATA/SEEK_HOLE walk of the mounted file finds the raw file's own extents"
else not_ok "SEEK_DATA/SEEK_HOLE walk of the mounted file finds the raw file's own extents"
    diag "mount:"; diag "$(cat "$T/a.seek")"; diag "raw file:"; diag "$(cat "$T/a.rawseek")"; fi
offs="0 4096 $((5 * M)) $((5 * M + 100)) $((16 * M - 1)) $((16 * M)) $((20 * M))"
"$SEEK_PY" "$T/a.mnt" $offs >"$T/a.seekoff" 2>&1
"$SEEK_PY" "$T/a.raw" $offs >"$T/a.rawseekoff" 2>&1
if cmp -s "$T/a.seekoff" "$T/a.rawseekoff"; then
    ok "lseek SEEK_DATA/SEEK_HOLE at 7 offsets (in data, in a hole, last byte, at and past EOF: ENXIO) as on the raw file"
else not_ok "lseek SEEK_DATA/SEEK_HOLE at 7 offsets (in data, in a hole, last byte, at and past EOF: ENXIO) as on the raw file"
    diag "$(diff "$T/a.seekoff" "$T/a.rawseekoff")"; fi

check_fails "a write at the end of the file fails with ENOSPC (a disk does not grow by writing)" \
    "No space left on device" dd if="$T/rand" of="$T/a.mnt" bs=4k count=1 seek=4096 conv=notrunc status=none
check "truncate -s 20M on the mounted file grows the raw image to 20 MiB" \
    bash -c "truncate -s 20M '$T/a.mnt' && [ \$(stat -c %s '$T/a.raw') = $((20 * M)) ] &&
             [ \$(stat -c %s '$T/a.mnt') = $((20 * M)) ]"
check "truncate -s 16M shrinks it back; the data below 16 MiB is unchanged" \
    bash -c "truncate -s 16M '$T/a.mnt' && [ \$(stat -c %s '$T/a.raw') = $((16 * M)) ] &&
             cmp -n 1048576 -i $((15 * M)):0 '$T/a.mnt' <(head -c 1048576 /dev/zero | tr '\\0' '\\063')"

# A second mount over the same point is refused, and the first goes on.
qemu-img create -q -f raw "$T/c.raw" 4M
check_fails "a second blkhost fuse over a mounted FILE fails: 'already a mount point'" \
    "already a mount point" "$BLKHOST" fuse -f raw "$T/c.raw" "$T/a.mnt"
check "the first export still serves after the refused second mount" \
    cmp -n $M "$T/a.mnt" "$T/a.raw"
cp "$T/a.raw" "$T/a.ref" 2>/dev/null || true
stop_pid "$a_pid"
if ! is_mounted "$T/a.mnt" && [ -f "$T/a.mnt" ] && [ ! -s "$T/a.mnt" ]; then
    ok "stop (SIGTERM): the mount is gone and FILE is the empty regular file it was"
else not_ok "stop (SIGTERM): the mount is gone and FILE is the empty regular file it was"; fi

if [ $have_qsd = 1 ]; then
    : >"$T/qa.mnt"
    if start_qsd qa raw "$T/a.raw" "$T/qa.mnt"; then
        # At EOF qsd answers SEEK_HOLE with EOF where Linux file systems
        # (and blkhost, test 14) say ENXIO; compare the offsets below it.
        below="0 4096 $((5 * M)) $((5 * M + 100)) $((16 * M - 1))"
        "$SEEK_PY" "$T/qa.mnt" $below >"$T/qa.seekoff" 2>&1
        "$SEEK_PY" "$T/a.raw" $below >"$T/a.seekbelow" 2>&1
        if cmp -s "$T/a.seekbelow" "$T/qa.seekoff"; then
            ok "qemu-storage-daemon's FUSE export answers the same lseek SEEK_DATA/SEEK_HOLE below EOF"
        else not_ok "qemu-storage-daemon's FUSE export answers the same lseek SEEK_DATA/SEEK_HOLE below EOF"
            diag "$(diff "$T/a.seekbelow" "$T/qa.seekoff")"; fi
        stop_pid "$qa_pid"
    else not_ok "qemu-storage-daemon mounts the raw image"; fi
else skip "qemu-storage-daemon is not installed: no lseek reference"; fi

# ---------------------------------------------------------------- qcow2
qemu-img create -q -f qcow2 "$T/b.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x44 0 8M' -c 'write -z 9M 1M' \
    -c 'write -P 0x55 12M 64k' "$T/b.qcow2" >/dev/null
qemu-img convert -f qcow2 -O raw "$T/b.qcow2" "$T/b.ref"
: >"$T/b.mnt"
start_fuse b -f qcow2 "$T/b.qcow2" "$T/b.mnt" || not_ok "blkhost fuse mounts a qcow2 image"
check "qcow2: the mounted file holds the guest contents (cmp with qemu-img convert -O raw)" \
    cmp "$T/b.mnt" "$T/b.ref"
dd if="$T/rand" of="$T/b.mnt" bs=64k seek=200 conv=notrunc,fsync status=none &&
dd if="$T/rand" of="$T/b.ref" bs=64k seek=200 conv=notrunc status=none
check "qcow2: fallocate --zero-range -o 2M -l 1M on the mounted file succeeds" \
    fallocate -z -o $((2 * M)) -l $M "$T/b.mnt"
check "qcow2: qemu-img map shows the zeroed range as zero" \
    map_is qcow2 "$T/b.qcow2" $((2 * M)) $M zero
check "qcow2: fallocate --punch-hole -o 4M -l 1M succeeds and qemu-img map shows zeros there" \
    bash -c "fallocate -p -o $((4 * M)) -l $M '$T/b.mnt' && $(declare -f map_is); map_is qcow2 '$T/b.qcow2' $((4 * M)) $M zero"
fallocate -z -o $((2 * M)) -l $M "$T/b.ref"; fallocate -p -o $((4 * M)) -l $M "$T/b.ref"
"$SEEK_PY" "$T/b.mnt" >"$T/b.seek" 2>&1
check "qcow2: reads through the mount equal the reference after the same writes" \
    cmp "$T/b.mnt" "$T/b.ref"
check "qcow2: truncate -s 24M on the mounted file grows the image (qemu-img info: 24 MiB)" \
    bash -c "truncate -s 24M '$T/b.mnt' && qemu-img info -U -f qcow2 '$T/b.qcow2' | grep -q 'virtual size: 24 MiB'"
truncate -s 24M "$T/b.ref"
stop_pid "$b_pid"
check "qcow2: after unmount qemu-img compare finds the image identical to the reference" \
    qemu-img compare -f qcow2 -F raw "$T/b.qcow2" "$T/b.ref"
check "qcow2: qemu-img check finds no errors after the writes, zeroes and resize" \
    qemu-img check -q -f qcow2 "$T/b.qcow2"
if [ $have_qsd = 1 ]; then
    : >"$T/qb.mnt"
    if start_qsd qb qcow2 "$T/b.qcow2" "$T/qb.mnt"; then
        "$SEEK_PY" "$T/qb.mnt" | awk -v end=$((16 * M)) '$2 < end' >"$T/qb.seek" 2>&1
        awk -v end=$((16 * M)) '$2 < end' "$T/b.seek" >"$T/b.seek16"
        if [ -s "$T/b.seek16" ] && cmp -s "$T/b.seek16" "$T/qb.seek"; then
            ok "qcow2: the SEEK_DATA/SEEK_HOLE extents equal those of qemu-storage-daemon's FUSE export"
        else not_ok "qcow2: the SEEK_DATA/SEEK_HOLE extents equal those of qemu-storage-daemon's FUSE export"
            diag "blkhost:"; diag "$(cat "$T/b.seek16")"; diag "qsd:"; diag "$(cat "$T/qb.seek")"; fi
        check "qcow2: qemu-storage-daemon's FUSE file and the reference have the same bytes" \
            cmp "$T/qb.mnt" "$T/b.ref"
        stop_pid "$qb_pid"
    else not_ok "qemu-storage-daemon mounts the qcow2 image"; not_ok "(skipped comparison)"; fi
else skip "qemu-storage-daemon is not installed"; skip "qemu-storage-daemon is not installed"; fi

# ---------------------------------------------------------------- backing chain
qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x66 1M 1M' -c 'write -P 0x67 6M 64k' "$T/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/top.qcow2"
qemu-io -f qcow2 -c 'write -P 0x68 3M 64k' "$T/top.qcow2" >/dev/null
: >"$T/top.mnt"
start_fuse top -r -f qcow2 "$T/top.qcow2" "$T/top.mnt" || not_ok "blkhost fuse mounts a qcow2 over a backing file"
"$SEEK_PY" "$T/top.mnt" >"$T/top.seek" 2>&1
check "backing chain: the file reads as qemu-img convert of the top image" \
    bash -c "qemu-img convert -U -f qcow2 -O raw '$T/top.qcow2' '$T/top.ref' && cmp '$T/top.mnt' '$T/top.ref'"
stop_pid "$top_pid"
if grep -q "^data $M $((2 * M))$" "$T/top.seek" && grep -q "^data $((3 * M)) " "$T/top.seek"; then
    ok "backing chain: SEEK_DATA finds the backing file's data as well as the top's"
else not_ok "backing chain: SEEK_DATA finds the backing file's data as well as the top's"; diag "$(cat "$T/top.seek")"; fi
if [ $have_qsd = 1 ]; then
    : >"$T/qtop.mnt"
    if start_qsd qtop qcow2 "$T/top.qcow2" "$T/qtop.mnt"; then
        "$SEEK_PY" "$T/qtop.mnt" >"$T/qtop.seek" 2>&1
        stop_pid "$qtop_pid"
        if cmp -s "$T/top.seek" "$T/qtop.seek"; then
            ok "backing chain: the SEEK_DATA/SEEK_HOLE extents equal qemu-storage-daemon's"
        else not_ok "backing chain: the SEEK_DATA/SEEK_HOLE extents equal qemu-storage-daemon's"
            diag "blkhost:"; diag "$(cat "$T/top.seek")"; diag "qsd:"; diag "$(cat "$T/qtop.seek")"; fi
    else not_ok "qemu-storage-daemon mounts the qcow2 over a backing file"; fi
else skip "qemu-storage-daemon is not installed"; fi

# ---------------------------------------------------------------- read-only
sum=$(md5sum <"$T/a.raw")
: >"$T/r.mnt"
start_fuse r -r -f raw "$T/a.raw" "$T/r.mnt" || not_ok "blkhost fuse -r mounts"
check "read-only: the file reads as the image" cmp "$T/r.mnt" "$T/a.raw"
check_fails "read-only: dd of=FILE fails with EROFS" "Read-only file system" \
    dd if=/dev/zero of="$T/r.mnt" bs=4k count=1 conv=notrunc status=none
check_fails "read-only: truncate fails with EROFS" "Read-only file system" \
    truncate -s 1M "$T/r.mnt"
check_fails "read-only: fallocate --punch-hole fails with EROFS" "Read-only file system" \
    fallocate -p -o 0 -l 4096 "$T/r.mnt"
check "read-only: the file's mode is -r-------- (0400) and the mount is ro" \
    bash -c "[ \$(stat -c %a '$T/r.mnt') = 400 ] &&
             grep ' $(realpath "$T/r.mnt") ' /proc/self/mountinfo | grep -q ' ro,'"
stop_pid "$r_pid"
if [ "$(md5sum <"$T/a.raw")" = "$sum" ]; then ok "read-only: the image is byte-identical afterwards"
else not_ok "read-only: the image is byte-identical afterwards"; fi

# ---------------------------------------------------------------- mkfs
qemu-img create -q -f qcow2 "$T/e.qcow2" 64M
: >"$T/e.mnt"
start_fuse e -f qcow2 "$T/e.qcow2" "$T/e.mnt" || not_ok "blkhost fuse mounts the empty qcow2"
check "mkfs.ext4 -F on the mounted qcow2 file succeeds" mkfs.ext4 -q -F "$T/e.mnt"
check "e2fsck -fn on the mounted file: clean" e2fsck -fn "$T/e.mnt"
stop_pid "$e_pid"
qemu-img convert -f qcow2 -O raw "$T/e.qcow2" "$T/e.raw"
check "after unmount the qcow2 image holds the clean file system (e2fsck -fn of its raw copy)" \
    e2fsck -fn "$T/e.raw"

# ---------------------------------------------------------------- directory
mkdir "$T/dir"
start_fuse d -f raw --name=vm.img "$T/c.raw" "$T/dir" || not_ok "blkhost fuse mounts over a directory"
check "over a directory the export is the one file in it (--name=vm.img)" \
    bash -c "[ \"\$(ls '$T/dir')\" = vm.img ] && cmp '$T/dir/vm.img' '$T/c.raw'"
check "over a directory the file takes writes" \
    bash -c "dd if='$T/rand' of='$T/dir/vm.img' bs=64k conv=notrunc,fsync status=none &&
             cmp -n 524288 '$T/rand' '$T/c.raw'"
stop_pid "$d_pid"
check "over a directory: stop leaves the empty directory" \
    bash -c "! awk '\$5 == \"$(realpath "$T/dir")\"' /proc/self/mountinfo | grep -q . && [ -z \"\$(ls -A '$T/dir')\" ]"

# ---------------------------------------------------------------- allow_other
if [ "$(id -u)" = 0 ] || grep -q '^user_allow_other' /etc/fuse.conf 2>/dev/null; then
    : >"$T/o.mnt"
    start_fuse o --allow-other -f raw "$T/c.raw" "$T/o.mnt" || not_ok "blkhost fuse --allow-other mounts"
    check "--allow-other: the mount has allow_other and the file is mode 0644" \
        bash -c "grep ' $(realpath "$T/o.mnt") ' /proc/self/mountinfo | grep -q allow_other &&
                 [ \$(stat -c %a '$T/o.mnt') = 644 ]"
    stop_pid "$o_pid"
else skip "--allow-other needs root or user_allow_other in /etc/fuse.conf"; fi

# ---------------------------------------------------------------- life cycle
lifecycle() { # SIGNAL
    "$BLKHOST" fuse -f raw "$T/c.raw" "$T/s.mnt" >"$T/s.log" 2>&1 &
    local pid=$! i
    for i in $(seq 1 200); do is_mounted "$T/s.mnt" && break; sleep 0.05; done
    local word="signal $1"
    printf '%s' "$word" | dd of="$T/s.mnt" bs=4k seek=100 conv=notrunc status=none
    kill -"$1" $pid
    wait $pid; local rc=$?
    if [ $rc = 0 ] && ! is_mounted "$T/s.mnt" && [ -f "$T/s.mnt" ] &&
       [ "$(dd if="$T/c.raw" bs=4k skip=100 count=1 status=none | head -c ${#word})" = "$word" ]; then
        ok "SIG$1: blkhost fuse exits 0, the mount is gone (mountinfo), a write just before is in the image"
    else not_ok "SIG$1: blkhost fuse exits 0, the mount is gone (mountinfo), a write just before is in the image"
        diag "rc=$rc"; diag "$(cat "$T/s.log")"; fi
}
: >"$T/s.mnt"
lifecycle TERM
lifecycle INT

: >"$T/x.mnt"
start_fuse x -v -f raw "$T/c.raw" "$T/x.mnt" || not_ok "blkhost fuse -v mounts"
if umount "$T/x.mnt" 2>/dev/null || fusermount3 -u "$T/x.mnt"; then
    if wait_gone "$x_pid" && grep -q "unmounted from outside" "$T/x.log"; then
        ok "umount from outside ends blkhost fuse, which says why"
    else not_ok "umount from outside ends blkhost fuse, which says why"; diag "$(cat "$T/x.log")"; fi
else not_ok "umount from outside ends blkhost fuse, which says why"; diag "umount failed"; fi

# SIGTERM while a program holds the file open: the mount goes at once
# (lazy unmount) and that program's next read fails instead of hanging.
: >"$T/busy.mnt"
start_fuse busy -f raw "$T/c.raw" "$T/busy.mnt" || not_ok "blkhost fuse mounts"
out=$(timeout 30 /usr/bin/python3 - "$T/busy.mnt" "$busy_pid" <<'PY' 2>&1
import os, signal, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
os.kill(int(sys.argv[2]), signal.SIGTERM)
for _ in range(400):
    try:
        os.kill(int(sys.argv[2]), 0)
    except ProcessLookupError:
        break
    time.sleep(0.05)
else:
    print("still running")
try:
    os.pread(fd, 4096, 0)
    print("read worked")
except OSError as e:
    print("read failed:", os.strerror(e.errno))
PY
)
if [ "$out" = "read failed: Transport endpoint is not connected" ] && ! is_mounted "$T/busy.mnt"; then
    ok "SIGTERM with the file open elsewhere: blkhost fuse exits, no mount is left, the holder's next read fails with ENOTCONN"
else not_ok "SIGTERM with the file open elsewhere: blkhost fuse exits, no mount is left, the holder's next read fails with ENOTCONN"
    diag "$out"; fi

# Like qemu's, the export may cover the very image file it shows.
cp "$T/c.raw" "$T/self.raw"
start_fuse self -f raw "$T/self.raw" "$T/self.raw" || not_ok "blkhost fuse mounts over its own image"
check "mounted over its own image file, the file still reads as the image" \
    cmp "$T/self.raw" "$T/c.raw"
stop_pid "$self_pid"
check "after that unmount the image file is back, unchanged" cmp "$T/self.raw" "$T/c.raw"

# A server killed with SIGKILL cannot unmount: the next one is told what
# is in the way and how to clear it.
: >"$T/k.mnt"
start_fuse k -f raw "$T/c.raw" "$T/k.mnt" || not_ok "blkhost fuse mounts"
stop_pid "$k_pid" KILL
check_fails "over the dead mount of a killed server: refused, saying how to clear it" \
    "server is gone.*fusermount3 -u or umount -l" "$BLKHOST" fuse -f raw "$T/c.raw" "$T/k.mnt"
umount -l "$T/k.mnt" 2>/dev/null || fusermount3 -uz "$T/k.mnt"
if start_fuse k2 -f raw "$T/c.raw" "$T/k.mnt" && cmp -s "$T/k.mnt" "$T/c.raw"; then
    ok "after umount -l the same mount point serves again"
else not_ok "after umount -l the same mount point serves again"; fi
stop_pid "${k2_pid:-0}"

check_fails "a missing mount point fails, named, with ENOENT's message" \
    "mount point '$T/nope': No such file or directory" "$BLKHOST" fuse -f raw "$T/c.raw" "$T/nope"
check_fails "a mount point that is a device (/dev/null) is refused by name" \
    "neither a regular file nor a directory" "$BLKHOST" fuse -f raw "$T/c.raw" /dev/null
check_fails "blkhost fuse with one argument prints its usage error" \
    "Expecting an image and a mount point" "$BLKHOST" fuse "$T/c.raw"
check_fails "blkhost fuse --discard=bogus is refused by name" \
    "Invalid discard mode 'bogus'" "$BLKHOST" fuse --discard=bogus "$T/c.raw" "$T/s.mnt"

echo "1..$tap_n"
[ $tap_failed = 0 ]
