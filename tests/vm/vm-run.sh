#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Boot a throw-away Debian-kernel VM and run one host script inside it.
#
#   vm-run.sh WORKDIR SCRIPT [ARGS...]
#   vm-run.sh --initrd-only      build the initramfs (if needed), print its path
#
# The guest is a busybox initramfs that loads virtio, 9p and nbd.ko, mounts
# the host's root read-only over 9p at /host, WORKDIR read-write at the same
# path, tmpfs on /tmp and /run, and then runs `bash SCRIPT ARGS` chrooted
# into /host, so host binaries (blkhost from the build tree, qemu-img,
# mkfs.ext4, ...) run inside a kernel that has the nbd module.  The guest
# has no network.  The script's output comes back on stdout; the exit status
# is the script's.  The VM runs under TCG (VM_ACCEL=kvm to try KVM).
#
# Needs: qemu-system-x86_64, a Debian kernel in /boot with its modules, and
# busybox-static.  Prints "vm-run: cannot run: REASON" and exits 77 when one
# is missing, so callers can turn that into a TAP skip.
set -euo pipefail
initrd_only=
if [ "${1:-}" = --initrd-only ]; then initrd_only=1; else work=$1 script=$2; shift 2; fi

cannot() { echo "vm-run: cannot run: $*"; exit 77; }
command -v qemu-system-x86_64 >/dev/null || cannot "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || cannot "busybox is not installed (apt-get install busybox-static)"
busybox=$(command -v busybox)
file "$busybox" 2>/dev/null | grep -q "statically linked" || ldd "$busybox" 2>&1 | grep -q "not a dynamic" \
    || cannot "busybox is not static (apt-get install busybox-static)"
kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)
[ -n "$kernel" ] || cannot "no kernel in /boot (apt-get install linux-image-amd64)"
kver=${kernel#/boot/vmlinuz-}
mods=/lib/modules/$kver
[ -d "$mods" ] || cannot "no modules for $kver in $mods"
# Loaded in this order; ext4 and its helpers let the guest mount what it
# makes with mkfs.ext4 on an NBD partition.
modlist="netfs fscache 9pnet virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet_virtio 9p nbd crc16 mbcache jbd2 crc32c_generic ext4"

# The initramfs depends only on the kernel and busybox: build it once.
cache=${VM_CACHE:-${BUILD_ROOT:-/tmp}/tests/vm}
mkdir -p "$cache"
initrd=$cache/initrd-$kver.cpio.gz
# Two VM tests start at once on a fresh build dir: the first builds the
# initramfs under the lock, the second waits and then finds it built.  The
# lock is released when this shell exits or closes fd 9.
exec 9>"$initrd.lock"
flock 9
if [ ! -s "$initrd" ] || [ "$initrd" -ot "$0" ]; then
    root=$(mktemp -d)
    mkdir -p "$root"/{bin,dev,proc,sys,host,mods}
    cp "$busybox" "$root/bin/busybox"
    for m in $modlist; do
        f=$(find "$mods/kernel" -name "$m.ko" -print -quit)
        [ -n "$f" ] && cp "$f" "$root/mods/"
    done
    echo "$modlist" > "$root/mods/order"
    [ -f "$root/mods/nbd.ko" ] || cannot "nbd.ko not found under $mods"
    cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do
    [ -f /mods/$m.ko ] && insmod /mods/$m.ko 2>/dev/null
done
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
work=$(arg vm.work)
opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $opts,ro host /host || { echo "VM-EXIT 99 (9p mount failed)"; poweroff -f; }
# The host's /tmp disappears under the guest's tmpfs; keep a view of it
# for build and source trees that live there (vm.binds).
mkdir -p /host-tmp
mount -o bind /host/tmp /host-tmp
mount -t tmpfs tmp /host/tmp
for p in $(arg vm.binds | tr , ' '); do
    mkdir -p /host$p
    mount -o bind /host-tmp${p#/tmp} /host$p
done
mount -t tmpfs run /host/run
mkdir -p /host$work
mount -t 9p -o $opts,rw,cache=none work /host$work
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
ifconfig lo 127.0.0.1 up 2>/dev/null
chroot /host /bin/sh -c 'cd / && exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp /bin/bash '"$work"'/.vm-cmd' </dev/console >/dev/console 2>&1
echo "VM-EXIT $?"
sync
poweroff -f
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp.$$"
    mv "$initrd.tmp.$$" "$initrd"
    rm -rf "$root"
fi
exec 9>&-
if [ -n "$initrd_only" ]; then echo "$initrd"; exit 0; fi

# The command the guest runs, with its arguments quoted, lives in WORKDIR.
{
    printf 'export BUILD_ROOT=%q SOURCE_ROOT=%q BLKHOST=%q T=%q\n' \
        "${BUILD_ROOT:-}" "${SOURCE_ROOT:-}" "${BLKHOST:-}" "$work"
    printf 'exec bash'
    printf ' %q' "$script" "$@"
    printf '\n'
} > "$work/.vm-cmd"

# Trees under the host's /tmp that the guest needs (its /tmp is a tmpfs).
binds=
for p in "${BUILD_ROOT:-}" "${SOURCE_ROOT:-}" "$(dirname "${BLKHOST:-/x}")"; do
    case $p in /tmp/*) case $p/ in "$work"/*) ;; *) binds=$binds${binds:+,}$p ;; esac ;; esac
done

# TCG by default: /dev/kvm exists on these machines but a KVM guest was
# seen to hang before the kernel started (nested virtualisation).
# VM_ACCEL=kvm opts in.
accel=${VM_ACCEL:-tcg}
log=$work/.vm-console
set +e
timeout "${VM_TIMEOUT:-600}" qemu-system-x86_64 -accel "$accel" -m "${VM_MEM:-1024}" \
    -nographic -no-reboot -nic none -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 vm.work=$work vm.binds=$binds" \
    -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$work",mount_tag=work,security_model=none,multidevs=remap \
    </dev/null >"$log" 2>&1
qrc=$?
set -e
# Console output uses CRLF and may carry firmware escape codes.
tr -d '\r' <"$log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' -e '/^c*$/d' \
    | sed -e 's/^c\+\(SeaBIOS\)/\1/' | grep -v -E '^(SeaBIOS|Booting from|iPXE|Press Ctrl-B|\[ *[0-9.]+\] reboot:)' \
    | sed -n '/VM-EXIT/!p' 
rc=$(tr -d '\r' <"$log" | sed -n 's/^VM-EXIT \([0-9]*\).*/\1/p' | tail -1)
if [ -z "$rc" ]; then
    echo "vm-run: the VM ended without a result (qemu exit $qrc, accel $accel)"
    exit 1
fi
exit "$rc"
