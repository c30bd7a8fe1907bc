-- SPDX-License-Identifier: BSD-3-Clause
-- bh.vmstate.sections and bh.vmstate.read from Lua: a stream given as a
-- string, a snapshot's vmstate area through a snapshot view, and the
-- errors (not a stream, a node without a size, a cut stream).
package.path = os.getenv("SOURCE_ROOT") .. "/tests/lua/?.lua;" .. package.path
local t = require "tap"
local bh = require "blkhost"
local dir = t.tmpdir()

local function be32(n) return string.pack(">I4", n) end
-- header, FULL "dev" id 0 instance 2 version 5 with 3 bytes, footer, EOF
local stream = "QEVM" .. be32(3) .. "\4" .. be32(0) .. "\3dev" .. be32(2) .. be32(5)
               .. "\1\2\3" .. "\126" .. be32(0) .. "\0"
local sc = bh.vmstate.sections(stream)
t.is(string.format("%s %d %s/%d v%d %d bytes at %d, eof %d", tostring(sc.complete), #sc.sections,
                   sc.sections[1].idstr, sc.sections[1].instance_id, sc.sections[1].version_id,
                   sc.sections[1].size, sc.sections[1].offset, sc.eof_offset),
     "true 1 dev/2 v5 3 bytes at 8, eof 33", "sections(string): one FULL section, its fields and EOF")
t.is(sc.vmdesc, nil, "sections(string): no trailer, no vmdesc")

sc = bh.vmstate.sections(stream:sub(1, 30))
t.is(string.format("%s %d", tostring(sc.complete), #sc.sections), "false 0",
     "sections(cut string): not complete, nothing listed")
t.like(sc.error, "section 'dev' instance 2 %(id 0%) at offset 8: no section footer",
       "sections(cut string): the error names the section")
t.error_like(function() bh.vmstate.sections("QEVN" .. be32(3)) end, "not a savevm stream: magic is 0x5145564e",
             "sections: a string that is not a savevm stream raises")

-- a snapshot with script state, read back through a view
local path = dir .. "/s.qcow2"
bh.create(path, { format = "qcow2", size = "4M" })
local img <close> = bh.open(path)
bh.vmstate.register { name = "lua:n", version = 3, instance = 1, fields = { { "n", "u64" } },
                      get = function() return { n = 42 } end, set = function() end }
bh.savevm("one")
bh.vmstate.unregister("lua:n", 1)
local sn = img:snapshots()[1]
local view <close> = img:snapshot_open(sn.id)
t.error_like(function() bh.vmstate.sections(view) end, "a node needs {size = N}",
             "sections(node) without a size is refused")
sc = bh.vmstate.sections(view, { size = sn.vm_state_size })
t.is(string.format("%s %s/%d v%d %d", tostring(sc.complete), sc.sections[1].idstr,
                   sc.sections[1].instance_id, sc.sections[1].version_id, sc.sections[1].size),
     "true lua:n/1 v3 8", "sections(view): the snapshot's section")
t.like(sc.vmdesc or "", '^{"page_size": 4096, "devices": %[{"name": "lua:n", "instance_id": 1, '
       .. '"vmsd_name": "lua:n", "version": 3, "fields": %[{"name": "n", "type": "uint64", "size": 8}%]}%]}$',
       "sections(view): blkhost's JSON trailer describes the script state's fields with QEMU's types")
local raw = bh.vmstate.read(view, 0, sn.vm_state_size)
t.is(#raw == sn.vm_state_size and raw:sub(1, 8) == "QEVM" .. be32(3)
     and raw:sub(sc.vmdesc_offset + 6) == sc.vmdesc, true,
     "read(view): the whole area, the stream with its trailer at vmdesc_offset")
t.is(bh.vmstate.sections(raw).eof_offset, sc.eof_offset, "sections(read bytes) agrees with sections(view)")
t.done()
