#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost check` (lua/cmd/check.lua, drivers/qcow2/check.c): the same
# exit status (0 clean, 1 cannot check, 2 corruptions, 3 leaks, 63 no
# check for the format), stdout (human and json) and problem lines as
# qemu-img 7.2 check on the same images, clean, leaking and corrupt; and
# repairs that leave `qemu-img check` clean.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io python3

plan 42

B=$BLKHOST
POKE="python3 $SOURCE_ROOT/tests/qcow2/poke.py"
cd "$T" || exit 1

same() { same_as_qemu check "$@"; }
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
# be64 FILE OFFSET / be16: read a big-endian field.
be64() { od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n' | sed 's/^/0x/'; }
# refblock IMAGE: offset of the first refcount block.
refblock() { printf '%d' "$(be64 "$1" "$(($(be64 "$1" 48)))")"; }
# l2 IMAGE: offset of the first L2 table (flags masked off).
l2() { printf '%d' $(( $(be64 "$1" "$(($(be64 "$1" 40)))") & 0x00fffffffffffe00 )); }
# set_ref IMAGE CLUSTER VALUE: a 16-bit refcount in the first block.
set_ref() { $POKE "$1" $(( $(refblock "$1") + 2 * $2 )) be16 "$3"; }
# problems CMD...: the lines naming problems, from stderr.
problems() { "$@" 2>&1 >/dev/null | grep -E '^(ERROR|Leaked)'; }
# same_problems DESC IMAGE: both name the same problems, in the same order.
same_problems() {
    if [ "$(problems "$B" check "$2")" = "$(problems qemu-img check "$2")" ]; then
        ok "check: $1"
    else
        not_ok "check: $1"; diag "$(problems "$B" check "$2")"
    fi
}

# A clean image: data, a compressed cluster, a zero cluster, fragmented.
qemu-img create -q -f qcow2 a.qcow2 4M
io a.qcow2 -c "write -P 1 0 128k" -c "write -c 1M 64k" -c "write 2M 64k" \
    -c "write -z 3M 64k"
same "a clean qcow2 (statistics: allocated, fragmented, compressed)" a.qcow2
same "a clean qcow2, --output=json" --output=json a.qcow2
same "-q prints nothing on a clean image" -q a.qcow2
same "-f qcow2 names the format" -f qcow2 a.qcow2
qemu-img create -q -f qcow2 empty.qcow2 1G
same "an empty qcow2 (no cluster allocated)" empty.qcow2
same "an empty qcow2, --output=json" --output=json empty.qcow2

# Leaks: two clusters past the end of the used area that the refcounts
# say are in use.
cp a.qcow2 leak.qcow2
truncate -s +128k leak.qcow2
end=$(( $(stat -c %s a.qcow2) / 65536 ))
set_ref leak.qcow2 $end 1; set_ref leak.qcow2 $((end + 1)) 1
same "two leaked clusters: exit 3 and the leak summary" leak.qcow2
same "two leaked clusters, --output=json (leaks key)" --output=json leak.qcow2
same_problems "leaked clusters are named on stderr as qemu-img names them" leak.qcow2

# Corruption: a data cluster's refcount too low (0).
data0=$(( $(be64 a.qcow2 "$(l2 a.qcow2)") & 0x00fffffffffffe00 ))
cp a.qcow2 low.qcow2; set_ref low.qcow2 $((data0 / 65536)) 0
same "a data cluster with refcount 0: exit 2, refcount and COPIED errors" low.qcow2
same "the same, --output=json (corruptions key)" --output=json low.qcow2
same_problems "too-low refcount and COPIED mismatch named as qemu-img names them" low.qcow2
# Refcount too high on a data cluster: a leak, and its COPIED flag wrong.
cp a.qcow2 high.qcow2; set_ref high.qcow2 $((data0 / 65536)) 2
same "a data cluster with refcount 2: one leak and one COPIED error (exit 2)" high.qcow2
same "the same, --output=json (corruptions and leaks)" --output=json high.qcow2
# COPIED flag missing on an L2 entry and on the L1 entry.
cp a.qcow2 nocopy.qcow2
$POKE nocopy.qcow2 "$(l2 a.qcow2)" be64 "$data0"
same "an L2 entry without COPIED on an unshared cluster is a corruption" nocopy.qcow2
cp a.qcow2 nocopy1.qcow2
$POKE nocopy1.qcow2 "$(($(be64 a.qcow2 40)))" be64 "$(l2 a.qcow2)"
same "an L1 entry without COPIED on an unshared L2 table is a corruption" nocopy1.qcow2

cp a.qcow2 unaligned.qcow2; corrupt_l2 unaligned.qcow2 0
same "an unaligned data cluster offset: its range counted and the entry a corruption" unaligned.qcow2

# Snapshots share clusters (refcount 2, no COPIED): clean.
cp a.qcow2 snap.qcow2
qemu-img snapshot -c s1 snap.qcow2
io snap.qcow2 -c "write -P 5 64k 64k"
same "an image with a snapshot and shared clusters is clean" snap.qcow2
cp snap.qcow2 snapleak.qcow2; truncate -s +64k snapleak.qcow2
set_ref snapleak.qcow2 $(( $(stat -c %s snap.qcow2) / 65536 )) 1
same "a leak in an image with a snapshot" --output=json snapleak.qcow2

# Formats and files check cannot handle.
qemu-img create -q -f raw r.raw 1M
same "a raw image: the format has no check (exit 63)" r.raw
same "a missing file: exit 1" missing.qcow2
same "--output=bogus is refused" --output=bogus a.qcow2
same "-r bogus is refused" -r bogus a.qcow2
check_fails "check: -U with -r is refused (a repair needs the image alone)" \
    "not allowed when repairing" "$B" check -U -r all leak.qcow2

# Repairs.  The repaired image is what counts: qemu-img check finds it
# clean; the summary of what was repaired is qemu-img's.
repaired() {
    local desc=$1 img=$2 mode=$3 brc qrc
    cp "$img" b-$img; cp "$img" q-$img
    "$B" check -r "$mode" b-$img >b.out 2>b.err; brc=$?
    qemu-img check -r "$mode" q-$img >q.out 2>q.err; qrc=$?
    if [ $brc -eq $qrc ] && cmp -s <(head -5 b.out) <(head -5 q.out) &&
       qemu-img check b-$img >c.out 2>&1 && qemu-img compare q-$img b-$img >/dev/null; then
        ok "check: $desc (exit $qrc, qemu-img check clean after, same contents)"
    else
        not_ok "check: $desc"
        diag "blkhost exit $brc, qemu-img exit $qrc"; diag "$(cat b.out b.err c.out)"
    fi
}
repaired "-r leaks repairs two leaked clusters" leak.qcow2 leaks
repaired "-r all repairs two leaked clusters" leak.qcow2 all
repaired "-r all repairs a too-low refcount" low.qcow2 all
repaired "-r leaks repairs a too-high refcount (and so its COPIED error)" high.qcow2 leaks
repaired "-r all repairs a leak beside a snapshot" snapleak.qcow2 all
repaired "-r all rewrites a missing COPIED flag on an L2 entry" nocopy.qcow2 all
repaired "-r all rewrites a missing COPIED flag on an L1 entry" nocopy1.qcow2 all
cp nocopy1.qcow2 b-nc.qcow2; cp nocopy1.qcow2 q-nc.qcow2
"$B" check -r all --output=json b-nc.qcow2 2>b.err | sed 's/b-nc/X/' >b.out
qemu-img check -r all --output=json q-nc.qcow2 2>q.err | sed 's/q-nc/X/' >q.out
if cmp -s b.out q.out && cmp -s b.err q.err; then
    ok "check: -r all --output=json on a COPIED mismatch: same JSON and Repairing lines as qemu-img"
else
    not_ok "check: -r all --output=json on a COPIED mismatch: same JSON and Repairing lines as qemu-img"
    diag "$(diff q.out b.out; diff q.err b.err)"
fi
cp low.qcow2 low2.qcow2
same "-r leaks refuses a too-low refcount (exit 1)" -r leaks low2.qcow2
check "check: ... and leaves that image byte-identical" cmp low.qcow2 low2.qcow2
cp leak.qcow2 leak2.qcow2
"$B" check -r leaks --output=json leak2.qcow2 >b.out 2>/dev/null
cp leak.qcow2 leak3.qcow2
qemu-img check -r leaks --output=json leak3.qcow2 >q.out 2>/dev/null
if diff <(grep -v image-end-offset b.out | sed 's/leak2/X/') \
        <(grep -v image-end-offset q.out | sed 's/leak3/X/') >/dev/null; then
    ok "check: -r leaks --output=json says leaks-fixed as qemu-img (end offset aside)"
else
    not_ok "check: -r leaks --output=json says leaks-fixed as qemu-img (end offset aside)"
    diag "$(diff q.out b.out)"
fi

# Persistent bitmaps: the directory, the bitmap tables and the data
# clusters are references like any other, not leaks.  qemu-io marks the
# enabled bitmap dirty and stores it, data clusters and all, at close.
cp a.qcow2 bm.qcow2
qemu-img bitmap --add bm.qcow2 b0 2>/dev/null
io bm.qcow2 -c "write -P 2 0 1M" -c "write -P 3 3M 512k"
qemu-img bitmap --add bm.qcow2 b1 --disable 2>/dev/null
same "an image with two persistent bitmaps, one holding data clusters: counted as qemu-img" bm.qcow2
same "the same, --output=json" --output=json bm.qcow2
# Leaks in that image, then -r leaks: the bitmaps stay (qemu-img info
# still lists them, qemu-img check stays clean).
cp bm.qcow2 bmleak.qcow2
truncate -s +128k bmleak.qcow2
end=$(( $(stat -c %s bm.qcow2) / 65536 ))
set_ref bmleak.qcow2 $end 1; set_ref bmleak.qcow2 $((end + 1)) 1
same "leaks in an image with persistent bitmaps: exit 3 and the same summary" bmleak.qcow2
"$B" check -q -r leaks bmleak.qcow2 >/dev/null 2>bmleak.err
if qemu-img check -q bmleak.qcow2 &&
   [ "$(qemu-img info --output=json bmleak.qcow2 | grep -c '"name": "b[01]"')" = 2 ] &&
   qemu-img compare -q bm.qcow2 bmleak.qcow2; then
    ok "check: -r leaks on an image with persistent bitmaps repairs it and keeps both bitmaps"
else
    not_ok "check: -r leaks on an image with persistent bitmaps repairs it and keeps both bitmaps"
    diag "$(cat bmleak.err; qemu-img check bmleak.qcow2 2>&1; qemu-img info bmleak.qcow2 | tail -12)"
fi
# An image with nothing allocated but fragments and compression zero:
# qemu-img leaves those counts out of the JSON.
qemu-img create -q -f qcow2 one.qcow2 4M
io one.qcow2 -c "write 0 64k"
same "one data cluster, --output=json (zero fragmented and compressed counts left out)" --output=json one.qcow2

# A lazy-refcounts writer killed before it wrote its refcounts: the dirty
# image's refcounts lag (too low); a repairing (read-write) open rebuilds
# them.
qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 8M
qemu-io -c "write -P 1 0 1M" -c "sigraise 9" dirty.qcow2 >/dev/null 2>&1
same "a dirty lazy-refcounts image: refcounts too low counted as qemu-img" dirty.qcow2
cp dirty.qcow2 dirty2.qcow2
if "$B" check -r all dirty2.qcow2 >/dev/null 2>&1 && qemu-img check dirty2.qcow2 >/dev/null 2>&1 &&
   qemu-io -c "read -P 1 0 1M" dirty2.qcow2 | grep -q "^read"; then
    ok "check: -r all on a dirty image leaves it clean for qemu-img check, data kept"
else
    not_ok "check: -r all on a dirty image leaves it clean for qemu-img check, data kept"
fi
