#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost info --partitions [--output=json]` prints what blkhost.parttable
# prints.  Skipped until lua/cmd/info.lua has --partitions.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/partition/images.sh"
need sfdisk /usr/bin/python3
"$BLKHOST" info --help 2>&1 | grep -q -- "--partitions" ||
    skip_all "blkhost info has no --partitions yet"
plan 5

make_gpt "$T/gpt.img"
make_dos "$T/dos.img"
cat > "$T/want.lua" <<'L'
local bh = require "blkhost"
local img <close> = bh.open(arg[1], { readonly = true })
io.write(require("blkhost.parttable").show(img, arg[2]))
L
same() {
    local desc=$1; shift
    local want got
    want=$("$BLKHOST" run "$T/want.lua" "$@" 2>&1)
    got=$("$BLKHOST" info --partitions --output="$2" "$1" 2>&1)
    if [ -n "$want" ] && [ "$want" = "$got" ]; then ok "$desc"; else
        not_ok "$desc"; diag "want:"; diag "$want"; diag "got:"; diag "$got"; fi
}
same "info --partitions on a GPT image prints the table" "$T/gpt.img" human
same "info --partitions --output=json on a GPT image prints the JSON" "$T/gpt.img" json
same "info --partitions on a DOS image with logical partitions" "$T/dos.img" human
check "info --partitions --output=json parses and has 7 DOS partitions" bash -c \
    "\"$BLKHOST\" info --partitions --output=json '$T/dos.img' | /usr/bin/python3 -c 'import json,sys; assert len(json.load(sys.stdin)[\"partitions\"]) == 7'"
head -c 1M /dev/zero > "$T/zero.img"
check_fails "info --partitions on a disk without a table: 'no partition table', exit 1" \
    "no partition table" "$BLKHOST" info --partitions "$T/zero.img"
