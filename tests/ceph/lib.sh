# SPDX-License-Identifier: BSD-3-Clause
# Shared by the ceph tests: skip when the rbd driver or Ceph is missing,
# then one cluster per test file (cluster.sh) under $T/ceph.  Source after
# tests/tap.sh.  ceph_up [cephx] starts it; the helpers below talk to it.
[ -f "$BUILD_ROOT/drivers/rbd/rbd.so" ] ||
    skip_all "the rbd driver is not built (install librbd-dev and reconfigure)"
source "$SOURCE_ROOT/tests/ceph/cluster.sh"
# The nbdclient tests' helpers: servers on $T/NAME.sock (serve,
# wait_sock, uri) and their Lua client, which drives any node (format=rbd
# given).
source "$SOURCE_ROOT/tests/nbdclient/lib.sh"
MiB=1048576

ceph_up() {
    ceph_start "$T/ceph" "$@" || {
        diag "the one-node cluster did not come up:"
        diag "$(tail -n 20 "$T"/ceph/log/*.out "$T"/ceph/log/mon.a.log 2>/dev/null)"
        echo "Bail out! no Ceph cluster"
        exit 1
    }
}

# rbd_export IMG[@SNAP] FILE: the image's bytes as Ceph's own tool sees them.
rbd_export() { rbd export --no-progress "rbd/$1" "$2" >/dev/null 2>&1; }
# serve_rbd NAME ARGS...: `blkhost nbd ARGS` on $T/NAME.sock.
serve_rbd() { local n=$1; shift; serve "$n" "$BLKHOST" nbd -t -k "$T/$n.sock" "$@"; }
# stop PID: SIGTERM, then wait (10 s at most) until it is gone, so that the
# image's lock is free for the next check.
stop() {
    local i
    kill "$1" 2>/dev/null
    for i in $(seq 1 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
    kill -9 "$1" 2>/dev/null
}
