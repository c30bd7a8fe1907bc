#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd` where a qemu-nbd user's tools meet it (issue 13 §3):
# multi-conn follows -e as in qemu-nbd (so nbdcopy works against the
# default -e 1), socket activation through LISTEN_FDS, --fork releasing
# the caller's stdout and stderr, and -L printing what qemu-nbd -L prints.
# Each check runs qemu-nbd 7.2 the same way and compares.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/cmd/lib.sh"
need qemu-nbd qemu-img nbdinfo nbdcopy

plan 22

qemu-img create -q -f raw "$T/d.raw" 4M
qemu-img create -q -f raw "$T/q.raw" 4M
head -c 4194304 /dev/urandom >"$T/src.raw"

multi() { timeout 60 nbdinfo --json "$1" | /usr/bin/python3 -c '
import json, sys; print(json.load(sys.stdin)["exports"][0]["can_multi_conn"])'; }

# ---- multi-conn follows -e ----
for args in "" "-e 2" "-e 0" "-r" "-r -e 3"; do
    # shellcheck disable=SC2086
    bh m -t $args -f raw "$T/d.raw"
    # shellcheck disable=SC2086
    qn qm -t $args -f raw "$T/q.raw"
    b=$(multi "$(uri m)"); q=$(multi "$(uri qm)")
    if [ -n "$b" ] && [ "$b" = "$q" ]; then
        ok "multi-conn with '${args:-default -e 1}': blkhost offers it as qemu-nbd does ($q)"
    else
        not_ok "multi-conn with '${args:-default -e 1}': blkhost offers it as qemu-nbd does"
        diag "blkhost '$b', qemu-nbd '$q'"
    fi
    stop m; stop qm
done

# ---- nbdcopy against the default -e 1 ----
# nbdcopy opens 4 connections when multi-conn is offered; with it left
# out it uses one, which -e 1 serves.  -v logs each connection.
bh c -t -v -f raw "$T/d.raw"
check "nbdcopy into 'blkhost nbd -t' (default -e 1) writes every byte" \
    timeout 60 nbdcopy "$T/src.raw" "$(uri c)"
check "nbdcopy out of 'blkhost nbd -t' (default -e 1) reads them back" \
    bash -c "timeout 60 nbdcopy '$(uri c)' '$T/back.raw' && cmp '$T/back.raw' '$T/src.raw'"
stop c
n=$(grep -c " connected" "$T/c.err")
if [ "$n" = 2 ]; then ok "nbdcopy used one connection per copy against -e 1 (2 in all)"
else not_ok "nbdcopy used one connection per copy against -e 1 (2 in all)"; diag "$n connections:"; diag "$(cat "$T/c.err")"; fi

# ---- --fork lets go of the caller's output ----
# $(...) reads until every writer of the pipe is gone: the daemon must
# not keep the caller's stdout or stderr.  timeout turns a hang into a
# failure with status 124.
out=$(timeout 20 "$BLKHOST" nbd --fork --pid-file "$T/f.pid" -k "$T/f.sock" -t -f raw "$T/d.raw" 2>&1)
rc=$?
[ -s "$T/f.pid" ] && at_exit "kill $(cat "$T/f.pid") 2>/dev/null"
if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "out=\$(blkhost nbd --fork ... 2>&1) returns at once with status 0"
else not_ok "out=\$(blkhost nbd --fork ... 2>&1) returns at once with status 0"; diag "status $rc: $out"; fi
check "the --fork server then serves" timeout 60 nbdinfo --size "$(uri f)"
out=$(timeout 20 qemu-nbd --fork --pid-file "$T/qf.pid" -k "$T/qf.sock" -t -f raw "$T/q.raw" 2>&1)
[ -s "$T/qf.pid" ] && at_exit "kill $(cat "$T/qf.pid") 2>/dev/null"
b=$(readlink "/proc/$(cat "$T/f.pid")/fd/2" 2>&1); q=$(readlink "/proc/$(cat "$T/qf.pid")/fd/2" 2>&1)
if [ "$b" = "$q" ] && [ "$b" = /dev/null ]; then ok "the --fork daemon's stderr is /dev/null, as qemu-nbd's"
else not_ok "the --fork daemon's stderr is /dev/null, as qemu-nbd's"; diag "blkhost '$b', qemu-nbd '$q'"; fi
stop f; stop qf

# ---- socket activation ----
if ! command -v systemd-socket-activate >/dev/null; then
    for i in 1 2 3 4 5 6 7 8; do skip "socket activation: systemd-socket-activate is not installed (Debian package systemd)"; done
else
    # wait_sock PATH: systemd-socket-activate has bound it.
    wait_sock() { local i; for i in $(seq 1 400); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
    # activate NAME PROGRAM ARGS...: systemd-socket-activate on $T/NAME.sock
    # (it runs the program at the first connection); its pid in NAME_pid.
    activate() {
        local n=$1; shift
        systemd-socket-activate -l "$T/$n.sock" "$@" >"$T/$n.err" 2>&1 &
        eval "${n}_pid=$!"
        at_exit "kill $! 2>/dev/null"
        wait_sock "$T/$n.sock"
    }
    sa_pid="" qa_pid=""
    activate sa "$BLKHOST" nbd -f raw "$T/d.raw"
    activate qa qemu-nbd -f raw "$T/q.raw"
    b=$(timeout 60 nbdinfo --size "$(uri sa)" 2>&1); q=$(timeout 60 nbdinfo --size "$(uri qa)" 2>&1)
    if [ "$b" = 4194304 ] && [ "$b" = "$q" ]; then ok "LISTEN_FDS: blkhost nbd serves the activated socket, as qemu-nbd does"
    else not_ok "LISTEN_FDS: blkhost nbd serves the activated socket, as qemu-nbd does"; diag "blkhost '$b', qemu-nbd '$q'"; diag "$(cat "$T/sa.err")"; fi
    # Without -t both end after their only client.
    if wait_gone "$sa_pid" && wait_gone "$qa_pid"; then ok "LISTEN_FDS without -t: both exit after the client leaves"
    else not_ok "LISTEN_FDS without -t: both exit after the client leaves"; fi

    # The options that name another socket or a device are refused with
    # qemu-nbd's messages (after its "qemu-nbd: " prefix).
    for opt in "-k $T/x.sock" "-b 127.0.0.1" "-p 10900" "-c /dev/nbd0"; do
        rm -f "$T/sa.sock" "$T/qa.sock"
        # shellcheck disable=SC2086
        activate sa "$BLKHOST" nbd $opt -f raw "$T/d.raw"
        # shellcheck disable=SC2086
        activate qa qemu-nbd $opt -f raw "$T/q.raw"
        timeout 60 nbdinfo --size "$(uri sa)" >/dev/null 2>&1
        timeout 60 nbdinfo --size "$(uri qa)" >/dev/null 2>&1
        wait_gone "$sa_pid"; wait_gone "$qa_pid"
        b=$(grep "^blkhost nbd: " "$T/sa.err" | sed 's/^blkhost nbd: //')
        q=$(grep "^qemu-nbd: " "$T/qa.err" | sed 's/^qemu-nbd: //')
        if [ -n "$b" ] && [ "$b" = "$q" ]; then ok "LISTEN_FDS with ${opt%% *}: refused with qemu-nbd's message ($q)"
        else not_ok "LISTEN_FDS with ${opt%% *}: refused with qemu-nbd's message"; diag "blkhost '$b'"; diag "qemu-nbd '$q'"; fi
    done

    # More than one socket: qemu-nbd refuses too.
    rm -f "$T/sa.sock"
    systemd-socket-activate -l "$T/sa.sock" -l "$T/sa2.sock" "$BLKHOST" nbd -f raw "$T/d.raw" >"$T/sa.err" 2>&1 &
    sa_pid=$!; at_exit "kill $sa_pid 2>/dev/null"; wait_sock "$T/sa2.sock"
    timeout 60 nbdinfo --size "$(uri sa)" >/dev/null 2>&1; wait_gone "$sa_pid"
    if grep -q "does not support socket activation with LISTEN_FDS > 1" "$T/sa.err"; then ok "LISTEN_FDS=2 refused, as qemu-nbd refuses it"
    else not_ok "LISTEN_FDS=2 refused, as qemu-nbd refuses it"; diag "$(cat "$T/sa.err")"; fi

    # --fork with an activated socket: the daemon (a new pid) still
    # serves it; the activation helper's command returns.
    rm -f "$T/sa.sock"
    activate sa "$BLKHOST" nbd --fork --pid-file "$T/sf.pid" -t -f raw "$T/d.raw"
    b=$(timeout 60 nbdinfo --size "$(uri sa)" 2>&1)
    [ -s "$T/sf.pid" ] && at_exit "kill $(cat "$T/sf.pid") 2>/dev/null"
    if [ "$b" = 4194304 ] && wait_gone "$sa_pid" && timeout 60 nbdinfo --size "$(uri sa)" >/dev/null 2>&1; then
        ok "LISTEN_FDS with --fork -t: the daemon serves the socket after the command returned"
    else
        not_ok "LISTEN_FDS with --fork -t: the daemon serves the socket after the command returned"; diag "$b"; diag "$(cat "$T/sa.err")"
    fi
    stop sf
fi

# ---- -L prints what qemu-nbd -L prints ----
bh l -t -r -e 2 -x foo -D "a description" -f raw "$T/d.raw"
qn ql -t -r -e 2 -x foo -D "a description" -f raw "$T/q.raw"
for srv in l ql; do
    name=$([ $srv = l ] && echo "a blkhost server" || echo "a qemu-nbd server")
    qemu-nbd -L -k "$T/$srv.sock" >"$T/$srv.qlist" 2>&1
    "$BLKHOST" nbd -L -k "$T/$srv.sock" >"$T/$srv.blist" 2>&1
    if diff -u "$T/$srv.qlist" "$T/$srv.blist" >"$T/$srv.diff"; then
        ok "-L of $name prints the same as qemu-nbd -L (flags, block sizes, meta contexts)"
    else
        not_ok "-L of $name prints the same as qemu-nbd -L (flags, block sizes, meta contexts)"; diag "$(cat "$T/$srv.diff")"
    fi
done
if grep -q "available meta contexts: 1" "$T/l.blist" && grep -q "^   base:allocation$" "$T/l.blist" &&
   grep -q "( readonly flush fua df multi cache )" "$T/l.blist"; then
    ok "-L lists base:allocation and the df and multi flags"
else
    not_ok "-L lists base:allocation and the df and multi flags"; diag "$(cat "$T/l.blist")"
fi
stop l; stop ql
