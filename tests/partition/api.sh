#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The Lua API (node:partitions, node:partition and its selectors, window
# modes) and the blkhost.parttable printer, on images made by sfdisk.
# api.lua prints the TAP.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/partition/images.sh"
need sfdisk /usr/bin/python3
make_dos "$T/dos.img"
make_gpt "$T/gpt.img"
truncate -s 4M "$T/empty.img"
echo 'label: dos' | sfdisk -q --no-reread "$T/empty.img" >/dev/null
exec "$BLKHOST" run "$PT_DIR/api.lua" "$T"
