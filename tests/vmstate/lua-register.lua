-- SPDX-License-Identifier: BSD-3-Clause
-- bh.vmstate.register from Lua: keys it does not know (in the entry, a
-- field or a subsection) are refused by name, and subsections round-trip
-- through savevm/loadvm: saved when needed(state) says so, left out of the
-- stream when not, and such a stream still loads.
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local dir = t.tmpdir()

local function get() return {} end
local function set() end
local function reg(spec)
  spec.get, spec.set = spec.get or get, spec.set or set
  return function() bh.vmstate.register(spec) end
end

-- ---- unknown keys ----
t.error_like(reg { name = "k", fields = { { "n", "u32" } }, subsection = {} },
             "unknown key 'subsection'", "register: a misspelt 'subsection' key is refused, named")
t.error_like(reg { name = "k", fields = { { "n", "u32" } }, minversion = 1 },
             "unknown key 'minversion'", "register: an unknown key 'minversion' is refused, named")
t.error_like(reg { name = "k", fields = { { "n", "u32", verison = 2 } } },
             "field 'n': unknown key 'verison'", "register: an unknown key inside a field is refused, naming key and field")
t.error_like(reg { name = "k", fields = { { "n", "u32", "extra" } } },
             "unknown key '3'", "register: a third positional value in a field is refused")
t.error_like(reg { name = "k", fields = { { "n", "u32" } },
                   subsections = { { name = "k/x", fields = {}, need = function() end } } },
             "subsection 'k/x': unknown key 'need'", "register: an unknown key inside a subsection is refused, named")
t.error_like(reg { name = "k", fields = { { "n", "u32" } },
                   subsections = { { name = "k/x", fields = { { "y", "u8", sz = 1 } } } } },
             "field 'y': unknown key 'sz'", "register: an unknown key in a subsection's field is refused")
t.error_like(reg { name = "k", fields = { { "n", "u32" } },
                   subsections = { { name = "other/x", fields = {} } } },
             "must be named 'k/%.%.%.'", "register: a subsection not named after its entry is refused")
t.error_like(reg { name = "k", fields = { { "n", "u32" } },
                   subsections = { { name = "k/x", fields = {}, needed = true } } },
             "needed must be a function", "register: needed that is not a function is refused")
t.ok(bh.vmstate.unregister("k") == false, "none of the refused registrations was registered")

-- ---- subsections through savevm/loadvm ----
local path = dir .. "/s.qcow2"
bh.create(path, { format = "qcow2", size = "8M" })
local img <close> = bh.open(path)
local state, loaded = nil, nil
local function register_dev(extra)
  bh.vmstate.unregister("dev")
  bh.vmstate.register {
    name = "dev", version = 1,
    fields = { { "n", "u32" } },
    subsections = extra,
    get = function() return state end,
    set = function(s) loaded = s end,
  }
end
local EXTRA = { { name = "dev/extra", version = 2, min_version = 1,
                  fields = { { "x", "u32" }, { "tag", "string", version = 2 } },
                  needed = function(s) return s.x ~= nil end } }
register_dev(EXTRA)

state = { n = 1, x = 42, tag = "hi" }
bh.savevm("with")
state = { n = 2 }
bh.savevm("without")
-- The "dev" section's state bytes (the stream also ends with a JSON
-- description whose numbers differ in length, so compare the sections).
local sizes, vm_sizes = {}, {}
for _, s in ipairs(img:snapshots()) do
  vm_sizes[s.name] = s.vm_state_size
  local view <close> = img:snapshot_open(s.id)
  local scan = bh.vmstate.sections(view, { size = s.vm_state_size })
  for _, sec in ipairs(scan.sections) do
    if sec.idstr == "dev" then sizes[s.name] = sec.size end
  end
end
-- The subsection: u8 5, u8 9, "dev/extra", u32 version, u32 x, u32 length, "hi".
t.is(sizes.with - sizes.without, 1 + 1 + 9 + 4 + 4 + 4 + 2,
     "needed=false leaves the subsection out of the stream (exactly its bytes fewer)")

state = { n = 9 }
t.is(bh.loadvm("with"), true, "loadvm of a state with a subsection")
t.is(string.format("%s %s %s", loaded.n, loaded.x, loaded.tag), "1 42 hi",
     "the subsection's fields come back in the table set() receives")
loaded = nil
t.is(bh.loadvm("without"), true, "loadvm of the stream without the subsection")
t.is(string.format("%s %s %s", loaded.n, loaded.x, loaded.tag), "2 nil nil",
     "without the subsection its fields are absent, the others loaded")

-- A subsection the loading script does not know, or of a newer version.
register_dev(nil)
loaded = nil
t.error_like(function() bh.loadvm("with") end, "unknown subsection 'dev/extra'",
             "loadvm of a subsection the registration lacks is refused, named")
t.is(loaded, nil, "and set() was not called")
register_dev { { name = "dev/extra", version = 1, fields = { { "x", "u32" } } } }
t.error_like(function() bh.loadvm("with") end, "subsection 'dev/extra' has version 2; this script reads 1 to 1",
             "loadvm of a subsection newer than the script's is refused")
t.is(loaded, nil, "and set() was not called")

-- needed() failing: savevm fails and keeps the old snapshot.
register_dev { { name = "dev/extra", fields = { { "x", "u32" } },
                 needed = function() error("needed broke") end } }
local before = #img:snapshots()
t.error_like(function() bh.savevm("with") end, "needed%(%) failed.*needed broke",
             "savevm whose needed() raises fails, with its message")
t.is(#img:snapshots() .. " " .. tostring(vm_sizes.with == img:snapshots()[1].vm_state_size), before .. " true",
     "and the old snapshot 'with' is kept unchanged")
bh.vmstate.unregister("dev")
t.done()
