#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd` next to Debian's qemu-nbd: for each option both have,
# serve the same image (raw and qcow2) from both and compare what a client
# sees: nbdinfo's facts (size, flags, description, name, block sizes) and
# every byte (nbdcopy).  Known, deliberate differences of the server are
# left out of the comparison and listed in lib.sh's INFO_KEYS comment:
# can_trim with discard=ignore (qemu-nbd offers trim and drops it; blkhost
# does not offer it).
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/cmd/lib.sh"
need qemu-nbd qemu-img qemu-io nbdinfo nbdcopy

plan 40

# A 4 MiB raw image with data in a few places and holes elsewhere, and
# the same content as qcow2.
qemu-img create -q -f raw "$T/disk.raw" 4M
qemu-io -f raw -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 128k' \
    -c 'write -P 0x33 3M 4k' "$T/disk.raw" >/dev/null
qemu-img convert -q -f raw -O qcow2 "$T/disk.raw" "$T/disk.qcow2"

for fmt in raw qcow2; do
    img="$T/disk.$fmt"
    compare "$fmt: defaults" "$img" -f $fmt
    compare "$fmt: -r" "$img" -f $fmt -r
    compare "$fmt: -x NAME -D TEXT" "$img" -f $fmt -x exp1 -D "a description"
    compare "$fmt: -o 65536" "$img" -f $fmt -o 65536
    compare "$fmt: --offset=0x100000 -r" "$img" -f $fmt --offset=0x100000 -r
    compare "$fmt: --cache=writethrough" "$img" -f $fmt --cache=writethrough
    COMPARE_EXTRA="can_trim"
    compare "$fmt: --discard=unmap --detect-zeroes=unmap" "$img" -f $fmt \
        --discard=unmap --detect-zeroes=unmap
    COMPARE_EXTRA=""
    compare "$fmt: --detect-zeroes=on" "$img" -f $fmt --detect-zeroes=on
done

# Without -f both probe the format.
compare "qcow2: probed format" "$T/disk.qcow2"
# -f raw over a qcow2 file serves the file's own bytes.
compare "qcow2 file with -f raw" "$T/disk.qcow2" -f raw

# -n and --cache=none open with O_DIRECT (if the filesystem has it).
if dd if=/dev/zero of="$T/direct" bs=4096 count=1 oflag=direct 2>/dev/null; then
    COMPARE_IGNORE=block_size_minimum
    compare "raw: -n" "$T/disk.raw" -f raw -n
    COMPARE_IGNORE=
    compare "qcow2: --cache=none --aio=native" "$T/disk.qcow2" -f qcow2 --cache=none --aio=native
else
    skip "raw: -n: no O_DIRECT on $T"; skip "raw: -n: no O_DIRECT on $T"
    skip "qcow2: --aio=native: no O_DIRECT"; skip "qcow2: --aio=native: no O_DIRECT"
fi
