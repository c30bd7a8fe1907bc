-- SPDX-License-Identifier: BSD-3-Clause
-- The checks of fuzz-control.c, run once per input in its Lua state:
-- called with the C function that makes the export's node, returns
-- run(bytes), which dispatches every line and raises on a broken
-- promise of docs/control.md.
local new_node = ...
local bh = require "blkhost"
local control = require "blkhost.control"
local dkjson = require "dkjson"

-- One export, no server: what the commands see of a served image.
local export = { name = "disk", description = "fuzz", readonly = false,
                 clients = {} }
local dirty = true
bh.exports = function()
  return { export }
end

local classes = { GenericError = true, CommandNotFound = true, NotFound = true }

-- JSON equality: a and b as dkjson decodes them with null as a value.
-- A number beyond a double's range reads as an infinity, which JSON
-- cannot write: blkhost.json writes null for it.
local function same(a, b)
  if type(a) == "number" and (a == math.huge or a == -math.huge) then
    return b == dkjson.null or b == nil
  end
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then
    return a == b or (type(a) == "number" and math.abs(a - b) <= 1e-9 * math.abs(a))
  end
  local ma, mb = getmetatable(a), getmetatable(b)
  local kind = ma and ma.__jsontype
  if kind ~= (mb and mb.__jsontype) then return false end
  -- dkjson reads {"x"} (not JSON) as an object with the key 1, which
  -- comes back as "1": object keys compare as strings.
  local function key(t, k)
    if kind ~= "object" then return t[k] end
    local v = t[k]
    if v == nil then v = t[tostring(k)] end
    if v == nil and tonumber(k) then v = t[tonumber(k)] end
    return v
  end
  local n = 0
  for k, v in pairs(a) do
    n = n + 1
    if not same(v, key(b, k)) then return false end
  end
  for _ in pairs(b) do n = n - 1 end
  return n == 0
end

-- Whether v is what valid JSON reads as: arrays keyed 1..n, objects by
-- strings.  dkjson also reads some invalid JSON ({"x"}, "k": v inside an
-- array) into other tables; their ids come back as dkjson read them,
-- which is not checked.
local function plain(v)
  if type(v) ~= "table" or v == dkjson.null then return true end
  local mt = getmetatable(v)
  local array = mt and mt.__jsontype == "array"
  local n = 0
  for k, x in pairs(v) do
    n = n + 1
    if array and math.type(k) ~= "integer" then return false end
    if not array and type(k) ~= "string" then return false end
    if not plain(x) then return false end
  end
  return not array or n == #v
end

local function show(s)
  return (#s > 200 and s:sub(1, 200) .. "..." or s):gsub("[%c\128-\255]", function(c)
    return ("\\x%02x"):format(c:byte())
  end)
end

-- One request line: its answer must exist and keep the protocol.
local function one(line)
  local ok, text, later = pcall(control.handle, line, true)
  if not ok then
    error("handle raised (the client gets no answer): " .. tostring(text) ..
          "\nrequest: " .. show(line), 0)
  end
  if later then
    error("a later answer with no clients and no server\nrequest: " .. show(line), 0)
  end
  if type(text) ~= "string" then
    error("no answer line\nrequest: " .. show(line), 0)
  end
  if text:find("\n", 1, true) then
    error("an answer spans lines: " .. show(text) .. "\nrequest: " .. show(line), 0)
  end
  local ans, _, err = dkjson.decode(text, 1, dkjson.null)
  if err or type(ans) ~= "table" or ans == dkjson.null then
    error("the answer is not a JSON object: " .. show(text) .. "\nrequest: " .. show(line), 0)
  end
  -- (null counts as absent, as QMP has no null return)
  local ret, aerr = ans["return"], ans.error
  if ret == dkjson.null then ret = nil end
  if aerr == dkjson.null then aerr = nil end
  if (ret == nil) == (aerr == nil) then
    error("the answer has neither or both of return and error: " .. show(text), 0)
  end
  if aerr and (type(aerr) ~= "table" or not classes[aerr.class] or
               type(aerr.desc) ~= "string") then
    error("a bad error object: " .. show(text) .. "\nrequest: " .. show(line), 0)
  end
  -- The id comes back as sent, when the request was an object.
  local req = dkjson.decode(line, 1, dkjson.null)
  if type(req) == "table" and req ~= dkjson.null and plain(req.id) and
     not same(req.id, ans.id) then
    error("the id did not come back as sent: " .. show(text) .. "\nrequest: " .. show(line), 0)
  end
  if ret ~= nil and type(req) == "table" and
     not tostring(req.execute):match("^query%-") then
    dirty = true
  end
end

return function(data)
  if dirty then
    if export.node then export.node:close() end
    export.node = new_node()
    dirty = false
  end
  local start = 1
  while start <= #data do
    local nl = data:find("\n", start, true) or #data + 1
    local line = data:sub(start, nl - 1)
    start = nl + 1
    if line:sub(-1) == "\r" then line = line:sub(1, -2) end
    if not line:match("^%s*$") then one(line) end
  end
end
