#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# A client that stops reading its replies holds only its own requests:
# others are served meanwhile, and it is dropped after send_timeout.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
plan 7
T=$(mktemp -d); at_exit "rm -rf $T"
truncate -s 192M "$T/disk.img"


# threads=2: with the old design both workers would sit in sendmsg().
start_server a listen="tcp:127.0.0.1:0" persistent=1 threads=2 export="$T/disk.img" ||
    { not_ok "server starts"; exit 1; }
py_tap "$SOURCE_ROOT/tests/nbd/slowreader.py" share $(hostport a)
stop_server a; rc=$?
check "the server stops cleanly after the stuck client (exit $rc)" test $rc = 0

# send_timeout=2: the stuck client is dropped; the server goes on.
start_server b listen="tcp:127.0.0.1:0" persistent=1 send_timeout=2 export="$T/disk.img" ||
    { not_ok "server starts"; exit 1; }
out=$(timeout 60 /usr/bin/python3 "$SOURCE_ROOT/tests/nbd/slowreader.py" stuck $(hostport b) 2>&1)
diag "stuck client: $out"
# The server logs the drop once its reply path has wound down, which can
# be just after the client sees the close: wait for the line, not a time.
logged() { grep -q "read none of its replies for 2 s; disconnecting it" "$T/b.log"; }
for _ in $(seq 300); do logged && break; sleep 0.1; done
if echo "$out" | grep -q "^closed after" && logged; then
    ok "send_timeout=2: a client that reads none of its replies is dropped, with a message"
else not_ok "send_timeout=2: a client that reads none of its replies is dropped, with a message"
    diag "$(cat "$T/b.log")"; fi
check "after the drop the server serves others" nbdinfo --size "$(cat "$T/b.ready")"
stop_server b
