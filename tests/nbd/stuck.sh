#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Stop with a driver call that never returns: SIGTERM ends the server at
# stop_timeout, non-zero, naming the stuck export; without one, stop is
# clean.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
plan 8
T=$(mktemp -d); at_exit "rm -rf $T"
export BLKHOST_PLUGIN_PATH="$BUILD_ROOT/tests/plugins/hang"

cat >"$T/stuck.lua" <<'LUA'
local bh = require "blkhost"
local sock, dir, stop_timeout = arg[1], arg[2], tonumber(arg[3])
local srv <close> = bh.nbd.server{ listen = { "unix:" .. sock },
                                   persistent = true,
                                   stop_timeout = stop_timeout }
local hang = bh.open(nil, { format = "hangdrv", size = "1M",
                            hang_offset = 65536,
                            hanging = dir .. "/hanging",
                            release = dir .. "/release" })
local fine = bh.open(nil, { format = "memory", size = "1M" })
srv:export(hang, { name = "stuck" })
srv:export(fine, { name = "fine" })
local f = assert(io.open(dir .. "/ready", "w")); f:close()
bh.loop()
srv:stop()
print("stopped")
LUA

serve() {
    rm -f "$T/ready" "$T/hanging"
    "$BLKHOST" run "$T/stuck.lua" "$T/s.sock" "$T" "$1" >"$T/srv.log" 2>&1 &
    srv=$!
    for i in $(seq 1 200); do [ -e "$T/ready" ] && return 0; sleep 0.05; done
    return 1
}

serve 2 || { not_ok "server with a hanging export starts"; sed 's/^/# /' "$T/srv.log"; exit 1; }
nbdread() {
    /usr/bin/python3 -c 'import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(4096, int(sys.argv[2])); h.shutdown()' "$@"
}
nbdread "nbd+unix:///stuck?socket=$T/s.sock" 65536 >/dev/null 2>&1 &
client=$!
for i in $(seq 1 200); do [ -e "$T/hanging" ] && break; sleep 0.05; done
check "a read of the magic offset hangs in the driver" test -e "$T/hanging"
start=$(date +%s.%N)
kill -TERM $srv
if wait_gone $srv; then
    wait $srv; rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    diag "SIGTERM to exit: $secs s with stop_timeout=2"
    check "with stop_timeout=2 SIGTERM ends the server, non-zero (rc $rc)" test $rc -ne 0
else
    not_ok "with stop_timeout=2 SIGTERM ends the server, non-zero"
    kill -KILL $srv
fi
check "the message names the stuck export" grep -q "export 'stuck'.*did not finish within 2 s of stop" "$T/srv.log"
check "the socket file is removed" test ! -e "$T/s.sock"
kill $client 2>/dev/null; wait $client 2>/dev/null

# The same server with nothing stuck stops cleanly.
serve 2 || { not_ok "server starts again"; exit 1; }
check "a read elsewhere on the hanging export works" nbdread "nbd+unix:///stuck?socket=$T/s.sock" 0
check "a read of the other export works" nbdread "nbd+unix:///fine?socket=$T/s.sock" 0
kill -TERM $srv; wait $srv; rc=$?
check "without a stuck request the server stops with status 0" test $rc = 0
check "...and says so" grep -q "^stopped" "$T/srv.log"
