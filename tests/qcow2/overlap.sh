#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Metadata overlap checks and persistent bitmaps.
#
# Overlaps: an image whose refcounts wrongly say a metadata cluster is free
# (a zeroed refcount block, or one refcount poked to 0) is written once by
# qemu-io, the reference, and once by blkhost (Lua, qcow2-tool, over NBD).
# QEMU refuses with "Preventing invalid write on metadata" and sets the
# corrupt bit; blkhost must fail the same way (EIO, corrupt bit, a message
# naming the image and the section) and leave the file byte-identical to
# QEMU's result, which differs from the damaged input only in that bit.
#
# Bitmaps: created with `qemu-img bitmap --add`, listed by blkhost info as
# qemu-img info lists them; blkhost's first write invalidates them (it does
# not maintain them) with one message on stderr.  The reference for the
# result is what qemu-img says about any image written by a program that
# lacks bitmap support; QEMU itself would have kept them up to date.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/qcow2/lib.sh"
need qemu-img qemu-io cmp
TOOL=$QCOW2_TOOL
POKE=$QCOW2_POKE

plan 25

corrupt_bit() { echo $(( ($(be "$1" 72 8) >> 1) & 1 )); }
# only_corrupt_bit A B: B is A with the corrupt bit set, nothing else.
only_corrupt_bit() {
    /usr/bin/python3 -c 'import sys
a = bytearray(open(sys.argv[1], "rb").read()); b = open(sys.argv[2], "rb").read()
a[79] |= 2
sys.exit(0 if bytes(a) == b else 1)' "$@"
}

# A 64 MiB image with 128 KiB of data: header, refcount table, refcount
# block, L1, L2, data (clusters 0..6), 16-bit refcounts.
G=$T/good.qcow2
qemu-img create -q -f qcow2 "$G" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 128k' "$G" >/dev/null
CS=65536
RT=$(be "$G" 48 8)
RB=$(( $(be "$G" $RT 8) ))
L1=$(be "$G" 40 8)
L2=$(( $(be "$G" $L1 8) & 0x00fffffffffffe00 ))

# The Lua way in: open read-write, write, flush; print what failed.
cat > "$T/write.lua" <<'EOF'
local bh = require "blkhost"
local img <close> = bh.open(arg[1], { format = "qcow2" })
local ok, err = pcall(img.write, img, tonumber(arg[2]), string.rep("\x22", 4096))
print("write:", ok and "ok" or err)
ok, err = pcall(img.write, img, tonumber(arg[2]), string.rep("\x23", 4096))
print("second write:", ok and "ok" or err)
ok, err = pcall(img.flush, img)
print("flush:", ok and "ok" or err)
EOF

# same_as_qemu DESC SECTION-QEMU SECTION-BLKHOST DAMAGED-IMG [MODE]:
# write 4k with qemu-io and with blkhost (Lua) on copies of the image.
# MODE "same" (default): blkhost's file must equal qemu-io's; "qemu-zeroes":
# qemu-io 7.2 zeroes the cluster before its check fires (the zero-fill of
# a new cluster's unwritten part is not checked), so only blkhost's own
# result is compared with the input.
same_as_qemu() {
    local desc=$1 qsec=$2 bsec=$3 img=$4 mode=${5:-same} goff=1048576 qout bout
    cp "$img" "$T/q.qcow2"; cp "$img" "$T/b.qcow2"
    qout=$(qemu-io -f qcow2 -c "write -P 0x22 $goff 4k" "$T/q.qcow2" 2>&1)
    bout=$("$BLKHOST" run "$T/write.lua" "$T/b.qcow2" "$goff" 2>&1)
    if ! echo "$qout" | grep -q "Preventing invalid write on metadata (overlaps with $qsec)"; then
        not_ok "$desc"; diag "qemu-io did not refuse as expected:"; diag "$qout"
    elif ! echo "$bout" | grep -q "^write:.*b.qcow2: refusing to write .* it overlaps the $bsec; image marked corrupt"; then
        not_ok "$desc"; diag "blkhost did not refuse as expected:"; diag "$bout"
    elif [ "$(echo "$bout" | grep -c "marking the image as corrupt: .*overlaps the $bsec")" != 1 ]; then
        not_ok "$desc"; diag "no single stderr message naming the image:"; diag "$bout"
    elif ! echo "$bout" | grep -q "^second write:.*marked corrupt; writes refused" ||
         ! echo "$bout" | grep -q "^flush:.*marked corrupt"; then
        not_ok "$desc"; diag "later write/flush not refused:"; diag "$bout"
    elif [ "$mode" = same ] && ! cmp -s "$T/q.qcow2" "$T/b.qcow2"; then
        not_ok "$desc"; diag "files differ from qemu-io's result:"; diag "$(cmp -l "$T/q.qcow2" "$T/b.qcow2" | head)"
    elif ! only_corrupt_bit "$img" "$T/b.qcow2"; then
        not_ok "$desc"; diag "more than the corrupt bit changed:"; diag "$(cmp -l "$img" "$T/b.qcow2" | head)"
    else
        ok "$desc"
    fi
}

# zero_refcount IMG OFFSET: the refcount of the cluster at OFFSET becomes 0.
zero_refcount() { "$POKE" "$1" $(( RB + 2 * ($2 / CS) )) be16 0; }

# 1. The refcount block zeroed (a bad disk): every cluster looks free.
cp "$G" "$T/zrb.qcow2"
dd if=/dev/zero of="$T/zrb.qcow2" bs=$CS seek=$((RB / CS)) count=1 conv=notrunc status=none
same_as_qemu "overlap: zeroed refcount block: blkhost (Lua) refuses the allocating write with EIO like qemu-io, file identical to qemu-io's (only the corrupt bit set)" \
    qcow2_header "refcount table" "$T/zrb.qcow2"
cp "$T/q.qcow2" "$T/zrb-q.qcow2"; cp "$T/b.qcow2" "$T/zrb-b.qcow2"
qc=$(qemu-img check "$T/zrb-q.qcow2" 2>&1); qrc=$?
bc=$(qemu-img check "$T/zrb-b.qcow2" 2>&1); brc=$?
if [ $qrc -eq 2 ] && [ $brc -eq $qrc ] && [ "$qc" = "$bc" ] &&
   qemu-img info "$T/zrb-b.qcow2" | grep -q "corrupt: true"; then
    ok "overlap: zeroed refcount block: qemu-img check/info report blkhost's result exactly as qemu's (corrupt: true, exit 2)"
else
    not_ok "overlap: zeroed refcount block: qemu-img check/info report blkhost's result exactly as qemu's (corrupt: true, exit 2)"
    diag "qemu rc=$qrc blkhost rc=$brc"; diag "$bc"
fi
check_fails "overlap: zeroed refcount block: blkhost then refuses read-write opens" \
    "marked corrupt; it can only be opened read-only" "$TOOL" open "$T/zrb-b.qcow2"
out=$("$BLKHOST" info "$T/zrb-b.qcow2" 2>&1)
if echo "$out" | grep -q "corrupt: true"; then ok "overlap: blkhost info shows corrupt: true afterwards"
else not_ok "overlap: blkhost info shows corrupt: true afterwards"; diag "$out"; fi

# 1b. A snapshot create on the same image: the new L1 and table copies
# would go where the refcounts say "free", which is the live header and
# tables.  qemu-img refuses and marks the image corrupt; so must blkhost.
cp "$T/zrb.qcow2" "$T/sq.qcow2"; cp "$T/zrb.qcow2" "$T/sb.qcow2"
qout=$(qemu-img snapshot -c s1 "$T/sq.qcow2" 2>&1); qrc=$?
bout=$("$BLKHOST" snapshot -c s1 "$T/sb.qcow2" 2>&1); brc=$?
if [ $qrc -ne 0 ] && [ $brc -ne 0 ] && echo "$qout" | grep -q "Preventing invalid write on metadata" &&
   echo "$bout" | grep -q "new snapshot metadata .* overlaps the .*image marked corrupt" &&
   cmp -s "$T/sq.qcow2" "$T/sb.qcow2" && only_corrupt_bit "$T/zrb.qcow2" "$T/sb.qcow2"; then
    ok "overlap: zeroed refcount block: snapshot -c refused with EIO like qemu-img, file identical to qemu-img's (only the corrupt bit set)"
else
    not_ok "overlap: zeroed refcount block: snapshot -c refused with EIO like qemu-img, file identical to qemu-img's (only the corrupt bit set)"
    diag "qemu-img rc=$qrc: $qout"; diag "blkhost rc=$brc: $bout"
fi

# 2. The same through qcow2-tool (C API): EIO and the file as before.
cp "$T/zrb.qcow2" "$T/t.qcow2"
out=$("$TOOL" write "$T/t.qcow2" 1048576 4096 0x22 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "overlaps the refcount table" && cmp -s "$T/t.qcow2" "$T/zrb-q.qcow2"; then
    ok "overlap: zeroed refcount block: the C API write fails too, file identical to qemu-io's"
else
    not_ok "overlap: zeroed refcount block: the C API write fails too, file identical to qemu-io's"; diag "$out"
fi

# 3. Through NBD: the client gets EIO, the server keeps running.
cp "$T/zrb.qcow2" "$T/n.qcow2"
serve_nbd "$T/n.qcow2"
out=$(qemu-io -f raw -c 'write -P 0x22 1M 4k' "$uri" 2>&1)
out2=$(qemu-io -f raw -r -c 'read -P 0x11 0 4k' "$uri" 2>&1)
kill -TERM $spid; wait $spid
if echo "$out" | grep -q "write failed: Input/output error" && ! echo "$out2" | grep -qi "fail" &&
   cmp -s "$T/n.qcow2" "$T/zrb-q.qcow2" && grep -q "n.qcow2: marking the image as corrupt" "$T/serve.log"; then
    ok "overlap: zeroed refcount block over NBD: the client gets EIO, reads still work, file identical to qemu-io's"
else
    not_ok "overlap: zeroed refcount block over NBD: the client gets EIO, reads still work, file identical to qemu-io's"
    diag "$out"; diag "$out2"; diag "$(cat "$T/serve.log")"
fi

# 4. One section at a time: only its cluster's refcount is 0, so it is
# the first free cluster and both programs allocate it.
for c in "L1:$L1:the active L1 table:active L1 table" \
         "L2:$L2:an active L2 table:active L2 table" \
         "RB:$RB:the refcount block:refcount block" \
         "RT:$RT:the refcount table:refcount table"; do
    IFS=: read -r tag off desc sec <<< "$c"
    cp "$G" "$T/$tag.qcow2"; zero_refcount "$T/$tag.qcow2" "$off"
    same_as_qemu "overlap: allocation landing on $desc refused like qemu-io" \
        "$sec" "$sec" "$T/$tag.qcow2"
done
# Snapshot table and inactive L1: a snapshot, its clusters then zeroed.
cp "$G" "$T/sn.qcow2"
qemu-img snapshot -c s1 "$T/sn.qcow2"
SNT=$(be "$T/sn.qcow2" 64 8)
SNL1=$(be "$T/sn.qcow2" $SNT 8)
cp "$T/sn.qcow2" "$T/snt.qcow2"; zero_refcount "$T/snt.qcow2" $SNT
same_as_qemu "overlap: allocation landing on the snapshot table refused like qemu-io, the table intact (qemu-io zeroes it)" \
    "snapshot table" "snapshot table" "$T/snt.qcow2" qemu-zeroes
check "overlap: after the refused write qemu-img still lists snapshot s1 in blkhost's result" \
    bash -c "qemu-img snapshot -l '$T/b.qcow2' | grep -q ' s1 '"
cp "$T/sn.qcow2" "$T/snl1.qcow2"; zero_refcount "$T/snl1.qcow2" $SNL1
same_as_qemu "overlap: allocation landing on a snapshot's (inactive) L1 table refused like qemu-io, the table intact (qemu-io zeroes it)" \
    "inactive L1 table" "inactive L1 table" "$T/snl1.qcow2" qemu-zeroes

# 5. In-place data write: an L2 entry pointing at the refcount block (a
# COPIED data cluster) is refused before the data goes there.
cp "$G" "$T/ip.qcow2"
"$POKE" "$T/ip.qcow2" $L2 be64 $(( RB | 0x8000000000000000 ))
cp "$T/ip.qcow2" "$T/ip-q.qcow2"
qout=$(qemu-io -f qcow2 -c 'write -P 0x22 0 4k' "$T/ip-q.qcow2" 2>&1)
out=$("$BLKHOST" run "$T/write.lua" "$T/ip.qcow2" 0 2>&1)
if echo "$qout" | grep -q "overlaps with refcount block" &&
   echo "$out" | grep -q "^write:.*refusing to write guest data .* overlaps the refcount block" &&
   cmp -s "$T/ip.qcow2" "$T/ip-q.qcow2"; then
    ok "overlap: in-place data write over a refcount block refused like qemu-io, file identical"
else
    not_ok "overlap: in-place data write over a refcount block refused like qemu-io, file identical"
    diag "$qout"; diag "$out"
fi

# 6. A healthy image still takes every kind of write and checks clean.
cp "$G" "$T/h.qcow2"
qemu-img snapshot -c s1 "$T/h.qcow2"
qemu-io -f qcow2 -c 'write -P 0x33 0 4k' -c 'write -P 0x44 32M 1M' -c 'write -z 8M 1M' "$T/h.qcow2" > /dev/null
cp "$T/h.qcow2" "$T/hq.qcow2"; "$TOOL" write "$T/h.qcow2" 1048576 4096 0x55 >/dev/null 2>&1
"$TOOL" write "$T/h.qcow2" 0 4096 0x66 >/dev/null 2>&1
check "overlap: no false alarm: writes to a snapshotted image (COW, new L2, in place) succeed and qemu-img check is clean" \
    qemu-img check -q "$T/h.qcow2"

# Tables replaced while open (snapshot create, apply, delete, more writes):
# the overlap check must follow them without a false alarm.
cat > "$T/snap.lua" <<'EOF2'
local bh = require "blkhost"
local img <close> = bh.open(arg[1], { format = "qcow2" })
local size = img:size()
math.randomseed(3)
for round = 1, 3 do
  for i = 1, 200 do
    img:write(math.random(0, size // 65536 - 1) * 65536 + 512 * math.random(0, 7),
              string.rep(string.char(round), 4096))
  end
  img:snapshot_create("s" .. round)
end
img:snapshot_apply("s1")
for i = 1, 200 do img:write(math.random(0, size // 4096 - 1) * 4096, string.rep("z", 4096)) end
img:snapshot_delete("s2")
for i = 1, 200 do img:write(math.random(0, size // 4096 - 1) * 4096, string.rep("y", 4096)) end
img:flush()
print("done")
EOF2
qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/sw.qcow2" 256M
out=$("$BLKHOST" run "$T/snap.lua" "$T/sw.qcow2" 2>&1)
if [ "$out" = done ] && qemu-img check -q "$T/sw.qcow2" && [ "$(corrupt_bit "$T/sw.qcow2")" = 0 ]; then
    ok "overlap: no false alarm when snapshot create/apply/delete replace the tables between writes in one open"
else
    not_ok "overlap: no false alarm when snapshot create/apply/delete replace the tables between writes in one open"
    diag "$out"; diag "$(qemu-img check "$T/sw.qcow2" 2>&1 | tail -5)"
fi

# Persistent bitmaps.
BM=$T/bm.qcow2
qemu-img create -q -f qcow2 "$BM" 64M
qemu-img bitmap --add "$BM" b1
qemu-img bitmap --add -g 131072 "$BM" b2
qemu-img bitmap --add --disable "$BM" off
section() { # the bitmaps: block of an info text
    awk '/^    bitmaps:/ { on = 1; print; next } on && /^    [^ ]/ { on = 0 } on' ; }
q=$(qemu-img info "$BM" | section)
b=$("$BLKHOST" info "$BM" | section)
if [ -n "$q" ] && [ "$q" = "$b" ]; then
    ok "bitmaps: blkhost info lists them as qemu-img info does (name, granularity, flags)"
else
    not_ok "bitmaps: blkhost info lists them as qemu-img info does (name, granularity, flags)"
    diag "qemu-img:"; diag "$q"; diag "blkhost:"; diag "$b"
fi
jq_bitmaps='import json, sys; print(json.dumps(json.load(sys.stdin)["format-specific"]["data"]["bitmaps"], sort_keys=True))'
q=$(qemu-img info --output=json "$BM" | /usr/bin/python3 -c "$jq_bitmaps")
b=$("$BLKHOST" info --output=json "$BM" | /usr/bin/python3 -c "$jq_bitmaps")
if [ -n "$q" ] && [ "$q" = "$b" ]; then
    ok "bitmaps: blkhost info --output=json has format-specific.data.bitmaps as qemu-img's"
else
    not_ok "bitmaps: blkhost info --output=json has format-specific.data.bitmaps as qemu-img's"
    diag "qemu-img: $q"; diag "blkhost: $b"
fi
check "bitmaps: a blkhost read-only open and info leave the image byte-identical" \
    bash -c "cp '$BM' '$T/bm0.qcow2' && '$BLKHOST' info '$BM' >/dev/null 2>&1 && '$TOOL' read '$BM' 0 4096 >/dev/null && cmp '$BM' '$T/bm0.qcow2'"
out=$("$TOOL" open "$BM" 2>&1)
if ! echo "$out" | grep -q "bitmap" && qemu-img info "$BM" | grep -q "name: b1"; then
    ok "bitmaps: a read-write open without writes keeps them, says nothing"
else
    not_ok "bitmaps: a read-write open without writes keeps them, says nothing"; diag "$out"
fi
cp "$BM" "$T/bmq.qcow2"
qemu-io -f qcow2 -c 'write -P 0x22 0 4k' "$T/bmq.qcow2" >/dev/null
out=$("$BLKHOST" run "$T/write.lua" "$BM" 0 2>&1)
n=$(echo "$out" | grep -c "does not maintain persistent dirty bitmaps")
if [ "$n" = 1 ] && echo "$out" | grep -q "bm.qcow2: .*3 of them ('b1', 'b2', 'off')" &&
   echo "$out" | grep -q "^flush:.ok"; then
    ok "bitmaps: the first write says once on stderr which bitmaps of which image it invalidates"
else
    not_ok "bitmaps: the first write says once on stderr which bitmaps of which image it invalidates"; diag "$out"
fi
qi=$(qemu-img info "$BM" 2>&1)
if echo "$qi" | grep -q "a program lacking bitmap support modified this file" &&
   ! echo "$qi" | grep -q "bitmaps:" && qemu-img info "$T/bmq.qcow2" 2>&1 | grep -q "name: b1" &&
   ! "$BLKHOST" info "$BM" 2>&1 | grep -q "bitmaps"; then
    ok "bitmaps: afterwards qemu-img and blkhost info show none (qemu-img: 'lacking bitmap support'; after qemu-io's own write they stay)"
else
    not_ok "bitmaps: afterwards qemu-img and blkhost info show none (qemu-img: 'lacking bitmap support'; after qemu-io's own write they stay)"
    diag "$qi"
fi
# QEMU's reference for an image written by a program without bitmap
# support: the bitmap clusters are leaked (exit 3), which -r leaks repairs.
qemu-img check "$BM" >"$T/chk.txt" 2>&1; rc=$?
if [ $rc -eq 3 ] && grep -q "leaked clusters were found" "$T/chk.txt" &&
   qemu-img check -q -r leaks "$BM" >/dev/null 2>&1 && qemu-img check -q "$BM" 2>/dev/null; then
    ok "bitmaps: qemu-img check then reports leaks only (exit 3), as for any writer lacking bitmap support; -r leaks makes it clean"
else
    not_ok "bitmaps: qemu-img check then reports leaks only (exit 3), as for any writer lacking bitmap support; -r leaks makes it clean"
    diag "rc=$rc"; diag "$(cat "$T/chk.txt")"
fi
out=$("$BLKHOST" run "$T/write.lua" "$BM" 4096 2>&1)
if ! echo "$out" | grep -q "bitmap"; then ok "bitmaps: no message on later opens, once they are dropped"
else not_ok "bitmaps: no message on later opens, once they are dropped"; diag "$out"; fi
