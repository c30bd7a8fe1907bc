# SPDX-License-Identifier: BSD-3-Clause
# A throwaway one-node Ceph cluster for the rbd tests and bench/rbd.sh.
# Source it after tests/tap.sh (or define skip_all and at_exit), then:
#
#   ceph_start DIR        # mon + one memstore osd + pool "rbd"; exports
#                         # CEPH_CONF, CEPH_ARGS; stopped at exit
#   rbd create --size 64M rbd/img
#
# One mon and one OSD on 127.0.0.1, authentication off (cephx is turned
# on by ceph_start_cephx for the permission tests), data in memory
# (memstore) capped at CEPH_MEMSTORE_MB (default 512) so several test
# files at once stay within a small machine's memory.  Skips the whole
# test file (TAP "1..0 # SKIP") when the ceph packages are missing.

# A TCP port nobody listens on, chosen by the kernel.
ceph_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ceph_wait SECONDS CMD...: retry CMD until it succeeds or time is up.
ceph_wait() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $end ] && return 1
        sleep 0.5
    done
}

ceph_stop() {
    local p
    for p in ${CEPH_PIDS:-}; do kill "$p" 2>/dev/null; done
    for p in ${CEPH_PIDS:-}; do
        local i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null
    done
    CEPH_PIDS=
}

# ceph_start DIR [cephx]: bring the cluster up under DIR.
ceph_start() {
    local dir=$1 auth=${2:-none}
    local c
    for c in ceph-mon ceph-osd ceph monmaptool rbd; do
        command -v $c >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
        command -v $c >/dev/null 2>&1 ||
            skip_all "$c is not installed (apt-get install ceph-mon ceph-osd ceph-common)"
    done
    mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
    local port
    port=$(ceph_free_port) || skip_all "no free TCP port"
    CEPH_MON_ADDR=127.0.0.1:$port
    CEPH_CONF=$dir/ceph.conf
    local fsid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    cat > "$CEPH_CONF" <<CONF
[global]
fsid = $fsid
mon host = v2:$CEPH_MON_ADDR
auth cluster required = $auth
auth service required = $auth
auth client required = $auth
auth allow insecure global id reclaim = true
keyring = $dir/keyring
run dir = $dir/run
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = $(( ${CEPH_MEMSTORE_MB:-512} * 1024 * 1024 ))
osd memory target = 268435456
osd op num shards = 1
osd op num threads per shard = 2
ms bind ipv6 = false
ms bind msgr1 = false
rbd default features = layering, exclusive-lock, object-map, fast-diff, deep-flatten
client mount timeout = 10
rados mon op timeout = 10
rados osd op timeout = 30
[mon]
admin socket = $dir/run/\$name.asok
[osd]
admin socket = $dir/run/\$name.asok
osd client watch timeout = 6
[client]
admin socket =
log file = $dir/log/client.log
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd
CONF
    export CEPH_CONF CEPH_MON_ADDR
    CEPH_ARGS="--conf $CEPH_CONF"
    export CEPH_ARGS
    if [ "$auth" = cephx ]; then
        ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. \
            --cap mon 'allow *' >/dev/null &&
        ceph-authtool "$dir/keyring" --gen-key -n client.admin \
            --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null ||
            skip_all "ceph-authtool failed"
    else
        : > "$dir/keyring"
    fi
    monmaptool --create --fsid "$fsid" --add a "$CEPH_MON_ADDR" "$dir/monmap" >/dev/null ||
        skip_all "monmaptool failed"
    ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
        >"$dir/log/mkfs-mon.out" 2>&1 ||
        { cat "$dir/log/mkfs-mon.out" >&2; skip_all "ceph-mon --mkfs failed"; }
    at_exit ceph_stop
    ceph-mon -i a -f >"$dir/log/mon.out" 2>&1 &
    CEPH_PIDS="$!"
    ceph_wait 30 ceph -s || { tail -5 "$dir/log/mon.out" >&2; return 1; }
    local id
    id=$(ceph osd create) || return 1
    if [ "$auth" = cephx ]; then
        ceph auth get-or-create osd.$id mon 'allow profile osd' osd 'allow *' \
            mgr 'allow profile osd' >> "$dir/keyring" || return 1
    fi
    ceph-osd -i "$id" --mkfs --osd-uuid "$(cat /proc/sys/kernel/random/uuid)" \
        >"$dir/log/mkfs-osd.out" 2>&1 || { cat "$dir/log/mkfs-osd.out" >&2; return 1; }
    ceph osd crush add osd.$id 1.0 host=localhost root=default >/dev/null 2>&1 || return 1
    ceph-osd -i "$id" -f >"$dir/log/osd.out" 2>&1 &
    CEPH_PIDS="$CEPH_PIDS $!"
    ceph osd pool create rbd 8 >/dev/null 2>&1 || return 1
    ceph osd pool set rbd size 1 --yes-i-really-mean-it >/dev/null 2>&1
    ceph_wait 60 rbd pool init rbd || { tail -5 "$dir/log/osd.out" >&2; return 1; }
}
