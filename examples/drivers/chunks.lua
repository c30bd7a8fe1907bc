-- SPDX-License-Identifier: BSD-3-Clause
-- chunks.lua: a disk whose blocks live in a local object store, one file
-- per 1 MiB chunk (DIR/00000000, DIR/00000001, ... by chunk number), as an
-- HTTP object store would hold them but without the HTTP.  A missing
-- chunk reads as zeros and is reported as a hole; a write creates the
-- chunk it lands in; trim of a whole chunk deletes its file.
--
--   bh.open(nil, {format="chunks", dir="/srv/disk1", size="1G"})
local CHUNK = 1024 * 1024

local function parse_size(s)
  local n, unit = tostring(s or ""):match("^(%d+)%s*([KMGTkmgt]?)")
  if not n then error({ errno = "EINVAL", msg = "size=N is required" }) end
  local mult = ({ [""] = 1, K = 1024, M = 1024 ^ 2, G = 1024 ^ 3,
                  T = 1024 ^ 4 })[unit:upper()]
  return math.tointeger(tonumber(n) * mult)
end

local function chunk_path(h, i) return string.format("%s/%08d", h.dir, i) end

local function chunk_read(h, i)
  local f = io.open(chunk_path(h, i), "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  if #s < CHUNK then s = s .. string.rep("\0", CHUNK - #s) end
  return s
end

local function chunk_write(h, i, s)
  -- Write a temporary file and rename it, so a crash never leaves half a
  -- chunk behind.
  local tmp = chunk_path(h, i) .. ".tmp"
  local f, why = io.open(tmp, "wb")
  if not f then error({ errno = "EIO", msg = why }) end
  local ok, err = f:write(s)
  f:close()
  if not ok then
    os.remove(tmp)
    error({ errno = "ENOSPC", msg = err })
  end
  assert(os.rename(tmp, chunk_path(h, i)))
end

-- Call fn(chunk number, offset in chunk, length, offset in the request).
local function each_chunk(count, offset, fn)
  local at = 0
  while at < count do
    local pos = offset + at
    local i, off = pos // CHUNK, pos % CHUNK
    local len = math.min(CHUNK - off, count - at)
    fn(i, off, len, at)
    at = at + len
  end
end

return {
  name = "chunks",
  description = "a disk of 1 MiB chunk files in dir= (size=N); missing = zeros",
  version = "1.0",
  open = function(opts)
    if not opts.dir then error({ errno = "EINVAL", msg = "dir= is required" }) end
    return { dir = opts.dir, size = parse_size(opts.size) }
  end,
  get_size = function(h) return h.size end,
  pread = function(h, count, offset)
    local bufs = {}
    each_chunk(count, offset, function(i, off, len)
      local s = chunk_read(h, i)
      bufs[#bufs + 1] = s and s:sub(off + 1, off + len) or string.rep("\0", len)
    end)
    return table.concat(bufs)
  end,
  pwrite = function(h, buf, offset)
    each_chunk(#buf, offset, function(i, off, len, at)
      local s = chunk_read(h, i) or string.rep("\0", CHUNK)
      chunk_write(h, i, s:sub(1, off) .. buf:sub(at + 1, at + len) ..
                        s:sub(off + len + 1))
    end)
  end,
  trim = function(h, count, offset)
    each_chunk(count, offset, function(i, off, len)
      if off == 0 and len == CHUNK then os.remove(chunk_path(h, i)) end
    end)
  end,
  extents = function(h, count, offset)
    local out = {}
    each_chunk(count, offset, function(i, off, len)
      local f = io.open(chunk_path(h, i), "rb")
      if f then f:close() end
      local hole = f == nil
      local last = out[#out]
      if last and last.hole == hole then
        last.length = last.length + len
      else
        out[#out + 1] = { length = len, hole = hole, zero = hole }
      end
    end)
    return out
  end,
}
