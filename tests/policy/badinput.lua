-- SPDX-License-Identifier: BSD-3-Clause
-- Bad input to the retention policy: each is refused with a message that
-- names what was wrong, and the qcow2 image the rotation was pointed at
-- is left exactly as it was (same snapshots, same bytes).
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local policy = require "blkhost.policy"

local dir = t.tmpdir()
local img = dir .. "/disk.qcow2"
local out, code = t.sh("qemu-img create -q -f qcow2 " .. t.shq(img) .. " 16M && "
                       .. "qemu-img snapshot -c hand-made " .. t.shq(img))
assert(code == 0, out)
local function digest()
  return (t.sh("md5sum < " .. t.shq(img)))
end
local before = digest()

local GOOD = { prefix = "nightly-", keep = { daily = 7 } }
local function with(changes)
  local s = { prefix = GOOD.prefix, keep = { daily = 7 } }
  for k, v in pairs(changes) do
    if v == "nil" then s[k] = nil else s[k] = v end
  end
  return s
end

-- rotate(spec) must fail matching pattern and leave the image alone.
local function refused(desc, spec, pattern, images)
  if images == nil then images = { img } end
  if images == "none" then images = {} end
  local ok, err = pcall(policy.rotate, images, spec)
  local msg = tostring(err)
  local good = not ok and msg:find(pattern) ~= nil and digest() == before
  t.ok(good, desc)
  if not good then
    t.diag(ok and "rotation succeeded" or ("message: " .. msg))
    if digest() ~= before then t.diag("the image changed") end
  end
end

refused("policy: empty keep {} refused as an empty policy",
        with { keep = {} }, "^empty policy: keep needs at least one of")
refused("policy: no keep at all refused as an empty policy",
        with { keep = "nil" }, "^empty policy")
refused("policy: keep with only zero counts refused as an empty policy",
        with { keep = { daily = 0, weekly = 0 } }, "^empty policy")
refused("policy: negative count keep.daily=-1 refused",
        with { keep = { daily = -1 } }, "^keep%.daily is %-1: a count must be a whole number, 0 or more$")
refused("policy: fractional count keep.weekly=2.5 refused",
        with { keep = { weekly = 2.5 } }, "^keep%.weekly is 2%.5: a count must be a whole number")
refused("policy: unknown keep rule keep.dayly refused by name",
        with { keep = { dayly = 3 } }, "^unknown keep rule 'dayly' %(known: last, hourly")
refused("policy: keep that is not a table refused",
        with { keep = 7 }, "^keep must be a table")
refused("policy: unknown field 'kep' refused by name",
        with { kep = { daily = 1 } }, "^unknown policy field 'kep'")
refused("policy: unparseable within '3 weeks-ish' refused",
        with { within = "3 weeks-ish" }, "^within '3 weeks%-ish' is not a duration %(expected a whole number and a unit s, m, h, d or w")
refused("policy: within with an unknown unit '2y' refused",
        with { within = "2y" }, "^within '2y' is not a duration")
refused("policy: empty within '' refused",
        with { within = "" }, "^within '' is not a duration")
refused("policy: negative within -5 refused",
        with { within = -5 }, "^within '%-5' is not a duration")
refused("policy: unparseable min_age '1 hour' refused",
        with { min_age = "1 hour" }, "^min_age '1 hour' is not a duration")
refused("policy: unknown timezone 'Mars/Olympus' refused",
        with { timezone = "Mars/Olympus" }, "^unknown time zone 'Mars/Olympus': no such file in .*expected \"UTC\", \"local\"")
refused("policy: timezone '../../etc/passwd' refused without reading it",
        with { timezone = "../../etc/passwd" }, "^unknown time zone '%.%./%.%./etc/passwd' %(expected")
refused("policy: timezone that is a file but not TZif ('zone.tab') refused",
        with { timezone = "zone.tab" }, "^unknown time zone 'zone%.tab'")
refused("policy: empty prefix refused",
        with { prefix = "" }, "^the prefix must be a non%-empty string")
refused("policy: missing prefix refused",
        with { prefix = "nil" }, "^the prefix must be a non%-empty string")
refused("policy: prefix 'vm/nightly-' containing '/' refused",
        with { prefix = "vm/nightly-" }, "^the prefix 'vm/nightly%-' must not contain '/'$")
refused("policy: prefix with a newline refused",
        with { prefix = "night\nly-" }, "^the prefix must not contain control characters")
refused("policy: pin that is a number refused",
        with { pin = 5 }, "^pin must be a glob")
refused("policy: empty pin pattern refused",
        with { pin = "" }, "^an empty pin pattern matches nothing")
refused("policy: state that is not a table refused",
        with { state = "x" }, "^state must be a table")
refused("policy: now that is not a whole number refused",
        with { now = 1.5 }, "^now must be a whole number")
refused("policy: a spec that is not a table refused", "nightly-", "^the policy must be a table")

-- Images.
t.sh("truncate -s 1M " .. t.shq(dir .. "/disk.raw"))
refused("image: raw image refused: raw cannot hold internal snapshots",
        GOOD, "disk%.raw is a raw image: raw cannot hold internal snapshots %(qcow2 can.*nothing was changed$",
        { img, dir .. "/disk.raw" })
out = t.sh("md5sum < " .. t.shq(dir .. "/disk.raw"))
t.is(out, (t.sh("head -c 1M /dev/zero | md5sum")), "image: the refused raw image is unchanged")
refused("image: a missing file refused, naming it",
        GOOD, "cannot open .*/nope%.qcow2: .*nothing was changed$", { img, dir .. "/nope.qcow2" })
refused("image: an empty image list refused", GOOD, "^no images given", "none")
-- nothing at all: rotate(nil)
do
  local ok, err = pcall(policy.rotate, nil, GOOD)
  t.ok(not ok and tostring(err):find("^no images given"), "image: nil instead of a list refused")
end
refused("image: the same image twice refused",
        GOOD, "is given twice", { img, dir .. "/./disk.qcow2" })
refused("image: an image that is a number refused",
        GOOD, "^images must be paths or nodes, not number", { 42 })
do
  local node = bh.open(img, { readonly = true })
  refused("image: a node opened read-only refused for a real rotation",
          GOOD, "is open read%-only; a rotation needs it writable", { node })
  node:close()
end
do
  local raw = bh.open("", { format = "memory", size = "1M" })
  refused("image: a memory node refused: it cannot hold internal snapshots",
          GOOD, "is a memory image: memory cannot hold internal snapshots", { raw })
  raw:close()
end

-- Monitoring limits.
do
  local c, msg = policy.check({ img }, GOOD, { warn = "2d", crit = "1d" })
  t.ok(c == 3 and msg:find("^UNKNOWN %- crit %(1d%) is shorter than warn %(2d%)"),
       "check: crit shorter than warn is UNKNOWN")
  c, msg = policy.check({ img }, GOOD, { warn = "soon" })
  t.ok(c == 3 and msg:find("^UNKNOWN %- warn 'soon' is not a duration"), "check: warn 'soon' is UNKNOWN")
  c, msg = policy.check({ dir .. "/disk.raw" }, GOOD)
  t.ok(c == 3 and msg:find("^UNKNOWN %- .*raw cannot hold internal snapshots"),
       "check: a raw image is UNKNOWN")
  c, msg = policy.check({ img }, with { prefix = "a/b" })
  t.ok(c == 3 and msg:find("must not contain '/'"), "check: a prefix with '/' is UNKNOWN")
end

-- bh.process.lock_file, which the rotation's locks are made of.
do
  local path = dir .. "/x.lock"
  local lk = bh.process.lock_file(path)
  local again, msg, pid = bh.process.lock_file(path)
  t.ok(again == nil and pid == bh.process.pid()
       and msg == "'" .. path .. "' is locked by process " .. pid,
       "lock_file: a second lock of a held file is refused, naming the holder's pid")
  lk:close()
  local third = bh.process.lock_file(path)
  t.ok(third ~= nil, "lock_file: once closed, the file can be locked again")
  third:close()
  t.error_like(function() bh.process.lock_file(dir .. "/no/such/dir/x.lock") end,
               "cannot open lock file '.*/no/such/dir/x%.lock': No such file",
               "lock_file: a lock file in a missing directory raises, naming it")
end

t.is(digest(), before, "the qcow2 image is byte for byte what it was")
out = t.sh("qemu-img snapshot -l " .. t.shq(img))
t.ok(out:find("hand%-made") and not out:find("nightly"), "its only snapshot is still the hand-made one")

t.done()
