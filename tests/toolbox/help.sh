#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Every built-in command (lua/cmd/*.lua) answers --help with its usage on
# stdout and status 0, and takes -q (lua/blkhost/cli.lua adds it to every
# command): never "unknown option '-q'", and the commands that print
# status lines or progress print nothing on stdout with it.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img

cmds=()
for f in "$SOURCE_ROOT"/lua/cmd/*.lua; do cmds+=("$(basename "$f" .lua)"); done
plan $((3 * ${#cmds[@]} + 9))

B=$BLKHOST
cd "$T" || exit 1
for c in "${cmds[@]}"; do
    out=$("$B" "$c" --help 2>&1); rc=$?
    if [ $rc -eq 0 ] && [ "${out#Usage: blkhost $c}" != "$out" ]; then
        ok "$c --help: its usage, status 0"
    else
        not_ok "$c --help: its usage, status 0"; diag "exit $rc: $out"
    fi
    out=$("$B" "$c" -q </dev/null 2>&1)
    if echo "$out" | grep -q "unknown option '-q'"; then
        not_ok "$c -q: the option is taken"; diag "$out"
    else
        ok "$c -q: the option is taken"
    fi
    if "$B" --help | grep -qE "^  $c +[a-z]"; then
        ok "blkhost --help lists $c with its summary"
    else
        not_ok "blkhost --help lists $c with its summary"
    fi
done

qemu-img create -q -f qcow2 base.qcow2 1M
qemu-io -c "write -P 1 0 1M" base.qcow2 >/dev/null
# quiet DESC ARGS...: blkhost ARGS succeeds and prints nothing on stdout.
quiet() {
    local desc=$1 out; shift
    if out=$("$B" "$@" 2>&1 >"$T/q.out") && [ ! -s "$T/q.out" ]; then
        ok "-q: $desc prints nothing"
    else
        not_ok "-q: $desc prints nothing"; diag "$out"; diag "$(cat "$T/q.out")"
    fi
}
quiet "create" create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
quiet "convert -p" convert -q -p -O qcow2 top.qcow2 flat.qcow2
quiet "compare" compare -q flat.qcow2 top.qcow2
quiet "check" check -q top.qcow2
quiet "resize" resize -q flat.qcow2 2M
quiet "snapshot -c" snapshot -q -c s1 flat.qcow2
quiet "rebase -p" rebase -q -p -b '' top.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 over.qcow2
qemu-io -c "write -P 2 0 64k" over.qcow2 >/dev/null
quiet "commit -p" commit -q -p over.qcow2
quiet "dd -p" dd -q -p if=flat.qcow2 of=copy.raw
