#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost nbd --control PATH`: the qemu-nbd-style server also takes live
# operations on a control socket, so a snapshot of the image it serves is
# taken in the serving process while a client writes (qemu-nbd has no way
# to do that: its image is locked).  Failure paths: a path that is a
# regular file, and -L with --control.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io
plan 8

export XDG_RUNTIME_DIR=$T/run
mkdir -p "$XDG_RUNTIME_DIR"
IMG=$T/vm.qcow2
qemu-img create -q -f qcow2 "$IMG" 16M

"$BLKHOST" nbd -f qcow2 -t -e 0 -k "$T/nbd.sock" --control "$T/ctl.sock" \
    --pid-file "$T/pid" "$IMG" >"$T/server.log" 2>&1 &
SERVER=$!
at_exit "kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null"
for _ in $(seq 200); do [ -s "$T/pid" ] && [ -S "$T/ctl.sock" ] && break; sleep 0.1; done
[ -S "$T/ctl.sock" ] || { cat "$T/server.log"; skip_all "the server did not start"; }
URI="nbd+unix:///?socket=$T/nbd.sock"

check "nbd --control: a client writes 1 MiB of 0x11 through NBD" \
    qemu-io -f raw -c "write -P 0x11 0 1M" "$URI"
out=$("$BLKHOST" ctl "$T/ctl.sock" snapshot-create name=first 2>&1)
if [ $? = 0 ] && echo "$out" | grep -q first; then
    ok "nbd --control: snapshot-create on the control socket while serving"
else not_ok "nbd --control: snapshot-create on the control socket while serving"; diag "$out"; fi
check "nbd --control: the client overwrites with 0x22 after the snapshot" \
    qemu-io -f raw -c "write -P 0x22 0 1M" "$URI"
out=$("$BLKHOST" ctl "$T/ctl.sock" query-exports --output=json 2>&1)
if echo "$out" | grep -q '"clients"'; then ok "nbd --control: query-exports lists the served export"
else not_ok "nbd --control: query-exports lists the served export"; diag "$out"; fi
out=$("$BLKHOST" ctl "$T/ctl.sock" quit 2>&1)
wait $SERVER
rc=$?
if [ $rc = 0 ] && [ ! -e "$T/ctl.sock" ]; then
    ok "nbd --control: quit ends the server (status 0) and removes the socket"
else not_ok "nbd --control: quit ends the server (status 0) and removes the socket"; diag "rc=$rc $out"; fi
qemu-img convert -f qcow2 -O raw -l snapshot.name=first "$IMG" "$T/first.raw"
qemu-io -f raw -c "read -P 0x11 0 1M" "$T/first.raw" >"$T/r1" 2>&1 &&
qemu-io -f qcow2 -c "read -P 0x22 0 1M" "$IMG" >"$T/r2" 2>&1 && qemu-img check -q "$IMG"
if [ $? = 0 ]; then
    ok "nbd --control: the snapshot holds the data before it, the image the data after; qemu-img check clean"
else
    not_ok "nbd --control: the snapshot holds the data before it, the image the data after; qemu-img check clean"
    diag "$(cat "$T/r1" "$T/r2"; qemu-img snapshot -l "$IMG")"
fi

touch "$T/file"
cp "$IMG" "$T/before.qcow2"
out=$(timeout 20 "$BLKHOST" nbd -f qcow2 -k "$T/n2.sock" --control "$T/file" "$IMG" 2>&1)
if [ $? = 1 ] && echo "$out" | grep -q "not a socket" && [ -f "$T/file" ] &&
   cmp -s "$IMG" "$T/before.qcow2"; then
    ok "nbd --control at a regular file: refused (status 1), the file and the image kept"
else not_ok "nbd --control at a regular file: refused (status 1), the file and the image kept"; diag "$out"; fi
check_fails "nbd -L --control: refused as a per-device setting" \
    "List mode is incompatible" "$BLKHOST" nbd -L -k "$T/nbd.sock" --control "$T/c2.sock"
