#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The nbd client driver when its server goes away: requests in flight
# complete after the server comes back (nbdkit, qemu-nbd), and fail with
# EIO after retry-timeout when it never does.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbdclient/lib.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"
need nbdkit qemu-nbd nbdinfo
plan 11

# nbdkit over a file (its data outlives the server), every request held
# 1 s by the delay filter so that the restart finds them in flight.
head -c 48M /dev/urandom >"$T/disk.img"
backend() { nbdkit_start be --filter=delay file "$T/disk.img" delay-read=1 delay-write=1; }
backend || exit 1

# restart WHAT PROXY: inflight.py through PROXY while nbdkit is killed and
# started again on the same socket.
restart() {
    local what=$1 px=$2 ipid i word rest
    rm -f "$T/ready"
    /usr/bin/python3 "$SOURCE_ROOT/tests/nbdclient/inflight.py" "$(uri "$px")" "$T/disk.img" \
        "$T/ready" >"$T/$px.inflight" 2>&1 &
    ipid=$!
    for i in $(seq 1 200); do [ -e "$T/ready" ] && break; sleep 0.05; done
    sleep 0.3          # the proxy has passed them on; nbdkit holds them
    kill_hard be
    sleep 0.5
    backend || return 1
    wait $ipid
    while read -r word rest; do
        case $word in PASS) ok "$what: $rest" ;; FAIL) not_ok "$what: $rest" ;; esac
    done <"$T/$px.inflight"
    [ "$(grep -c '^PASS\|^FAIL' "$T/$px.inflight")" = 3 ] ||
        { not_ok "$what: inflight.py ran to its end"; diag "$(cat "$T/$px.inflight")"; }
    if grep -q "lost" "$T/$px.log" && grep -q "is back" "$T/$px.log"; then
        ok "$what: the driver says on stderr that the connection was lost and is back"
    else not_ok "$what: the driver says on stderr that the connection was lost and is back"; diag "$(cat "$T/$px.log")"; fi
}
proxy_start px "$(uri be)" || exit 1
restart "nbdkit restart" px
kill_hard px
proxy_lua_start px2 "$(uri be)" connections=2 || exit 1
restart "nbdkit restart, 2 connections" px2
kill_hard px2

# qemu-nbd killed and started again while a reader keeps reading.
qemu_nbd_start q -t -f raw -x disk "$T/disk.img" || exit 1
rm -f "$T/stop"
client readloop "$(uri q disk)" "$T/disk.img" "$T/stop" reconnect-delay=0.05 \
    >"$T/loop.out" 2>"$T/loop.err" &
lpid=$!
sleep 0.5
kill_hard q
sleep 0.3
qemu_nbd_start q -t -f raw -x disk "$T/disk.img" || exit 1
sleep 0.5
touch "$T/stop"
wait $lpid
if grep -qE '^reads [0-9]+ bad 0$' "$T/loop.out" && grep -q 'is back' "$T/loop.err"; then
    ok "qemu-nbd restart: every read during the restart returned the file's bytes ($(cat "$T/loop.out"))"
else not_ok "qemu-nbd restart: every read during the restart returned the file's bytes"; diag "$(cat "$T/loop.out" "$T/loop.err")"; fi

# A server that dies mid-request and never comes back: a read held 2 s
# by nbdkit, which is killed after 0.5 s.
# gone NAME RETRY_TIMEOUT PATTERN DESC
gone() {
    local name=$1 retry=$2 pat=$3 desc=$4 rpid rc start=$SECONDS
    nbdkit_start "$name" --filter=delay memory 16M delay-read=2 || return 1
    timeout 60 "$BLKHOST" run "$CLIENT" read "$(uri "$name")" 0 65536 retry-timeout="$retry" \
        >"$T/$name.out" 2>&1 &
    rpid=$!
    sleep 0.5
    kill_hard "$name"
    wait $rpid; rc=$?
    if [ $rc = 1 ] && grep -q -- "$pat" "$T/$name.out"; then
        ok "$desc ($((SECONDS - start)) s, no hang)"
    else not_ok "$desc"; diag "rc=$rc"; diag "$(cat "$T/$name.out")"; fi
}
gone gone 1 "read at offset 0 on '$(uri gone)' failed: the connection was lost and did not come back within retry-timeout (1 s)" \
    "server gone for good: the read fails with EIO after retry-timeout=1, naming the URI"
gone gone0 0 "within retry-timeout (0 s)" \
    "retry-timeout=0: a request in flight fails at once when the connection is lost"
