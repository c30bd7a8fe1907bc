#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The stuck-reader cases of slowreader.sh over TLS (PSK): the TLS reply
# path is the connection's writer thread, so a TLS client that stops
# reading stalls only itself, and send_timeout drops it.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
need psktool python3
T=$(mktemp -d); at_exit "rm -rf $T"
printf '%s\n' 'local bh = require "blkhost"' \
    'bh.nbd.server{listen="unix:'"$T"'/probe", tls={mode="require", psk_file="/nonexistent"}}' > "$T/probe.lua"
if ! out=$("$BLKHOST" run "$T/probe.lua" 2>&1) && echo "$out" | grep -q "without GnuTLS"; then
    skip_all "this build has no TLS: $out"
fi
plan 5
truncate -s 192M "$T/disk.img"
psktool -u alice -p "$T/keys.psk" >/dev/null
U() { echo "nbds+unix://alice@/?socket=$T/$1.sock&tls-psk-file=$T/keys.psk"; }

# A libnbd client that queues 16 reads of 8 MiB and never polls its
# handle again: it reads none of the replies.  Simple replies, since the
# sparse image would otherwise be answered with small hole chunks.
cat >"$T/stuck.py" <<'PY'
import sys, time, nbd
mode, u = sys.argv[1], sys.argv[2]
def connect(structured=True):
    h = nbd.NBD(); h.set_uri_allow_local_file(True)
    h.set_request_structured_replies(structured); h.connect_uri(u)
    return h
a = connect(False)
for i in range(16):
    a.aio_pread(nbd.Buffer(8 << 20), i * (8 << 20))
time.sleep(1)
if mode == "share":
    b = connect()
    lat = []
    for i in range(100):
        t = time.monotonic(); b.pread(4096, i * 4096); lat.append(time.monotonic() - t)
    b.shutdown()
    print("second client: %d reads of 4 KiB over TLS, max %.1f ms" % (len(lat), 1000 * max(lat)))
    print("stuck client still connected: %s" % (a.aio_in_flight() == 16))
else:
    time.sleep(float(sys.argv[3]))
PY

start_server a listen="unix:$T/a.sock" persistent=1 threads=2 tls=require \
    tls_psk="$T/keys.psk" export="$T/disk.img" || { not_ok "server starts"; exit 1; }
out=$(timeout 120 /usr/bin/python3 "$T/stuck.py" share "$(U a)" 2>&1)
diag "$out"
if echo "$out" | grep -q "second client: 100 reads"; then
    ok "TLS: with a client stuck on 16 reads of 8 MiB, a second TLS client's 100 reads of 4 KiB complete"
else not_ok "TLS: with a client stuck on 16 reads of 8 MiB, a second TLS client's 100 reads of 4 KiB complete"; fi
max=$(echo "$out" | sed -n 's/.*max \([0-9.]*\) ms.*/\1/p')
check "TLS: no read of the second client took seconds (max ${max:-?} ms)" \
    awk -v m="${max:-99999}" 'BEGIN { exit !(m < 5000) }'
check "TLS: ...while the stuck client was still connected" grep -q "still connected: True" <<<"$out"
stop_server a

start_server b listen="unix:$T/b.sock" persistent=1 send_timeout=2 tls=require \
    tls_psk="$T/keys.psk" export="$T/disk.img" || { not_ok "server starts"; exit 1; }
timeout 60 /usr/bin/python3 "$T/stuck.py" hold "$(U b)" 8 >/dev/null 2>&1
check "TLS, send_timeout=2: the stuck client is dropped with a message" \
    grep -q "read none of its replies for 2 s; disconnecting it" "$T/b.log"
check "TLS: after the drop the server serves others" nbdinfo --size "$(U b)"
stop_server b
