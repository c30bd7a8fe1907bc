#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Crash consistency: a script loops over snapshot create, apply, delete
# and savevm (state written to the vmstate area, then a snapshot), with
# writes in between, and is killed with SIGKILL at a random moment, again
# and again.  After every kill qemu-img check must report no
# corruption (exit 0, or 3 for leaked clusters), and the snapshot table
# must list either the set from before the interrupted operation or the
# set from after it.  SNAPSHOT_CRASH_ROUNDS (default 120) sets the count;
# SNAPSHOT_CRASH_OPTS and SNAPSHOT_CRASH_SIZE the image qemu-img creates
# (default cluster_size=4k, 4M; meson also runs a preallocation=metadata
# one whose commits copy many refcount blocks and L2 tables).  With
# SNAPSHOT_CRASH_REOPEN=1 (for lazy_refcounts=on images, which a kill
# leaves dirty, their refcounts lagging by design) every killed image is
# first opened read-write by blkhost, which rebuilds the refcounts, and
# only then checked.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
ROUNDS=${SNAPSHOT_CRASH_ROUNDS:-120}
OPTS=${SNAPSHOT_CRASH_OPTS:-cluster_size=4k}
SIZE=${SNAPSHOT_CRASH_SIZE:-4M}
REOPEN=${SNAPSHOT_CRASH_REOPEN:-}
plan $((4 + ${REOPEN:-0}))

I=$T/c.qcow2
qemu-img create -q -f qcow2 -o "$OPTS" "$I" "$SIZE"
qemu-io -c 'write -P 3 0 1M' "$I" >/dev/null
cat > "$T/loop.lua" <<'LUA'
local bh = require "blkhost"
local img = bh.open(arg[1])
local st = { n = 0, blob = string.rep("v", 3000) }
bh.vmstate.register{ name = "crash", version = 1, fields = { {"n", "u32"}, {"blob", "string"} },
  get = function() return st end, set = function(t) st = t end }
local log = io.open(arg[2], "a")
math.randomseed(tonumber(arg[3]))
local function names()
  local t = {}
  for _, s in ipairs(img:snapshots()) do t[#t + 1] = s.name end
  table.sort(t)
  return table.concat(t, " ")
end
local function with(list, add, drop)
  local t = {}
  for n in list:gmatch("%S+") do if n ~= drop then t[#t + 1] = n end end
  if add then t[#t + 1] = add end
  table.sort(t)
  return table.concat(t, " ")
end
local i = 0
while true do
  i = i + 1
  local cur = names()
  local sns = img:snapshots()
  local r = math.random(4)
  img:write(math.random(0, 1023) * 4096, string.rep(string.char(i % 256), 4096))
  if r == 1 or #sns == 0 then
    local n = "s" .. arg[3] .. "_" .. i
    log:write("B|", cur, "\nA|", with(cur, n), "\n"); log:flush()
    img:snapshot_create(n)
  elseif r == 4 then
    local n = "v" .. arg[3] .. "_" .. i
    st.n = i
    log:write("B|", cur, "\nA|", with(cur, n), "\n"); log:flush()
    bh.savevm(n)
  elseif r == 2 then
    local s = sns[math.random(#sns)]
    log:write("B|", cur, "\nA|", cur, "\n"); log:flush()
    img:snapshot_apply(s.id)
  else
    local s = sns[math.random(#sns)]
    log:write("B|", cur, "\nA|", with(cur, nil, s.name), "\n"); log:flush()
    img:snapshot_delete(s.id)
  end
end
LUA

corrupt=0 bad_table=0 leaks=0 kills=0 dirty=0 reopen_fail=0
for r in $(seq 1 "$ROUNDS"); do
    : > "$T/log"
    "$B" run "$T/loop.lua" "$I" "$T/log" "$r" >/dev/null 2>"$T/err" &
    pid=$!
    sleep "0.0$(( RANDOM % 90 + 10 ))"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid 2>/dev/null
    if [ -n "$REOPEN" ]; then
        [ "$(od -An -tx1 -j79 -N1 "$I" | tr -d ' ')" = 01 ] && dirty=$((dirty + 1))
        if ! out=$(blua 'bh.open(arg[1]):close()' "$I"); then
            reopen_fail=$((reopen_fail + 1)); diag "round $r: read-write open failed: $out"
        fi
    fi
    out=$(qemu-img check "$I" 2>&1); rc=$?
    if [ $rc -eq 3 ]; then
        leaks=$((leaks + 1))
        qemu-img check -q -r leaks "$I" >/dev/null 2>&1
    elif [ $rc -ne 0 ]; then
        corrupt=$((corrupt + 1)); diag "round $r: qemu-img check exit $rc"; diag "$(echo "$out" | grep -v "^Leaked" | head -6)"
        qemu-img check -q -r all "$I" >/dev/null 2>&1
    fi
    have=$(qemu-img snapshot -l "$I" | awk 'NR>2 {print $2}' | sort | tr '\n' ' ' | sed 's/ $//')
    b=$(grep '^B|' "$T/log" | tail -1 | cut -d'|' -f2)
    a=$(grep '^A|' "$T/log" | tail -1 | cut -d'|' -f2)
    if [ -s "$T/log" ] && [ "$have" != "$b" ] && [ "$have" != "$a" ]; then
        bad_table=$((bad_table + 1)); diag "round $r: table '$have', expected '$b' or '$a'"
    fi
    if [ -s "$T/err" ] && ! grep -q Killed "$T/err"; then diag "round $r: $(head -3 "$T/err")"; fi
done
diag "$kills kills, $leaks left leaked clusters (repaired with -r leaks)"
[ "$kills" -ge 100 ] || [ "$ROUNDS" -lt 100 ] && ok "killed $kills times during create/apply/delete/savevm loops ($OPTS, $SIZE)" || not_ok "only $kills kills"
[ $corrupt -eq 0 ] && ok "qemu-img check never reported corruption ($ROUNDS rounds, $OPTS)" || not_ok "qemu-img check reported corruption $corrupt times"
[ $bad_table -eq 0 ] && ok "the snapshot table always listed the old set or the new one" || not_ok "table inconsistent $bad_table times"
qclean "final image clean after repairs of leaks" "$I"
if [ -n "$REOPEN" ]; then
    [ $reopen_fail -eq 0 ] && ok "a read-write open repaired every killed image ($dirty of them dirty)" || not_ok "read-write open failed $reopen_fail times"
fi
