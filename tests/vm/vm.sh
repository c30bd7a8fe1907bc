# SPDX-License-Identifier: BSD-3-Clause
# nbd-kernel end to end: boots one VM (vm-run.sh, TCG) that runs guest.sh
# against images prepared here, then checks those images on the host with
# qemu-img and debugfs.  Skips (never passes silently) when qemu, a Debian
# kernel or busybox-static are missing, or when BLKHOST_SKIP_VM is set.
source "$SOURCE_ROOT/tests/tap.sh"
[ -n "${BLKHOST_SKIP_VM:-}" ] && skip_all "BLKHOST_SKIP_VM is set"
need qemu-img sfdisk debugfs e2fsck
W=$T
chmod 755 "$W"

# ---- images ----
truncate -s 32M "$W/raw.img"
truncate -s 32M "$W/remote.img"
truncate -s 1000000 "$W/odd.img"
truncate -s $((1048576 + 512)) "$W/odd2.img"
head -c 4M /dev/urandom > "$W/pattern"
qemu-img create -q -f qcow2 "$W/disk.qcow2" 64M
truncate -s 64M "$W/parts.raw"
sfdisk -q "$W/parts.raw" <<'PARTS' >/dev/null
label: dos
start=2048, size=16M, type=83
size=8M, type=83
size=8M, type=83
size=24M, type=5
size=8M, type=83
PARTS
qemu-img convert -q -f raw -O qcow2 "$W/parts.raw" "$W/parts.qcow2"
rm -f "$W/parts.raw"
chmod 644 "$W"/*

# ---- the guest ----
out=$(bash "$SOURCE_ROOT/tests/vm/vm-run.sh" "$W" "$SOURCE_ROOT/tests/vm/guest.sh" 2>&1)
rc=$?
if [ $rc -eq 77 ]; then
    skip_all "$(echo "$out" | sed -n 's/^vm-run: cannot run: //p' | head -1)"
fi
tap=$(echo "$out" | grep -E '^(ok|not ok) [0-9]+ |^# ')
while IFS= read -r l; do
    case $l in
        "ok "*) ok "${l#ok * - }" ;;
        "not ok "*) not_ok "${l#not ok * - }" ;;
        "# "*) echo "$l" ;;
    esac
done <<< "$tap"
if ! echo "$out" | grep -q '^# guest done'; then
    not_ok "vm: the guest script ran to its end (vm-run exit $rc)"
    diag "$(echo "$out" | tail -40)"
fi

# ---- host-side checks of what the guest wrote ----
md5() { md5sum | cut -d' ' -f1; }
pat=$(md5 < "$W/pattern")
check "host: disk.qcow2 passes qemu-img check" qemu-img check -q "$W/disk.qcow2"
check "host: disk.qcow2 holds the pattern written through /dev/nbd1" bash -c "
    qemu-img convert -q -f qcow2 -O raw '$W/disk.qcow2' '$W/disk.out' &&
    test \"\$(dd if='$W/disk.out' bs=1M skip=3 count=4 status=none | md5sum | cut -d' ' -f1)\" = $pat"
check "host: parts.qcow2 passes qemu-img check" qemu-img check -q "$W/parts.qcow2"
qemu-img convert -q -f qcow2 -O raw "$W/parts.qcow2" "$W/parts.out" 2>/dev/null
dd if="$W/parts.out" of="$W/p1.img" bs=512 skip=2048 count=32768 status=none 2>/dev/null
check "host: partition 1 of parts.qcow2 is a clean ext4 (e2fsck -fn)" e2fsck -fn "$W/p1.img"
check "host: debugfs reads /file from partition 1 with the text the guest wrote" bash -c "
    debugfs -R 'cat /file' '$W/p1.img' 2>/dev/null | grep -qx 'written through /dev/nbd2p1 in the VM'"
check "host: remote.img holds the pattern written through the remote export" \
    test "$(dd if="$W/remote.img" bs=1M skip=3 count=4 status=none | md5)" = "$pat"
plan $tap_n
[ $tap_failed -eq 0 ]
