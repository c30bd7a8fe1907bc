-- SPDX-License-Identifier: BSD-3-Clause
-- Integers as C's strtol/strtoul read them with base 0, which is how
-- qemu-img and qemu-nbd read their counts (qemu_strtoul and friends):
-- leading spaces, an optional sign, then decimal, 0x hexadecimal or
-- 0 octal.  Nothing may follow.
--
--   local cint = require "blkhost.cint"
--   cint.parse("0x10")  --> 16;  cint.parse("010") --> 8;  cint.parse("4k") --> nil

local cint = {}

function cint.parse(s)
  local sign, body = s:match("^%s*([+-]?)(.+)$")
  if not body then return nil end
  local v
  if body:match("^0[xX]%x+$") then
    v = tonumber(body:sub(3), 16)
  elseif body:match("^0[0-7]+$") then
    v = tonumber(body, 8)
  elseif body:match("^%d+$") then
    v = math.tointeger(tonumber(body))
  end
  if not v then return nil end
  return sign == "-" and -v or v
end

return cint
