#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Image locking against QEMU: while blkhost holds an image writable,
# qemu-io must not write it, and while qemu-io holds it, blkhost must not
# open it, and say who holds it.  Holders are kept open on a fifo: the
# hold-image helper (blkhost) prints "ready" once it holds the image;
# qemu-io (interactive, reading commands from the fifo) has the image open
# once it has answered a first "read" command.
#
#   locking.sh HOLD_IMAGE_BINARY
source "$SOURCE_ROOT/tests/tap.sh"
HOLD=$1
need qemu-io
plan 27

IMG=$T/img.raw
truncate -s 1M "$IMG"
QIMG=$T/img.qcow2
qemu-img create -q -f qcow2 "$QIMG" 1M

# wait_for PATTERN FILE PID: until FILE matches or PID has gone.  The
# timeout only guards against a hung peer; nothing here races a clock.
wait_for() {
    local i
    for ((i = 0; i < 1200; i++)); do
        grep -q -- "$1" "$2" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { grep -q -- "$1" "$2" 2>/dev/null; return; }
        sleep 0.05
    done
    return 1
}

# start_hold [OPTS]: blkhost holds $IMG until stop_hold.
start_hold() {
    rm -f "$T/hin" "$T/hout"
    mkfifo "$T/hin"
    "$HOLD" "$IMG" "$@" <"$T/hin" >"$T/hout" 2>&1 &
    HPID=$!
    exec 3>"$T/hin"
    wait_for '^ready' "$T/hout" "$HPID"
}
stop_hold() {
    exec 3>&-
    wait "$HPID" 2>/dev/null
}

# start_qemu [QEMU-IO ARGS]: qemu-io holds $IMG (or, with QFMT=qcow2,
# $QIMG) until stop_qemu.
start_qemu() {
    rm -f "$T/qin" "$T/qout"
    mkfifo "$T/qin"
    local fmt=${QFMT:-raw} img=$IMG
    [ "$fmt" = qcow2 ] && img=$QIMG
    qemu-io "$@" -f "$fmt" "$img" <"$T/qin" >"$T/qout" 2>&1 &
    QPID=$!
    exec 4>"$T/qin"
    echo "read 0 512" >&4
    wait_for 'read 512/512 bytes' "$T/qout" "$QPID"
}
stop_qemu() {
    echo quit >&4 2>/dev/null
    exec 4>&-
    wait "$QPID" 2>/dev/null
}
at_exit 'exec 3>&- 4>&-'

unchanged() { cmp -s -n 1048576 "$IMG" /dev/zero; }

# --- blkhost holds the image read-write ---
if start_hold; then ok "blkhost holds the image read-write"; else
    not_ok "blkhost holds the image read-write"; diag "$(cat "$T/hout")"; fi
check_fails "qemu-io write refused while blkhost holds the image writable" \
    'Failed to get "write" lock' qemu-io -f raw -c 'write 0 4k' "$IMG"
out=$(qemu-io -f raw -c 'write 0 4k' "$IMG" 2>&1)
if echo "$out" | grep -qF "another process using the image [$IMG]"; then
    ok "qemu-io's refusal names the image"
else not_ok "qemu-io's refusal names the image"; diag "$out"; fi
if unchanged; then ok "the refused qemu-io write changed nothing"; else
    not_ok "the refused qemu-io write changed nothing"; fi
check "qemu-io -r may still read (blkhost shares consistent read)" \
    qemu-io -r -f raw -c 'read 0 4k' "$IMG"
check_fails "a second blkhost read-write open refused, naming hold-image and its pid" \
    "is locked: .*hold-image \\(pid $HPID\\)" "$HOLD" "$IMG" </dev/null
stop_hold
check "qemu-io write works once blkhost has closed the image" \
    qemu-io -f raw -c 'write -P 0 0 4k' "$IMG"

# --- blkhost holds it read-only: readers fine; writers too on raw, as
# with QEMU's raw readers (no metadata to protect), not on qcow2 ---
start_hold format=raw,readonly=on || diag "$(cat "$T/hout")"
check "qemu-io write allowed while blkhost holds a raw image read-only (as while qemu-io -r does)" \
    qemu-io -f raw -c 'write -P 0 0 4k' "$IMG"
check "qemu-io -r reads while blkhost holds the image read-only" \
    qemu-io -r -f raw -c 'read 0 4k' "$IMG"
check "a second blkhost read-only open is allowed" \
    "$HOLD" "$IMG" format=raw,readonly=on </dev/null
stop_hold
IMG=$QIMG start_hold format=qcow2,readonly=on || diag "$(cat "$T/hout")"
check_fails "qemu-io write refused while blkhost holds a qcow2 image read-only" \
    'Failed to get "write" lock' qemu-io -f qcow2 -c 'write 0 4k' "$QIMG"
check "qemu-io -r reads the qcow2 blkhost holds read-only" \
    qemu-io -r -f qcow2 -c 'read 0 4k' "$QIMG"
stop_hold

# --- locking=off takes no locks ---
start_hold format=raw,locking=off || diag "$(cat "$T/hout")"
check "qemu-io write allowed while blkhost holds the image with locking=off" \
    qemu-io -f raw -c 'write -P 0 0 4k' "$IMG"
stop_hold

# --- qemu-io holds the image read-write ---
if start_qemu; then ok "qemu-io holds the image read-write"; else
    not_ok "qemu-io holds the image read-write"; diag "$(cat "$T/qout")"; fi
check_fails "blkhost read-write open refused while qemu-io writes, naming qemu-io and its pid" \
    "is locked: qemu-io \\(pid $QPID\\) holds the \"write\" permission" \
    "$HOLD" "$IMG" </dev/null
check "blkhost read-only open of the raw image allowed, as qemu-io -r is" \
    "$HOLD" "$IMG" format=raw,readonly=on </dev/null
check "(reference) a second qemu-io -r reads it as well" \
    qemu-io -r -f raw -c 'read 0 512' "$IMG"
check_fails "blkhost cache=none open refused as well" \
    "is locked" "$HOLD" "$IMG" format=raw,cache=none </dev/null
check "blkhost open with locking=off,readonly=on is allowed" \
    "$HOLD" "$IMG" format=raw,readonly=on,locking=off </dev/null
check_fails "blkhost create over the image qemu-io holds refused" \
    "is locked: .*qemu-io \\(pid $QPID\\)" "$HOLD" --create "$IMG" 4k
if [ "$(stat -c %s "$IMG")" = 1048576 ]; then
    ok "the refused create left the image's size alone"
else not_ok "the refused create left the image's size alone"; fi
stop_qemu
check "blkhost read-write open works once qemu-io has quit" \
    "$HOLD" "$IMG" </dev/null

# --- qemu-io writes a qcow2: readers are kept out (metadata) ---
if QFMT=qcow2 start_qemu; then ok "qemu-io holds the qcow2 image read-write"; else
    not_ok "qemu-io holds the qcow2 image read-write"; diag "$(cat "$T/qout")"; fi
check_fails "blkhost read-only qcow2 open refused while qemu-io writes it, naming qemu-io" \
    "is locked: qemu-io \\(pid $QPID\\) holds the \"write\" permission" \
    "$HOLD" "$QIMG" format=qcow2,readonly=on </dev/null
stop_qemu

# --- qemu-io only reads ---
if start_qemu -r; then ok "qemu-io -r holds the image read-only"; else
    not_ok "qemu-io -r holds the image read-only"; diag "$(cat "$T/qout")"; fi
check "blkhost read-write open allowed while qemu-io -r only reads" \
    "$HOLD" "$IMG" </dev/null
stop_qemu
check "format=file opens read-write once everyone has gone" \
    "$HOLD" "$IMG" format=file </dev/null
