#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# What goes wrong with an RBD image, each said naming pool, image and
# cause: no such pool or image, permission denied and a bad key (on a
# cluster with cephx on), a cluster nobody answers for (a timeout, not a
# hang), and an image another client holds: refused naming its address,
# until that client dies and its lock is taken over.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/ceph/lib.sh"
need rbd ceph ceph-authtool python3
plan 12
ceph_up cephx

rbd create --size 8M rbd/img >/dev/null 2>&1
ceph osd pool create other 8 >/dev/null 2>&1
ceph auth get-or-create client.limited mon 'profile rbd' osd 'profile rbd pool=other' \
    >"$T/limited.keyring" 2>/dev/null

check_fails "rbd:nopool/img: refused as no such pool, naming it" \
    "cannot open 'nopool/img': no such pool" "$BLKHOST" info rbd:nopool/img
check_fails "rbd:rbd/nosuch: refused as no such image, naming it" \
    "cannot open 'rbd/nosuch': no such image" "$BLKHOST" info rbd:rbd/nosuch
check_fails "rbd:rbd/img as a user whose caps cover another pool: permission denied" \
    "cannot open 'rbd/img': permission denied" \
    "$BLKHOST" info "rbd:rbd/img:id=limited:keyring=$T/limited.keyring"
check_fails "rbd:rbd/img with a wrong key_secret: authentication failed, naming the user" \
    "cannot connect to the Ceph cluster for 'rbd/img' as client.admin .*authentication failed" \
    "$BLKHOST" run - <<'LUA'
require("blkhost").open("rbd:rbd/img", { format = "rbd",
    key_secret = "AQBvaBJkAAAAABAAwAk6oyWmh4b5OyvAc5Z6Ng==", keyring = "/nonexistent" })
LUA

# Nobody listens on the monitor's port: a timeout, within the limit.
port=$(ceph_free_port)
printf '[global]\nmon host = v2:127.0.0.1:%s\nauth client required = none\n' "$port" >"$T/dead.conf"
start=$SECONDS
check_fails "a cluster nobody answers for (connect-timeout=2): refused as a timeout, naming the monitors" \
    "cannot connect to the Ceph cluster for 'rbd/img' .*monitors: .*127.0.0.1:$port.*no monitor answered" \
    env -u CEPH_ARGS -u CEPH_CONF "$BLKHOST" run - "$T/dead.conf" <<'LUA'
require("blkhost").open("rbd:rbd/img", { format = "rbd", conf = arg[1],
                                         ["connect-timeout"] = "2" })
LUA
took=$((SECONDS - start))
if [ $took -le 15 ]; then ok "... and it gave up after ${took} s, not hanging"
else not_ok "... and it gave up after ${took} s, not hanging"; fi
check_fails "connect-timeout=0 is refused as not a number of seconds above 0" \
    "connect-timeout='0' is not a number of seconds above 0" \
    "$BLKHOST" run - <<<'require("blkhost").open("rbd:rbd/img", { format = "rbd", ["connect-timeout"] = "0" })'
check_fails "rbd:rbd (no image) is refused with QEMU's syntax in the message" \
    "names no pool and image" "$BLKHOST" info rbd:rbd

# A live holder of the exclusive lock: a blkhost server.
serve_rbd img -f raw rbd:rbd/img || exit 1
holder=$(rbd lock ls rbd/img --format json 2>/dev/null | python3 -c 'import json,sys; l=json.load(sys.stdin); print(l[0]["address"] if l else "")')
check_fails "a writable open while blkhost serves rbd:rbd/img is refused, naming the holder's address ($holder)" \
    "'rbd/img' is locked: client\.[0-9]+ at ${holder:-NONE} holds its exclusive lock" \
    "$BLKHOST" snapshot -c x rbd:rbd/img
check "... while a read-only open (blkhost info) still works" "$BLKHOST" info rbd:rbd/img

# The holder dies: its watch times out (osd client watch timeout = 6 s
# here) and the next writer breaks the lock and goes on.
kill -9 "$img_pid"
start=$SECONDS
until "$BLKHOST" snapshot -c after-failover rbd:rbd/img >"$T/failover.log" 2>&1; do
    [ $((SECONDS - start)) -gt 60 ] && break
    sleep 1
done
took=$((SECONDS - start))
if rbd snap ls rbd/img 2>/dev/null | grep -q after-failover; then
    ok "after the holder is killed, a new writer takes the lock over (${took} s) and snapshots"
else not_ok "after the holder is killed, a new writer takes the lock over"; diag "$(cat "$T/failover.log")"; fi

# An advisory lock (rbd lock add) is refused by its cookie, and kept.
rbd lock add rbd/img mine >/dev/null 2>&1
check_fails "an image with an advisory lock (rbd lock add ... mine) is refused, naming the cookie" \
    "'rbd/img' is locked: client\.[0-9]+ at .* holds its advisory exclusive lock \(cookie 'mine'" \
    "$BLKHOST" snapshot -c y rbd:rbd/img
