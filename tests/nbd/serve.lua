-- SPDX-License-Identifier: BSD-3-Clause
-- A configurable NBD server for the nbd tests.
--   blkhost run serve.lua KEY=VALUE...
--   listen=SPEC            repeatable (unix:PATH, tcp:HOST:PORT, systemd)
--   persistent=0|1  max_clients=N  threads=N  max_handshakes=N
--   handshake_timeout=S  send_timeout=S  stop_timeout=S
--   export=PATH[,name=N][,readonly][,description=D][,format=F]  repeatable
--   ready=FILE             written with the default URI once serving
--   tls=off|on|require  tls_x509=DIR  tls_psk=FILE  tls_verify=1
--   tls_allow=ID           repeatable: the TLS allow-list
-- Events are printed as "event connect ID PEER EXPORT".
local bh = require "blkhost"

local cfg = { listen = {}, exports = {}, tls_allow = {} }
for _, a in ipairs(arg) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  assert(k, "bad argument " .. a)
  if k == "listen" then
    table.insert(cfg.listen, v)
  elseif k == "tls_allow" then
    table.insert(cfg.tls_allow, v)
  elseif k == "export" then
    local e = { opts = {} }
    for part in v:gmatch("[^,]+") do
      local ek, ev = part:match("^([%w_]+)=(.*)$")
      if not e.path then e.path = part
      elseif ek then e.opts[ek] = ev
      else e.opts[part] = true end
    end
    table.insert(cfg.exports, e)
  else
    cfg[k] = v
  end
end

local function log(kind, i)
  print(("event %s %s %s %s%s"):format(kind, i.id, i.peer, i.export or "-",
                                      i.tls_identity and " tls:" .. i.tls_identity or ""))
  io.stdout:flush()
end

local srv <close> = bh.nbd.server{
  listen = cfg.listen,
  persistent = cfg.persistent == "1",
  max_clients = tonumber(cfg.max_clients),
  threads = tonumber(cfg.threads),
  max_handshakes = tonumber(cfg.max_handshakes),
  handshake_timeout = tonumber(cfg.handshake_timeout),
  send_timeout = tonumber(cfg.send_timeout),
  stop_timeout = tonumber(cfg.stop_timeout),
  tls = cfg.tls and { mode = cfg.tls, x509_dir = cfg.tls_x509,
                      psk_file = cfg.tls_psk, verify_peer = cfg.tls_verify == "1",
                      allow = #cfg.tls_allow > 0 and cfg.tls_allow or nil } or nil,
  on_connect = function(i) log("connect", i) end,
  on_disconnect = function(i) log("disconnect", i) end,
}
local nodes = {}
for _, e in ipairs(cfg.exports) do
  local node = bh.open(e.path, { format = e.opts.format or "raw",
                                 readonly = e.opts.readonly and true or nil })
  table.insert(nodes, node)
  srv:export(node, { name = e.opts.name or "", readonly = e.opts.readonly,
                     description = e.opts.description })
end
if #cfg.exports == 0 then srv:start() end
print("uri " .. srv:uri(""))
io.stdout:flush()
if cfg.ready then
  local f = assert(io.open(cfg.ready, "w"))
  f:write(srv:uri(""), "\n")
  f:close()
end
local sig = bh.loop()
print("loop ended " .. tostring(sig))
srv:stop()
print("stopped")
io.stdout:flush()
