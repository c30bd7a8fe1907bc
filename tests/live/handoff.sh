#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The outside tools meet a served image: `blkhost snapshot -l/-c/-d` and
# examples/nightly-rotate.lua hand the work to the server's control
# socket (found through the lock holder's pid and the registry, or with
# --control), export.lua --rotate rotates while serving, and an image
# that qemu-io holds is refused with the QEMU hint.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io
plan 17

export XDG_RUNTIME_DIR=$T/run
mkdir -p "$XDG_RUNTIME_DIR"
IMG=$T/vm1.qcow2 OTHER=$T/other.qcow2 Q=$T/qemu.qcow2
qemu-img create -q -f qcow2 "$IMG" 16M
qemu-img create -q -f qcow2 "$OTHER" 16M
qemu-img create -q -f qcow2 "$Q" 16M
EX=$SOURCE_ROOT/examples

# wait_for FILE PATTERN: up to 20 s for PATTERN to appear in FILE.
wait_for() {
    local i
    for i in $(seq 200); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

"$BLKHOST" run "$EX/export.lua" "$IMG" --socket "$T/nbd.sock" --control "$T/ctl.sock" \
    >"$T/server.log" 2>&1 &
SERVER=$!
at_exit "kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null"
wait_for "$T/server.log" "Ctrl-C to stop" || { cat "$T/server.log"; skip_all "the server did not start"; }

check "blkhost snapshot -c on a served image: done through the server" \
    "$BLKHOST" snapshot -c before-upgrade "$IMG"
out=$("$BLKHOST" snapshot -l "$IMG" 2>&1)
if echo "$out" | grep -q " before-upgrade "; then ok "blkhost snapshot -l on a served image lists through the server"
else not_ok "blkhost snapshot -l on a served image lists through the server"; diag "$out"; fi
out=$(qemu-img snapshot -l -U "$IMG" 2>&1)
if echo "$out" | grep -q " before-upgrade "; then ok "qemu-img snapshot -l -U sees the snapshot in the image"
else not_ok "qemu-img snapshot -l -U sees the snapshot in the image"; diag "$out"; fi
check_fails "blkhost snapshot -d of a name the served image lacks: the server's NotFound" \
    "no snapshot named 'never'" "$BLKHOST" snapshot -d never "$IMG"
check "blkhost snapshot -d on a served image: done through the server" \
    "$BLKHOST" snapshot -d before-upgrade "$IMG"
check_fails "blkhost snapshot -a on a served image stays refused (the lock error)" \
    "is locked: blkhost" "$BLKHOST" snapshot -a x "$IMG"

out=$("$BLKHOST" run "$EX/nightly-rotate.lua" --keep-daily 7 --prefix nightly- "$IMG" 2>&1)
if [ $? -eq 0 ] && echo "$out" | grep -q "^create nightly-.* on " && echo "$out" | grep -q "^keep   nightly-"; then
    ok "nightly-rotate.lua on a served image: rotated by the server, plan lines printed"
else not_ok "nightly-rotate.lua on a served image: rotated by the server, plan lines printed"; diag "$out"; fi
out=$("$BLKHOST" run "$EX/nightly-rotate.lua" --keep-daily 7 --prefix nightly- --dry-run \
      --control "$T/ctl.sock" "$IMG" 2>&1)
if [ $? -eq 0 ] && echo "$out" | grep -q "dry run: nothing was changed"; then
    ok "nightly-rotate.lua --control PATH --dry-run: the server's plan, nothing changed"
else not_ok "nightly-rotate.lua --control PATH --dry-run: the server's plan, nothing changed"; diag "$out"; fi
check_fails "nightly-rotate.lua over a served and an unserved image: refused, nothing changed" \
    "does not export .*other.qcow2.*nothing was changed" \
    "$BLKHOST" run "$EX/nightly-rotate.lua" --keep-daily 7 "$IMG" "$OTHER"

# Without the registry entry and without --control, the message says how.
mv "$XDG_RUNTIME_DIR/blkhost" "$T/hidden"
check_fails "no registered control socket: the lock error and a hint to pass --control" \
    "no registered control socket.*--control PATH" "$BLKHOST" snapshot -c x "$IMG"
mv "$T/hidden" "$XDG_RUNTIME_DIR/blkhost"

# An image held by qemu-io: the QEMU hint.
qemu-io -f qcow2 -c 'sleep 20000' "$Q" >/dev/null 2>&1 &
QPID=$!
at_exit "kill $QPID 2>/dev/null"
for i in $(seq 100); do
    "$BLKHOST" snapshot -l "$Q" >/dev/null 2>&1 || break; sleep 0.1
done
check_fails "blkhost snapshot -c on an image qemu-io holds: refused with the QEMU hint" \
    "^qemu-io \(pid [0-9]+\) is QEMU: take snapshots through QEMU itself \(savevm" "$BLKHOST" snapshot -c x "$Q"
check_fails "blkhost snapshot -c on an image qemu-io holds: the lock error is still there" \
    "^blkhost snapshot: Could not open .*is locked: qemu-io \(pid [0-9]+\)" "$BLKHOST" snapshot -c x "$Q"
check_fails "nightly-rotate.lua on an image qemu-io holds: refused with the QEMU hint" \
    "^qemu-io \(pid [0-9]+\) is QEMU: .*savevm" "$BLKHOST" run "$EX/nightly-rotate.lua" --keep-daily 7 "$Q"
kill $QPID 2>/dev/null; wait $QPID 2>/dev/null

"$BLKHOST" ctl "$T/ctl.sock" quit >/dev/null
wait $SERVER
check "the server exits on quit, and its image checks clean" qemu-img check -q "$IMG"

# export.lua --rotate: serves and rotates on a calendar in one process.
"$BLKHOST" run "$EX/export.lua" "$OTHER" --socket "$T/nbd2.sock" --control "$T/ctl2.sock" \
    --rotate '*:*:0/1' --keep-last 2 --prefix every- >"$T/rot.log" 2>&1 &
ROT=$!
at_exit "kill $ROT 2>/dev/null"
if wait_for "$T/rot.log" "^delete every-" ; then
    ok "export.lua --rotate '*:*:0/1' --keep-last 2: rotations print their plans, old ones are deleted"
else not_ok "export.lua --rotate '*:*:0/1' --keep-last 2: rotations print their plans, old ones are deleted"; diag "$(cat "$T/rot.log")"; fi
out=$(qemu-io -f raw -c 'write -P 0x5a 0 64k' -c 'read -P 0x5a 0 64k' "nbd+unix:///?socket=$T/nbd2.sock" 2>&1)
if echo "$out" | grep -q "read 65536/65536"; then ok "export.lua --rotate: clients read and write while it rotates"
else not_ok "export.lua --rotate: clients read and write while it rotates"; diag "$out"; fi
"$BLKHOST" ctl "$T/ctl2.sock" quit >/dev/null
wait $ROT
n=$(qemu-img snapshot -l "$OTHER" | grep -c " every-")
if [ "$n" -le 3 ] && [ "$n" -ge 1 ] && qemu-img check -q "$OTHER"; then
    ok "after --rotate with --keep-last 2: at most 2 (3 in the second of a rotation) left, the image checks clean"
else not_ok "after --rotate with --keep-last 2: at most 2 left, the image checks clean"; diag "$n left"; fi
