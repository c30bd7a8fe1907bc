#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Damaged and missing partition tables: each gets a clear error (or, for a
# damaged primary GPT header, the backup and a warning), never a crash or
# a wrong answer.  The images are made by sfdisk and then damaged in one
# precise way by poke.py, which keeps every other checksum right.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/partition/images.sh"
need sfdisk fdisk mkfs.ext4 /usr/bin/python3
plan 30

LAYOUT=$PT_DIR/layout.lua
make_dos "$T/dos0.img"
make_gpt "$T/gpt0.img"
make_gpt4k "$T/g4k.img"
GPT_WANT=$(/usr/bin/python3 "$PT_DIR/layout.py" "$T/gpt0.img")

dos() { cp "$T/dos0.img" "$T/d.img"; [ $# -eq 0 ] || $POKE "$T/d.img" "$@"; }
gpt() { cp "$T/gpt0.img" "$T/g.img"; [ $# -eq 0 ] || $POKE "$T/g.img" "$@"; }
refused() { check_fails "$1" "$2" "$BLKHOST" run "$LAYOUT" "${@:3}"; }

# fallback DESC WARNING_PATTERN: g.img still lists sfdisk's layout, and
# stderr carries a warning that names the problem.
fallback() {
    local out err
    out=$("$BLKHOST" run "$LAYOUT" "$T/g.img" 2>"$T/err" | tr '\t' ' ')
    err=$(cat "$T/err")
    if [ "$out" = "$GPT_WANT" ] && echo "$err" | grep -qE -- "$2"; then ok "$1"
    else not_ok "$1"; diag "stdout:"; diag "$out"; diag "stderr:"; diag "$err"; fi
}

# ---- MBR and the EBR chain ----
dos ebr-link 0 self
refused "DOS: first EBR linking to itself refused" "EBR at LBA [0-9]+ links to itself" "$T/d.img"
dos ebr-link 1 self
refused "DOS: second EBR linking to itself (a loop) refused" "EBR at LBA [0-9]+ links to itself" "$T/d.img"
dos ebr-link 2 back
refused "DOS: third EBR pointing backwards to the second refused" "links back to LBA" "$T/d.img"
dos ebr-link 1 past
refused "DOS: EBR outside the extended partition refused" "links to LBA [0-9]+, outside extended partition 4" "$T/d.img"
dos ebr-data 1 20000
refused "DOS: logical partition beyond the extended partition refused" "logical partition 6 .* lies outside extended partition 4" "$T/d.img"
dos ebr-data 0 0
refused "DOS: logical partition starting on its own EBR refused" "logical partition 5 .* lies outside" "$T/d.img"
dos ebr-unsign 1
refused "DOS: linked EBR without 55 aa signature refused" "EBR at LBA [0-9]+ in extended partition 4 has no 55 aa signature" "$T/d.img"
dos mbr-count 2 4000000
refused "DOS: primary partition 2 running past the end of the disk refused" "partition 2 \(sectors 18432\.\.[0-9]+\) runs past the end of the disk \(65536 sectors" "$T/d.img"
dos; truncate -s 20M "$T/d.img"
refused "DOS: truncated image (extended partition past the end) refused" "partition 4 .* runs past the end of the disk \(40960 sectors" "$T/d.img"
dos; $POKE "$T/d.img" mbr-count 1 0
check "DOS: an empty primary slot is skipped, numbering kept (no 1, 2..7 listed)" \
    bash -c "\"$BLKHOST\" run \"$LAYOUT\" \"$T/d.img\" | cut -f1 | tr '\n' ' ' | grep -qx '2 3 4 5 6 7 '"

# ---- GPT ----
gpt gpt-badcrc primary
fallback "GPT: bad primary header CRC falls back to the backup, with a warning" \
    "WARNING.*primary GPT header at LBA 1 is damaged \(header CRC32 .*\); using the backup header at LBA 98303"
gpt gpt-badarray primary
fallback "GPT: bad primary entry array CRC falls back to the backup, with a warning" \
    "primary GPT header at LBA 1 is damaged \(the header gives partition entry array CRC32"
gpt gpt-field primary count 0x80000000
fallback "GPT: entry count 2^31 in the primary header only falls back to the backup" \
    "damaged \(partition entry array of 2147483648 entries"
gpt gpt-field primary my_lba 7
fallback "GPT: primary header claiming LBA 7 falls back to the backup" "damaged \(the header says it is at LBA 7\)"
gpt gpt-badcrc both
refused "GPT: both header CRCs bad: clear error naming both" \
    "no valid GPT \(sector size 512\): primary header at LBA 1: header CRC32 .*; backup header at LBA 98303: header CRC32" "$T/g.img"
gpt gpt-field both count 0x80000000
refused "GPT: entry count 2^31 refused (array over 16 MiB)" \
    "partition entry array of 2147483648 entries of 128 bytes is larger than the 16 MiB allowed" "$T/g.img"
gpt gpt-field both entry_size 64
refused "GPT: entry size 64 refused" "partition entry size 64 is not a multiple of 8 of at least 128" "$T/g.img"
gpt gpt-entry 5 last 100000000
refused "GPT: partition 5 running past the end of the disk refused" \
    "partition 5 \(LBA [0-9]+\.\.100000000\) runs past the end of the disk \(98304 sectors" "$T/g.img"
gpt gpt-entry 3 last 2048
refused "GPT: partition 3 ending before it starts refused" "GPT partition 3 ends \(LBA 2048\) before it starts" "$T/g.img"
gpt gpt-entry 1 first 10
refused "GPT: partition 1 starting before the first usable LBA refused" "partition 1 \(LBA 10\.\.[0-9]+\) lies outside the usable LBAs 2048\.\." "$T/g.img"
gpt; truncate -s 32M "$T/g.img"
refused "GPT: truncated image refused (header does not fit, no backup)" \
    "no valid GPT .*primary header at LBA 1: usable LBAs 2048\.\.98270 do not fit the disk \(65536 sectors" "$T/g.img"
gpt; dd if=/dev/zero of="$T/g.img" bs=512 seek=1 count=33 conv=notrunc status=none
dd if=/dev/zero of="$T/g.img" bs=512 seek=$((98304 - 33)) count=33 conv=notrunc status=none
refused "GPT: protective MBR but no GPT header anywhere refused" "GPT protective MBR but no GPT header was found" "$T/g.img"
gpt; dd if=/dev/zero of="$T/g.img" bs=512 count=1 conv=notrunc status=none
fallback "GPT without a protective MBR: still read, with a warning" "GPT found without a protective MBR"
refused "4K-sector GPT read with sector_size=512 refused" "GPT protective MBR but no GPT header was found" "$T/g4k.img" 512
refused "sector_size=1000 refused" "sector size 1000 is not a power of two from 512 to 65536" "$T/g4k.img" 1000

# ---- no partition table at all ----
head -c 8M /dev/zero > "$T/zero.img"
refused "disk of zeros: no partition table" "no partition table \(no MBR signature 55 aa at byte 510 and no GPT header\)" "$T/zero.img"
mkfs.ext4 -q -F "$T/ext4.img" 8M >/dev/null 2>&1
refused "bare ext4 filesystem: no partition table" "no partition table" "$T/ext4.img"
head -c 1M /dev/urandom > "$T/boot.img"
printf '\x55\xaa' | dd of="$T/boot.img" bs=1 seek=510 conv=notrunc status=none
printf '\x33' | dd of="$T/boot.img" bs=1 seek=446 conv=notrunc status=none
refused "boot sector with 55 aa but code in the entry area: no partition table" "no partition table" "$T/boot.img"
head -c 100 /dev/zero > "$T/tiny.img"
refused "100-byte disk: no partition table" "no partition table \(the disk is only 100 bytes\)" "$T/tiny.img"
: > "$T/empty.img"
refused "empty (0-byte) disk: no partition table" "no partition table \(the disk is only 0 bytes\)" "$T/empty.img"
