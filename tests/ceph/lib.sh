# SPDX-License-Identifier: BSD-3-Clause
# Shared by the ceph tests: skip when the rbd driver or Ceph is missing,
# then one cluster per test file (cluster.sh) under $T/ceph.  Source after
# tests/tap.sh.  ceph_up [cephx] starts it; the helpers below talk to it.
[ -f "$BUILD_ROOT/drivers/rbd/rbd.so" ] ||
    skip_all "the rbd driver is not built (install librbd-dev and reconfigure)"
source "$SOURCE_ROOT/tests/ceph/cluster.sh"
# The nbdclient tests' Lua client drives any node (format=rbd given).
CLIENT="$SOURCE_ROOT/tests/nbdclient/client.lua"
client() { "$BLKHOST" run "$CLIENT" "$@"; }
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

# wait_sock PATH PID: until the Unix socket PATH exists or PID is gone.
wait_sock() {
    local i
    for i in $(seq 1 300); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# serve NAME ARGS...: `blkhost nbd ARGS` on $T/NAME.sock in the
# background (pid in NAME_pid, log in $T/NAME.log).
serve() {
    local name=$1; shift
    rm -f "$T/$name.sock"
    "$BLKHOST" nbd -t -k "$T/$name.sock" "$@" >"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    at_exit "kill -9 $! 2>/dev/null"
    wait_sock "$T/$name.sock" $! || { diag "blkhost nbd $name did not start:"; diag "$(cat "$T/$name.log")"; return 1; }
}
uri() { echo "nbd+unix:///?socket=$T/$1.sock"; }
