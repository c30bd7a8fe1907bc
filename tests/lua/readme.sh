#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The README's Lua API snippet ("Scripts: blkhost run") runs as written:
# it opens disk.img read-write (format probed), writes, then opens it
# again as a read-only window, which QEMU's lock rules allow for raw.
source "$SOURCE_ROOT/tests/tap.sh"
plan 4

awk '/^## Scripts: `blkhost run`/ { s = 1 }
     s && /^```lua$/ { c = 1; next }
     c && /^```$/ { exit }
     c { print }' "$SOURCE_ROOT/README.md" >"$T/snippet.lua"
if grep -q 'bh.open("disk.img", {offset' "$T/snippet.lua"; then
    ok "the snippet is found in README.md"
else not_ok "the snippet is found in README.md"; diag "$(cat "$T/snippet.lua")"; fi

truncate -s 64M "$T/disk.img"
out=$(cd "$T" && "$BLKHOST" run snippet.lua 2>"$T/err")
rc=$?
if [ $rc -eq 0 ]; then ok "the README snippet runs as written (exit 0)"
else not_ok "the README snippet runs as written (exit 0)"; diag "$out"; diag "$(cat "$T/err")"; fi
if grep -q "^67108864	raw$" <<<"$out"; then ok "it prints the size and the probed format raw"
else not_ok "it prints the size and the probed format raw"; diag "$out"; fi
if [ "$(head -c 5 "$T/disk.img")" = hello ]; then ok "its write reached disk.img"
else not_ok "its write reached disk.img"; fi
