-- SPDX-License-Identifier: BSD-3-Clause
-- A small JSON encoder for the built-in commands' --output=json.
--
--   local json = require "blkhost.json"
--   json.encode(value [, {indent = 4}])
--
-- Tables with keys 1..n are arrays, other tables objects.  Object keys
-- come out sorted, unless the table was made with json.object(t, keys),
-- which fixes their order (e.g. the order the core reported them in).
-- json.array(t) marks a table as an array even when it is empty.
-- json.null is null; as dkjson.decode's null value, with dkjson's
-- __jsontype marks honoured, a decoded value encodes back as it was read
-- ([] stays an array, nulls inside arrays keep their places).
-- Integers print exactly; NaN and infinities become null.
-- Hand-written on purpose: qemu-img's JSON must come out byte for byte
-- (its key order, 4-space indent, ": "), which no library encoder
-- promises.  Reading JSON is dkjson's job (lua-dkjson), never code here.

local json = {}

local ORDER = setmetatable({}, { __mode = "k" }) -- table -> key list
local ARRAY = setmetatable({}, { __mode = "k" }) -- table -> true

function json.object(t, keys)
  ORDER[t] = keys
  return t
end

function json.array(t)
  ARRAY[t] = true
  return t
end

json.null = setmetatable({}, { __tostring = function() return "null" end })

-- dkjson marks what it decodes: {__jsontype = "array"} or "object".
local function marked(t)
  local mt = getmetatable(t)
  return type(mt) == "table" and rawget(mt, "__jsontype") or nil
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  if ARRAY[t] or marked(t) == "array" then return true end
  if marked(t) == "object" then return false end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function object_keys(t)
  local keys = {}
  if ORDER[t] then
    for _, k in ipairs(ORDER[t]) do
      if t[k] ~= nil then keys[#keys + 1] = k end
    end
    return keys
  end
  for k in pairs(t) do
    if type(k) ~= "string" and type(k) ~= "number" then
      error("json: object keys must be strings, got a " .. type(k), 0)
    end
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  return keys
end

local encode_value

local function encode_table(t, indent, depth, seen)
  if seen[t] then error("json: cannot encode a table that contains itself", 0) end
  seen[t] = true
  local nl, pad, inner, colon = "", "", "", ":"
  if indent then
    nl = "\n"
    pad = string.rep(" ", indent * depth)
    inner = string.rep(" ", indent * (depth + 1))
    colon = ": "
  end
  local parts = {}
  local open, close
  if is_array(t) then
    open, close = "[", "]"
    for i = 1, #t do
      parts[i] = inner .. encode_value(t[i], indent, depth + 1, seen)
    end
  else
    open, close = "{", "}"
    for _, k in ipairs(object_keys(t)) do
      local v = t[k]
      if v == nil then v = t[tonumber(k)] end
      parts[#parts + 1] = inner .. encode_string(k) .. colon ..
        encode_value(v, indent, depth + 1, seen)
    end
  end
  seen[t] = nil
  if #parts == 0 then return open .. close end
  return open .. nl .. table.concat(parts, "," .. nl) .. nl .. pad .. close
end

encode_value = function(v, indent, depth, seen)
  local ty = type(v)
  if ty == "nil" or v == json.null then
    return "null"
  elseif ty == "boolean" then
    return v and "true" or "false"
  elseif ty == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if v == math.floor(v) and math.abs(v) < 2^53 then
      return string.format("%d", math.tointeger(v))
    end
    return string.format("%.17g", v)
  elseif ty == "string" then
    return encode_string(v)
  elseif ty == "table" then
    return encode_table(v, indent, depth, seen)
  end
  error("json: cannot encode a " .. ty, 0)
end

function json.encode(v, opts)
  local indent = opts and opts.indent
  return encode_value(v, indent, 0, {})
end

return json
