-- SPDX-License-Identifier: BSD-3-Clause
-- bh.loadvm, bh.delvm and bh.savevm over several images: a name picks a
-- snapshot by name only on every image (never another's id), loadvm
-- refuses a name that does not pick exactly one snapshot everywhere and
-- then changes nothing, savevm keeps the old snapshot when anything fails
-- before the new one exists everywhere, and loadvm commits the state only
-- after every disk was reverted.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local dir = t.tmpdir()
local n = 0

-- A fresh qcow2 image, open: path, node.
local function img(tag)
  n = n + 1
  local p = string.format("%s/%s%d.qcow2", dir, tag, n)
  bh.create(p, { format = "qcow2", size = "8M" })
  return p, bh.open(p)
end
local function byte(node) return node:read(0, 1) end
-- "id:name id:name ..." of a node's snapshots.
local function list(node)
  local out = {}
  for _, s in ipairs(node:snapshots()) do out[#out + 1] = s.id .. ":" .. s.name end
  return table.concat(out, " ")
end
local function snap(node, data, name)
  node:write(0, data)
  return node:snapshot_create(name).id
end

-- The issue's case: on a, "1" is the id of "mon" and the name of "tue".
do
  local _, a <close> = img("a")
  local _, b <close> = img("b")
  snap(a, "M", "mon"); snap(a, "T", "1"); snap(b, "T", "1")
  a:write(0, "Z"); b:write(0, "Z")
  t.lives(function() bh.loadvm("1") end, "loadvm '1' with '1' an id on one image and a name on both")
  t.is(byte(a) .. byte(b), "TT", "loadvm '1' reverts both images to the snapshot named '1', not to id 1 ('mon')")
end

do
  local _, a <close> = img("a")
  local _, b <close> = img("b")
  snap(a, "M", "mon"); snap(b, "T", "1")
  a:write(0, "Z"); b:write(0, "Z")
  t.error_like(function() bh.loadvm("1") end, "a%d+%.qcow2' has no snapshot named '1' %(nothing was changed%)",
               "loadvm '1' where one image has only an id 1 is refused, naming that image")
  t.is(byte(a) .. byte(b), "ZZ", "after that refusal neither image was reverted")
end

do
  local _, a <close> = img("a")
  local _, b <close> = img("b")
  snap(a, "1", "dup"); snap(a, "2", "dup"); snap(b, "3", "dup")
  a:write(0, "Z"); b:write(0, "Z")
  t.error_like(function() bh.loadvm("dup") end, "more than one snapshot named 'dup' %(ids 1 and 2%)",
               "loadvm of a name two snapshots of one image have is refused as ambiguous, with their ids")
  t.is(byte(a) .. byte(b), "ZZ", "after the ambiguous refusal neither image was reverted")
  t.lives(function() bh.delvm("dup") end, "delvm of that name")
  t.is(list(a) .. "|" .. list(b), "|", "delvm deletes every snapshot of the name on every image")
end

do
  local _, a <close> = img("a")
  local _, b <close> = img("b")
  snap(a, "M", "mon"); snap(a, "T", "1"); snap(b, "T", "1"); snap(b, "W", "wed")
  t.lives(function() bh.delvm("1") end, "delvm '1' with '1' an id on both images and a name on both")
  t.is(list(a) .. "|" .. list(b), "1:mon|2:wed", "delvm '1' deletes the snapshots named '1', never id 1")
  t.error_like(function() bh.delvm("1") end, "no open image has a snapshot named '1'",
               "delvm '1' again: '1' is now only an id (of 'mon'), refused")
  t.is(list(a) .. "|" .. list(b), "1:mon|2:wed", "and nothing was deleted")
end

-- savevm with state: a failing getter leaves the old snapshot, a good one
-- replaces it (new ids, one snapshot of the name per image).
do
  local _, a <close> = img("a")
  local _, b <close> = img("b")
  local v, fail, got = 1, false, nil
  bh.vmstate.register { name = "names-test", fields = { { "v", "u32" } },
    get = function() if fail then error("getter broke") end return { v = v } end,
    set = function(s) got = s.v end }
  bh.savevm("s")
  local a_old, b_old = list(a), list(b)
  fail, v = true, 2
  t.error_like(function() bh.savevm("s") end, "collecting the state %(nothing was changed%).*getter broke",
               "savevm with a failing state getter fails, saying nothing was changed")
  t.is(list(a) .. "|" .. list(b), a_old .. "|" .. b_old, "the old snapshot 's' is still there on both images, same ids")
  t.lives(function() bh.loadvm("s") end, "loadvm 's' after the failed savevm")
  t.is(got, 1, "it loads the old state")
  fail, v, got = false, 3, nil
  a:write(0, "N"); b:write(0, "N")
  bh.savevm("s")
  t.is(list(a) .. "|" .. list(b), "2:s|2:s", "a good savevm replaces 's': one per image, with a new id")
  a:write(0, "Z"); b:write(0, "Z")
  bh.loadvm("s")
  t.is(tostring(got) .. byte(a) .. byte(b), "3NN", "loadvm of the replaced snapshot has the new state and disks")
  bh.vmstate.unregister("names-test")
end

-- What a crash between savevm's create and delete steps leaves (two
-- snapshots of one name): savevm of that name again replaces both.
do
  local _, a <close> = img("a")
  snap(a, "1", "dup"); snap(a, "2", "dup"); snap(a, "K", "keep")
  a:write(0, "N")
  bh.savevm("dup", { nodes = { a } })
  t.is(list(a), "3:keep 4:dup", "savevm over a name two snapshots have leaves one new snapshot of it (others kept)")
  a:write(0, "Z")
  bh.loadvm("dup")
  t.is(byte(a), "N", "and loadvm of the name now works and reverts to it")
end

-- savevm failing on the second image (refcount_bits=1 cannot snapshot)
-- after the first one's new snapshot was made: that one is taken back.
do
  local _, a <close> = img("a")
  local r1 = dir .. "/r1.qcow2"
  t.sh("qemu-img create -q -f qcow2 -o refcount_bits=1 " .. t.shq(r1) .. " 8M")
  local r <close> = bh.open(r1)
  r:write(0, string.rep("x", 65536))   -- a snapshot would share this cluster
  snap(a, "O", "s")
  t.error_like(function() bh.savevm("s", { nodes = { a, r } }) end, "r1%.qcow2.*old snapshots are kept",
               "savevm that cannot snapshot the second image fails, naming it")
  t.is(list(a) .. "|" .. list(r), "1:s|", "the first image keeps its old 's' (same id) and no new one")
end

-- loadvm reverting the second image fails: the state is not committed.
do
  local pa, a = img("a")
  local pb, b = img("b")
  local v, got = 7, nil
  bh.vmstate.register { name = "names-test", fields = { { "v", "u32" } },
    get = function() return { v = v } end, set = function(s) got = s.v end }
  bh.savevm("p")
  a:close(); b:close()
  -- Make b's snapshot unusable: a disk size of 2^62 in its table entry
  -- (header: snapshots_offset at 64; entry: disk_size at 48).
  local f = assert(io.open(pb, "r+b"))
  f:seek("set", 64)
  local sn_off = string.unpack(">I8", f:read(8))
  f:seek("set", sn_off + 48)
  f:write(string.pack(">I8", 1 << 62))
  f:close()
  local a2 <close> = bh.open(pa)
  local b2 <close> = bh.open(pb)
  t.error_like(function() bh.loadvm("p") end, "reverting '.*b%d+%.qcow2'.*the state was not loaded",
               "loadvm whose second image cannot revert fails, saying the state was not loaded")
  t.is(got, nil, "the state setter was not called")
  bh.vmstate.unregister("names-test")
end
t.done()
