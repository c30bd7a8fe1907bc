#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost rebase` (lua/cmd/rebase.lua, lua/blkhost/qcow2header.lua):
# qemu-img 7.2 rebase run with the same arguments on a copy of the same
# chain, each in its own folder (backing names are relative); the same
# exit status and stdout (progress figures left out), the same backing
# file name and format afterwards, the images reading the same (qemu-img
# compare) and clean for qemu-img check.  What is refused leaves every
# image byte-identical.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 32

B=$BLKHOST
cd "$T" || exit 1
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
backing_of() {
    qemu-img info --output=json "$@" |
        sed -n 's/.*"\(backing-filename\(-format\)\?\)": "\(.*\)".*/\1=\3/p' | sort | tr '\n' ' '
}

# The images every case starts from, in orig/:
#   base.qcow2 2M: 1s over 0-1M;  mid.qcow2 over base: 3s at 128k, zeros
#   at 512k;  top.qcow2 over mid: 2s at 0, zeros at 256k;  new.raw 1M
#   (shorter than top): 1s over 0-100k, 5s at 700k;  other.qcow2 2M alone:
#   7s at 1M;  v2.qcow2 (compat 0.10) over base: 4s at 64k;  top.raw;
#   c4k.qcow2 (4k clusters) over base;  near.raw: base's data with a few
#   sectors changed.
mkdir orig sub && cd orig || exit 1
qemu-img create -q -f qcow2 base.qcow2 2M
io base.qcow2 -c "write -P 1 0 1M"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
io mid.qcow2 -c "write -P 3 128k 64k" -c "write -z 512k 64k"
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
io top.qcow2 -c "write -P 2 0 64k" -c "write -z 256k 64k"
qemu-img create -q -f raw new.raw 1M
io new.raw -f raw -c "write -P 1 0 100k" -c "write -P 5 700k 8k"
qemu-img create -q -f qcow2 other.qcow2 2M
io other.qcow2 -c "write -P 7 1M 512k"
qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 v2.qcow2
io v2.qcow2 -c "write -P 4 64k 64k"
qemu-img create -q -f raw top.raw 1M
qemu-img create -q -f qcow2 -o cluster_size=512 small.qcow2 1M
qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.qcow2 -F qcow2 c4k.qcow2
io c4k.qcow2 -c "write -P 6 8k 4k"
qemu-img convert -O raw base.qcow2 near.raw
io near.raw -f raw -c "write -P 9 5632 512" -c "write -P 9 70k 1k" -c "write -P 0 200k 512"
cd .. || exit 1


# rebased DESC IMAGE ARGS...: both commands in their folder, then compared.
rebased() {
    local desc=$1 img=$2 brc qrc bad=""; shift 2
    fresh
    (cd b && "$B" rebase "$@" "$img" >../b.out 2>../b.err); brc=$?
    (cd q && qemu-img rebase "$@" "$img" >../q.out 2>../q.err); qrc=$?
    sed -i 's/ *([0-9.]*\/100%)\r//g' b.out q.out
    [ $brc -eq $qrc ] || bad="exit $brc, qemu-img's $qrc"
    cmp -s b.out q.out || bad="$bad; stdout differs"
    [ "$(backing_of "b/$img")" = "$(backing_of "q/$img")" ] ||
        bad="$bad; backing $(backing_of "b/$img") vs $(backing_of "q/$img")"
    if [ $qrc -eq 0 ] && [ -z "${NO_OPEN:-}" ]; then
        qemu-img compare -q "q/$img" "b/$img" || bad="$bad; contents differ"
        qemu-img check -q "b/$img" || bad="$bad; check not clean"
    fi
    chain_report rebase "$desc" $qrc "$bad"
}

refused() { chain_refused rebase "$@"; }

rebased "safe: onto the backing file's backing file (mid's areas copied into top)" \
    top.qcow2 -b base.qcow2 -F qcow2
rebased "safe: onto a raw file shorter than the image (past its end: zeros)" \
    top.qcow2 -b new.raw -F raw
rebased "safe: onto an unrelated image" top.qcow2 -b other.qcow2 -F qcow2
rebased "safe: -b '' flattens (everything the chain showed copied)" top.qcow2 -b ''
rebased "safe: onto the same backing file (nothing to copy)" top.qcow2 -b mid.qcow2 -F qcow2
rebased "safe: 4k clusters, a new backing file differing in single sectors" \
    c4k.qcow2 -b near.raw -F raw
rebased "safe: 64k clusters, the same single-sector differences" top.qcow2 -b near.raw -F raw
rebased "safe: a version 2 image onto an unrelated one" v2.qcow2 -b other.qcow2 -F qcow2
rebased "safe: a version 2 image flattened" v2.qcow2 -b ''
rebased "unsafe: -u only renames the backing file" top.qcow2 -u -b other.qcow2 -F qcow2
rebased "unsafe: -u -b '' drops the backing file" top.qcow2 -u -b ''
NO_OPEN=1 rebased "unsafe: -u to a file that does not exist (yet)" \
    top.qcow2 -u -b missing.raw -F raw
rebased "-p prints progress, then nothing else" top.qcow2 -p -b base.qcow2 -F qcow2
rebased "-q prints nothing" top.qcow2 -q -b other.qcow2 -F qcow2
NO_OPEN=1 rebased "the longest name a 512-byte cluster takes" small.qcow2 -u -b "$(printf 'n%.0s' $(seq 300))" -F raw

# An image whose old backing file is gone: -u still rebases it.
fresh
rm b/mid.qcow2 q/mid.qcow2
if (cd b && "$B" rebase -u -b base.qcow2 -F qcow2 top.qcow2) &&
   (cd q && qemu-img rebase -u -b base.qcow2 -F qcow2 top.qcow2) &&
   [ "$(backing_of b/top.qcow2)" = "$(backing_of q/top.qcow2)" ] &&
   qemu-img compare -q q/top.qcow2 b/top.qcow2 &&
   qemu-img check -q b/top.qcow2; then
    ok "rebase: -u works when the old backing file is missing"
else
    not_ok "rebase: -u works when the old backing file is missing"
fi
# A relative new name is taken from the image's folder, not the caller's.
fresh
cp orig/other.qcow2 sub/
if "$B" rebase -b ../sub/other.qcow2 -F qcow2 b/top.qcow2 &&
   qemu-img rebase -b ../sub/other.qcow2 -F qcow2 q/top.qcow2 &&
   [ "$(backing_of b/top.qcow2)" = "$(backing_of q/top.qcow2)" ] &&
   qemu-img compare -q q/top.qcow2 b/top.qcow2; then
    ok "rebase: a relative backing name is resolved from the image's folder (as qemu-img)"
else
    not_ok "rebase: a relative backing name is resolved from the image's folder (as qemu-img)"
fi

refused "no -b and no -u is a usage error" "Must specify backing file" top.qcow2
refused "a backing file without -F (safe mode): nothing copied first" \
    "backing format must be specified" top.qcow2 -b new.raw
refused "a backing file without -F (-u)" "backing format must be specified" \
    top.qcow2 -u -b new.raw
refused "an unknown -F" "Invalid format name: 'bogus'" top.qcow2 -b new.raw -F bogus
refused "a new backing file of the wrong format (-F qcow2 on a raw file)" \
    "Could not open new backing file 'new.raw'" top.qcow2 -b new.raw -F qcow2
refused "a missing new backing file leaves the overlay unchanged" \
    "Could not open new backing file 'missing.qcow2'" top.qcow2 -b missing.qcow2 -F qcow2
refused "the image as its own backing file" "Could not open new backing file" \
    top.qcow2 -b top.qcow2 -F qcow2
refused "a new backing file whose chain holds the image (a loop)" \
    "Could not open new backing file" mid.qcow2 -b top.qcow2 -F qcow2
refused "a name that does not fit in the first cluster" "No space left in the file header" \
    small.qcow2 -u -b "$(printf 'n%.0s' $(seq 500))" -F raw
refused "a name longer than 1023 bytes" "Invalid argument" \
    top.qcow2 -u -b "$(printf 'n%.0s' $(seq 1100))" -F raw
refused "a raw image has no backing file to change" "Operation not supported" \
    top.raw -f raw -u -b new.raw -F raw
# The old backing file is gone: safe mode cannot read what it showed.
fresh
rm b/mid.qcow2
cp -a b b.before
check_fails "rebase: safe mode over a missing old backing file is refused" \
    "mid.qcow2" "$B" rebase -b other.qcow2 -F qcow2 b/top.qcow2
check "rebase: ... and leaves the image byte-identical" diff -r b.before b

# A read error in the new backing file mid-copy (an L2 entry pointing at an
# unaligned offset): the copy stops, the header still names the old
# backing file, and the image reads as before.
fresh
qemu-img create -q -f qcow2 b/bad.qcow2 2M
qemu-io -c "write -P 8 0 2M" b/bad.qcow2 >/dev/null
corrupt_l2 b/bad.qcow2 20
check_fails "rebase: a read error in the new backing file mid-copy fails the command" \
    "." "$B" rebase -b bad.qcow2 -F qcow2 b/top.qcow2
if [ "$(backing_of b/top.qcow2)" = "$(backing_of orig/top.qcow2)" ] &&
   (cd orig && qemu-img compare -q top.qcow2 ../b/top.qcow2) &&
   qemu-img check -q b/top.qcow2; then
    ok "rebase: ... and the image still names its old backing file and reads as before"
else
    not_ok "rebase: ... and the image still names its old backing file and reads as before"
    diag "$(backing_of b/top.qcow2)"
fi
