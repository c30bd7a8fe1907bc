#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Partition tables made by util-linux, read by blkhost: the layout equals
# what sfdisk (or fdisk -b 4096) reports, a window reads the same bytes as
# dd with the matching skip and count, and an ext4 filesystem made by
# mkfs.ext4 inside a partition is intact (e2fsck -fn, debugfs cat) when
# copied out through the window.  DOS with logical partitions, GPT with
# 512- and 4096-byte sectors.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/partition/images.sh"
need sfdisk fdisk mkfs.ext4 e2fsck debugfs cmp dd
plan 21

layout_blkhost() {
    "$BLKHOST" run "$PT_DIR/layout.lua" "$@" | tr '\t' ' '
}

# same_layout DESC IMG [SS_FOR_FDISK] [SS_FOR_BLKHOST]
same_layout() {
    local desc=$1 img=$2 ss=${3:-} bss=${4:-}
    local want got
    want=$(/usr/bin/python3 "$PT_DIR/layout.py" "$img" $ss 2>&1)
    got=$(layout_blkhost "$img" $bss 2>&1)
    if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "$desc"; else
        not_ok "$desc"; diag "util-linux:"; diag "$want"; diag "blkhost:"; diag "$got"; fi
}

# dd_equal DESC IMG N [SS [SOURCE]]: the window of partition N of SOURCE
# (default IMG) == dd of its sectors in IMG.
dd_equal() {
    local desc=$1 img=$2 n=$3 ss=${4:-512} src=${5:-$2}
    local start size
    read -r start size < <(sfdisk_sectors "$img" "$n" $([ "$ss" = 512 ] || echo "$ss"))
    rm -f "$T/dd.bin" "$T/win.bin"
    dd if="$img" of="$T/dd.bin" bs="$ss" skip="$start" count="$size" status=none
    local out
    if ! out=$("$BLKHOST" run "$PT_DIR/copy.lua" "$src" "$T/win.bin" "$n" 2>&1); then
        not_ok "$desc"; diag "$out"; return
    fi
    if [ -s "$T/dd.bin" ] && cmp -s "$T/dd.bin" "$T/win.bin"; then ok "$desc"
    else not_ok "$desc"; diag "dd skip=$start count=$size bs=$ss differs"; fi
}

# ext4_in IMG N SS FS_BLOCK: mkfs.ext4 -d a small tree into a plain file of
# partition N's size and dd it into place (no loop device needed).
ext4_in() {
    local img=$1 n=$2 ss=$3 blk=$4 start size
    read -r start size < <(sfdisk_sectors "$img" "$n" $([ "$ss" = 512 ] || echo "$ss"))
    mkdir -p "$T/tree/sub"
    echo "hello from partition $n" > "$T/tree/hello.txt"
    head -c 300000 /dev/urandom > "$T/tree/sub/blob"
    rm -f "$T/fs.img"
    mkfs.ext4 -q -F -b "$blk" -d "$T/tree" "$T/fs.img" $((size * ss / 1024)) >/dev/null 2>&1 &&
        dd if="$T/fs.img" of="$img" bs="$ss" seek="$start" conv=notrunc status=none
}

# ext4_check DESC IMG SELECTOR...: copy through the window, fsck, compare.
ext4_check() {
    local desc=$1 img=$2; shift 2
    rm -f "$T/copy.img"
    local out
    if ! out=$("$BLKHOST" run "$PT_DIR/copy.lua" "$img" "$T/copy.img" "$@" 2>&1); then
        not_ok "$desc: e2fsck -fn clean"; diag "$out"
        not_ok "$desc: files read back"; return
    fi
    check "$desc: e2fsck -fn clean" e2fsck -fn "$T/copy.img"
    local a b
    a=$(debugfs -R "cat /hello.txt" "$T/copy.img" 2>/dev/null)
    b=$(debugfs -R "cat /sub/blob" "$T/copy.img" 2>/dev/null | cmp - "$T/tree/sub/blob" && echo same)
    if [ "$a" = "$(cat "$T/tree/hello.txt")" ] && [ "$b" = same ]; then
        ok "$desc: files read back"
    else
        not_ok "$desc: files read back"; diag "hello.txt: '$a'; blob: '$b'"
    fi
}

make_dos "$T/dos.img"
make_gpt "$T/gpt.img"
make_gpt4k "$T/g4k.img"

same_layout "DOS (3 primaries, extended with 3 logicals): offsets, sizes, types, boot flags equal sfdisk --json" "$T/dos.img"
same_layout "GPT with 5 named partitions: offsets, sizes, types, names, attrs equal sfdisk --json" "$T/gpt.img"
same_layout "GPT with 4096-byte sectors, sector size found automatically: equals fdisk -b 4096" "$T/g4k.img" 4096
same_layout "GPT with 4096-byte sectors, sector_size=4096 given: equals fdisk -b 4096" "$T/g4k.img" 4096 4096

dd_equal "DOS primary 1 through its window equals dd" "$T/dos.img" 1
dd_equal "DOS extended partition 4 (the container) equals dd" "$T/dos.img" 4
dd_equal "DOS logical 5 (first in the EBR chain) equals dd" "$T/dos.img" 5
dd_equal "DOS logical 7 (last in the EBR chain) equals dd" "$T/dos.img" 7
dd_equal "GPT partition 1 equals dd" "$T/gpt.img" 1
dd_equal "GPT partition 5 (up to the last usable LBA) equals dd" "$T/gpt.img" 5
dd_equal "4K-sector GPT partition 1 equals dd bs=4096" "$T/g4k.img" 1 4096
dd_equal "4K-sector GPT partition 2 equals dd bs=4096" "$T/g4k.img" 2 4096

ext4_in "$T/gpt.img" 2 512 1024
ext4_check "ext4 in GPT partition 'root' (label=root)" "$T/gpt.img" label=root
ext4_in "$T/dos.img" 6 512 1024
ext4_check "ext4 in DOS logical partition 6" "$T/dos.img" 6
ext4_in "$T/g4k.img" 2 4096 4096
ext4_check "ext4 in 4K-sector GPT partition 'root'" "$T/g4k.img" label=root type_name=linux
# The neighbours of a partition that was written are untouched.
dd_equal "after mkfs in 6, DOS logical 5 still equals dd" "$T/dos.img" 5

# A disk inside a qcow2 image: partitions are read through the format.
if command -v qemu-img >/dev/null && [ -f "$BUILD_ROOT/drivers/qcow2/qcow2.so" ]; then
    qemu-img convert -O qcow2 "$T/gpt.img" "$T/gpt.qcow2"
    want=$(/usr/bin/python3 "$PT_DIR/layout.py" "$T/gpt.img")
    got=$(PT_FORMAT=qcow2 layout_blkhost "$T/gpt.qcow2" 2>&1)
    if [ "$want" = "$got" ]; then ok "GPT inside a qcow2 image: layout equals sfdisk --json of the raw disk"
    else not_ok "GPT inside a qcow2 image: layout equals sfdisk --json of the raw disk"; diag "$got"; fi
    PT_FORMAT=qcow2 dd_equal "GPT inside a qcow2 image: partition 2 (ext4) equals dd of the raw disk" \
        "$T/gpt.img" 2 512 "$T/gpt.qcow2"
else
    skip "qemu-img or the qcow2 driver missing: GPT inside qcow2"
    skip "qemu-img or the qcow2 driver missing: GPT inside qcow2 window"
fi
