# SPDX-License-Identifier: BSD-3-Clause
# Shared by the nbdclient tests: servers (nbdkit, qemu-nbd, the blkhost
# proxy) on Unix sockets in $T, and the client helper.  Source after
# tests/tap.sh.
[ -f "$BUILD_ROOT/drivers/nbd/nbd.so" ] ||
    skip_all "the nbd driver is not built (install libnbd-dev and reconfigure)"
CLIENT="$SOURCE_ROOT/tests/nbdclient/client.lua"
client() { "$BLKHOST" run "$CLIENT" "$@"; }
uri() { echo "nbd+unix:///${2:-}?socket=$T/$1.sock"; }

# wait_sock NAME PID: until $T/NAME.sock is there (servers make it when
# they accept) or PID is gone (10 s).
wait_sock() {
    local i
    for i in $(seq 1 200); do
        [ -S "$T/$1.sock" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# nbdkit_start NAME ARGS...: nbdkit in the foreground of a background job
# on $T/NAME.sock; its pid in NAME_pid.
nbdkit_start() {
    local name=$1; shift
    rm -f "$T/$name.sock"
    nbdkit -f -U "$T/$name.sock" "$@" >>"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    disown $!
    at_exit "kill -9 $! 2>/dev/null"
    wait_sock "$name" $! || { diag "nbdkit $name did not start:"; diag "$(cat "$T/$name.log")"; return 1; }
}

# qemu_nbd_start NAME ARGS...: the same for qemu-nbd (-x names the export).
qemu_nbd_start() {
    local name=$1; shift
    rm -f "$T/$name.sock"
    qemu-nbd -k "$T/$name.sock" "$@" >>"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    disown $!
    at_exit "kill -9 $! 2>/dev/null"
    local i
    for i in $(seq 1 200); do
        [ -S "$T/$name.sock" ] && return 0
        sleep 0.05
    done
    diag "qemu-nbd $name did not start:"; diag "$(cat "$T/$name.log")"; return 1
}

# proxy_start NAME URI [blkhost nbd options...]: blkhost's nbd driver
# re-exported by `blkhost nbd` on $T/NAME.sock.
proxy_start() {
    local name=$1 target=$2; shift 2
    rm -f "$T/$name.sock"
    "$BLKHOST" nbd -f nbd -k "$T/$name.sock" -t "$@" "$target" >>"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    disown $!
    at_exit "kill -9 $! 2>/dev/null"
    wait_sock "$name" $! || { diag "proxy $name did not start:"; diag "$(cat "$T/$name.log")"; return 1; }
}

# proxy_lua_start NAME URI [k=v...]: the same through proxy.lua, for
# driver options (connections=4).
proxy_lua_start() {
    local name=$1 target=$2; shift 2
    rm -f "$T/$name.sock"
    "$BLKHOST" run "$SOURCE_ROOT/tests/nbdclient/proxy.lua" "$T/$name.sock" "$target" "$@" \
        >>"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    disown $!
    at_exit "kill -9 $! 2>/dev/null"
    wait_sock "$name" $! || { diag "proxy $name did not start:"; diag "$(cat "$T/$name.log")"; return 1; }
}

# kill_hard NAME: SIGKILL the server and wait until it is gone; its
# socket file stays behind, as after a crash.
kill_hard() {
    local pid i
    eval "pid=\${$1_pid}"
    kill -9 "$pid" 2>/dev/null
    for i in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
}

# map_of URI: nbdinfo --map as "offset length type", runs merged.
map_of() {
    nbdinfo --map "$1" | awk '
        { if (n && t == $3 && o + l == $1) { l += $2 } else {
              if (n) print o "\t" l "\t" t; o = $1; l = $2; t = $3; n = 1 } }
        END { if (n) print o "\t" l "\t" t }'
}
