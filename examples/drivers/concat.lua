-- SPDX-License-Identifier: BSD-3-Clause
-- concat.lua: a disk made of several files joined end to end, as a RAID
-- "linear" or nbdkit's split plugin: files="a.img,b.img,c.img".  Reads
-- and writes that cross a boundary are split between the files; the
-- disk's size is the sum of the files' sizes.
--
--   BLKHOST_PLUGIN_PATH=examples/drivers blkhost run examples/export.lua ...
--   bh.open(nil, {format="concat", files="a,b,c"})
local function split(s)
  local out = {}
  for f in tostring(s or ""):gmatch("[^,]+") do out[#out + 1] = f end
  return out
end

-- Call fn(part, offset in part, length, offset in the request) for each
-- file [offset, offset+count) touches.
local function each_part(h, count, offset, fn)
  local done = 0
  for _, p in ipairs(h.parts) do
    if offset < p.start + p.size and offset + count > p.start then
      local from = math.max(offset, p.start)
      local to = math.min(offset + count, p.start + p.size)
      fn(p, from - p.start, to - from, from - offset)
      done = done + (to - from)
    end
  end
  return done
end

return {
  name = "concat",
  description = "several files joined end to end (files=a,b,c)",
  version = "1.0",
  open = function(opts)
    local names = split(opts.files)
    if #names == 0 then
      error({ errno = "EINVAL", msg = "files=a,b,... is required" })
    end
    local h = { parts = {}, size = 0 }
    local mode = opts.readonly and "rb" or "r+b"
    for _, name in ipairs(names) do
      local f, why = io.open(name, mode)
      if not f then error({ errno = "ENOENT", msg = why }) end
      local size = f:seek("end")
      h.parts[#h.parts + 1] = { file = f, start = h.size, size = size }
      h.size = h.size + size
    end
    return h
  end,
  close = function(h)
    for _, p in ipairs(h.parts) do p.file:close() end
  end,
  get_size = function(h) return h.size end,
  pread = function(h, count, offset)
    local bufs = {}
    each_part(h, count, offset, function(p, off, len)
      p.file:seek("set", off)
      local s = p.file:read(len)
      if not s or #s ~= len then error("short read from a part") end
      bufs[#bufs + 1] = s
    end)
    return table.concat(bufs)
  end,
  pwrite = function(h, buf, offset, fua)
    each_part(h, #buf, offset, function(p, off, len, at)
      p.file:seek("set", off)
      assert(p.file:write(buf:sub(at + 1, at + len)))
    end)
    if fua then
      for _, p in ipairs(h.parts) do p.file:flush() end
    end
  end,
  flush = function(h)
    for _, p in ipairs(h.parts) do p.file:flush() end
  end,
  can_fua = true,
}
