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

# serve NAME CMD...: CMD, a server listening on $T/NAME.sock, as a
# background job (output in $T/NAME.log, pid in NAME_pid); waits for the
# socket.
serve() {
    local name=$1; shift
    rm -f "$T/$name.sock"
    "$@" >>"$T/$name.log" 2>&1 &
    eval "${name}_pid=$!"
    disown $!
    at_exit "kill -9 $! 2>/dev/null"
    wait_sock "$name" $! || { diag "$1 $name did not start:"; diag "$(cat "$T/$name.log")"; return 1; }
}

# nbdkit_start NAME ARGS..., qemu_nbd_start NAME ARGS... (-x names the
# export): the servers the driver is tried against.
nbdkit_start() { local n=$1; shift; serve "$n" nbdkit -f -U "$T/$n.sock" "$@"; }
qemu_nbd_start() { local n=$1; shift; serve "$n" qemu-nbd -k "$T/$n.sock" "$@"; }

# proxy_start NAME URI [blkhost nbd options...]: blkhost's nbd driver
# re-exported by `blkhost nbd -f nbd`; proxy_lua_start NAME URI [k=v...]:
# the same through proxy.lua, for driver options (connections=4).
proxy_start() {
    local n=$1 target=$2; shift 2
    serve "$n" "$BLKHOST" nbd -f nbd -k "$T/$n.sock" -t "$@" "$target"
}
proxy_lua_start() {
    local n=$1 target=$2; shift 2
    serve "$n" "$BLKHOST" run "$SOURCE_ROOT/tests/nbdclient/proxy.lua" "$T/$n.sock" "$target" "$@"
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
