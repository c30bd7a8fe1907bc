#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost commit` (lua/cmd/commit.lua): qemu-img 7.2 commit run with the
# same arguments on a copy of the same chain, each in its own folder; the
# same exit status and stdout (progress figures left out), then every
# image of the chain reads the same as qemu-img's (qemu-img compare) and
# is clean for qemu-img check, and the top image is emptied (qemu-img map
# shows no area of its own) exactly when qemu-img empties it.  What is
# refused leaves every image byte-identical.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 23

B=$BLKHOST
cd "$T" || exit 1
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
own_areas() { qemu-img map --output=json "$1" | grep -c '"depth": 0'; }

# orig/: base.qcow2 2M: 1s over 0-1M;  mid.qcow2 over base: 3s at 128k,
# zeros at 512k;  top.qcow2 over mid: 2s at 0, zeros at 256k, 6s at
# 1M+4k (not cluster aligned);  small.qcow2 1M with 1s, under big.qcow2
# 4M (the base grows);  v2.qcow2 (compat 0.10) over base;  base.raw
# under onraw.qcow2;  alone.qcow2 has no backing file;  odd.qcow2 over
# oddbase.qcow2, 1000k (no cluster multiple), data in its last cluster;
# snap.qcow2: top.qcow2 with an internal snapshot, then 4s at 64k.
mkdir orig && cd orig || exit 1
qemu-img create -q -f qcow2 base.qcow2 2M
io base.qcow2 -c "write -P 1 0 1M"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2
io mid.qcow2 -c "write -P 3 128k 64k" -c "write -z 512k 64k"
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2
io top.qcow2 -c "write -P 2 0 64k" -c "write -z 256k 64k" -c "write -P 6 1028k 5k"
qemu-img create -q -f qcow2 small.qcow2 1M
io small.qcow2 -c "write -P 1 0 1M"
qemu-img create -q -f qcow2 -b small.qcow2 -F qcow2 big.qcow2 4M
io big.qcow2 -c "write -P 8 3M 64k"
qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 v2.qcow2
io v2.qcow2 -c "write -P 4 64k 64k"
qemu-img create -q -f raw base.raw 2M
io base.raw -f raw -c "write -P 9 0 2M"
qemu-img create -q -f qcow2 -b base.raw -F raw onraw.qcow2
io onraw.qcow2 -c "write -P 5 1M 128k" -c "write -z 0 64k"
qemu-img create -q -f qcow2 alone.qcow2 1M
qemu-img create -q -f qcow2 oddbase.qcow2 1000k
qemu-img create -q -f qcow2 -b oddbase.qcow2 -F qcow2 odd.qcow2
io odd.qcow2 -c "write -P 7 0 4k" -c "write -P 2 960k 40k"
cp top.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
io snap.qcow2 -c "write -P 4 64k 64k"
cd .. || exit 1

# committed DESC IMAGE ARGS...
committed() {
    local desc=$1 img=$2 brc qrc bad="" f; shift 2
    fresh
    (cd b && "$B" commit "$@" "$img" >../b.out 2>../b.err); brc=$?
    (cd q && qemu-img commit "$@" "$img" >../q.out 2>../q.err); qrc=$?
    sed -i 's/ *([0-9.]*\/100%)\r//g' b.out q.out
    [ $brc -eq $qrc ] || bad="exit $brc, qemu-img's $qrc"
    cmp -s b.out q.out || bad="$bad; stdout differs"
    for f in orig/*.qcow2; do
        f=${f#orig/}
        qemu-img compare -q "q/$f" "b/$f" || bad="$bad; $f reads differently"
        qemu-img check -q "b/$f" || bad="$bad; $f not clean"
    done
    cmp -s q/base.raw b/base.raw || bad="$bad; base.raw differs"
    [ "$(own_areas "b/$img")" = "$(own_areas "q/$img")" ] ||
        bad="$bad; $img holds $(own_areas "b/$img") areas, qemu-img's $(own_areas "q/$img")"
    chain_report commit "$desc" $qrc "$bad"
}

refused() { chain_refused commit "$@"; }

committed "into the backing file, which gets data and zero clusters; the top is emptied" top.qcow2
committed "-d leaves the top image as it was" top.qcow2 -d
fresh
(cd b && "$B" commit -q -d top.qcow2)
check "commit: ... byte for byte" cmp orig/top.qcow2 b/top.qcow2
committed "-b the bottom file: the middle layer's areas too (implies -d)" top.qcow2 -b base.qcow2
committed "-b the backing file itself, with -d" top.qcow2 -b mid.qcow2 -d
committed "-b names the base by its path from here" top.qcow2 -b ./base.qcow2
fresh
mkdir q/sub b/sub
mv q/base.qcow2 q/sub/; mv b/base.qcow2 b/sub/
(cd q && qemu-img rebase -u -b sub/base.qcow2 -F qcow2 mid.qcow2 &&
 qemu-img rebase -u -b sub/base.qcow2 -F qcow2 ../b/mid.qcow2)
if (cd q/sub && qemu-img commit -q -b ./sub/base.qcow2 ../top.qcow2) &&
   (cd b/sub && "$B" commit -q -b ./sub/base.qcow2 ../top.qcow2) &&
   qemu-img compare -q q/sub/base.qcow2 b/sub/base.qcow2 &&
   ! qemu-img compare -q orig/base.qcow2 b/sub/base.qcow2; then
    ok "commit: -b is taken relative to the folder of the image above it (as qemu-img)"
else
    not_ok "commit: -b is taken relative to the folder of the image above it (as qemu-img)"
fi
committed "a base shorter than the image grows to its size" big.qcow2
committed "a version 2 image is emptied too (no zero flag needed)" v2.qcow2
committed "into a raw backing file" onraw.qcow2
committed "a size no cluster multiple: the last, partial cluster is emptied too" odd.qcow2
committed "an overlay with an internal snapshot is emptied" snap.qcow2
(cd b && "$B" snapshot -a s1 snap.qcow2) && (cd q && qemu-img snapshot -a s1 snap.qcow2)
if qemu-img compare -q q/snap.qcow2 b/snap.qcow2 && qemu-img check -q b/snap.qcow2 &&
   ! (cd orig && qemu-img compare -q mid.qcow2 ../b/mid.qcow2); then
    ok "commit: ... and its snapshot still holds its own data (reverted, it reads as qemu-img's)"
else
    not_ok "commit: ... and its snapshot still holds its own data (reverted, it reads as qemu-img's)"
fi
committed "-p prints progress" top.qcow2 -p
committed "-q prints nothing" top.qcow2 -q
refused "an image without a backing file" "Image does not have a backing file" alone.qcow2
refused "-b not in the chain" "Did not find 'nothere' in the backing chain of 'top.qcow2'" \
    top.qcow2 -b nothere
refused "-b the image itself is not in its backing chain" "Did not find" top.qcow2 -b top.qcow2
refused "no image" "Expecting one image file name" -q
# A missing backing file: nothing to commit into.
fresh
rm b/mid.qcow2
cp -a b b.before
check_fails "commit: a missing backing file is refused" "mid.qcow2" "$B" commit b/top.qcow2
check "commit: ... and leaves the image byte-identical" diff -r b.before b

# A read error in the overlay mid-copy (an L2 entry pointing at an
# unaligned offset): the command fails and the overlay is neither changed
# nor emptied (it was open read-only while copying).
fresh
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 b/badtop.qcow2
qemu-io -c "write -P 8 0 1M" b/badtop.qcow2 >/dev/null
corrupt_l2 b/badtop.qcow2 10
cp b/badtop.qcow2 badtop.before
check_fails "commit: a read error in the overlay mid-copy fails the command" \
    "." "$B" commit b/badtop.qcow2
check "commit: ... and leaves the overlay byte-identical (not emptied)" cmp badtop.before b/badtop.qcow2
