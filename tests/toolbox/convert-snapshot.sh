#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost convert -l`: copy an internal snapshot instead of the image's
# current data, beside `qemu-img convert -l` on the same image; and
# qemu-img's refusals, with no target left behind.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io
plan 9
B=$BLKHOST
cd "$T" || exit 1

qemu-img create -q -f qcow2 src.qcow2 8M
qemu-io -c "write -P 0x11 0 2M" -c "write -P 0x12 5M 1M" src.qcow2 >/dev/null
qemu-img snapshot -c first src.qcow2
qemu-io -c "write -P 0x21 1M 2M" -c "write -z 5M 512k" src.qcow2 >/dev/null
qemu-img snapshot -c second src.qcow2
qemu-io -c "write -P 0x31 0 8M" src.qcow2 >/dev/null

# same DESC ARGS...: both convert src.qcow2 with ARGS; the targets must be
# equal and hold the snapshot's data, not the current data.
same() {
    local desc=$1; shift
    rm -f b.raw q.raw
    if out=$("$B" convert "$@" -O raw src.qcow2 b.raw 2>&1) &&
       qemu-img convert "$@" -O raw src.qcow2 q.raw &&
       cmp -s b.raw q.raw && ! qemu-img compare -q -f raw -F qcow2 b.raw src.qcow2 2>/dev/null; then
        ok "convert $desc: the same bytes as qemu-img convert $*"
    else
        not_ok "convert $desc: the same bytes as qemu-img convert $*"; diag "$out"
    fi
}
same "-l snapshot.name=first" -l snapshot.name=first
same "-l snapshot.id=2" -l snapshot.id=2
same "-l second (id or name)" -l second
out=$("$B" convert -s first -O raw src.qcow2 t.raw 2>&1)
if [ $? = 1 ] && [ ! -e t.raw ]; then ok "convert -s (gone from qemu-img 7.2): refused as an unknown option"
else not_ok "convert -s (gone from qemu-img 7.2): refused as an unknown option"; diag "$out"; fi

rm -f b.qcow2
"$B" convert -l first -O qcow2 src.qcow2 b.qcow2 2>/dev/null
qemu-img convert -l first -O raw src.qcow2 q.raw
if qemu-img check -q b.qcow2 && qemu-img compare -q b.qcow2 q.raw; then
    ok "convert -l first -O qcow2: check clean, equal to the snapshot"
else not_ok "convert -l first -O qcow2: check clean, equal to the snapshot"; fi

# refused DESC PATTERN ARGS...: fails with qemu-img's message, no target.
refused() {
    local desc=$1 pat=$2 out; shift 2
    rm -f t.raw
    out=$("$B" convert "$@" 2>&1)
    if [ $? = 1 ] && echo "$out" | grep -q -- "$pat" && [ ! -e t.raw ]; then
        ok "convert $desc: refused ($pat), no target made"
    else not_ok "convert $desc: refused ($pat), no target made"; diag "$out"; fi
}
refused "-l of a snapshot the image lacks" "Failed to load snapshot" -l never -O raw src.qcow2 t.raw
refused "-l with two sources" "No support for concatenating multiple snapshot" \
    -l first -O raw src.qcow2 src.qcow2 t.raw
refused "-l snapshot.bogus=1" "Failed in parsing snapshot param 'snapshot.bogus=1'" \
    -l snapshot.bogus=1 -O raw src.qcow2 t.raw
qemu-img create -q -f raw plain.raw 1M
refused "-l on a raw image" "Failed to load snapshot" -l first -O raw plain.raw t.raw
