#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost dd` (lua/cmd/dd.lua) beside qemu-img 7.2 dd with the same
# operands: the same exit status, an output of the same format and size
# reading the same (qemu-img compare), clean for qemu-img check; what both
# refuse makes no output file.  Also what blkhost refuses on its own: an
# output that is the input (qemu-img empties it).
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io

plan 27

B=$BLKHOST
cd "$T" || exit 1
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
facts() { qemu-img info --output=json "$1" | grep -E '"(format|virtual-size)"'; }

qemu-img create -q -f raw in.raw 1M
io in.raw -f raw -c "write -P 1 0 300k" -c "write -P 2 600k 100k"
qemu-img create -q -f qcow2 in.qcow2 3M
io in.qcow2 -c "write -P 3 1M 1M" -c "write -z 0 64k" -c "write -c -P 4 2M 64k"
qemu-img create -q -f qcow2 -b in.qcow2 -F qcow2 top.qcow2
io top.qcow2 -c "write -P 5 1536k 4k"

# copied DESC ARGS... (of=OUT is written out.img for blkhost, q.img for qemu-img)
copied() {
    local desc=$1 brc qrc bad=""; shift
    rm -f out.img q.img
    "$B" dd "$@" of=out.img >b.out 2>b.err; brc=$?
    qemu-img dd "$@" of=q.img >q.out 2>q.err; qrc=$?
    [ $brc -eq $qrc ] || bad="exit $brc, qemu-img's $qrc"
    if [ $qrc -eq 0 ]; then
        [ "$(facts out.img)" = "$(facts q.img)" ] || bad="$bad; format or size differ"
        qemu-img compare -q out.img q.img || bad="$bad; contents differ"
        qemu-img check -q out.img >/dev/null 2>&1
        case $? in 0|63) ;; *) bad="$bad; qemu-img check not clean" ;; esac
    else
        [ ! -e out.img ] || bad="$bad; an output was made"
    fi
    if [ -z "$bad" ]; then
        ok "dd: $desc (as qemu-img dd, exit $qrc)"
    else
        not_ok "dd: $desc"; diag "$bad"; diag "$(cat b.err q.err)"
    fi
}

copied "a whole raw image" if=in.raw
copied "bs=4k count=10" if=in.raw bs=4k count=10
copied "count counts from the start, not from skip (qemu-img's rule)" if=in.raw bs=4k count=10 skip=3
copied "skip=3 with bs=4k" if=in.raw bs=4k skip=3
copied "a skip past the end: a warning and an empty output" if=in.raw bs=4k skip=1000
copied "bs=1000 (not a sector multiple)" if=in.raw bs=1000
copied "bs larger than the image" if=in.raw bs=3M
copied "count=0: an empty output" if=in.raw count=0
copied "skip and count on the same block: empty" -f raw if=in.raw skip=2 count=2 bs=300k
copied "raw into a new qcow2 (-O qcow2)" -O qcow2 if=in.raw
copied "-O qcow2 bs=64k count=3" -O qcow2 if=in.raw bs=64k count=3
copied "a qcow2 with zero and compressed clusters, skip=1 bs=1M" if=in.qcow2 bs=1M skip=1
copied "a qcow2, unaligned: bs=512 skip=1 count=5000 into qcow2" -O qcow2 if=in.qcow2 bs=512 skip=1 count=5000
copied "a backing chain, through every layer" if=top.qcow2 bs=64k skip=16
copied "a huge count is bounded by the image" if=in.raw bs=1k count=1000000000000000
copied "a missing input is refused" if=missing.raw
copied "bs=0 is refused" if=in.raw bs=0
copied "bs above 2^31-1 is refused" if=in.raw bs=3G
copied "an unparsable count is refused" if=in.raw count=x
copied "an unparsable skip is refused" if=in.raw skip=-1
copied "an unknown operand is refused" if=in.raw conv=notrunc
copied "an unknown -O is refused" -O bogus if=in.raw
rm -f out.img
check_fails "dd: no of= is refused" "Must specify both input and output files" "$B" dd if=in.raw
cp in.raw keep.raw
check_fails "dd: of= the input file is refused (qemu-img empties it)" "would be emptied" \
    "$B" dd if=keep.raw of=./keep.raw
check "dd: ... and the input is byte-identical" cmp in.raw keep.raw
cp in.qcow2 base-keep.qcow2
check_fails "dd: of= a file of the input's backing chain is refused" "would be emptied" \
    "$B" dd if=top.qcow2 of=in.qcow2
check "dd: ... and that file is byte-identical" cmp in.qcow2 base-keep.qcow2
