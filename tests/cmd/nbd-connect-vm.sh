#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd -c DEV` / `-d DEV` end to end: one VM boot (tests/vm's
# vm-run.sh, TCG, about 25 s) runs nbd-connect-guest.sh, since this
# machine's kernel has no nbd module.  Skips when the VM cannot run or
# BLKHOST_SKIP_VM is set.
source "$SOURCE_ROOT/tests/tap.sh"
[ -n "${BLKHOST_SKIP_VM:-}" ] && skip_all "BLKHOST_SKIP_VM is set"
need qemu-img qemu-io sfdisk
chmod 755 "$T"
qemu-img create -q -f qcow2 "$T/disk.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x61 0 1M' "$T/disk.qcow2" >/dev/null
truncate -s 8M "$T/p.raw"
printf 'label: dos\nstart=2048, size=4096\n' | sfdisk -q "$T/p.raw"
chmod 644 "$T"/*

out=$(bash "$SOURCE_ROOT/tests/vm/vm-run.sh" "$T" "$SOURCE_ROOT/tests/cmd/nbd-connect-guest.sh" 2>&1)
rc=$?
if [ $rc -eq 77 ]; then
    skip_all "$(echo "$out" | sed -n 's/^vm-run: cannot run: //p' | head -1)"
fi
while IFS= read -r l; do
    case $l in
        "ok - "*) ok "${l#ok - }" ;;
        "not ok - "*) not_ok "${l#not ok - }" ;;
        "# "*) echo "$l" ;;
    esac
done <<< "$(echo "$out" | grep -E '^(ok|not ok) - |^# ')"
if ! grep -q '^# guest done' <<<"$out"; then
    not_ok "vm: the guest script ran to its end (vm-run exit $rc)"
    diag "$(echo "$out" | tail -30)"
fi
check "host: disk.qcow2 is consistent after -c/-d" qemu-img check -q "$T/disk.qcow2"
check "host: the write through /dev/nbd0 reached disk.qcow2" bash -c "
    qemu-img convert -q -f qcow2 -O raw '$T/disk.qcow2' '$T/disk.out' &&
    dd if='$T/disk.out' bs=4096 skip=100 count=1 status=none | grep -q 'written through nbd0'"
plan $tap_n
[ $tap_failed -eq 0 ]
