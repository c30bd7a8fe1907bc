-- SPDX-License-Identifier: BSD-3-Clause
-- The control socket: QMP-like JSON lines over a Unix socket, served
-- from the main loop of the process that serves the images
-- (docs/control.md).  Loaded the first time bh.control.listen or
-- bh.control.command is read (lua/control.c).
--
--   local srv = bh.control.listen("unix:/run/blkhost/vm1.sock")
--   bh.control.command("hello", function(args) return { hi = args.who } end)
--   bh.loop()
--
-- One request per line, {"execute": "...", "arguments": {...}, "id": ...};
-- one answer per request, in order: {"return": ...} or {"error":
-- {"class": ..., "desc": ...}}, with the request's id when it had one.
-- Classes: GenericError (bad JSON, bad or missing arguments, a failed
-- operation), CommandNotFound, NotFound (no such export or snapshot).
-- Parsing is dkjson's (lua-dkjson); answers are blkhost.json's.
--
-- Snapshots of served images run in this process, between requests:
-- the core drains the node for each snapshot call, so clients see
-- latency, never an error (docs/control.md "Consistency").

local bh = require "blkhost"
local json = require "blkhost.json"
local registry = require "blkhost.registry"
local dkjson = require "dkjson"

local control = {}

-- A command's error: raised with control.fail(class, desc), answered as
-- {"error": {"class": class, "desc": desc}}.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.desc end

function control.fail(class, desc)
  error(setmetatable({ class = class, desc = desc }, Failure), 0)
end

local function fail(class, desc) control.fail(class, desc) end

------------------------------------------------------------------------
-- Arguments: declared per command, checked before it runs.
--   { name = "string", export = "string?", dry_run = "boolean?" }

local function check_args(cmd, args)
  local decl = cmd.args or {}
  for k in pairs(args) do
    if type(k) ~= "string" or not decl[k] then
      fail("GenericError", ("Parameter '%s' is unexpected"):format(tostring(k)))
    end
  end
  for k, ty in pairs(decl) do
    local want, optional = ty:match("^(%a+)(%??)$")
    local v = args[k]
    if v == nil then
      if optional == "" then
        fail("GenericError", ("Parameter '%s' is missing"):format(k))
      end
    elseif want ~= "any" and type(v) ~= want then
      local shown = want == "table" and "object" or want
      fail("GenericError", ("Parameter '%s' expects a %s"):format(k, shown))
    end
  end
end

------------------------------------------------------------------------
-- The served images, by export name.

local function exports() return bh.exports() end

-- The export called name; with name nil, the only export there is.
local function find_export(name)
  local list = exports()
  if name == nil then
    if #list == 1 then return list[1] end
    fail("GenericError", #list == 0 and "nothing is exported"
         or "Parameter 'export' is missing (there are " .. #list .. " exports)")
  end
  for _, e in ipairs(list) do
    if e.name == name then return e end
  end
  fail("NotFound", ("no export named '%s'"):format(name))
end

-- Image paths as clients elsewhere can use them: absolute.
local function absolute(path)
  local ok, real = pcall(bh.process.realpath, path)
  return ok and real or path
end

local function writable(e)
  if e.node:readonly() then
    fail("GenericError", ("export '%s' is served from a read-only image"):format(e.name))
  end
  return e
end

local function snapshot_entry(s)
  return json.object({ id = s.id, name = s.name, date = s.date,
                       ["vm-state-size"] = s.vm_state_size,
                       ["vm-clock-ns"] = s.vm_clock_ns },
                     { "id", "name", "date", "vm-state-size", "vm-clock-ns" })
end

local function call(fn, ...)
  local ok, res, res2 = pcall(fn, ...)
  if not ok then
    if getmetatable(res) == Failure then error(res, 0) end
    local msg = tostring(res)
    if msg:find("not found", 1, true) or msg:find("no snapshot", 1, true) then
      fail("NotFound", msg)
    end
    fail("GenericError", msg)
  end
  return res, res2
end

-- The snapshot of node named name (by name, as qemu-img -d and delvm), or
-- by id when id is given.
local function find_snapshot(node, export, name, id)
  for _, s in ipairs(call(node.snapshots, node)) do
    if (id and s.id == id) or (not id and s.name == name) then return s end
  end
  fail("NotFound", ("export '%s' has no snapshot %s '%s'"):format(export,
       id and "with id" or "named", id or name))
end

------------------------------------------------------------------------
-- The built-in commands.

local commands = {}
control.commands = commands

commands["query-exports"] = {
  help = "what this server exports",
  fn = function()
    local out = json.array {}
    for _, e in ipairs(exports()) do
      local server = e.server and e.server:status() or {}
      out[#out + 1] = json.object({
        name = e.name, description = e.description, readonly = e.readonly,
        image = absolute(e.node:filename()), format = e.node:format(), size = e.node:size(),
        clients = #e.clients, listen = server.listen,
      }, { "name", "description", "image", "format", "size", "readonly",
           "clients", "listen" })
    end
    return out
  end,
}

commands["query-clients"] = {
  help = "the connected clients",
  fn = function()
    local out = json.array {}
    for _, e in ipairs(exports()) do
      for _, c in ipairs(e.clients) do
        out[#out + 1] = json.object({ id = c.id, peer = c.peer, export = c.export,
                                      tls = c.tls, ["tls-identity"] = c.tls_identity },
                                    { "id", "export", "peer", "tls", "tls-identity" })
      end
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    return out
  end,
}

commands["query-snapshots"] = {
  help = "the internal snapshots of an export's image",
  args = { export = "string?" },
  fn = function(a)
    local e = find_export(a.export)
    local out = json.array {}
    for _, s in ipairs(call(e.node.snapshots, e.node)) do
      out[#out + 1] = snapshot_entry(s)
    end
    return out
  end,
}

commands["snapshot-create"] = {
  help = "take an internal snapshot of an export's image",
  args = { export = "string?", name = "string" },
  fn = function(a)
    local e = writable(find_export(a.export))
    if a.name == "" then fail("GenericError", "Parameter 'name' is empty") end
    for _, s in ipairs(call(e.node.snapshots, e.node)) do
      if s.name == a.name then
        fail("GenericError", ("export '%s' already has a snapshot named '%s'")
             :format(e.name, a.name))
      end
    end
    return snapshot_entry(call(e.node.snapshot_create, e.node, a.name))
  end,
}

commands["snapshot-delete"] = {
  help = "delete an internal snapshot of an export's image (by name, or id)",
  args = { export = "string?", name = "string?", id = "string?" },
  fn = function(a)
    if not a.name and not a.id then fail("GenericError", "Parameter 'name' is missing") end
    local e = writable(find_export(a.export))
    local s = find_snapshot(e.node, e.name, a.name, a.id)
    call(e.node.snapshot_delete, e.node, { id = s.id })
    return snapshot_entry(s)
  end,
}

-- The open writable images that savevm and delvm work on are the
-- process's own (bh.savevm's rule); the exported ones are among them.
commands["savevm"] = {
  help = "snapshot every open image at one instant, with the script's state",
  args = { name = "string" },
  fn = function(a)
    if a.name == "" then fail("GenericError", "Parameter 'name' is empty") end
    for _, s in ipairs(call(bh.snapshots)) do
      if s.name == a.name then
        fail("GenericError", ("there is already a snapshot named '%s'"):format(a.name))
      end
    end
    return { name = call(bh.savevm, a.name) }
  end,
}

commands["delvm"] = {
  help = "delete a snapshot from every open image",
  args = { name = "string" },
  fn = function(a)
    local found = false
    for _, e in ipairs(exports()) do
      for _, s in ipairs(call(e.node.snapshots, e.node)) do
        if s.name == a.name then found = true end
      end
    end
    if not found then fail("NotFound", ("no snapshot named '%s'"):format(a.name)) end
    call(bh.delvm, a.name)
    return {}
  end,
}

-- A rotation (blkhost/policy.lua) over the exported writable images, or
-- the exports named: the same spec as policy.rotate, keep as an object.
commands["rotate"] = {
  help = "take a policy's snapshot and delete what it no longer keeps",
  args = { prefix = "string", keep = "table?", within = "string?", min_age = "string?",
           pin = "any?", timezone = "string?", state = "table?", dry_run = "boolean?",
           exports = "table?", now = "number?" },
  fn = function(a)
    local nodes = {}
    if a.exports then
      for _, n in ipairs(a.exports) do nodes[#nodes + 1] = writable(find_export(n)).node end
    else
      for _, e in ipairs(exports()) do
        if not e.node:readonly() then nodes[#nodes + 1] = e.node end
      end
    end
    if #nodes == 0 then fail("GenericError", "no writable export to rotate") end
    local spec = {}
    for k, v in pairs(a) do if k ~= "exports" then spec[k] = v end end
    spec.print = false
    local lines = call(require("blkhost.policy").rotate, nodes, spec)
    return { lines = json.array(lines) }
  end,
}

-- export-add: open path and serve it from this process's NBD server
-- (the first one when there are several, or the one listening on
-- `server`).
commands["export-add"] = {
  help = "open an image and export it",
  args = { path = "string", name = "string", options = "table?", description = "string?",
           readonly = "boolean?" },
  fn = function(a)
    for _, e in ipairs(exports()) do
      if e.name == a.name then
        fail("GenericError", ("there is already an export named '%s'"):format(a.name))
      end
    end
    local server
    for _, e in ipairs(exports()) do server = server or e.server end
    server = server or control.default_server
    if not server then fail("GenericError", "this process runs no NBD server to add an export to") end
    local opts = {}
    for k, v in pairs(a.options or {}) do opts[k] = v end
    if a.readonly then opts.readonly = true end
    local node = call(bh.open, a.path, opts)
    local ok, err = pcall(server.export, server, node,
                          { name = a.name, readonly = a.readonly,
                            description = a.description or a.path })
    if not ok then
      node:close()
      fail("GenericError", tostring(err))
    end
    control.opened[a.name] = node
    control.refresh_registry()
    return { name = a.name, uri = server:uri(a.name) }
  end,
}

-- safe: the answer comes once the export's clients have all left (new
-- clients may still join meanwhile, as long as any is there); hard: its
-- clients are disconnected (requests in flight finish) and it goes now.
commands["export-remove"] = {
  help = "stop exporting (mode safe: once its clients have left; hard: now)",
  args = { name = "string", mode = "string?" },
  fn = function(a)
    local e = find_export(a.name)
    local mode = a.mode or "safe"
    if mode ~= "safe" and mode ~= "hard" then
      fail("GenericError", "Parameter 'mode' expects safe or hard")
    end
    if not e.server then fail("GenericError", "the export's server is gone") end
    local node = e.node
    local function remove()
      call(e.server.unexport, e.server, a.name, { hard = mode == "hard" })
      if control.opened[a.name] then control.opened[a.name]:close(); control.opened[a.name] = nil end
      -- bh.exports() hands out node references; collect them now, so
      -- the image (and its lock) goes with the export.
      node, e = nil, nil
      collectgarbage()
      collectgarbage()
      control.refresh_registry()
      return {}
    end
    if mode == "hard" or #e.clients == 0 then return remove() end
    return control.later(function(reply)
      local poll
      poll = bh.timer.every(0.1, function()
        for _, x in ipairs(exports()) do
          if x.name == a.name and #x.clients > 0 then return end
        end
        poll:cancel()
        local ok, res = pcall(remove)
        reply(ok, res)
      end)
    end)
  end,
}

commands["quit"] = {
  help = "stop serving and exit",
  fn = function() bh.quit(); return {} end,
}

commands["query-commands"] = {
  help = "the commands this socket knows",
  fn = function()
    local names = {}
    for n in pairs(commands) do names[#names + 1] = n end
    table.sort(names)
    local out = json.array {}
    for _, n in ipairs(names) do
      out[#out + 1] = json.object({ name = n, help = commands[n].help }, { "name", "help" })
    end
    return out
  end,
}

control.opened = {}

-- bh.control.command(name, fn [, {args = {...}, help = "..."}]): a
-- script's own command; fn(arguments) returns the answer's value (a
-- table, string, number, boolean, or nil for {}), or raises (a plain
-- error is a GenericError; control.fail picks the class).
function control.command(name, fn, opts)
  if type(name) ~= "string" or not name:match("^[%w][%w%-_]*$") then
    error("bh.control.command: the name must be letters, digits, '-' and '_'", 2)
  end
  if type(fn) ~= "function" then error("bh.control.command: fn must be a function", 2) end
  opts = opts or {}
  commands[name] = { fn = fn, args = opts.args, help = opts.help or "a script command",
                     free_args = opts.args == nil }
end

------------------------------------------------------------------------
-- One request line -> one answer line.

local function answer(id, body)
  local keys = { "return", "error", "id" }
  body.id = id
  return json.encode(json.object(body, keys))
end

-- A command that answers later returns control.later(start): start(reply)
-- is called at once, and reply(true, value) or reply(false, err) sends
-- the answer when it is ready.  Until then the connection's next
-- requests wait, so answers stay in order.
local Later = {}
function control.later(start) return setmetatable({ start = start }, Later) end

local function failure_body(res)
  if getmetatable(res) == Failure then
    return { error = json.object({ class = res.class, desc = res.desc }, { "class", "desc" }) }
  end
  return { error = json.object({ class = "GenericError", desc = tostring(res) }, { "class", "desc" }) }
end

-- The answer line for one request; or nil and a Later with the id to
-- answer with.
-- Nulls are json.null while decoding, so that an id comes back as sent
-- (a null inside an array would otherwise leave a hole, and the array
-- come back as an object); in the arguments a null is as if left out.
local function denull(v)
  if v == json.null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denull(x) end
  end
  return v
end

function control.handle(line, async)
  local req, _, err = dkjson.decode(line, 1, json.null)
  if err or type(req) ~= "table" or req == json.null then
    return answer(nil, { error = json.object({ class = "GenericError",
      desc = err and ("JSON parse error: " .. err) or "expected a JSON object" },
      { "class", "desc" }) })
  end
  local id = req.id
  local function error_answer(class, desc)
    return answer(id, { error = json.object({ class = class, desc = desc },
                                            { "class", "desc" }) })
  end
  if type(req.execute) ~= "string" then
    return error_answer("GenericError", "expected {\"execute\": COMMAND, \"arguments\": {...}}")
  end
  for k in pairs(req) do
    if k ~= "execute" and k ~= "arguments" and k ~= "id" then
      return error_answer("GenericError", ("unexpected member '%s' in the request"):format(tostring(k)))
    end
  end
  local cmd = commands[req.execute]
  if not cmd then
    return error_answer("CommandNotFound", ("The command %s has not been found"):format(req.execute))
  end
  local args = denull(req.arguments) or {}
  if type(args) ~= "table" or (#args > 0) then
    return error_answer("GenericError", "'arguments' must be an object")
  end
  local ok, res = pcall(function()
    if not cmd.free_args then check_args(cmd, args) end
    return cmd.fn(args)
  end)
  if not ok then
    if getmetatable(res) == Failure then return error_answer(res.class, res.desc) end
    return error_answer("GenericError", tostring(res))
  end
  if getmetatable(res) == Later then
    if not async then return error_answer("GenericError", "this command answers later") end
    return nil, res, id
  end
  return control.answer_return(id, res)
end

function control.answer_return(id, res)
  local function error_answer(class, desc)
    return answer(id, { error = json.object({ class = class, desc = desc },
                                            { "class", "desc" }) })
  end
  if res == nil then res = {} end
  local eok, text = pcall(answer, id, { ["return"] = res })
  if not eok then return error_answer("GenericError", "the answer is not JSON: " .. tostring(text)) end
  return text
end

------------------------------------------------------------------------
-- bh.control.listen("unix:PATH" [, {register = true}]) -> server with
-- :close() and :path().  Registered (blkhost/registry.lua) so that the
-- outside tools (blkhost snapshot, nightly-rotate.lua) find it.

local listening = {}

-- The registry entries list the served images: rewrite them when the
-- exports change.
function control.refresh_registry()
  for srv in pairs(listening) do
    if srv.entry then srv.entry:refresh() end
  end
end

function control.listen(addr, opts)
  if type(addr) ~= "string" or not addr:match("^unix:.") then
    error("bh.control.listen: expected \"unix:PATH\", got " .. tostring(addr), 2)
  end
  opts = opts or {}
  local path = addr:sub(6)
  -- Per connection: requests waiting behind a later answer.
  local waiting = setmetatable({}, { __mode = "k" })
  local function run(conn, line)
    if line:match("^%s*$") then return end
    local text, later, id = control.handle(line, true)
    if text then conn:send(text); return end
    waiting[conn] = waiting[conn] or {}
    waiting[conn].busy = true
    later.start(function(ok, res)
      if not conn:closed() then
        conn:send(ok and control.answer_return(id, res)
                  or answer(id, failure_body(res)))
      end
      local q = waiting[conn]
      q.busy = false
      while #q > 0 and not q.busy do run(conn, table.remove(q, 1)) end
    end)
  end
  local sock = bh.control.socket(path, function(conn, line)
    local q = waiting[conn]
    if q and q.busy then q[#q + 1] = line; return end
    run(conn, line)
  end)
  local entry
  if opts.register ~= false then
    entry = registry.add(sock:path(), function()
      local images = {}
      for _, e in ipairs(exports()) do images[#images + 1] = e.node:filename() end
      return images
    end)
  end
  local srv = { socket = sock, entry = entry }
  function srv.path() return sock:path() end
  function srv.close()
    if entry then entry:remove(); entry = nil; srv.entry = nil end
    sock:close()
    listening[srv] = nil
  end
  listening[srv] = true
  return setmetatable(srv, { __close = srv.close, __tostring = function()
    return "blkhost.control(" .. path .. ")" end })
end

bh.control.listen = control.listen
bh.control.command = control.command
bh.control.commands = commands
bh.control.handle = control.handle
bh.control.fail = control.fail

return control
