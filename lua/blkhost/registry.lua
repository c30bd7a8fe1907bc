-- SPDX-License-Identifier: BSD-3-Clause
-- Where the outside tools find a running server's control socket: one
-- small JSON file per server, PID.json, in $XDG_RUNTIME_DIR/blkhost/
-- (or /run/blkhost/ when XDG_RUNTIME_DIR is unset), naming its pid, its
-- control socket and the images it served when it last wrote the file.
--
--   local registry = require "blkhost.registry"
--   local entry = registry.add(socket_path, images_fn)  -- the server side
--   entry:refresh(); entry:remove()
--   registry.find{pid = 1234}        -- the client side: {pid=, socket=,
--   registry.find{image = "/x.qcow2"} --   images=, file=} or nil
--
-- The image lock says which process holds an image (its pid is in the
-- lock error); the file with that pid gives the socket.  Entries whose
-- process is gone are stale: find skips them and removes them when it
-- may.  Files are written to a temporary name and renamed, so a reader
-- never sees half of one.

local bh = require "blkhost"
local json = require "blkhost.json"

local registry = {}

local function env(k)
  local v = os.getenv(k)
  return v ~= "" and v or nil
end

-- The directories searched, in order; the first is where entries go.
function registry.dirs()
  local dirs = {}
  local xdg = env("XDG_RUNTIME_DIR")
  if xdg then dirs[#dirs + 1] = xdg .. "/blkhost" end
  dirs[#dirs + 1] = "/run/blkhost"
  return dirs
end

local function alive(pid)
  local f = io.open("/proc/" .. math.tointeger(pid) .. "/stat", "r")
  if f then f:close() end
  return f ~= nil
end

local function realpath(p)
  local ok, r = pcall(bh.process.realpath, p)
  return ok and r or p
end

local Entry = {}
Entry.__index = Entry

function Entry:refresh()
  local images = {}
  for _, p in ipairs(self.images_fn and self.images_fn() or {}) do
    if p and p ~= "" then images[#images + 1] = realpath(p) end
  end
  local text = json.encode(json.object({ pid = self.pid, socket = self.socket,
                                         images = json.array(images) },
                                       { "pid", "socket", "images" }))
  local tmp = self.file .. ".tmp"
  local f = io.open(tmp, "w")
  if not f then return false end
  f:write(text, "\n")
  f:close()
  return os.rename(tmp, self.file) ~= nil
end

function Entry:remove()
  os.remove(self.file)
end

-- Register the control socket at socket_path of this process; images_fn()
-- lists the images served now.  Returns the entry, or nil and why (no
-- directory could be made: the server still runs, only unregistered).
function registry.add(socket_path, images_fn)
  local dir = registry.dirs()[1]
  os.execute("mkdir -p -m 0700 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
  local pid = bh.process.pid()
  local e = setmetatable({ pid = pid, socket = realpath(socket_path),
                           images_fn = images_fn,
                           file = dir .. "/" .. pid .. ".json" }, Entry)
  if not e:refresh() then
    io.stderr:write("blkhost: cannot register the control socket in " .. dir
                    .. "; outside tools will need --control " .. socket_path .. "\n")
    return setmetatable({ refresh = function() end, remove = function() end }, Entry)
  end
  return e
end

local function read_entry(file)
  local f = io.open(file, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, t = pcall(require("dkjson").decode, text)
  if not ok or type(t) ~= "table" or not math.tointeger(t.pid) or type(t.socket) ~= "string" then
    return nil
  end
  t.file = file
  t.images = type(t.images) == "table" and t.images or {}
  return t
end

-- The live entry for a pid, or for an image path (by its real path).
function registry.find(what)
  local want_image = what.image and realpath(what.image)
  for _, dir in ipairs(registry.dirs()) do
    local files = {}
    if what.pid then
      files[1] = dir .. "/" .. math.tointeger(what.pid) .. ".json"
    else
      local p = io.popen("ls -1 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
      for name in p:lines() do
        if name:match("^%d+%.json$") then files[#files + 1] = dir .. "/" .. name end
      end
      p:close()
    end
    for _, file in ipairs(files) do
      local e = read_entry(file)
      if e and not alive(e.pid) then
        os.remove(file)   -- stale: its server is gone
      elseif e then
        if what.pid then return e end
        for _, img in ipairs(e.images) do
          if img == want_image then return e end
        end
      end
    end
  end
  return nil
end

return registry
