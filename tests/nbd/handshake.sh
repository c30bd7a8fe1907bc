#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Slow handshakes: one deadline for the whole handshake, clients in the
# handshake do not take max_clients places, and past max_handshakes new
# clients wait un-greeted instead of being refused.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
plan 11
T=$(mktemp -d); at_exit "rm -rf $T"
truncate -s 8M "$T/disk.img"

start_server a listen="tcp:127.0.0.1:0" persistent=1 max_clients=2 \
    handshake_timeout=3 export="$T/disk.img" || { not_ok "server starts"; exit 1; }
py_tap "$SOURCE_ROOT/tests/nbd/handshake.py" trickle $(hostport a) 3
check "the cut-off is logged with the deadline" \
    grep -q "did not finish the handshake within 3 s" "$T/a.log"
py_tap "$SOURCE_ROOT/tests/nbd/handshake.py" idle $(hostport a) 3
check "the server still serves after 300 idle clients were cut off" \
    nbdinfo --size "$(cat "$T/a.ready")"
stop_server a

# max_handshakes=2: two idle clients fill it; a third waits un-greeted and
# is greeted when one of them goes.
start_server b listen="unix:$T/b.sock" persistent=1 max_handshakes=2 \
    export="$T/disk.img" || { not_ok "server starts"; exit 1; }
out=$(/usr/bin/python3 - "$T/b.sock" <<'PY' 2>&1
import select, socket, sys
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); return s
a, b = conn(), conn()
select.select([a], [], [], 5); select.select([b], [], [], 5)
c = conn()
r, _, _ = select.select([c], [], [], 1.0)
print("third greeted at once" if r else "third waits un-greeted")
a.close()
r, _, _ = select.select([c], [], [], 10.0)
print("third greeted after one left: %s" % bool(r and c.recv(8) == b"NBDMAGIC"))
PY
)
if echo "$out" | grep -q "third waits un-greeted"; then
    ok "max_handshakes=2: a third client waits un-greeted, not refused"
else not_ok "max_handshakes=2: a third client waits un-greeted, not refused"; diag "$out"; fi
if echo "$out" | grep -q "third greeted after one left: True"; then
    ok "max_handshakes=2: it is greeted once a handshake place frees"
else not_ok "max_handshakes=2: it is greeted once a handshake place frees"; diag "$out"; fi
stop_server b

check_fails "max_handshakes=0 is refused with a reason" "max-handshakes must be at least 1" \
    "$BLKHOST" run "$SERVE_LUA" listen="unix:$T/c.sock" max_handshakes=0 export="$T/disk.img"
