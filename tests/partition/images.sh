# SPDX-License-Identifier: BSD-3-Clause
# Disk images for the partition tests, made by util-linux.  Sourced.
#   make_dos IMG     32 MiB: 1 linux (bootable), 2 swap, 3 lvm, 4 extended
#                    holding 5 linux, 6 linux, 7 fat32 (the rest)
#   make_gpt IMG     48 MiB: 1 efi "efi", 2 linux "root" (legacy bootable),
#                    3 swap "swap", 4 linux-home "home", 5 microsoft basic
#                    data "data" (the rest)
#   make_gpt4k IMG   64 MiB with 4096-byte sectors (fdisk -b 4096; sfdisk
#                    2.38 has no --sector-size): 1 "boot", 2 "root" (rest)
# IMG is filled with random bytes first, so a window that reads the wrong
# place cannot pass for the right one.
PT_DIR=$SOURCE_ROOT/tests/partition
POKE="/usr/bin/python3 $PT_DIR/poke.py"

pt_fill() { head -c "$2" /dev/urandom > "$1"; }

make_dos() {
    pt_fill "$1" 32M
    sfdisk -q --no-reread "$1" >/dev/null <<'S'
label: dos
size=8M, type=83, bootable
size=4M, type=82
size=4M, type=8e
type=5
size=4M, type=83
size=4M, type=83
type=b
S
}

make_gpt() {
    pt_fill "$1" 48M
    sfdisk -q --no-reread "$1" >/dev/null <<'S'
label: gpt
size=4M, type=U, name="efi"
size=16M, type=L, name="root", attrs="LegacyBIOSBootable"
size=4M, type=S, name="swap"
size=8M, type=933AC7E1-2EB4-4F13-B844-0E14E2AEF915, name="home"
type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="data"
S
}

make_gpt4k() {
    pt_fill "$1" 64M
    printf 'label: gpt\nsize=8M, type=U, name="boot"\ntype=L, name="root"\n' > "$1.script"
    printf 'I\n%s\nw\n' "$1.script" | fdisk -b 4096 "$1" >/dev/null
    rm -f "$1.script"
}

# sfdisk_sectors IMG N [SS]: "START SIZE" of partition N in sectors.
sfdisk_sectors() {
    /usr/bin/python3 "$PT_DIR/layout.py" "$1" ${3:-} |
        awk -v n="$2" -v ss="${3:-512}" '$1 == n { print $2 / ss, $3 / ss }'
}
