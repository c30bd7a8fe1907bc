#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# blkhost's global options (lua/main.c, lua/blkhost/cli.lua): -q, -v and
# --debug before the command name, and error messages free of the Lua
# locations inside blkhost's own scripts unless --debug asks for them.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img
plan 20

B=$BLKHOST
cd "$T" || exit 1
qemu-img create -q -f qcow2 x.qcow2 1M
qemu-img create -q -f raw r.raw 1M

out=$("$B" -q create -f qcow2 q.qcow2 1M 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ] && [ -f q.qcow2 ]; then ok "blkhost -q create: the image is made, nothing printed"
else not_ok "blkhost -q create"; diag "exit $rc: $out"; fi
out=$("$B" --quiet convert -p -O raw x.qcow2 c.raw 2>/dev/null); rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "blkhost --quiet convert -p: no progress on stdout"
else not_ok "blkhost --quiet convert -p"; diag "exit $rc: $out"; fi
out=$("$B" -v info --image-opts driver=qcow2,file.filename=x.qcow2 2>&1 >/dev/null)
if echo "$out" | grep -q "bh.open('x.qcow2'"; then ok "blkhost -v info --image-opts: says on stderr what it opens"
else not_ok "blkhost -v info --image-opts: says what it opens"; diag "$out"; fi
out=$("$B" info --image-opts driver=qcow2,file.filename=x.qcow2 2>&1 >/dev/null)
if [ -z "$out" ]; then ok "without -v: nothing on stderr"; else not_ok "without -v: nothing on stderr"; diag "$out"; fi
# -v before the command is nbd's own -v: it says what it serves.
"$B" --verbose nbd --fork --pid-file "$T/v.pid" -k "$T/v.sock" x.qcow2 2>v.err; rc=$?
[ -s "$T/v.pid" ] && at_exit "kill $(cat "$T/v.pid") 2>/dev/null"
if [ $rc -eq 0 ] && grep -q "^blkhost nbd: serving x.qcow2" v.err; then
    ok "blkhost --verbose nbd: nbd's -v, 'serving x.qcow2' on stderr"
else not_ok "blkhost --verbose nbd: nbd's -v"; diag "exit $rc: $(cat v.err)"; fi
[ -s "$T/v.pid" ] && kill "$(cat "$T/v.pid")" 2>/dev/null
"$B" nbd --fork --pid-file "$T/w.pid" -k "$T/w.sock" x.qcow2 2>w.err
[ -s "$T/w.pid" ] && at_exit "kill $(cat "$T/w.pid") 2>/dev/null"
if ! grep -q "serving" w.err; then ok "blkhost nbd without -v: no 'serving' line"
else not_ok "blkhost nbd without -v: no 'serving' line"; diag "$(cat w.err)"; fi
[ -s "$T/w.pid" ] && kill "$(cat "$T/w.pid")" 2>/dev/null
check_fails "an unknown global option is refused, naming it" "unknown option '-x' before the command" "$B" -x info x.qcow2
check_fails "global options without a command: the usage, exit 1" "Usage: blkhost \[-q\]" "$B" -q
out=$("$B" run --help 2>&1); rc=$?
if [ $rc -eq 0 ] && [[ $out == "Usage: blkhost run SCRIPT"* ]]; then ok "blkhost run --help: the usage, exit 0"
else not_ok "blkhost run --help"; diag "exit $rc: $out"; fi

# Real error paths of several commands: no "FILE.lua:LINE:" in what the
# user reads.
no_location() {
    local desc=$1 pat=$2 out rc; shift 2
    out=$("$B" "$@" 2>&1 </dev/null); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -qE -- "$pat" && ! echo "$out" | grep -qE '\.lua:[0-9]+'; then
        ok "$desc: '$pat', no Lua location"
    else
        not_ok "$desc: '$pat', no Lua location"; diag "exit $rc: $out"
    fi
}
no_location "nbd -o past the end (raised by node:window)" "^blkhost nbd: window offset 99999999 is past the end" \
    nbd -k "$T/n.sock" -o 99999999 x.qcow2
no_location "nbd -P 3 of an image without partitions" "^blkhost nbd: Could not find partition 3" \
    nbd -k "$T/n.sock" -f raw -P 3 r.raw
no_location "info of a missing file" "^blkhost info: could not open 'nope.qcow2'" info nope.qcow2
no_location "snapshot -a of a missing snapshot" "^blkhost snapshot: Could not apply snapshot 'nope'" snapshot -a nope x.qcow2
no_location "convert with a bad -o" "^blkhost convert: " convert -O qcow2 -o cluster_size=7 x.qcow2 o.qcow2
no_location "map of a raw file read as qcow2" "^blkhost map: " map -f qcow2 r.raw
no_location "snapshot --control of a missing socket (raised in blkhost/handoff.lua, inside the message)" \
    "^blkhost snapshot: Could not create snapshot 'a': cannot connect to control socket" \
    snapshot --control "$T/nonexist.sock" -c a x.qcow2

out=$("$B" --debug nbd -k "$T/n.sock" -o 99999999 x.qcow2 2>&1)
if echo "$out" | grep -qE 'cmd/nbd\.lua:[0-9]+: window offset' && echo "$out" | grep -q "stack traceback"; then
    ok "blkhost --debug nbd: the Lua location and a traceback are kept"
else not_ok "blkhost --debug nbd: the Lua location and a traceback"; diag "$out"; fi
out=$(BLKHOST_DEBUG=1 "$B" nbd -k "$T/n.sock" -o 99999999 x.qcow2 2>&1)
if echo "$out" | grep -q "stack traceback"; then ok "BLKHOST_DEBUG=1: as --debug"
else not_ok "BLKHOST_DEBUG=1: as --debug"; diag "$out"; fi
# A script's own locations stay: they are the user's code.
printf 'local bh = require "blkhost"\nlocal n <close> = bh.open(arg[1])\nn:window{offset = 1 << 40}\n' > w.lua
out=$("$B" run w.lua r.raw 2>&1)
if echo "$out" | grep -q "^blkhost: w.lua:3: window offset"; then ok "run: an error keeps the script's own location (w.lua:3)"
else not_ok "run: an error keeps the script's own location"; diag "$out"; fi
# cli.clean itself: library locations go wherever they are, a script's
# stay, and a 64 KiB word goes through (a quadratic pattern hung here).
out=$("$B" run - <<'LUA' 2>&1
local cli = require "blkhost.cli"
local cases = {
  { "/x/lua/cmd/nbd.lua:514: window offset", "window offset" },
  { "Could not create 'a': .../lua/blkhost/handoff.lua:65: cannot connect", "Could not create 'a': cannot connect" },
  { "w.lua:3: boom", "w.lua:3: boom" },
  { "a /home/u/cmd.lua:3: b", "a /home/u/cmd.lua:3: b" },
  { "x.lua:1: /a/cmd/y.lua:2: z", "x.lua:1: z" },
  { string.rep("n", 65535) .. " /a/cmd/y.lua:2: z", string.rep("n", 65535) .. " z" },
}
for i, c in ipairs(cases) do
  local got = cli.clean(c[1])
  if got ~= c[2] then print("case " .. i .. ": " .. got:sub(1, 100)) end
end
LUA
)
if [ -z "$out" ]; then ok "cli.clean: library locations removed anywhere in a message, a script's kept, a 64 KiB word passes"
else not_ok "cli.clean"; diag "$out"; fi
