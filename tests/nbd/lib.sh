# SPDX-License-Identifier: BSD-3-Clause
# Shared by the nbd tests: start a blkhost NBD server in the background
# and wait until it serves.  Source after tests/tap.sh.
SERVE_LUA="$SOURCE_ROOT/tests/nbd/serve.lua"
export PATH="/usr/bin:$PATH"

# start_server NAME ARGS...: runs serve.lua ARGS with ready=$T/NAME.ready,
# output in $T/NAME.log, pid in the variable NAME_pid.
start_server() {
    local name=$1; shift
    rm -f "$T/$name.ready"
    "$BLKHOST" run "$SERVE_LUA" ready="$T/$name.ready" "$@" >"$T/$name.log" 2>&1 &
    local pid=$!
    eval "${name}_pid=$pid"
    at_exit "kill $pid 2>/dev/null"
    local i
    for i in $(seq 1 200); do
        [ -s "$T/$name.ready" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "# server $name did not start:"; sed 's/^/# /' "$T/$name.log"
    return 1
}

# stop_server NAME: SIGTERM and wait; returns the exit status.
stop_server() {
    local pid
    eval "pid=\${$1_pid}"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
}

# wait_gone PID: wait up to 10 s for a process to exit.
wait_gone() {
    local i
    for i in $(seq 1 200); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

nbdsh_() { /usr/bin/python3 /usr/bin/nbdsh "$@"; }

# py_tap SCRIPT ARGS...: run a Python test that prints "PASS desc",
# "FAIL desc :: why" and "DIAG text" lines, as TAP.  All its output is
# shown when it fails or ends without a last PASS/FAIL line.
py_tap() {
    local out rc
    out=$(timeout 120 /usr/bin/python3 "$@" 2>&1); rc=$?
    while read -r word rest; do
        case $word in
        PASS) ok "$rest" ;;
        FAIL) not_ok "$rest" ;;
        DIAG) diag "$rest" ;;
        esac
    done <<<"$out"
    if [ $rc != 0 ] || ! tail -n 1 <<<"$out" | grep -qE "^(PASS|FAIL) "; then
        diag "$1 exited $rc:"; diag "$out"
    fi
}

# hostport NAME: "HOST PORT" of the nbd:// URI in $T/NAME.ready.
hostport() { sed -E 's|^nbd://([^/]*):([0-9]+)/.*|\1 \2|' "$T/$1.ready"; }
