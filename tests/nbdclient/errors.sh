#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbd client driver's refusals, each with a message naming the URI:
# nobody listening, no such export, TLS required (and TLS that works), a
# server that never answers, a read-only export opened for writing, a
# server error (not retried), bad options, and what a server cannot do.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbdclient/lib.sh"
need nbdkit qemu-nbd nbdinfo psktool
plan 17

read1() { client read "$1" 0 4096 "${@:2}"; }

# A TCP port nobody listens on: bind one, then let it go.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
check_fails "connection refused (TCP): the message names the URI and the cause" \
    "cannot connect to 'nbd://127.0.0.1:$port/': .*Connection refused" read1 "nbd://127.0.0.1:$port/"
check_fails "no socket file (nbd+unix): the message names the URI and the cause" \
    "cannot connect to 'nbd\+unix:///\?socket=$T/none.sock': .*No such file" read1 "$(uri none)"
check_fails "blkhost info nbd+unix:// on a dead socket says so, status 1" \
    "blkhost info: nbd: cannot connect to" "$BLKHOST" info "$(uri none)"

truncate -s 16M "$T/q.img"
qemu_nbd_start q -t -f raw -x disk "$T/q.img" || exit 1
check_fails "no such export (qemu-nbd -x disk, asked for nope)" \
    "cannot connect to '$(uri q nope | sed 's/[+?]/\\&/g')': .*no export named 'nope'" read1 "$(uri q nope)"

psktool -u alice -p "$T/keys.psk" >/dev/null 2>&1
psktool -u alice -p "$T/other.psk" >/dev/null 2>&1
nbdkit_start tls --tls=require --tls-psk="$T/keys.psk" memory 16M || exit 1
check_fails "TLS required: a plain nbd+unix:// is refused with a hint to use nbds://" \
    "requires TLS.*use nbds:// or nbds\+unix://" read1 "$(uri tls)"
TU="nbds+unix://alice@/?socket=$T/tls.sock&tls-psk-file=$T/keys.psk"
check "TLS: nbds+unix:// with tls-psk-file= reads" read1 "$TU"
out=$("$BLKHOST" info -f nbd "$TU" 2>&1)
if grep -q 'nbd tls: on' <<<"$out"; then ok "TLS: blkhost info says nbd tls: on"
else not_ok "TLS: blkhost info says nbd tls: on"; diag "$out"; fi
check_fails "TLS: a wrong key is refused, naming the URI" \
    "cannot connect to 'nbds\+unix://alice@" read1 "nbds+unix://alice@/?socket=$T/tls.sock&tls-psk-file=$T/other.psk"

# A server that accepts and then says nothing.
/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
c = []
while True: c.append(s.accept())' "$T/mute.sock" &
mpid=$!; disown $mpid; at_exit "kill $mpid"
for i in $(seq 1 100); do [ -S "$T/mute.sock" ] && break; sleep 0.05; done
check_fails "a server that never answers: connect-timeout=1 gives up, naming the URI" \
    "cannot connect to '$(uri mute | sed 's/[+?]/\\&/g')': no answer within 1 s \(connect-timeout\)" \
    read1 "$(uri mute)" connect-timeout=1

nbdkit_start ro -r memory 16M || exit 1
check_fails "a read-only export opened read-write is refused (EROFS), naming the URI" \
    "'$(uri ro | sed 's/[+?]/\\&/g')' is a read-only export: open it read-only" \
    "$BLKHOST" run - "$(uri ro)" <<<'require("blkhost").open(arg[1], {format = "nbd"})'
check "a read-only export opens with readonly=on" read1 "$(uri ro)" readonly=on

nbdkit_start err --filter=error memory 16M error-pread=EIO error-pread-rate=1 || exit 1
check_fails "a server's EIO fails the read at once (not retried), naming the URI" \
    "read of 4096 bytes at offset 0 on '$(uri err | sed 's/[+?]/\\&/g')' failed: Input/output error" \
    timeout 20 "$BLKHOST" run "$CLIENT" read "$(uri err)" 0 4096 retry-timeout=30

nbdkit_start m memory 16M || exit 1
check_fails "connections=0 is refused" "connections must be 1 to 16" read1 "$(uri m)" connections=0
check_fails "connections=17 is refused" "connections.*17" read1 "$(uri m)" connections=17
check_fails "retry-timeout=soon is refused" "retry-timeout='soon' is not a number of seconds" \
    read1 "$(uri m)" retry-timeout=soon

nbdkit_start one --filter=limit memory 16M limit=1 || exit 1
check_fails "a server taking one connection: connections=4 fails, naming connection 2 of 4" \
    "cannot connect to '$(uri one | sed 's/[+?]/\\&/g')' \(connection 2 of 4\)" \
    "$BLKHOST" info -f nbd -o connections=4 "$(uri one)"

# A server without write-zeroes: zeroes are written as data; a fast zero
# is refused with ENOTSUP.
nbdkit_start nz --filter=nozero memory 16M || exit 1
out=$("$BLKHOST" run - "$(uri nz)" 2>&1 <<'LUA'
local bh = require "blkhost"
local d <close> = bh.open(arg[1], {format = "nbd"})
d:write(0, string.rep("x", 8192))
d:zero(0, 8192)
assert(d:read(0, 8192) == string.rep("\0", 8192), "zeroes were not written")
local ok, err = pcall(d.zero, d, 0, 4096, {fast = true})
assert(not ok, "a fast zero succeeded")
print(err)
LUA
)
if grep -q "cannot zero fast\|fast zeroing is not supported" <<<"$out"; then
    ok "no write-zeroes on the server: zeroes are written as data, a fast zero fails with ENOTSUP"
else not_ok "no write-zeroes on the server: zeroes are written as data, a fast zero fails with ENOTSUP"; diag "$out"; fi
