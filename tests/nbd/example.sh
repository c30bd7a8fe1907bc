#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# examples/export.lua, the main job: the demo image with no arguments, a
# given image with --socket/--readonly/--tcp, and Ctrl-C (SIGINT) ending it
# cleanly.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/nbd/lib.sh"
need nbdinfo nbdcopy qemu-io
plan 8
EXAMPLE="$SOURCE_ROOT/examples/export.lua"

# run_example NAME ARGS...: start in the background with SIGINT at its
# default (a script's background jobs otherwise ignore it).
run_example() {
    local name=$1; shift
    HOME="$T/home" XDG_CACHE_HOME= XDG_RUNTIME_DIR="$T/run" \
    /usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$BLKHOST" run "$EXAMPLE" "$@" >"$T/$name.out" 2>&1 &
    eval "${name}_pid=$!"
    at_exit "kill $! 2>/dev/null"
    local i
    for i in $(seq 1 100); do
        grep -q "Ctrl-C to stop" "$T/$name.out" 2>/dev/null && return 0
        sleep 0.05
    done
    diag "$(cat "$T/$name.out")"
    return 1
}
mkdir -p "$T/home" "$T/run"

run_example demo || not_ok "example starts with no arguments"
U="nbd+unix:///?socket=$T/run/blkhost-nbd.sock"
if [ -f "$T/home/.cache/blkhost/demo.img" ] && grep -qF "$U" "$T/demo.out"; then
    ok "no arguments: demo image made in the cache dir, URI printed"
else not_ok "no arguments: demo image made in the cache dir, URI printed"; diag "$(cat "$T/demo.out")"; fi
if grep -q "nbdinfo '$U'" "$T/demo.out" && grep -q "qemu-img info" "$T/demo.out" &&
   grep -q "nbd-client -unix $T/run/blkhost-nbd.sock /dev/nbd0" "$T/demo.out"; then
    ok "prints the nbdinfo, qemu-img and nbd-client command lines"
else not_ok "prints the nbdinfo, qemu-img and nbd-client command lines"; diag "$(cat "$T/demo.out")"; fi
if nbdcopy "$U" - 2>/dev/null | head -c 19 | grep -q "Hello from blkhost!"; then
    ok "the demo image is served and starts with its greeting"
else not_ok "the demo image is served and starts with its greeting"; fi
nbdinfo --size "$U" >/dev/null 2>&1
kill -INT "$demo_pid"
if wait_gone "$demo_pid" && grep -q '^stopped' "$T/demo.out" && [ ! -e "$T/run/blkhost-nbd.sock" ]; then
    ok "persistent across clients; Ctrl-C (SIGINT) stops it and removes the socket"
else not_ok "persistent across clients; Ctrl-C (SIGINT) stops it and removes the socket"; diag "$(cat "$T/demo.out")"; fi

truncate -s 4M "$T/mine.img"
run_example ro "$T/mine.img" --socket "$T/mine.sock" --readonly --name mine ||
    not_ok "example starts with an image"
M="nbd+unix:///mine?socket=$T/mine.sock"
check "an image given on the command line is served under --name" \
    bash -c "nbdinfo --size '$M' | grep -q 4194304"
check_fails "--readonly: writes are refused" "Permission denied|Operation not permitted|read-only" \
    qemu-io -f raw -c 'write 0 4k' "$M"
kill -TERM "$ro_pid"; wait_gone "$ro_pid"

run_example tcp "$T/mine.img" --tcp 127.0.0.1:0 || not_ok "example starts on TCP"
uri=$(grep -o 'nbd://127.0.0.1:[0-9]*/' "$T/tcp.out" | head -1)
if [ -n "$uri" ] && nbdinfo --size "$uri" 2>/dev/null | grep -q 4194304; then
    ok "--tcp 127.0.0.1:0 serves over TCP at $uri"
else not_ok "--tcp serves over TCP"; diag "$(cat "$T/tcp.out")"; fi
kill -TERM "$tcp_pid"; wait_gone "$tcp_pid"

"$BLKHOST" run "$EXAMPLE" --bogus >"$T/bad.out" 2>&1
if [ $? -ne 0 ] && grep -q "unknown option --bogus" "$T/bad.out"; then
    ok "an unknown option is refused with the list of known ones"
else not_ok "an unknown option is refused with the list of known ones"; diag "$(cat "$T/bad.out")"; fi
