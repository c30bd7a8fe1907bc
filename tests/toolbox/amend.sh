#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost amend` (lua/cmd/amend.lua, drivers/qcow2/amend.c) beside
# qemu-img 7.2 amend, each on its own copy of the same image with the same
# options: the same exit status and stdout; afterwards blkhost's copy is
# clean for qemu-img check, has the original's contents (qemu-img compare,
# and every internal snapshot's too), and qemu-img info shows the same
# virtual size, compat, lazy refcounts, refcount bits, snapshots, backing
# file and dirty flag as qemu-img's copy.  What either refuses is refused
# with qemu-img's message and leaves blkhost's copy byte-identical.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io jq python3

plan 66

B=$BLKHOST
cd "$T" || exit 1
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null 2>&1; }

# What qemu-img info says that amend may change, one line:
# [size, compat, lazy, bits, corrupt, dirty, backing, backing format,
# [[snapshot id, name, vm state size], ...]].
summary() {
    qemu-img info --output=json "$1" | jq -c '."format-specific".data as $f |
        [."virtual-size", $f.compat, $f."lazy-refcounts", $f."refcount-bits",
         $f.corrupt, ."dirty-flag", ."backing-filename",
         ."backing-filename-format",
         [(.snapshots // [])[] | [.id, .name, ."vm-state-size"]]]'
}
snapshots() { qemu-img snapshot -l "$1" | awk 'NR > 2 { print $2 }'; }
# snaps_same A B: every internal snapshot of A reads as B's of that name
# (as far as A's goes: qemu-img reads a snapshot at the image's current
# size, so after a grow B's is longer).
snaps_same() {
    local s
    for s in $(snapshots "$1"); do
        qemu-img convert -l "snapshot.name=$s" -O raw "$1" sa.raw || return 1
        qemu-img convert -l "snapshot.name=$s" -O raw "$2" sb.raw || return 1
        cmp -s -n "$(stat -c %s sa.raw)" sa.raw sb.raw || return 1
    done
}

# amended DESC IMAGE ARGS...: blkhost amend ARGS on b-IMAGE, qemu-img
# amend ARGS on q-IMAGE; the checks of the header comment.
amended() {
    local desc=$1 img=$2 brc qrc bad="" bs qs; shift 2
    cp "$img" "b-$img"; cp "$img" "q-$img"
    "$B" amend "$@" "b-$img" >b.out 2>b.err; brc=$?
    qemu-img amend "$@" "q-$img" >q.out 2>q.err; qrc=$?
    [ $brc -eq $qrc ] || bad="exit $brc, qemu-img $qrc"
    [ $brc -eq 0 ] || bad="$bad; failed"
    cmp -s b.out q.out || bad="$bad; stdout differs"
    qemu-img check -q "b-$img" >chk.out 2>&1 || bad="$bad; qemu-img check: $(cat chk.out)"
    qemu-img compare -q "$img" "b-$img" 2>/dev/null || bad="$bad; contents differ"
    snaps_same "$img" "b-$img" || bad="$bad; a snapshot's contents differ"
    bs=$(summary "b-$img"); qs=$(summary "q-$img")
    [ "$bs" = "$qs" ] || bad="$bad; info: $bs vs qemu-img's $qs"
    if [ -z "$bad" ]; then
        ok "amend: $desc (as qemu-img amend: check clean, same contents and snapshots, same info $(cut -d, -f2-4 <<<"$bs"))"
    else
        not_ok "amend: $desc"; diag "$bad"; diag "$(cat b.err q.err)"
    fi
}

# refused DESC IMAGE ARGS...: both refuse, blkhost with qemu-img's
# message (stderr, the program name aside), and b-IMAGE is unchanged.
refused() {
    local desc=$1 img=$2 brc qrc bmsg qmsg; shift 2
    cp "$img" "b-$img"; cp "$img" "q-$img"
    "$B" amend "$@" "b-$img" >/dev/null 2>b.err; brc=$?
    qemu-img amend "$@" "q-$img" >/dev/null 2>q.err; qrc=$?
    bmsg=$(sed 's/^blkhost amend: //' b.err); qmsg=$(sed 's/^qemu-img: //' q.err)
    if [ $brc -ne 0 ] && [ $qrc -ne 0 ] && [ "$bmsg" = "$qmsg" ] &&
       cmp -s "$img" "b-$img"; then
        ok "amend: $desc refused as by qemu-img ('$(head -1 <<<"$qmsg")'), image byte-identical"
    else
        not_ok "amend: $desc refused as by qemu-img, image byte-identical"
        diag "exit $brc, qemu-img $qrc"; diag "blkhost: $bmsg"; diag "qemu-img: $qmsg"
        cmp "$img" "b-$img" | while read -r l; do diag "$l"; done
    fi
}

# The images.  plain: data, zero clusters, unallocated; chain: over a
# backing file, with an internal snapshot and zero clusters written
# after it; v2: compat=0.10 with a snapshot; r1: refcount_bits=1;
# prealloc: preallocation=metadata (zero clusters that keep their
# cluster) with a snapshot; lazy: lazy refcounts, left dirty by a kill.
qemu-img create -q -f qcow2 plain.qcow2 8M
io plain.qcow2 -c "write -P 1 0 1M" -c "write -z 1M 1M" -c "write -P 2 3M 64k"
qemu-img create -q -f qcow2 base.qcow2 8M
io base.qcow2 -c "write -P 7 0 8M"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 chain.qcow2 8M
io chain.qcow2 -c "write -P 1 0 1M" -c "write -z 1M 1M" -c "write -P 2 3M 64k"
qemu-img snapshot -c s1 chain.qcow2
io chain.qcow2 -c "write -P 3 4M 1M" -c "write -z 5M 512k"
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 8M
io v2.qcow2 -c "write -P 4 0 2M"
qemu-img snapshot -c s1 v2.qcow2
io v2.qcow2 -c "write -P 5 1M 1M"
# v2old: as v2, its snapshot entry cut to no extra data, as QEMU before
# 1.x wrote them (v3 requires the VM state and disk size there).
cp v2.qcow2 v2old.qcow2
python3 - v2old.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
h = f.read(72)
so = struct.unpack('>Q', h[64:72])[0]
f.seek(so); e = f.read(4096)
extra = struct.unpack('>I', e[36:40])[0]
idl, nl = struct.unpack('>HH', e[12:16])
names = e[40 + extra:40 + extra + idl + nl]
new = e[:36] + struct.pack('>I', 0) + names
old_len = (40 + extra + idl + nl + 7) & ~7
f.seek(so); f.write(new + bytes(old_len - len(new)))
PY
qemu-img create -q -f qcow2 -o refcount_bits=1 r1.qcow2 8M
io r1.qcow2 -c "write -P 6 0 3M" -c "write -z 4M 1M"
qemu-img create -q -f qcow2 -o preallocation=metadata prealloc.qcow2 4M
io prealloc.qcow2 -c "write -P 5 0 1M" -c "write -z 1M 1M"
qemu-img snapshot -c s1 prealloc.qcow2
io prealloc.qcow2 -c "write -z 512k 128k"
qemu-img create -q -f qcow2 -o lazy_refcounts=on lazy.qcow2 8M
io lazy.qcow2 -c "write -P 8 0 2M" -c "sigraise 9"

# -o help and the command line.
"$B" amend -f qcow2 -o help >b.out; qemu-img amend -f qcow2 -o help >q.out
if cmp -s b.out q.out; then ok "amend: -f qcow2 -o help lists what qemu-img's does, byte for byte"
else not_ok "amend: -f qcow2 -o help as qemu-img's"; diff q.out b.out | while read -r l; do diag "$l"; done; fi
"$B" amend -o help plain.qcow2 >b.out; qemu-img amend -o help plain.qcow2 >q.out
if cmp -s b.out q.out; then ok "amend: -o help IMAGE (format probed) as qemu-img's"
else not_ok "amend: -o help IMAGE as qemu-img's"; fi
check_fails "amend: without -o says options are needed (as qemu-img)" "Must specify options \(-o\)" \
    "$B" amend plain.qcow2
qemu-img create -q -f raw r.raw 1M
refused "raw: a format without amend" r.raw -f raw -o size=2M

# Refusals: creation-only and unknown options, bad values, combinations.
refused "cluster_size" plain.qcow2 -o cluster_size=4096
refused "encryption" plain.qcow2 -o encryption=on
refused "encrypt.format" plain.qcow2 -o encrypt.format=luks
refused "preallocation" plain.qcow2 -o preallocation=full
refused "compression_type" plain.qcow2 -o compression_type=zlib
refused "extended_l2" plain.qcow2 -o extended_l2=on
refused "an unknown option" plain.qcow2 -o bogus=1
refused "an unknown option after a creation one (no hint)" plain.qcow2 -o cluster_size=4096,bogus=1
refused "compat=0.9" plain.qcow2 -o compat=0.9
refused "a trailing comma" plain.qcow2 -o compat=1.1,
refused "a bare unknown key" plain.qcow2 -o foo
refused "lazy_refcounts=maybe" plain.qcow2 -o lazy_refcounts=maybe
refused "refcount_bits=3" plain.qcow2 -o refcount_bits=3
refused "refcount_bits=128" plain.qcow2 -o refcount_bits=128
refused "refcount_bits=abc" plain.qcow2 -o refcount_bits=abc
refused "size=abc" plain.qcow2 -o size=abc
refused "a size not a multiple of 512" plain.qcow2 -o size=100000
refused "data_file" plain.qcow2 -o data_file=x.data
refused "data_file_raw=on" plain.qcow2 -o data_file_raw=on
refused "another backing file" chain.qcow2 -o backing_file=other.qcow2,backing_fmt=qcow2
refused "encrypt.state on an image without encryption" plain.qcow2 -o encrypt.state=active
refused "compat=0.10 with lazy_refcounts=on" plain.qcow2 -o compat=0.10,lazy_refcounts=on
refused "compat=0.10 with refcount_bits=8" plain.qcow2 -o compat=0.10,refcount_bits=8
refused "lazy_refcounts=on on a v2 image" v2.qcow2 -o lazy_refcounts=on
refused "refcount_bits=8 on a v2 image" v2.qcow2 -o refcount_bits=8
refused "compat=0.10 of a refcount_bits=1 image" r1.qcow2 -o compat=0.10
refused "refcount_bits=1 with a snapshot (refcount 2)" chain.qcow2 -o refcount_bits=1
# qemu-img resizes before it finds the snapshot; blkhost refuses first.
cp chain.qcow2 b-chain.qcow2
if out=$("$B" amend -o compat=0.10,size=16M b-chain.qcow2 2>&1); then
    not_ok "amend: compat=0.10 with a snapshot of another size refused"; diag "$out"
elif [ "$out" = "blkhost amend: Internal snapshots prevent downgrade of image" ] &&
     cmp -s chain.qcow2 b-chain.qcow2; then
    ok "amend: compat=0.10,size=16M with a snapshot of the old size refused as qemu-img does (qemu-img resizes first; blkhost leaves the image byte-identical)"
else
    not_ok "amend: compat=0.10,size=16M with a snapshot refused, image unchanged"; diag "$out"
fi

# What it changes.
amended "compat=0.10 of an image with zero clusters (no backing: unallocated)" plain.qcow2 -o compat=0.10
amended "compat=0.10 of a backed image with a snapshot (zero clusters become zeroed clusters)" chain.qcow2 -o compat=0.10
amended "compat=0.10 of a preallocated image with a snapshot (zero clusters with their cluster)" prealloc.qcow2 -o compat=0.10
amended "compat=v2 spelling" plain.qcow2 -o compat=v2
amended "compat=1.1 of a v2 image with a snapshot" v2.qcow2 -o compat=1.1
amended "compat=1.1 of a v2 image whose snapshot has no extra data (the table rewritten)" v2old.qcow2 -o compat=1.1
extra=$(python3 - b-v2old.qcow2 <<'PY'
import struct, sys
f = open(sys.argv[1], 'rb'); h = f.read(72)
f.seek(struct.unpack('>Q', h[64:72])[0]); e = f.read(40)
print(struct.unpack('>I', h[4:8])[0], struct.unpack('>I', e[36:40])[0])
PY
)
if [ "${extra%% *}" = 3 ] && [ "${extra#* }" -ge 16 ]; then
    ok "amend: compat=1.1: the snapshot entry now has v3's extra data (version, extra bytes: $extra)"
else
    not_ok "amend: compat=1.1 gives the snapshot entry v3's extra data"; diag "$extra"
fi
amended "compat=1.1,lazy_refcounts=on of a v2 image" v2.qcow2 -o compat=1.1,lazy_refcounts=on
amended "compat=1.1,refcount_bits=64 of a v2 image" v2.qcow2 -o compat=1.1,refcount_bits=64
amended "lazy_refcounts=on" plain.qcow2 -o lazy_refcounts=on
amended "a bare key means on (-o lazy_refcounts)" plain.qcow2 -o lazy_refcounts
amended "lazy_refcounts=off of a dirty lazy image (refcounts repaired first)" lazy.qcow2 -o lazy_refcounts=off
amended "compat=0.10 of a dirty lazy image" lazy.qcow2 -o compat=0.10
for bits in 1 2 4 8 32 64; do
    amended "refcount_bits=$bits" plain.qcow2 -o refcount_bits=$bits
done
amended "refcount_bits=64 of a backed image with a snapshot" chain.qcow2 -o refcount_bits=64
amended "refcount_bits=16,compat=0.10 of a refcount_bits=1 image (width first)" r1.qcow2 -o refcount_bits=16,compat=0.10
amended "size=16M (grow) of a backed image with a snapshot" chain.qcow2 -o size=16M
amended "size=4M (shrink; the data lies below)" plain.qcow2 -o size=4M
amended "options in two -o" v2.qcow2 -o compat=1.1 -o refcount_bits=32

# -p prints qemu-img's figures; -q nothing.
cp plain.qcow2 p.qcow2
out=$("$B" amend -p -o refcount_bits=4 p.qcow2 | tr '\r' '\n')
if echo "$out" | grep -qx '    (0.00/100%)' && echo "$out" | grep -qx '    (100.00/100%)'; then
    ok "amend: -p prints qemu-img's (0.00/100%) ... (100.00/100%) lines"
else
    not_ok "amend: -p prints progress lines"; diag "$out"
fi
out=$("$B" amend -q -p -o refcount_bits=16 p.qcow2)
if [ -z "$out" ] && qemu-img check -q p.qcow2; then ok "amend: -q -p prints nothing"
else not_ok "amend: -q -p prints nothing"; diag "$out"; fi

# The Lua API under the command: img:amend with a table and a progress
# function, and bh.amend_options.
cp plain.qcow2 l.qcow2
cat >amend.lua <<'LUA'
local bh = require "blkhost"
local img <close> = bh.open(arg[1], { readonly = false })
img:amend({ refcount_bits = 8, compat = "0.10" }, {})  -- refused: 8 needs v3
LUA
cat >amend2.lua <<'LUA'
local bh = require "blkhost"
local img <close> = bh.open(arg[1], { readonly = false })
local calls, last, total, ok = 0, -1, nil, true
img:amend({ refcount_bits = 64 }, { progress = function(done, t)
  calls = calls + 1
  ok = ok and done >= last and done <= t and (total == nil or total == t)
  last, total = done, t
end })
local names = {}
for _, o in ipairs(bh.amend_options("qcow2")) do names[#names + 1] = o.name end
print(calls > 0 and ok and last == total, img:info()["refcount-bits"],
      table.concat(names, " "):find("refcount_bits") ~= nil,
      bh.amend_options("raw") == nil)
LUA
out1=$("$B" run amend.lua l.qcow2 2>&1); rc1=$?
out2=$("$B" run amend2.lua l.qcow2 2>&1)
if [ $rc1 -ne 0 ] && echo "$out1" | grep -q "Refcount widths other than 16 bits" &&
   [ "$out2" = "true	64	true	true" ] && qemu-img check -q l.qcow2; then
    ok "amend: Lua img:amend takes a table, refuses as the command does, reports progress up to its total; bh.amend_options lists qcow2's, nil for raw"
else
    not_ok "amend: Lua img:amend and bh.amend_options"; diag "$out1"; diag "$out2"
fi

# The same command twice: the second changes nothing.
for o in compat=0.10 refcount_bits=8 lazy_refcounts=on compat=1.1; do
    cp plain.qcow2 t.qcow2
    "$B" amend -o "$o" t.qcow2 && cp t.qcow2 t1.qcow2 && "$B" amend -o "$o" t.qcow2
    if cmp -s t.qcow2 t1.qcow2 && qemu-img check -q t.qcow2; then
        ok "amend: -o $o twice: the second run leaves the image byte-identical"
    else
        not_ok "amend: -o $o twice harmless"; cmp t.qcow2 t1.qcow2 | while read -r l; do diag "$l"; done
    fi
done

# refcount_bits 1 -> 64 -> 16, three rounds: clean at every step, the
# same contents, and the file does not keep growing.
cp plain.qcow2 rt.qcow2
bad=""
for round in 1 2 3; do
    for bits in 1 64 16; do
        "$B" amend -o refcount_bits=$bits rt.qcow2 2>&1 || bad="$bad; amend $bits failed"
        qemu-img check -q rt.qcow2 >/dev/null 2>&1 || bad="$bad; check after $bits (round $round)"
    done
    [ $round = 1 ] && size1=$(stat -c %s rt.qcow2)
done
qemu-img compare -q plain.qcow2 rt.qcow2 || bad="$bad; contents differ"
[ "$(summary rt.qcow2 | cut -d, -f4)" = 16 ] || bad="$bad; not 16 bits at the end"
[ "$(stat -c %s rt.qcow2)" -le "$size1" ] || bad="$bad; grew from $size1 to $(stat -c %s rt.qcow2)"
if [ -z "$bad" ]; then
    ok "amend: refcount_bits 1 -> 64 -> 16 three times: check clean each step, same contents, file size stable ($size1 bytes)"
else
    not_ok "amend: refcount_bits 1 -> 64 -> 16 round trip"; diag "$bad"
fi

# Downgrade with zero clusters, mapped as qemu-img maps its own result
# (allocation and zero flags; host offsets may differ).
mapn() { qemu-img map --output=json "$1" | sed 's/, "offset": [0-9]*//'; }
for img in plain.qcow2 chain.qcow2; do
    cp "$img" "b-$img"; cp "$img" "q-$img"
    "$B" amend -o compat=0.10 "b-$img"; qemu-img amend -o compat=0.10 "q-$img"
    if [ "$(mapn "b-$img")" = "$(mapn "q-$img")" ]; then
        ok "amend: compat=0.10 of $img: qemu-img map shows the zero clusters as qemu-img's downgrade leaves them"
    else
        not_ok "amend: compat=0.10 of $img: map as qemu-img's"
        diff <(mapn "q-$img") <(mapn "b-$img") | while read -r l; do diag "$l"; done
    fi
done
