#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# savevm / loadvm / delvm across images, with script state registered
# through bh.vmstate: a round trip of every field kind, versions (an older
# stream loads, a newer one is refused), savevm over two images, loadvm
# when one image lacks the snapshot (nothing changes), a disk-only
# snapshot, and broken state streams (poked into the image) refused with a
# clear error and no change.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
plan 26

A=$T/a.qcow2 C=$T/c.qcow2
qemu-img create -q -f qcow2 "$A" 16M
qemu-img create -q -f qcow2 -o compat=0.10 "$C" 5M

# The state a script registers: every Lua-side field kind.
REG='
local st = { a = 200, b = 65000, c = 4000000000, d = -1, e = -100, f = -30000,
  g = -2000000000, h = math.mininteger, on = true, s = "hello\0world",
  k = "0123456789abcdef", xs = {1, -2, 3}, us = {}, late = 9 }
local VERSION = tonumber(os.getenv("V") or "2")
local fields = { {"a","u8"}, {"b","u16"}, {"c","u32"}, {"d","u64"}, {"e","i8"},
  {"f","i16"}, {"g","i32"}, {"h","i64"}, {"on","bool"}, {"s","string"},
  {"k","buffer",size=16}, {"xs","array",of="i16"}, {"us","array",of="u64"} }
if VERSION >= 2 then fields[#fields + 1] = {"late","u8",version=2} end
bh.vmstate.register{ name = "demo", version = VERSION, min_version = tonumber(os.getenv("MINV") or "1"),
  fields = fields, get = function() return st end, set = function(t) st = t end }
local function dump(t)
  return string.format("%d %d %d %d %d %d %d %d %s %q %s %d,%d,%d #%d %s",
    t.a or -9, t.b or -9, t.c or -9, t.d or -9, t.e or -9, t.f or -9, t.g or -9,
    t.h or -9, tostring(t.on), t.s or "", t.k or "", (t.xs or {})[1] or 0,
    (t.xs or {})[2] or 0, (t.xs or {})[3] or 0, #(t.us or {}), tostring(t.late))
end
'
WANT='200 65000 4000000000 -1 -100 -30000 -2000000000 -9223372036854775808 true "hello\0world" 0123456789abcdef 1,-2,3 #0 9'

out=$(blua "$REG"'
local a, c = bh.open(arg[1]), bh.open(arg[2])
a:write(0, "AAAA"); c:write(0, "CCCC")
bh.savevm("s1")
a:write(0, "aaaa"); c:write(0, "cccc")
st = {}
local had = bh.loadvm("s1")
print(tostring(had), a:read(0, 4), c:read(0, 4))
print(dump(st))' "$A" "$C" 2>&1)
[ "$(echo "$out" | sed -n 1p)" = "true AAAA CCCC" ] && ok "savevm over two images, loadvm reverts both" || { not_ok "savevm/loadvm two images"; diag "$out"; }
[ "$(echo "$out" | sed -n 2p)" = "$WANT" ] && ok "every field kind round-trips (u8..u64, i8..i64, bool, string, buffer, arrays)" || { not_ok "field round trip"; diag "$out"; }
[ "$(names "$A")" = "1 s1" ] && [ "$(names "$C")" = "1 s1" ] && ok "both images hold snapshot s1" || not_ok "both images hold s1"
qclean "qemu-img check clean (image with state)" "$A"
qclean "qemu-img check clean (second image)" "$C"
qemu-img snapshot -l "$A" | grep ' s1 ' | grep -vq ' 0 B ' && ok "the first image holds the state (VM SIZE > 0)" || not_ok "state in first image"
qemu-img snapshot -l "$C" | grep ' s1 ' | grep -q ' 0 B ' && ok "the second image holds none" || not_ok "second image no state"

# Versions: a stream of version 1 loads into version 2 (late stays nil);
# a version 2 stream is refused by a script at version 1.
out=$(V=1 blua "$REG"'
local a, c = bh.open(arg[1]), bh.open(arg[2]); bh.savevm("v1")' "$A" "$C" 2>&1)
out=$(blua "$REG"'
local a, c = bh.open(arg[1]), bh.open(arg[2]); st = {}; bh.loadvm("v1"); print(dump(st))' "$A" "$C" 2>&1)
[ "$out" = "${WANT% 9} nil" ] && ok "an older stream (version 1) loads; the newer field stays unset" || { not_ok "older version"; diag "$out"; }
out=$(V=1 blua "$REG"'
local a, c = bh.open(arg[1]), bh.open(arg[2]); st = {a = 1}
local ok, err = pcall(bh.loadvm, "s1"); print(ok, err); print(st.a, a:read(0,4))' "$A" "$C" 2>&1)
echo "$out" | grep -q "^false.*version" && ok "a newer stream (version 2) is refused with an error naming the version" || { not_ok "newer refused"; diag "$out"; }
[ "$(echo "$out" | tail -1 | cut -d' ' -f1)" = 1 ] && ok "refused load leaves the script state untouched" || { not_ok "state untouched"; diag "$out"; }
out=$(MINV=2 blua "$REG"'
local a, c = bh.open(arg[1]), bh.open(arg[2]); local ok, err = pcall(bh.loadvm, "v1"); print(ok, err)' "$A" "$C" 2>&1)
echo "$out" | grep -q "^false.*older than" && ok "a stream older than min_version is refused" || { not_ok "min_version"; diag "$out"; }

# loadvm when one image lacks the snapshot: nothing changes anywhere.
qemu-img snapshot -d v1 "$C"
sumA=$(md5sum < "$A"); sumC=$(md5sum < "$C")
out=$(blua "$REG"'
local a, c = bh.open(arg[1]), bh.open(arg[2]); st = {a = 5}
local ok, err = pcall(bh.loadvm, "v1"); print(ok, err); print(st.a)' "$A" "$C" 2>&1)
echo "$out" | grep -q "^false.*has no snapshot.*v1" && ok "loadvm refused when one image lacks the snapshot, naming it" || { not_ok "loadvm missing"; diag "$out"; }
[ "$(echo "$out" | tail -1)" = 5 ] && [ "$(md5sum < "$A")" = "$sumA" ] && [ "$(md5sum < "$C")" = "$sumC" ] && ok "nothing changed (state, both files byte for byte)" || not_ok "nothing changed"

# Disk-only snapshot: no state registered.
out=$(blua '
local a, c = bh.open(arg[1]), bh.open(arg[2])
bh.savevm("disk"); a:write(0, "zzzz")
local had, why = bh.loadvm("disk"); print(tostring(had), why, a:read(0, 4))' "$A" "$C" 2>&1)
echo "$out" | grep -q "^false no state was stored.*AAAA$" && ok "disk-only snapshot: disks revert, loadvm says no state was stored" || { not_ok "disk-only"; diag "$out"; }
qemu-img snapshot -l "$A" | grep ' disk ' | grep -q ' 0 B ' && ok "disk-only snapshot has VM SIZE 0" || not_ok "disk-only VM SIZE"

# savevm replaces a snapshot of the same name; default name.
out=$(blua '
local a, c = bh.open(arg[1]), bh.open(arg[2])
bh.savevm("disk"); local n = bh.savevm(); print(n)
local l = {} for _, s in ipairs(bh.snapshots()) do l[#l+1] = s.name end print(table.concat(l, " "))' "$A" "$C" 2>&1)
echo "$out" | head -1 | grep -qE '^vm-[0-9]{14}$' && ok "default name vm-%Y%m%d%H%M%S" || { not_ok "default name"; diag "$out"; }
[ "$(qemu-img snapshot -l "$A" | grep -c ' disk ')" = 1 ] && ok "savevm replaced the snapshot of the same name" || not_ok "replace same name"
echo "$out" | tail -1 | grep -q "^s1 disk vm-" && ok "bh.snapshots() lists only snapshots every image has (not v1)" || { not_ok "common list"; diag "$out"; }
out=$(blua 'local a, c = bh.open(arg[1]), bh.open(arg[2]); bh.delvm("disk")' "$A" "$C" 2>&1)
! qemu-img snapshot -l "$A" | grep -q ' disk ' && ! qemu-img snapshot -l "$C" | grep -q ' disk ' && ok "delvm deletes everywhere" || { not_ok "delvm"; diag "$out"; }
qemu-img create -q -f raw "$T/r.raw" 1M
out=$(blua 'local a, r = bh.open(arg[1]), bh.open(arg[2], {format="raw"}); local ok, e = pcall(bh.savevm, "x"); print(ok, e)' "$A" "$T/r.raw" 2>&1)
echo "$out" | grep -q "^false.*r.raw.*does not support snapshots" && ok "savevm refused when a writable image cannot snapshot, naming it" || { not_ok "raw refused"; diag "$out"; }
out=$(blua 'local a, r = bh.open(arg[1]), bh.open(arg[2], {format="raw", readonly=true}); print(bh.savevm("ro"))' "$A" "$T/r.raw" 2>&1)
[ "$out" = ro ] && ok "a read-only image that cannot snapshot does not block savevm" || { not_ok "ro raw ok"; diag "$out"; }
qclean "qemu-img check clean after the savevm sequence" "$A"

# Broken streams: poke the stored state of s1 in $A.
poke_state() {  # poke_state OFFSET_IN_STREAM TYPE VALUE
    local base
    base=$(/usr/bin/python3 "$SOURCE_ROOT/tests/snapshot/vmstate-offset.py" "$A" s1 | cut -d' ' -f1)
    cp "$A" "$T/bad.qcow2"
    /usr/bin/python3 "$QCOW2_POKE" "$T/bad.qcow2" $((base + $1)) "$2" "$3"
}
tryload() {  # tryload DESC PATTERN
    local out
    sumB=$(md5sum < "$T/bad.qcow2")
    out=$(blua "$REG"'
local a, c = bh.open(arg[1]); st = {a = 77}
local ok, err = pcall(bh.loadvm, "s1"); print(ok, err); print(st.a, a:read(0, 4))' "$T/bad.qcow2" 2>&1)
    if echo "$out" | grep -qE "^false.*($2)" && [ "$(echo "$out" | tail -1 | cut -d' ' -f1)" = 77 ] &&
       [ "$(md5sum < "$T/bad.qcow2")" = "$sumB" ]; then ok "$1"; else not_ok "$1"; diag "$out"; fi
}
poke_state 0 hex 51455658; tryload "stream with a wrong magic refused, nothing changed" "magic"
poke_state 4 be32 2; tryload "stream of version 2 refused, nothing changed" "version"
poke_state 14 hex 58; tryload "stream with an unknown section refused, nothing changed" "unknown section"
# Truncated: shorten the recorded vm_state_size so the stream stops mid-field.
tbl=$(/usr/bin/python3 "$SOURCE_ROOT/tests/snapshot/vmstate-offset.py" "$A" s1 | cut -d' ' -f2)
cp "$A" "$T/bad.qcow2"
/usr/bin/python3 "$QCOW2_POKE" "$T/bad.qcow2" $((tbl + 40)) be64 30
/usr/bin/python3 "$QCOW2_POKE" "$T/bad.qcow2" $((tbl + 32)) be32 30
tryload "stream truncated in a field refused, nothing changed" "trunc|end of|short|EOF|unexpected"
