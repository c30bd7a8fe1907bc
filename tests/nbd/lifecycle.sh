#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Server life cycle: graceful SIGTERM (flushed, socket removed), exit when
# the last client leaves unless persistent, max-clients, TCP on IPv4 and
# IPv6, systemd socket activation, connect/disconnect events.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"
need nbdinfo qemu-io
plan 15

truncate -s 8M "$T/disk.img"

# --- SIGTERM: data written by a client is on disk, socket file removed.
start_server a listen="unix:$T/a.sock" persistent=1 export="$T/disk.img" ||
    { not_ok "server starts"; exit 1; }
qemu-io -f raw -c 'write -P 0x42 0 64k' "nbd+unix:///?socket=$T/a.sock" >/dev/null 2>&1
# qemu-io returns once it has sent its disconnect; the server notices on
# its own time.  Let the disconnect event come before SIGTERM, so that test
# 3 asks whether the callbacks run, not who wins that race (a loaded ASan
# run lost it once).
for _ in $(seq 100); do grep -q '^event disconnect' "$T/a.log" && break; sleep 0.1; done
stop_server a; rc=$?
if [ $rc -eq 0 ] && [ ! -e "$T/a.sock" ] && grep -q '^stopped' "$T/a.log"; then
    ok "SIGTERM: bh.loop returns, server stops, exit 0, socket removed"
else not_ok "SIGTERM: bh.loop returns, server stops, exit 0, socket removed"; diag "rc=$rc"; diag "$(cat "$T/a.log")"; fi
check "data written before SIGTERM is in the image" \
    bash -c "cmp -n 65536 '$T/disk.img' <(head -c 65536 /dev/zero | tr '\\0' 'B')"
if grep -q '^event connect 1 unix' "$T/a.log" && grep -q '^event disconnect 1 unix' "$T/a.log"; then
    ok "on_connect and on_disconnect callbacks ran with id and peer"
else not_ok "on_connect and on_disconnect callbacks ran with id and peer"; diag "$(cat "$T/a.log")"; fi

# --- not persistent: serves until its last client leaves.
start_server b listen="unix:$T/b.sock" export="$T/disk.img" ||
    not_ok "non-persistent server starts"
sleep 0.3
if kill -0 "$b_pid" 2>/dev/null; then ok "non-persistent server waits for its first client"
else not_ok "non-persistent server waits for its first client"; fi
nbdinfo --size "nbd+unix:///?socket=$T/b.sock" >/dev/null 2>&1
if wait_gone "$b_pid" && [ ! -e "$T/b.sock" ]; then
    ok "non-persistent server exits when its last client leaves, socket removed"
else not_ok "non-persistent server exits when its last client leaves, socket removed"; fi

# --- max-clients: as with qemu-nbd, a client beyond it is not refused but
# waits un-greeted until a place frees; then it is served.
start_server c listen="unix:$T/c.sock" persistent=1 max_clients=1 export="$T/disk.img" ||
    not_ok "max-clients server starts"
out=$(/usr/bin/python3 - "$T/c.sock" <<'PY' 2>&1
import select, socket, sys, nbd
u = "nbd+unix:///?socket=" + sys.argv[1]
a = nbd.NBD(); a.connect_uri(u)
b = socket.socket(socket.AF_UNIX); b.connect(sys.argv[1])
r, _, _ = select.select([b], [], [], 1.0)
print("second greeted while full" if r else "second waits un-greeted")
a.shutdown()
r, _, _ = select.select([b], [], [], 10.0)
print("second greeted once the first left: %s" % (r and b.recv(8) == b"NBDMAGIC"))
b.close()
c = nbd.NBD(); c.connect_uri(u); print("third connected"); c.shutdown()
PY
)
if echo "$out" | grep -q "second waits un-greeted"; then
    ok "max_clients=1: a second client waits un-greeted while the first is served"
else not_ok "max_clients=1: a second client waits un-greeted while the first is served"; diag "$out"; fi
if echo "$out" | grep -q "greeted once the first left: True" && echo "$out" | grep -q "third connected"; then
    ok "max_clients=1: the waiting client is greeted once the first leaves, a later one served"
else not_ok "max_clients=1: the waiting client is greeted once the first leaves, a later one served"; diag "$out"; fi
stop_server c

# --- TCP IPv4 and IPv6 (port 0: any free port; the URI says which).
start_server d listen="tcp:127.0.0.1:0" persistent=1 export="$T/disk.img" ||
    not_ok "TCP server starts"
uri=$(cat "$T/d.ready")
if [[ $uri == nbd://127.0.0.1:*/ ]] && nbdinfo --size "$uri" 2>/dev/null | grep -q 8388608; then
    ok "TCP IPv4: $uri serves the export"
else not_ok "TCP IPv4 serves the export"; diag "uri=$uri"; fi
stop_server d
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
    start_server e listen="tcp:[::1]:0" persistent=1 export="$T/disk.img" ||
        not_ok "TCP IPv6 server starts"
    uri=$(cat "$T/e.ready")
    if [[ $uri == "nbd://[::1]:"*/ ]] && nbdinfo --size "$uri" 2>/dev/null | grep -q 8388608; then
        ok "TCP IPv6: $uri serves the export"
    else not_ok "TCP IPv6 serves the export"; diag "uri=$uri"; diag "$(cat "$T/e.log")"; fi
    stop_server e
else
    skip "no IPv6 loopback here"
fi
"$BLKHOST" run "$SERVE_LUA" listen="tcp:127.0.0.1:notaport" export="$T/disk.img" >"$T/f.log" 2>&1
if [ $? -ne 0 ] && grep -q "expected tcp:HOST:PORT" "$T/f.log"; then
    ok "a bad listen address is refused with a clear message"
else not_ok "a bad listen address is refused with a clear message"; diag "$(cat "$T/f.log")"; fi

# --- systemd socket activation: no listen= given, LISTEN_FDS=1.
/usr/bin/python3 "$SOURCE_ROOT/tests/nbd/sdactivate.py" "$T/sd.sock" \
    "$BLKHOST" run "$SERVE_LUA" ready="$T/sd.ready" persistent=1 \
    export="$T/disk.img" >"$T/sd.log" 2>&1 &
sd_pid=$!
at_exit "kill $sd_pid 2>/dev/null"
for i in $(seq 1 100); do [ -s "$T/sd.ready" ] && break; sleep 0.05; done
if nbdinfo --size "nbd+unix:///?socket=$T/sd.sock" 2>/dev/null | grep -q 8388608; then
    ok "systemd socket activation (LISTEN_PID/LISTEN_FDS) serves the export"
else not_ok "systemd socket activation serves the export"; diag "$(cat "$T/sd.log")"; fi
if grep -q "uri nbd+unix:///?socket=$T/sd.sock" "$T/sd.log"; then
    ok "URI of an activated socket names its path"
else not_ok "URI of an activated socket names its path"; diag "$(cat "$T/sd.log")"; fi
kill -TERM $sd_pid; wait $sd_pid
if [ -e "$T/sd.sock" ]; then ok "an activated socket file is left to its owner"
else not_ok "an activated socket file is left to its owner"; fi

# --- a stale socket file is replaced; a regular file is not.
rm -f "$T/stale.sock"
/usr/bin/python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$T/stale.sock"
echo data > "$T/regular"
start_server g listen="unix:$T/stale.sock" persistent=1 export="$T/disk.img" &&
truncate -s 1M "$T/other.img"; "$BLKHOST" run "$SERVE_LUA" listen="unix:$T/regular" export="$T/other.img" >"$T/h.log" 2>&1
if [ $? -ne 0 ] && grep -q "not a socket" "$T/h.log" && [ "$(cat "$T/regular")" = data ]; then
    ok "stale socket file replaced; a regular file at the path is refused, untouched"
else not_ok "stale socket file replaced; a regular file at the path is refused, untouched"; diag "$(cat "$T/h.log")"; fi
stop_server g

# --- SIGTERM with requests in flight: 20 reads of 4 MiB are queued and
# the client reads no reply until after the signal; every reply still
# arrives whole, then the server closes the connection and exits.
truncate -s 8M "$T/big.img"
printf 'in-flight' | dd of="$T/big.img" bs=1 seek=4194304 conv=notrunc status=none
start_server i listen="unix:$T/i.sock" persistent=1 export="$T/big.img" ||
    not_ok "server for the in-flight test starts"
out=$(/usr/bin/python3 - "$T/i.sock" "$i_pid" <<'PY' 2>&1
import os, signal, socket, struct, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(20)
def rd(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b
rd(18); s.sendall(struct.pack(">I", 1))
s.sendall(struct.pack(">QIII", 0x49484156454F5054, 7, 6, 0) + b"\0\0")
while True:
    _, _, typ, ln = struct.unpack(">QIII", rd(20))
    rd(ln)
    if typ == 1:
        break
for i in range(20):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, i, 4194304, 4 << 20))
time.sleep(0.3)
os.kill(int(sys.argv[2]), signal.SIGTERM)
time.sleep(0.3)
got = 0
for i in range(20):
    magic, err, cookie = struct.unpack(">IIQ", rd(16))
    data = rd(4 << 20)
    if err == 0 and data.startswith(b"in-flight"):
        got += 1
print("answered", got)
print("eof" if s.recv(1) == b"" else "open")
PY
)
if echo "$out" | grep -q "answered 20" && echo "$out" | grep -q eof && wait_gone "$i_pid"; then
    ok "SIGTERM with 20 x 4 MiB reads in flight: all answered whole, then closed"
else not_ok "SIGTERM with 20 x 4 MiB reads in flight: all answered whole, then closed"; diag "$out"; diag "$(cat "$T/i.log")"; fi
