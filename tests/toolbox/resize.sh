#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost resize` (lua/cmd/resize.lua, drivers/qcow2/resize.c): qemu-img
# 7.2 resize run on a copy of the same image with the same arguments; the
# same stdout and exit status, and afterwards the same virtual size and
# contents (qemu-img compare), qcow2 results clean for qemu-img check.
# What blkhost refuses (qcow2 shrink, preallocation) is refused with a
# message and leaves the image byte-identical.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io

plan 34

B=$BLKHOST
cd "$T" || exit 1
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
vsize() { qemu-img info --output=json "$@" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p'; }

# resized DESC IMAGE ARGS... (the image's name is put before ARGS' last
# one, the size, as qemu-img wants it).
resized() {
    local desc=$1 img=$2 brc qrc size; shift 2
    size=${*: -1}; set -- "${@:1:$#-1}"
    cp "$img" "b-$img"; cp "$img" "q-$img"
    "$B" resize "$@" "b-$img" "$size" >b.out 2>b.err; brc=$?
    qemu-img resize "$@" "q-$img" "$size" >q.out 2>q.err; qrc=$?
    local fmt=(); case $img in *.raw) fmt=(-f raw) ;; esac
    if [ $brc -eq $qrc ] && cmp -s b.out q.out &&
       [ "$(vsize "${fmt[@]}" "b-$img")" = "$(vsize "${fmt[@]}" "q-$img")" ] &&
       qemu-img compare "${fmt[@]}" "q-$img" "b-$img" >/dev/null &&
       { [ "${fmt[*]}" ] || qemu-img check "b-$img" >/dev/null 2>&1; }; then
        ok "resize: $desc (as qemu-img resize, exit $qrc: $(head -c 40 q.out | tr '\n' ' '))"
    else
        not_ok "resize: $desc"
        diag "blkhost exit $brc, qemu-img exit $qrc"
        diag "$(cat b.out b.err q.out q.err)"
    fi
}
# refused DESC PATTERN IMAGE ARGS...: fails with PATTERN, image unchanged.
refused() {
    local desc=$1 pat=$2 img=$3; shift 3
    cp "$img" "r-$img"
    check_fails "resize: $desc" "$pat" "$B" resize "$@"
    check "resize: ... and leaves $img byte-identical" cmp "$img" "r-$img"
}

qemu-img create -q -f raw a.raw 1M
io a.raw -f raw -c "write -P 1 0 1M"
resized "raw grows to an absolute size" a.raw -f raw 3M
resized "raw grows by +SIZE" a.raw -f raw +1G
resized "raw shrinks with --shrink" a.raw -f raw --shrink 512k
resized "raw shrinks by -SIZE with --shrink" a.raw -f raw --shrink -256k
resized "raw shrink without --shrink is refused (qemu-img's message)" a.raw -f raw 512k
resized "raw: a relative size below zero is refused" a.raw -f raw --shrink -- -5G
resized "-q prints nothing" a.raw -f raw -q 2M
resized "an unparsable size is refused" a.raw -f raw abc
resized "--preallocation=bogus is refused" a.raw -f raw --preallocation=bogus 4M
resized "the same size: nothing changes, Image resized." a.raw -f raw 1M

qemu-img create -q -f qcow2 a.qcow2 1M
io a.qcow2 -c "write -P 2 0 1M"
resized "qcow2 grows within its L1 table" a.qcow2 100M
resized "qcow2 grows past its L1 table (a longer L1)" a.qcow2 +3G
qemu-img create -q -f qcow2 -o cluster_size=4096 small.qcow2 64k
io small.qcow2 -c "write -P 4 0 64k"
resized "qcow2 with 4k clusters grows by many L1 entries" small.qcow2 1G
cp a.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
io snap.qcow2 -c "write -P 5 0 64k"
resized "qcow2 with a snapshot grows" snap.qcow2 +1G
if qemu-img compare "b-snap.qcow2" "q-snap.qcow2" >/dev/null &&
   [ "$(qemu-img snapshot -l b-snap.qcow2 | grep -c s1)" = 1 ] &&
   "$B" snapshot -a s1 b-snap.qcow2 >/dev/null 2>&1 &&
   qemu-io -c "read -P 2 0 1M" b-snap.qcow2 | grep -q "read 1048576"; then
    ok "resize: ... its snapshot still reverts to the old contents"
else
    not_ok "resize: ... its snapshot still reverts to the old contents"
fi
resized "qcow2 shrink without --shrink is refused" a.qcow2 512k

resized "qcow2 shrinks with --shrink inside its last L2 table" a.qcow2 --shrink 512k
resized "qcow2 shrinks to a size that is no cluster multiple" a.qcow2 --shrink 300k
qemu-img create -q -f qcow2 -o cluster_size=4096 big.qcow2 16M
io big.qcow2 -c "write -P 7 0 16M"
resized "qcow2 shrink drops whole L2 tables (4k clusters)" big.qcow2 --shrink 3M
resized "qcow2 with a snapshot shrinks" snap.qcow2 --shrink -768k
cp big.qcow2 regrow.qcow2
"$B" resize -q --shrink regrow.qcow2 1M && "$B" resize -q regrow.qcow2 16M
if qemu-io -c "read -P 7 0 1M" -c "read -P 0 1M 15M" regrow.qcow2 | grep -c "^read" | grep -qx 2 &&
   qemu-img check regrow.qcow2 >/dev/null 2>&1; then
    ok "resize: a qcow2 shrunk then grown again reads zeros past the old end, check clean"
else
    not_ok "resize: a qcow2 shrunk then grown again reads zeros past the old end, check clean"
    diag "$(qemu-io -c "read -P 0 1M 15M" regrow.qcow2)"
fi
qemu-img create -q -f raw p.raw 1M
resized "raw --preallocation=full grows" p.raw -f raw --preallocation=full 5M
# The new 4 MiB are allocated (the first 1 MiB, made sparse, is not).
if [ "$(du -k b-p.raw | cut -f1)" -ge 4096 ] &&
   [ "$(du -k b-p.raw | cut -f1)" -ge "$(du -k q-p.raw | cut -f1)" ]; then
    ok "resize: ... and the new area takes disk space, as qemu-img's"
else
    not_ok "resize: ... and the new area takes disk space, as qemu-img's"; diag "$(du -k b-p.raw q-p.raw)"
fi
resized "raw --preallocation=falloc grows" p.raw -f raw --preallocation=falloc +3M
resized "--preallocation with a shrink is refused (qemu-img's message)" \
    a.raw -f raw --preallocation=full --shrink 512k
refused "--preallocation=metadata is refused (not done)" \
    "not supported" a.raw --preallocation=metadata -f raw a.raw 4M
refused "qcow2 --preallocation=full is refused (not done)" \
    "not supported for qcow2" a.qcow2 --preallocation=full a.qcow2 4M
qemu-img create -q -f qcow2 base.qcow2 4M
io base.qcow2 -c "write -P 6 0 4M"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 1M
refused "qcow2 over a longer backing file: growing is refused (its bytes would show)" \
    "backing file longer" top.qcow2 top.qcow2 2M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top4.qcow2 4M
resized "qcow2 over a backing file no longer than it grows" top4.qcow2 8M
qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 v2.qcow2 4M
refused "a version 2 qcow2 with a backing file: shrinking is refused (no zero flag)" \
    "version 2" v2.qcow2 --shrink v2.qcow2 1M
