#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Internal snapshots against qemu-img, both ways: lists agree (ids,
# names, dates, the table character for character), snapshots made by one
# are applied and deleted by the other, qemu-img check stays clean after
# every operation, and a snapshot's content never changes after it is
# taken (read through snapshot_open and after apply).
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
plan 48

I=$T/i.qcow2
qemu-img create -q -f qcow2 "$I" 64M
qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x12 32M 64k' "$I" >/dev/null

# ---- qemu-img made, blkhost reads, applies, deletes ----
qemu-img snapshot -c q1 "$I"
qemu-io -c 'write -P 0x21 0 64k' "$I" >/dev/null
qemu-img snapshot -c q2 "$I"
qemu-io -c 'write -P 0x31 0 64k' "$I" >/dev/null
want=$(qemu-img snapshot -l "$I")
got=$("$B" snapshot -l "$I")
if [ "$got" = "$want" ]; then ok "qemu-img made: blkhost snapshot -l prints qemu-img's table exactly"
else not_ok "qemu-img made: blkhost snapshot -l prints qemu-img's table exactly"; diag "$(diff <(echo "$want") <(echo "$got"))"; fi
out=$(blua 'local i = bh.open(arg[1], {readonly=true})
for _, s in ipairs(i:snapshots()) do io.write(s.id, " ", s.name, " ", os.date("!%Y-%m-%d %H:%M:%S", s.date), "\n") end' "$I")
want=$(qemu-img snapshot -l "$I" | awk 'NR>2 {print $1, $2}')
[ "$(echo "$out" | cut -d' ' -f1,2)" = "$want" ] && ok "qemu-img made: node:snapshots() has the same ids and names" || { not_ok "node:snapshots() ids/names"; diag "$out"; }
qdate=$(qemu-img info --output=json "$I" | /usr/bin/python3 -c 'import json,sys,time; print("\n".join(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s["date-sec"])) for s in json.load(sys.stdin)["snapshots"]))')
[ "$(echo "$out" | cut -d' ' -f3,4)" = "$qdate" ] && ok "qemu-img made: same dates" || { not_ok "same dates"; diag "$out / $qdate"; }
out=$(blua 'local i = bh.open(arg[1], {readonly=true})
local a, b = i:snapshot_open("q1"), i:snapshot_open{id="2"}
io.write(a:read(0,1):byte(), " ", b:read(0,1):byte(), " ", i:read(0,1):byte(), " ", a:read(32*1048576, 1):byte())' "$I")
[ "$out" = "17 33 49 18" ] && ok "snapshot_open shows each snapshot's data (by name and by {id=})" || { not_ok "snapshot_open data"; diag "$out"; }
check "blkhost snapshot -a q1" "$B" snapshot -a q1 "$I"
qclean "qemu-img check clean after blkhost apply" "$I"
qemu-io -c 'read -P 0x11 0 1M' -c 'read -P 0x12 32M 64k' "$I" >/dev/null && ok "after apply the image reads as q1" || not_ok "after apply the image reads as q1"
qemu-io -c 'write -P 0x41 0 64k' "$I" >/dev/null
out=$(blua 'local i = bh.open(arg[1], {readonly=true}); io.write(i:snapshot_open("q1"):read(0,1):byte())' "$I")
[ "$out" = 17 ] && ok "a write after apply leaves the snapshot unchanged" || not_ok "a write after apply leaves the snapshot unchanged ($out)"
# -d is by name only (qemu-img 7.2): "1" is q1's id, not a name.
cp "$I" "$T/q.qcow2"
qemu-img snapshot -d 1 "$T/q.qcow2" 2>/dev/null; q=$?
"$B" snapshot -d 1 "$I" 2>/dev/null; b=$?
[ $b = 1 ] && [ $q = 1 ] && [ "$(names "$I")" = "$(names "$T/q.qcow2")" ] && ok "blkhost snapshot -d 1 (an id, not a name) refused like qemu-img, nothing deleted" || { not_ok "-d by id: blkhost $b qemu-img $q"; diag "$(names "$I")"; }
check "blkhost snapshot -d q1 (by name)" "$B" snapshot -d q1 "$I"
qclean "qemu-img check clean after blkhost delete" "$I"
[ "$(names "$I")" = "2 q2" ] && ok "qemu-img lists what is left" || { not_ok "qemu-img lists what is left"; diag "$(names "$I")"; }
qemu-io -c 'read -P 0x41 0 64k' "$I" >/dev/null && ok "active data intact after delete" || not_ok "active data intact after delete"

# ---- blkhost made, qemu-img lists, applies, deletes ----
check "blkhost snapshot -c b1" "$B" snapshot -c b1 "$I"
qclean "qemu-img check clean after blkhost create" "$I"
[ "$(names "$I")" = "$(printf '2 q2\n3 b1')" ] && ok "new id is the largest numeric id plus 1" || { not_ok "new id"; diag "$(names "$I")"; }
qemu-io -c 'write -P 0x51 0 64k' -c 'write -P 0x52 63M 64k' "$I" >/dev/null
qclean "qemu-img check clean after writes over a blkhost snapshot" "$I"
out=$(blua 'local i = bh.open(arg[1], {readonly=true}); local s = i:snapshot_open("b1")
io.write(s:read(0,1):byte(), " ", s:read(63*1048576,1):byte())' "$I")
[ "$out" = "65 0" ] && ok "blkhost snapshot content unchanged by later writes" || { not_ok "content unchanged"; diag "$out"; }
qemu-img snapshot -a b1 "$I" && ok "qemu-img snapshot -a on a blkhost snapshot" || not_ok "qemu-img -a"
qemu-io -c 'read -P 0x41 0 64k' -c 'read -P 0 63M 64k' "$I" >/dev/null && ok "qemu-img apply shows the blkhost snapshot's data" || not_ok "qemu-img apply data"
qclean "qemu-img check clean after qemu-img apply" "$I"
qemu-img snapshot -d b1 "$I" && ok "qemu-img snapshot -d on a blkhost snapshot" || not_ok "qemu-img -d"
qclean "qemu-img check clean after qemu-img delete" "$I"

# ---- Lua API, vmstate, disk size ----
out=$(blua 'local i = bh.open(arg[1])
local s = i:snapshot_create("l1", {vm_clock_ns = 3723004000000, date = 1700000000, icount = 42})
io.write(s.id, " ", s.name, " ", s.disk_size)' "$I")
[ "$out" = "3 l1 67108864" ] && ok "node:snapshot_create returns id, name, disk_size" || { not_ok "snapshot_create"; diag "$out"; }
line=$(qemu-img snapshot -l "$I" | grep ' l1 ')
echo "$line" | grep -q "01:02:03.004" && echo "$line" | grep -q " 42$" && ok "qemu-img shows the VM clock and icount given" || { not_ok "vm clock/icount"; diag "$line"; }
[ "$("$B" snapshot -l "$I")" = "$(qemu-img snapshot -l "$I")" ] && ok "table identical with VM clock and icount" || not_ok "table identical with VM clock and icount"
qclean "qemu-img check clean after node:snapshot_create" "$I"
# Resize: a snapshot of a different size.
qemu-img resize -q "$I" 128M 2>/dev/null || qemu-img resize "$I" 128M >/dev/null
out=$(blua 'local i = bh.open(arg[1]); local before = i:size(); i:snapshot_apply("l1"); io.write(before, " ", i:size())' "$I")
[ "$out" = "134217728 67108864" ] && ok "apply of a snapshot with another disk size resizes the node" || { not_ok "apply resize"; diag "$out"; }
[ "$(qemu-img info --output=json "$I" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" = 67108864 ] && ok "qemu-img sees the snapshot's size" || not_ok "qemu-img sees the snapshot's size"
qclean "qemu-img check clean after a resizing apply" "$I"
# vmstate made by blkhost is listed by qemu-img with its size.
out=$(blua 'bh.vmstate.register{name="x", version=1, fields={{"v","u32"}}, get=function() return {v=5} end, set=function() end}
local i = bh.open(arg[1]); bh.savevm("withstate"); io.write(i:snapshots()[#i:snapshots()].vm_state_size)' "$I")
[ "$out" -gt 0 ] 2>/dev/null && ok "savevm stores $out bytes of state" || { not_ok "savevm state size"; diag "$out"; }
qemu-img snapshot -l "$I" | grep ' withstate ' | grep -q "$out B" && ok "qemu-img lists the VM SIZE" || { not_ok "qemu-img VM SIZE"; diag "$(qemu-img snapshot -l "$I")"; }
[ "$("$B" snapshot -l "$I")" = "$(qemu-img snapshot -l "$I")" ] && ok "table identical with a VM SIZE" || not_ok "table identical with a VM SIZE"
qclean "qemu-img check clean after savevm (vmstate dropped from the active L1)" "$I"
# ---- CLI errors and exit codes, like qemu-img ----
"$B" snapshot -d nosuch "$I" 2>/dev/null; b=$?; qemu-img snapshot -d nosuch "$I" 2>/dev/null; q=$?
[ $b = $q ] && [ $b = 1 ] && ok "-d of a missing name: exit 1 like qemu-img" || not_ok "-d missing: $b vs $q"
"$B" snapshot -a nosuch "$I" 2>/dev/null; b=$?; qemu-img snapshot -a nosuch "$I" 2>/dev/null; q=$?
[ $b = $q ] && [ $b = 1 ] && ok "-a of a missing name: exit 1 like qemu-img" || not_ok "-a missing: $b vs $q"
check_fails "-l and -c together refused" "Cannot mix" "$B" snapshot -l -c x "$I"
check_fails "a raw image cannot snapshot" "does not support internal snapshots" "$B" snapshot -c x -f raw "$T/i.qcow2"
qemu-img create -q -f qcow2 "$T/empty.qcow2" 1M
[ -z "$("$B" snapshot -l "$T/empty.qcow2")" ] && [ -z "$(qemu-img snapshot -l "$T/empty.qcow2")" ] && ok "no snapshots: nothing printed, as qemu-img" || not_ok "empty list"
# v2 image
qemu-img create -q -f qcow2 -o compat=0.10 "$T/v2.qcow2" 8M
qemu-io -c 'write -P 7 0 64k' "$T/v2.qcow2" >/dev/null
check "create on a compat=0.10 image" "$B" snapshot -c v "$T/v2.qcow2"
qemu-io -c 'write -P 8 0 64k' "$T/v2.qcow2" >/dev/null
qemu-img snapshot -a v "$T/v2.qcow2" && qemu-io -c 'read -P 7 0 64k' "$T/v2.qcow2" >/dev/null && ok "compat=0.10: qemu-img applies it" || not_ok "v2 apply"
qclean "compat=0.10: qemu-img check clean" "$T/v2.qcow2"
# Backing file, lazy refcounts, refcount_bits=1.
qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
qemu-io -c 'write -P 5 0 1M' "$T/base.qcow2" >/dev/null
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/ov.qcow2"
qemu-io -c 'write -P 6 0 64k' "$T/ov.qcow2" >/dev/null
"$B" snapshot -c s "$T/ov.qcow2" && qemu-io -c 'write -P 7 0 128k' "$T/ov.qcow2" >/dev/null &&
    "$B" snapshot -a s "$T/ov.qcow2" && qemu-io -c 'read -P 6 0 64k' -c 'read -P 5 64k 64k' "$T/ov.qcow2" >/dev/null &&
    ok "over a backing file: the snapshot keeps its own and the backing data" || not_ok "backing file snapshot"
qclean "over a backing file: qemu-img check clean" "$T/ov.qcow2"
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$T/lz.qcow2" 8M
qemu-io -c 'write -P 1 0 1M' "$T/lz.qcow2" >/dev/null
"$B" snapshot -c s "$T/lz.qcow2" && "$B" snapshot -d s "$T/lz.qcow2" && ok "lazy refcounts: create and delete" || not_ok "lazy refcounts"
qclean "lazy refcounts: qemu-img check clean" "$T/lz.qcow2"
qemu-img create -q -f qcow2 -o refcount_bits=1 "$T/r1.qcow2" 8M
qemu-io -c 'write -P 1 0 1M' "$T/r1.qcow2" >/dev/null
sum=$(md5sum < "$T/r1.qcow2")
check_fails "refcount_bits=1: create refused (a shared cluster needs refcount 2)" "refcount_bits 1" "$B" snapshot -c s "$T/r1.qcow2"
[ "$(md5sum < "$T/r1.qcow2")" = "$sum" ] && ok "refcount_bits=1: image unchanged" || not_ok "refcount_bits=1: image changed"
