#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The shape of read replies: their bytes arrive intact with TLS off and
# on (replies.py), and, seen with strace, a 4 KiB read's reply leaves the
# server in one system call (header and data gathered), over TLS in one
# record sent by the worker that ran the read, not by the connection's
# writer thread, when nothing else is queued.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/nbd/lib.sh"
need psktool python3 strace
printf '%s\n' 'local bh = require "blkhost"' \
    'bh.nbd.server{listen="unix:'"$T"'/probe", tls={mode="require", psk_file="/nonexistent"}}' > "$T/probe.lua"
TLS=1
if ! out=$("$BLKHOST" run "$T/probe.lua" 2>&1) && echo "$out" | grep -q "without GnuTLS"; then
    TLS=0
fi
plan 20
MiB=1048576

# 36 MiB of random data, then at 40 MiB 16 periods of 128 KiB, each
# 4 KiB of data, a 60 KiB hole, 64 KiB of data; a hole up to 72 MiB.
dd if=/dev/urandom of="$T/disk.img" bs=1M count=36 status=none
truncate -s 72M "$T/disk.img"
for i in $(seq 0 15); do
    dd if=/dev/urandom of="$T/disk.img" bs=4k count=1 conv=notrunc status=none \
        seek=$(((40 * MiB + i * 131072) / 4096))
    dd if=/dev/urandom of="$T/disk.img" bs=64k count=1 conv=notrunc status=none \
        seek=$(((40 * MiB + i * 131072 + 65536) / 65536))
done
psktool -u alice -p "$T/keys.psk" >/dev/null
PU="nbd+unix:///?socket=$T/s.sock"
TU="nbds+unix://alice@/?socket=$T/s.sock&tls-psk-file=$T/keys.psk"
if [ $TLS = 1 ]; then
    start_server a listen="unix:$T/s.sock" persistent=1 threads=2 tls=on \
        tls_psk="$T/keys.psk" export="$T/disk.img" || { not_ok "server starts"; exit 1; }
else
    start_server a listen="unix:$T/s.sock" persistent=1 threads=2 \
        export="$T/disk.img" || { not_ok "server starts"; exit 1; }
fi

# 9 results per URI
if [ $TLS = 1 ]; then
    py_tap "$SOURCE_ROOT/tests/nbd/replies.py" "$T/disk.img" "$PU" "$TU"
else
    py_tap "$SOURCE_ROOT/tests/nbd/replies.py" "$T/disk.img" "$PU"
    for i in $(seq 1 9); do skip "TLS replies: this build has no TLS"; done
fi

# ---- system calls per reply ----
# The workers exist before any client connects; a connection's writer
# thread is started with it.
workers=$(grep -l '^nbd-worker' /proc/"$a_pid"/task/*/comm | cut -d/ -f5 | sort)
[ -n "$workers" ] || diag "no nbd-worker threads found in /proc/$a_pid/task"
strace -f -qq -e trace=sendmsg,sendto,send,writev,write -o "$T/trace" -p "$a_pid" 2>"$T/strace.err" &
spid=$!
at_exit "kill $spid 2>/dev/null"
traced() {   # every thread of the server has a tracer
    local f
    for f in /proc/"$a_pid"/task/*/status; do
        grep -q '^TracerPid:[[:space:]]*0$' "$f" && return 1
    done
    return 0
}
for i in $(seq 1 200); do traced && break; sleep 0.05; done
traced || diag "strace did not attach: $(cat "$T/strace.err")"

# One connection at a time, 20 sequential 4 KiB reads each: nothing is
# ever queued behind a reply, so no send can find the socket busy.
cat >"$T/seq.py" <<'PY'
import sys, nbd
uri, structured = sys.argv[1], sys.argv[2] == "1"
h = nbd.NBD(); h.set_uri_allow_local_file(True)
h.set_request_structured_replies(structured); h.connect_uri(uri)
for i in range(20):
    h.pread(4096, i * 1048576 + 512)
h.shutdown()
PY
/usr/bin/python3 "$T/seq.py" "$PU" 1 && /usr/bin/python3 "$T/seq.py" "$PU" 0 ||
    diag "the plain clients failed"
[ $TLS = 1 ] && { /usr/bin/python3 "$T/seq.py" "$TU" 1 || diag "the TLS client failed"; }
kill -INT "$spid"; wait "$spid" 2>/dev/null
# KEEP_TRACE=FILE keeps the trace for a look after the test.
[ -n "${KEEP_TRACE:-}" ] && cp "$T/trace" "$KEEP_TRACE"

# Lines: "TID sendmsg(...) = BYTES".
count() { awk -v lo="$1" -v hi="$2" '$NF+0 >= lo && $NF+0 <= hi && $(NF-1) == "=" { n++ } END { print n+0 }' "$T/trace"; }
n_struct=$(count 4124 4124)    # 20-byte chunk header + offset + 4096
n_simple=$(count 4112 4112)    # 16-byte simple reply header + 4096
n_data=$(count 4096 4096)
if [ "$n_struct" = 20 ] && [ "$n_simple" = 20 ] && [ "$n_data" = 0 ]; then
    ok "plain: each 4 KiB read reply, structured or simple, is one system call with header and data"
else
    not_ok "plain: each 4 KiB read reply, structured or simple, is one system call with header and data"
    diag "sends of 4124 bytes: $n_struct, of 4112: $n_simple, of 4096 alone: $n_data (20, 20, 0 expected)"
    diag "$(grep -E '= (4096|4112|4124)$' "$T/trace" | head -5)"
fi
if [ $TLS = 1 ]; then
    # A TLS record of 4124 bytes of plaintext: 4124 plus at most 64 of
    # record header, padding, content type and tag.
    n_tls=$(count 4125 4188)
    from_workers=$(awk '$NF+0 >= 4125 && $NF+0 <= 4188 && $(NF-1) == "=" { print $1 }' "$T/trace" |
        sort -u | comm -23 - <(echo "$workers") | wc -l)
    if [ "$n_tls" = 20 ] && [ "$from_workers" = 0 ]; then
        ok "TLS: each 4 KiB read reply is one record in one system call, sent by a worker thread"
    else
        not_ok "TLS: each 4 KiB read reply is one record in one system call, sent by a worker thread"
        diag "records of 4125..4188 bytes: $n_tls (20 expected), sent by threads other than the workers ($workers): $from_workers"
        diag "$(awk '$NF+0 >= 4100 && $NF+0 <= 4200' "$T/trace" | head -5)"
    fi
else
    skip "TLS replies: this build has no TLS"
fi
stop_server a
