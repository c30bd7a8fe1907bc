#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# RBD snapshots through the core's snapshot calls: what `blkhost
# snapshot` makes, lists, rolls back and deletes is what `rbd snap ls` and
# `rbd export img@snap` see; a snapshot opens read-only; bh.savevm is
# disk-only and says so when asked for VM state; the nightly rotation
# runs unchanged over a two-image RBD group.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/ceph/lib.sh"
need rbd python3
plan 19
ceph_up

rbd create --size 16M rbd/s >/dev/null 2>&1
head -c 4M /dev/urandom >"$T/one"
head -c 4M /dev/urandom >"$T/two"
"$BLKHOST" dd if="$T/one" of=rbd:rbd/s -O raw conv=notrunc >/dev/null 2>&1 ||
    "$BLKHOST" convert -n -O raw "$T/one" rbd:rbd/s >/dev/null 2>&1
rbd_export s "$T/before.img"

check "snapshot -c first rbd:rbd/s" "$BLKHOST" snapshot -c first rbd:rbd/s
ids=$("$BLKHOST" snapshot -l rbd:rbd/s 2>/dev/null | awk '$2 == "first" { print $1 }')
theirs=$(rbd snap ls rbd/s --format json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(s["id"]) for s in json.load(sys.stdin) if s["name"] == "first"))')
if [ -n "$ids" ] && [ "$ids" = "$theirs" ]; then
    ok "snapshot -l lists 'first' with rbd snap ls's id ($ids)"
else not_ok "snapshot -l lists 'first' with rbd snap ls's id"; diag "ours '$ids' theirs '$theirs'"; fi

# Change the image after the snapshot.
"$BLKHOST" convert -n -O raw "$T/two" rbd:rbd/s >/dev/null 2>&1
rbd_export s@first "$T/first.img"
if cmp -s "$T/first.img" "$T/before.img"; then
    ok "rbd export s@first holds the bytes from before the later write"
else not_ok "rbd export s@first holds the bytes from before the later write"; fi
check "convert rbd:rbd/s@first (read-only open of a snapshot) equals rbd export s@first" \
    bash -c "'$BLKHOST' convert -O raw rbd:rbd/s@first '$T/ours-first.img' && cmp '$T/ours-first.img' '$T/first.img'"
check "node:snapshot_open('first') on rbd:rbd/s reads as rbd export s@first" \
    bash -c "'$BLKHOST' run - rbd:rbd/s '$T/view.img' <<'LUA' && cmp '$T/view.img' '$T/first.img'
local bh = require 'blkhost'
local d <close> = bh.open(arg[1], { readonly = true })
local v <close> = d:snapshot_open('first')
local f = assert(io.open(arg[2], 'wb'))
f:write(v:read(0, v:size()))
f:close()
LUA"
check_fails "a writable open of rbd:rbd/s@first is refused" "is a snapshot: open it read-only" \
    "$BLKHOST" run - rbd:rbd/s@first <<<'require("blkhost").open(arg[1], { format = "rbd" })'
check_fails "rbd:rbd/s@nosuch is refused as no such snapshot" "cannot open 'rbd/s@nosuch': no such snapshot" \
    "$BLKHOST" info rbd:rbd/s@nosuch

# Rollback (snapshot -a) and delete (-d), by name and by id.
check "snapshot -a first: rbd export of the image equals the snapshot again" \
    bash -c "'$BLKHOST' snapshot -a first rbd:rbd/s && rbd export --no-progress rbd/s '$T/after.img' >/dev/null 2>&1 && cmp '$T/after.img' '$T/first.img'"
check "snapshot -c second, then -d second: rbd snap ls has first only" \
    bash -c "'$BLKHOST' snapshot -c second rbd:rbd/s && '$BLKHOST' snapshot -d second rbd:rbd/s &&
             [ \"\$(rbd snap ls rbd/s --format json | python3 -c 'import json,sys; print(\" \".join(s[\"name\"] for s in json.load(sys.stdin)))')\" = first ]"
check_fails "snapshot -d of a name the image lacks is refused (qemu-img's message)" \
    "Could not delete snapshot 'nosuch': snapshot not found" "$BLKHOST" snapshot -d nosuch rbd:rbd/s
rbd snap create rbd/s@prot >/dev/null 2>&1 && rbd snap protect rbd/s@prot >/dev/null 2>&1
check_fails "snapshot -d of a protected snapshot says it is protected" \
    "it is protected or has clones" "$BLKHOST" snapshot -d prot rbd:rbd/s
rbd snap unprotect rbd/s@prot >/dev/null 2>&1

# savevm: disk-only works; asking to store VM state is refused by name.
out=$("$BLKHOST" run - rbd:rbd/s <<'LUA' 2>&1
local bh = require "blkhost"
local d <close> = bh.open(arg[1])
bh.savevm("vm-a")
bh.savevm("vm-a")      -- again: replaces it, as for qcow2
local n = 0
for _, s in ipairs(d:snapshots()) do if s.name == "vm-a" then n = n + 1 end end
print("count", n)
local state = { n = 7 }
bh.vmstate.register { name = "dev", fields = { { "n", "u32" } },
                      get = function() return state end,
                      set = function(t) state = t end }
print(pcall(bh.savevm, "vm-b"))
LUA
)
if grep -q "^count	1" <<<"$out"; then
    ok "bh.savevm twice on rbd:rbd/s: one disk-only snapshot vm-a remains"
else not_ok "bh.savevm twice on rbd:rbd/s: one disk-only snapshot vm-a remains"; diag "$out"; fi
if grep -q "RBD images have no vmstate area" <<<"$out" && ! rbd snap ls rbd/s 2>/dev/null | grep -q vm-b; then
    ok "bh.savevm with VM state registered is refused (no vmstate area), no snapshot made"
else not_ok "bh.savevm with VM state registered is refused (no vmstate area), no snapshot made"; diag "$out"; fi
if rbd snap ls rbd/s 2>/dev/null | grep -q 'vm-a\.replaced'; then
    not_ok "the replaced vm-a is deleted, not left renamed"
else ok "the replaced vm-a is deleted, not left renamed"; fi

# The nightly rotation over a two-image group, three nights.
rbd create --size 8M rbd/vm1 >/dev/null 2>&1
rbd create --size 8M rbd/vm1-data >/dev/null 2>&1
for night in 1 2 3; do
    "$BLKHOST" run "$SOURCE_ROOT/examples/nightly-rotate.lua" --keep-last 2 \
        --lock-dir "$T" --now $((1700000000 + night * 86400)) \
        rbd:rbd/vm1 rbd:rbd/vm1-data >"$T/rotate$night.log" 2>&1 ||
        diag "$(cat "$T/rotate$night.log")"
done
names() { rbd snap ls "rbd/$1" --format json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(sorted(s["name"] for s in json.load(sys.stdin))))'; }
want="nightly-2023-11-16T22:13:20+0000 nightly-2023-11-17T22:13:20+0000"
if [ "$(names vm1)" = "$want" ] && [ "$(names vm1-data)" = "$want" ]; then
    ok "nightly-rotate.lua --keep-last 2 over rbd:rbd/vm1 rbd:rbd/vm1-data, 3 nights: both keep the 2 newest"
else not_ok "nightly-rotate.lua --keep-last 2 over rbd:rbd/vm1 rbd:rbd/vm1-data, 3 nights: both keep the 2 newest"; diag "vm1: $(names vm1); vm1-data: $(names vm1-data)"; diag "$(cat "$T"/rotate*.log)"; fi
if grep -q "delete nightly-2023-11-15T22:13:20+0000" "$T/rotate3.log"; then
    ok "... and night 3 printed the deletion of night 1 with its reason"
else not_ok "... and night 3 printed the deletion of night 1 with its reason"; diag "$(cat "$T/rotate3.log")"; fi
out=$("$BLKHOST" run "$SOURCE_ROOT/examples/nightly-rotate.lua" --check --warn 26h --crit 50h \
      --now $((1700000000 + 3 * 86400 + 3600)) rbd:rbd/vm1 rbd:rbd/vm1-data 2>&1)
if [ $? = 0 ] && grep -q "^OK" <<<"$out"; then
    ok "nightly-rotate.lua --check over the RBD group: OK an hour after the last run"
else not_ok "nightly-rotate.lua --check over the RBD group: OK an hour after the last run"; diag "$out"; fi

# A rotation while a blkhost server holds vm1: refused, nothing changed.
serve_rbd vm1 -f raw rbd:rbd/vm1 || exit 1
before=$(names vm1-data)
out=$("$BLKHOST" run "$SOURCE_ROOT/examples/nightly-rotate.lua" --keep-last 2 --lock-dir "$T" \
      --now $((1700000000 + 4 * 86400)) rbd:rbd/vm1 rbd:rbd/vm1-data 2>&1)
if [ $? != 0 ] && grep -q "rbd:rbd/vm1 is in use by client\.[0-9]* at 127\.0\.0\.1" <<<"$out" && [ "$(names vm1-data)" = "$before" ]; then
    ok "a rotation while blkhost serves rbd:rbd/vm1 is refused naming the holder's address, vm1-data unchanged"
else not_ok "a rotation while blkhost serves rbd:rbd/vm1 is refused naming the holder's address, vm1-data unchanged"; diag "$out"; fi
stop "$vm1_pid"

# The same while a blkhost server with a control socket serves vm1: the
# rotation runs there (the holder of the lock takes the snapshot).
"$BLKHOST" run "$SOURCE_ROOT/examples/export.lua" rbd:rbd/vm1 --socket "$T/ctl.sock" \
    --control "$T/vm1ctl.sock" >"$T/export.log" 2>&1 &
export_pid=$!
at_exit "kill -9 $export_pid 2>/dev/null"
wait_sock vm1ctl $export_pid || diag "$(cat "$T/export.log")"
out=$("$BLKHOST" run "$SOURCE_ROOT/examples/nightly-rotate.lua" --keep-last 2 --lock-dir "$T" \
      --control "$T/vm1ctl.sock" --now $((1700000000 + 5 * 86400)) rbd:rbd/vm1 2>&1)
if [ $? = 0 ] && names vm1 | grep -q "nightly-2023-11-19T22:13:20+0000"; then
    ok "nightly-rotate.lua --control: a served RBD image is rotated by its server"
else not_ok "nightly-rotate.lua --control: a served RBD image is rotated by its server"; diag "$out"; fi
kill "$export_pid" 2>/dev/null
