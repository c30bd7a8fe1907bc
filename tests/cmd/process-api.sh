#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The API `blkhost nbd` is built from, used directly by scripts:
# bh.process (daemonize/ready, pid files, tempfile, realpath), node:window,
# and the file driver's aio option.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/cmd/lib.sh"
need qemu-img qemu-io

plan 18
qemu-img create -q -f raw "$T/d.raw" 1M
qemu-io -f raw -c 'write -P 0x42 4096 4096' "$T/d.raw" >/dev/null
qemu-img convert -q -f raw -O qcow2 "$T/d.raw" "$T/d.qcow2"
run() { "$BLKHOST" run - "$@"; }

# ---- daemonize / ready ----
out=$(run <<EOF2 2>&1
local bh = require "blkhost"
bh.process.daemonize()
io.stderr:write("still starting\n")
bh.process.write_pid_file("$T/dz.pid")
bh.process.ready()
io.stderr:write("not shown\n")
local f = io.open("$T/dz.done", "w") f:write(bh.process.pid()) f:close()
EOF2
)
rc=$?
if [ $rc = 0 ] && [ "$out" = "still starting" ]; then
    ok "daemonize: parent exits 0 at ready(), showing what came before"
else
    not_ok "daemonize: parent exits 0 at ready(), showing what came before"; diag "status $rc: $out"
fi
for i in $(seq 1 200); do [ -s "$T/dz.done" ] && break; sleep 0.05; done
if [ -s "$T/dz.done" ] && [ "$(cat "$T/dz.done")" != $$ ]; then ok "daemonize: the child goes on in the background"; else not_ok "daemonize: the child goes on in the background"; fi
for i in $(seq 1 200); do [ -e "$T/dz.pid" ] || break; sleep 0.05; done
if [ ! -e "$T/dz.pid" ]; then ok "write_pid_file: removed when the child exits"; else not_ok "write_pid_file: removed when the child exits"; fi

out=$(run <<'EOF2' 2>&1
local bh = require "blkhost"
bh.process.daemonize()
error("could not open the image", 0)
EOF2
)
rc=$?
if [ $rc = 1 ] && grep -q "could not open the image" <<<"$out"; then
    ok "daemonize: an error before ready() reaches the parent, which exits 1"
else
    not_ok "daemonize: an error before ready() reaches the parent, which exits 1"; diag "status $rc: $out"
fi
out=$(run <<'EOF2' 2>&1
local bh = require "blkhost"
bh.process.daemonize()
os.exit(3)
EOF2
)
rc=$?
if [ $rc = 1 ] && grep -q "ended before it was ready" <<<"$out"; then
    ok "daemonize: a silent exit before ready() is reported"
else
    not_ok "daemonize: a silent exit before ready() is reported"; diag "status $rc: $out"
fi
check_fails "daemonize: refused once threads run" "before anything starts threads" run <<EOF2
local bh = require "blkhost"
local srv = bh.nbd.server{listen={"unix:$T/th.sock"}, persistent=true}
srv:export(bh.open("$T/d.raw", {format="raw", readonly=true}))
bh.process.daemonize()
EOF2
check "ready() outside daemonize is harmless" run <<'EOF2'
local bh = require "blkhost"
assert(bh.process.ready() == false)
EOF2

# ---- pid files, tempfile, realpath ----
# A holder that keeps its pid file until its stdin (a fifo) is closed.
cat >"$T/hold.lua" <<'EOF2'
require("blkhost").process.write_pid_file(arg[1])
io.read("a")
EOF2
mkfifo "$T/hold.fifo"
"$BLKHOST" run "$T/hold.lua" "$T/held.pid" <"$T/hold.fifo" &
holder=$!
exec 8>"$T/hold.fifo"
at_exit "kill $holder 2>/dev/null"
for i in $(seq 1 200); do [ -s "$T/held.pid" ] && break; sleep 0.05; done
check_fails "write_pid_file: a file locked by a live process is refused" "cannot lock pid file" \
    run <<EOF2
require("blkhost").process.write_pid_file("$T/held.pid")
EOF2
exec 8>&-
wait $holder
if [ ! -e "$T/held.pid" ]; then ok "write_pid_file: removed at a normal exit"; else not_ok "write_pid_file: removed at a normal exit"; fi
check "tempfile: new, empty, mode 0600, in the given dir" run <<EOF2
local bh = require "blkhost"
local p = bh.process.tempfile{dir="$T", prefix="x"}
assert(p:sub(1, #"$T/x.") == "$T/x.", p)
assert(io.popen("stat -c %a " .. p):read("l") == "600")
local f = assert(io.open(p)) assert(f:read("a") == "") f:close()
assert(bh.process.tempfile{dir="$T"} ~= p)
os.remove(p)
assert(not pcall(bh.process.tempfile, {dir="$T/nonexistent"}))
assert(not pcall(bh.process.tempfile, {prefix="a/b"}))
EOF2
check "realpath: absolute, and an error for a missing file" bash -c "cd '$T' && \"\$BLKHOST\" run - <<'EOF2'
local bh = require 'blkhost'
assert(bh.process.realpath('d.raw') == '$T/d.raw')
local ok, e = pcall(bh.process.realpath, 'missing')
assert(not ok and e:find('missing'), e)
EOF2"

# ---- node:window ----
check "window: offset and size over raw and qcow2, bytes as qemu-io reads them" run <<EOF2
local bh = require "blkhost"
for _, f in ipairs{"$T/d.raw", "$T/d.qcow2"} do
  local d <close> = bh.open(f, {readonly=true})
  local w <close> = d:window{offset=4096}
  assert(w:size() == 1048576 - 4096)
  assert(w:read(0, 4096) == string.rep("B", 4096))
  assert(w:readonly())
  local s <close> = d:window{offset=4000, size=200}
  assert(s:size() == 200)
  assert(s:read(0, 200) == string.rep("\0", 96) .. string.rep("B", 104))
end
EOF2
check "window: writes land at the offset" run <<EOF2
local bh = require "blkhost"
local d <close> = bh.open("$T/d.raw", {format="raw"})
local w <close> = d:window{offset=65536}
w:write(0, "hello")
assert(d:read(65536, 5) == "hello")
assert(not w:readonly())
assert(d:window{offset=0, readonly=true}:readonly())
EOF2
check_fails "window: an offset past the end refused" "past the end" run <<EOF2
local bh = require "blkhost"
bh.open("$T/d.raw", {readonly=true}):window{offset=2097152}
EOF2
check_fails "window: an unknown key refused" "unknown window option 'lenght'" run <<EOF2
local bh = require "blkhost"
bh.open("$T/d.raw", {readonly=true}):window{lenght=5}
EOF2

# ---- file driver: aio ----
check_fails "file aio=native without O_DIRECT refused" "aio=native needs cache=none" run <<EOF2
require("blkhost").open("$T/d.raw", {format="raw", file={aio="native"}})
EOF2
check "file aio=io_uring: a round trip, or a refusal that says why" run <<EOF2
local bh = require "blkhost"
local okk, d = pcall(bh.open, "$T/d.raw", {format="raw", file={aio="io_uring"}})
if not okk then
  assert(tostring(d):find("io_uring"), tostring(d))
  return
end
d:write(12288, "uring")
assert(d:read(12288, 5) == "uring")
d:close()
EOF2
if dd if=/dev/zero of="$T/direct" bs=4096 count=1 oflag=direct 2>/dev/null; then
    check "file aio=native: unaligned and aligned I/O, qcow2 over it" run <<EOF2
local bh = require "blkhost"
local d <close> = bh.open("$T/d.raw", {format="raw", cache="none", file={aio="native"}})
d:write(4097, "xyz", {fua=true})
assert(d:read(4096, 5) == "Bxyz" .. "B")
d:write(8192, string.rep("q", 65536))
assert(d:read(8192, 65536) == string.rep("q", 65536))
local q <close> = bh.open("$T/d.qcow2", {cache="directsync", file={aio="native"}})
assert(q:read(4096, 4096) == string.rep("B", 4096))
q:write(0, "abc") assert(q:read(0, 3) == "abc")
EOF2
else
    skip "file aio=native: no O_DIRECT on $T"
fi
