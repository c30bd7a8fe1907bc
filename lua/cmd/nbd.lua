-- SPDX-License-Identifier: BSD-3-Clause
-- nbd: serve an image over NBD with qemu-nbd's options
--
-- blkhost nbd [OPTIONS] FILE  |  blkhost nbd -L [OPTIONS]  |  blkhost nbd -d DEV
-- Everything here goes through the public Lua API: bh.open, node:window,
-- node:partition, bh.nbd.server, bh.process (daemonize, pid files), and
-- bh.nbd.list/connect/disconnect when the kernel-client binding is built
-- in.  The option rules and messages follow qemu-nbd's: a bad value ends
-- the command with one line on stderr and status 1 before anything is
-- opened or listened on.  docs/blkhost-nbd.1 has the table of options and
-- the script a user would write instead.

local bh = require "blkhost"
local cli = require "blkhost.cli"
local snapparam = require "blkhost.snapparam"
local imageopts = require "blkhost.imageopts"

local USAGE = [==[
Usage: blkhost nbd [OPTIONS] FILE
  or:  blkhost nbd -L [OPTIONS]
  or:  blkhost nbd -d DEVICE
Serve a disk image over NBD (qemu-nbd's options and defaults).

  -q, --quiet               no "disconnected" line after -d
  -h, --help                this text
  -V, --version             print the version and exit

Connection:
  -p, --port=PORT           TCP port to listen on (default 10809)
  -b, --bind=IFACE          address to listen on (default 0.0.0.0)
  -k, --socket=PATH         listen on a Unix socket (absolute path) instead
  -e, --shared=NUM          clients served at once (default 1, 0: no limit)
  -t, --persistent          keep serving after the last client leaves
  -v, --verbose             report connections on stderr
  -x, --export-name=NAME    export name (default: empty)
  -D, --description=TEXT    export description
      --fork                go to the background once the server listens
      --pid-file=PATH       write the server's pid to PATH (removed at exit)
      --control=PATH        also listen for live operations (snapshots,
                            savevm, rotation, quit) on the Unix socket PATH:
                            blkhost ctl PATH query-commands (docs/control.md)
  -L, --list                list the exports of another NBD server (at -k,
                            or -b/-p) and exit

TLS (qemu-nbd's syntax; with --tls-creds, TLS is required):
      --object tls-creds-x509,id=ID,dir=DIR,endpoint=server[,verify-peer=on|off]
                            X.509 credentials: DIR holds ca-cert.pem,
                            server-cert.pem, server-key.pem; verify-peer
                            (default on) demands a client certificate
      --object tls-creds-psk,id=ID,dir=DIR,endpoint=server
                            pre-shared keys: DIR/keys.psk (psktool)
      --object authz-simple,id=ID,identity=NAME
                            allow only the client whose certificate DN or
                            PSK username is NAME (',,' for a comma)
      --tls-creds=ID        serve over TLS with these credentials
      --tls-authz=ID        check clients against this authz object
      --tls-hostname=NAME   server name to check with --list (client side)

Part of the image:
  -o, --offset=OFFSET       serve from this byte offset of the image
  -P, --partition=NUM       serve only partition NUM (MBR or GPT)

Kernel NBD client:
  -c, --connect=DEV         attach FILE to the NBD device DEV
  -d, --disconnect          detach the NBD device given as argument

Block device:
  -f, --format=FORMAT       image format (default: probe)
  --image-opts              FILE is an option string (driver=qcow2,file.filename=F)
  -r, --read-only           export read-only
  -s, --snapshot            writes go to a temporary qcow2 overlay over
                            FILE, deleted at exit
  -l, --load-snapshot=SNAPSHOT
                            serve an internal snapshot read-only:
                            'snapshot.id=[ID],snapshot.name=[NAME]' or
                            '[ID_OR_NAME]'
  -n, --nocache             same as --cache=none
      --cache=MODE          none, writeback (default), writethrough,
                            directsync or unsafe
      --aio=MODE            threads, native (Linux AIO; needs --cache=none
                            or directsync) or io_uring; default: io_uring,
                            else native, with --cache=none or directsync,
                            threads otherwise
      --discard=MODE        ignore (default) or unmap
      --detect-zeroes=MODE  off (default), on or unmap (needs
                            --discard=unmap)
]==]

local SPEC = {
  { "p", "port", arg = "PORT" },
  { "b", "bind", arg = "IFACE" },
  { "k", "socket", arg = "PATH" },
  { "e", "shared", arg = "NUM" },
  { "t", "persistent" },
  { "v", "verbose" },
  { "x", "export-name", arg = "NAME" },
  { "D", "description", arg = "TEXT" },
  { nil, "fork" },
  { nil, "pid-file", arg = "PATH" },
  { nil, "control", arg = "PATH" },
  { "L", "list" },
  { "o", "offset", arg = "OFFSET" },
  { "P", "partition", arg = "NUM" },
  { "c", "connect", arg = "DEV" },
  { "d", "disconnect" },
  { "f", "format", arg = "FORMAT" },
  { nil, "image-opts" },
  { "r", "read-only" },
  { "s", "snapshot" },
  { "l", "load-snapshot", arg = "SNAPSHOT", multi = true },
  { "n", "nocache", multi = true },
  { nil, "cache", arg = "MODE", multi = true },
  { nil, "aio", arg = "MODE", multi = true },
  { nil, "discard", arg = "MODE", multi = true },
  { nil, "detect-zeroes", arg = "MODE" },
  { nil, "object", arg = "DEF", multi = true },
  { nil, "tls-creds", arg = "ID" },
  { nil, "tls-authz", arg = "ID" },
  { nil, "tls-hostname", arg = "NAME" },
  { "V", "version" },
}

local NBD_MAX_STRING = 4096

local CACHE = { none = true, writeback = true, writethrough = true,
                directsync = true, unsafe = true }
-- qemu takes off/on as spellings of ignore/unmap.
local DISCARD = { ignore = "ignore", off = "ignore", unmap = "unmap", on = "unmap" }
local DETECT_ZEROES = { off = true, on = true, unmap = true }
local AIO = { threads = true, native = true, io_uring = true }

local fail = cli.fail

-- A C-style integer: decimal, 0x hex or 0 octal, optional sign.
local parse_int = require("blkhost.cint").parse

-- Options that may be given once (qemu-nbd's rule), as one value.
local function once(list, message)
  if list and #list > 1 then fail(message) end
  return list and list[1]
end

-- qemu's KEY=VALUE,... syntax, where ",," is a literal comma.
local function split_props(def)
  local parts, cur, i = {}, {}, 1
  while i <= #def do
    local ch = def:sub(i, i)
    if ch == "," and def:sub(i + 1, i + 1) == "," then
      cur[#cur + 1] = ","; i = i + 2
    elseif ch == "," then
      parts[#parts + 1] = table.concat(cur); cur = {}; i = i + 1
    else
      cur[#cur + 1] = ch; i = i + 1
    end
  end
  parts[#parts + 1] = table.concat(cur)
  local t = { type = parts[1] }
  for j = 2, #parts do
    local k, v = parts[j]:match("^([^=]+)=(.*)$")
    if not k then fail("Invalid parameter '" .. parts[j] .. "' in --object " .. def) end
    t[k] = v
  end
  return t
end

local OBJECT_KEYS = {
  ["tls-creds-x509"] = { id = true, dir = true, endpoint = true, ["verify-peer"] = true },
  ["tls-creds-psk"] = { id = true, dir = true, endpoint = true },
  ["authz-simple"] = { id = true, identity = true },
}
local ONOFF = { on = true, yes = true, ["true"] = true,
                off = false, no = false, ["false"] = false }

-- --object, --tls-creds, --tls-authz and --tls-hostname as qemu-nbd 7.2
-- takes them, into s.tls (the bh.nbd.server tls table) or s.tls_list.
local function tls_settings(s, o)
  local objects = {}
  for _, def in ipairs(o.object or {}) do
    local t = split_props(def)
    local known = OBJECT_KEYS[t.type]
    if not known then
      fail("Invalid object type '" .. tostring(t.type) .. "': blkhost nbd " ..
           "knows tls-creds-x509, tls-creds-psk and authz-simple")
    end
    for k in pairs(t) do
      if k ~= "type" and not known[k] then
        fail("Property '" .. t.type .. "." .. k .. "' not found")
      end
    end
    if not t.id then fail("Parameter 'id' is missing") end
    if objects[t.id] then fail("attempt to add duplicate property '" .. t.id .. "'") end
    objects[t.id] = t
  end
  if o["tls-authz"] and not o["tls-creds"] then
    fail("--tls-authz is not permitted without --tls-creds")
  end
  if o["tls-hostname"] and not o["tls-creds"] then
    fail("--tls-hostname is not permitted without --tls-creds")
  end
  if not o["tls-creds"] then return end
  if o["tls-hostname"] and not s.list then
    fail("--tls-hostname is only permitted with --list")
  end
  if s.device then fail("TLS is not supported with a host device") end
  local c = objects[o["tls-creds"]]
  if not c or not c.type:match("^tls%-creds%-") then
    fail("Failed to get TLS creds: No TLS credentials with id '" .. o["tls-creds"] .. "'")
  end
  if s.list then
    fail("--list over TLS is not supported yet: blkhost has no TLS client")
  end
  if c.endpoint ~= "server" then
    fail("Expecting TLS credentials with a server endpoint")
  end
  if not c.dir then fail("tls-creds object '" .. c.id .. "' needs dir=") end
  local tls = { mode = "require" }
  if c.type == "tls-creds-x509" then
    tls.x509_dir = c.dir
    -- qemu's x509 credentials verify the peer unless told otherwise.
    local v = c["verify-peer"] or "on"
    if ONOFF[v] == nil then fail("Parameter 'verify-peer' expects 'on' or 'off'") end
    tls.verify_peer = ONOFF[v]
  else
    tls.psk_file = c.dir .. "/keys.psk"
  end
  if o["tls-authz"] then
    local a = objects[o["tls-authz"]]
    if not a or a.type ~= "authz-simple" then
      fail("No authorization object with id '" .. o["tls-authz"] .. "'")
    end
    if not a.identity then fail("authz-simple object '" .. a.id .. "' needs identity=") end
    tls.allow = { a.identity }
  end
  s.tls = tls
end

-- Socket activation: LISTEN_PID/LISTEN_FDS naming this process (as
-- systemd or systemd-socket-activate set them) hand us a listening socket
-- at fd 3.  Like qemu-nbd, take exactly one, and refuse the options that
-- would make another socket or a device.  Returns true when activated.
local function socket_activation(o)
  local pid, fds = os.getenv("LISTEN_PID"), os.getenv("LISTEN_FDS")
  if not pid or not fds or tonumber(pid) ~= bh.process.pid() then return false end
  if o.connect then fail("NBD device can't be set when using socket activation") end
  if o.socket then fail("Unix socket can't be set when using socket activation") end
  if o.bind then fail("The interface can't be set when using socket activation") end
  if o.port then fail("TCP port number can't be set when using socket activation") end
  local n = math.tointeger(tonumber(fds))
  if not n or n < 1 then fail("LISTEN_FDS=" .. fds .. " is not a socket count") end
  if n > 1 then fail("blkhost nbd does not support socket activation with LISTEN_FDS > 1") end
  return true
end

-- Check every option and fold them into one settings table.  Nothing is
-- opened here, so a bad command line never starts anything.
local function settings(o, rest)
  local s = { args = rest }

  local caches = {}
  for _ in ipairs(o.nocache or {}) do caches[#caches + 1] = "none" end
  for _, c in ipairs(o.cache or {}) do caches[#caches + 1] = c end
  s.cache = once(caches, "-n and --cache can only be specified once")
  if s.cache and not CACHE[s.cache] then
    fail("Invalid cache mode '" .. s.cache .. "'")
  end

  s.aio = once(o.aio, "--aio can only be specified once")
  if s.aio and not AIO[s.aio] then fail("Invalid aio mode '" .. s.aio .. "'") end

  local discard = once(o.discard, "--discard can only be specified once")
  if discard then
    s.discard = DISCARD[discard]
    if not s.discard then fail("Invalid discard mode '" .. discard .. "'") end
  end

  s.detect_zeroes = o["detect-zeroes"]
  if s.detect_zeroes then
    if not DETECT_ZEROES[s.detect_zeroes] then
      fail("Failed to parse detect_zeroes mode: invalid parameter value: " ..
           s.detect_zeroes)
    end
    if s.detect_zeroes == "unmap" and s.discard ~= "unmap" then
      fail("setting detect-zeroes to unmap is not allowed without setting " ..
           "discard operation to unmap")
    end
  end

  if o.offset then
    local v = parse_int(o.offset)
    if not v then fail("Invalid offset '" .. o.offset .. "'") end
    if v < 0 then fail("Invalid offset '" .. o.offset .. "': it must not be negative") end
    s.offset = v
  end

  if o.partition then
    local v = parse_int(o.partition)
    if not v then fail("Invalid partition '" .. o.partition .. "'") end
    if v < 1 then fail("Invalid partition " .. v) end
    s.partition = v
  end

  if o.socket then
    if o.socket:sub(1, 1) ~= "/" then fail("socket path must be absolute") end
    s.socket = o.socket
  end

  s.shared = 1
  if o.shared then
    local v = parse_int(o.shared)
    if not v or v < 0 or v > 65536 then
      fail("Invalid shared device number '" .. o.shared .. "'")
    end
    s.shared = v
  end

  s.port = 10809
  if o.port then
    local v = parse_int(o.port)
    if not v or v < 1 or v > 65535 then fail("Invalid port '" .. o.port .. "'") end
    s.port = v
  end
  s.bind = o.bind

  if o["export-name"] and #o["export-name"] > NBD_MAX_STRING then
    fail("export name '" .. o["export-name"] .. "' too long")
  end
  if o.description and #o.description > NBD_MAX_STRING then
    fail("export description '" .. o.description .. "' too long")
  end
  s.name, s.description = o["export-name"], o.description

  s.readonly = o["read-only"] or false
  local sn = o["load-snapshot"] and o["load-snapshot"][#o["load-snapshot"]]
  if sn then
    local why
    s.load_snapshot, why = snapparam.parse(sn)
    if not s.load_snapshot then fail(why) end
    s.readonly = true   -- an internal snapshot is served read-only
  end

  s.format, s.snapshot, s.image_opts = o.format, o.snapshot, o["image-opts"]
  if s.image_opts and s.format then fail("--image-opts and -f are mutually exclusive") end
  s.persistent, s.verbose = o.persistent, o.verbose
  s.fork, s.pid_file, s.device = o.fork, o["pid-file"], o.connect
  s.control = o.control
  s.disconnect, s.list = o.disconnect, o.list

  if s.list then
    if #rest > 0 then fail("List mode is incompatible with a file name") end
    if s.name or s.description or s.offset or s.partition or s.device or
       s.disconnect or s.format or s.load_snapshot or s.aio or discard or
       s.cache or s.snapshot or s.control then
      fail("List mode is incompatible with per-device settings")
    end
    if s.fork then fail("List mode is incompatible with forking") end
  elseif #rest ~= 1 then
    cli.usage_error("Invalid number of arguments")
  end
  tls_settings(s, o)
  if not s.list and not s.disconnect then s.activated = socket_activation(o) end
  return s
end

-- The URI of the server -L asks, from -k or -b/-p.
-- An IPv6 address goes in brackets in URIs and listen specs.
local function bracket(host)
  if host:find(":", 1, true) and host:sub(1, 1) ~= "[" then
    return "[" .. host .. "]"
  end
  return host
end

local function list_uri(s)
  if s.socket then return "nbd+unix:///?socket=" .. s.socket end
  local host = bracket(s.bind or "localhost")
  return string.format("nbd://%s:%d/", host, s.port)
end

-- Transmission flags by bit, with the names qemu-nbd -L prints.
local FLAG_NAMES = { [1] = "readonly", [2] = "flush", [3] = "fua", [4] = "rotational",
                     [5] = "trim", [6] = "zeroes", [7] = "df", [8] = "multi",
                     [9] = "resize", [10] = "cache", [11] = "fast-zero" }

local function flag_names(flags)
  local out = {}
  for bit = 1, 11 do
    if flags & (1 << bit) ~= 0 then out[#out + 1] = FLAG_NAMES[bit] end
  end
  return " " .. table.concat(out, " ") .. " "
end

local function list_exports(s)
  if not bh.nbd.list then
    fail("-L/--list is not available: this build has no bh.nbd.list " ..
         "(the NBD client binding)")
  end
  local exports = bh.nbd.list(list_uri(s))
  io.stdout:write(string.format("exports available: %d\n", #exports))
  for _, e in ipairs(exports) do
    io.stdout:write(string.format(" export: '%s'\n", e.name or ""))
    if e.description and e.description ~= "" then
      io.stdout:write(string.format("  description: %s\n", e.description))
    end
    if e.size then io.stdout:write(string.format("  size:  %d\n", e.size)) end
    if e.flags then
      io.stdout:write(string.format("  flags: 0x%x (%s)\n", e.flags, flag_names(e.flags)))
    end
    for _, b in ipairs({ { "min block", "min_block" }, { "opt block", "pref_block" },
                         { "max block", "max_block" } }) do
      if e[b[2]] then io.stdout:write(string.format("  %s: %d\n", b[1], e[b[2]])) end
    end
    if e.meta_contexts and e.meta_contexts ~= "" then
      local names = {}
      for n in e.meta_contexts:gmatch("[^\n]+") do names[#names + 1] = n end
      io.stdout:write(string.format("  available meta contexts: %d\n", #names))
      for _, n in ipairs(names) do io.stdout:write("   ", n, "\n") end
    end
  end
  return 0
end

local function disconnect(s)
  local dev = s.args[1]
  if not bh.nbd.disconnect then
    fail("-d/--disconnect is not available: this build has no " ..
         "bh.nbd.disconnect (the kernel NBD client binding)")
  end
  bh.nbd.disconnect(dev)
  if not cli.quiet then io.stdout:write(dev, " disconnected\n") end
  return 0
end

local function listen_spec(s)
  -- fd:3 rather than "systemd": it still names the socket after --fork
  -- has changed our pid.
  if s.activated then return "fd:3" end
  if s.socket then return "unix:" .. s.socket end
  return string.format("tcp:%s:%d", bracket(s.bind or "0.0.0.0"), s.port)
end

-- Open options for FILE (or the -s overlay) from the block options.
local function open_opts(s, format, readonly)
  local opts = { format = format, readonly = readonly, cache = s.cache,
                 discard = s.discard, detect_zeroes = s.detect_zeroes }
  if s.aio then
    -- aio belongs to the file driver: the node itself when FILE is
    -- opened as a plain file, else its protocol child.  Passed even for
    -- threads: without it the driver picks io_uring for cache=none.
    if format == "file" then opts.aio = s.aio else opts.file = { aio = s.aio } end
  end
  return opts
end

-- -s: a temporary qcow2 overlay whose backing file is FILE.  It is
-- unlinked as soon as it is open, so it goes away however we exit.
local function open_snapshot_overlay(s, file)
  local base = bh.open(file, { format = s.format, readonly = true })
  local size, format = base:size(), base:format()
  base:close()
  local tmp = bh.process.tempfile { prefix = "blkhost-nbd-snapshot" }
  local ok, img = pcall(function()
    bh.create(tmp, { format = "qcow2", size = size,
                     backing = bh.process.realpath(file),
                     backing_format = format })
    return bh.open(tmp, open_opts(s, "qcow2", s.readonly))
  end)
  os.remove(tmp)
  if not ok then error(img, 0) end
  return img
end

local function load_snapshot(s, img)
  if not img.snapshot_open then
    fail("-l/--load-snapshot is not supported yet: this build cannot " ..
         "open internal snapshots (node:snapshot_open is missing)")
  end
  local ok, snap = pcall(img.snapshot_open, img, s.load_snapshot)
  if not ok then fail("Failed to load snapshot: " .. tostring(snap)) end
  return snap
end

-- The node to serve: FILE (or its -s overlay), then -l, -P, -o.
local function open_image(s)
  local file = s.args[1]
  local img
  if s.snapshot then
    local name, format = imageopts.name_format(file, s.format, s.image_opts, "-s")
    img = open_snapshot_overlay({ format = format, readonly = s.readonly, cache = s.cache,
                                  discard = s.discard, detect_zeroes = s.detect_zeroes,
                                  aio = s.aio }, name)
  else
    img = bh.open(imageopts.apply(file, open_opts(s, s.format, s.readonly), s.image_opts))
  end
  if s.load_snapshot then img = load_snapshot(s, img) end
  if s.partition then
    local ok, part = pcall(img.partition, img, s.partition,
                           { readonly = s.readonly })
    if not ok then
      fail("Could not find partition " .. s.partition .. ": " .. tostring(part))
    end
    img = part
  end
  if s.offset then
    img = img:window { offset = s.offset, readonly = s.readonly }
  end
  return img
end

local function say(s, ...)
  if s.verbose then io.stderr:write("blkhost nbd: ", string.format(...), "\n") end
end

local function serve(s)
  -- qemu-nbd goes to the background before it opens anything, so that
  -- every error, from open to listen, reaches the waiting parent.
  local background = s.fork or (s.device and not s.verbose)
  if s.device then
    local f, err = io.open(s.device, "rb")
    if not f then fail("Cannot open " .. err) end
    f:close()
    if not bh.nbd.connect then
      fail("-c/--connect is not available: this build has no " ..
           "bh.nbd.connect (the kernel NBD client binding)")
    end
  end
  if background then bh.process.daemonize() end

  local name = s.name or ""
  -- The server is made before the image is opened, so that bad TLS
  -- credentials fail first, as with qemu-nbd; it listens at export().
  local srv
  if not s.device or s.socket then
    srv = bh.nbd.server {
      listen = { listen_spec(s) },
      max_clients = s.shared,
      persistent = s.persistent or false,
      tls = s.tls,
      on_connect = s.verbose and function(c)
        say(s, "client %s connected (export '%s')%s", tostring(c.peer or c.id),
            tostring(c.export or name),
            c.tls_identity and (" over TLS as '" .. c.tls_identity .. "'")
            or (c.tls and " over TLS" or ""))
      end or nil,
      on_disconnect = s.verbose and function(c)
        say(s, "client %s disconnected", tostring(c.peer or c.id))
      end or nil,
    }
  end

  local img = open_image(s)
  if srv then
    srv:export(img, { name = name, readonly = s.readonly,
                      description = s.description })
    say(s, "serving %s (%s, %s) at %s", s.args[1], img:format(),
        s.readonly and "read-only" or "read-write", srv:uri(name))
  end

  if s.device then
    bh.nbd.connect { device = s.device, export = img, readonly = s.readonly }
    say(s, "NBD device %s is now connected to %s", s.device, s.args[1])
  end

  -- The control socket comes up with the export it acts on, before the
  -- caller is told the server is ready.
  local ctl <close> = s.control and bh.control.listen("unix:" .. s.control)
  if s.pid_file then bh.process.write_pid_file(s.pid_file) end
  -- Once serving, the daemon lets go of the caller's stderr (it goes to
  -- /dev/null, as qemu-nbd's does), so `out=$(blkhost nbd --fork ... 2>&1)`
  -- or a CI step reading our output returns as soon as we are ready.
  -- Only -v, which asks for messages about clients, keeps it.
  if background then bh.process.ready { keep_stderr = s.fork and s.verbose or false } end

  bh.loop()
  return 0
end

return cli.run("nbd", USAGE, function(args)
  local o, rest = cli.parse(args, SPEC)
  if o.version then
    io.stdout:write("blkhost nbd ", bh.version, "\n")
    return 0
  end
  local s = settings(o, rest)
  if s.list then return list_exports(s) end
  if s.disconnect then return disconnect(s) end
  return serve(s)
end)
