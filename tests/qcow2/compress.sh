#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# qcow2 compressed cluster writes (drivers/qcow2/compress.c), from Lua's
# node:write(off, data, {compress=true}).  qemu-io's `write -c` is the
# reference: the same writes go to twin images, one by blkhost and one by
# qemu-io, and must give the same exit status, the same qemu-img map and
# check, and data that qemu-img compare finds equal to what was written.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/qcow2/lib.sh"
need qemu-img qemu-io python3

plan 34

cd "$T" || exit 1
K=1024
C=65536
sum() { sha256sum "$1" | cut -d' ' -f1; }

# Data: text compresses about 50 times, random data not at all.
yes "blkhost writes compressed qcow2 clusters, qemu-img reads them" | head -c $((8 * C)) > text.bin
head -c $((2 * C)) /dev/urandom > rnd.bin
head -c $((70 * C)) /dev/zero | tr '\0' 'x' > long.bin
# half a cluster of random data then text: compresses, but not much
{ head -c $((C / 2)) /dev/urandom; head -c $((C / 2)) text.bin; } > half.bin

# bw IMAGE OP OFFSET FILE-OR-LENGTH: one blkhost write on IMAGE: c
# compressed, w plain, z zeroes; prints the error, exit 1 when it fails.
bw() {
    "$BLKHOST" run - "$@" <<'LUA'
local bh = require "blkhost"
local img, op, off, what = arg[1], arg[2], math.tointeger(tonumber(arg[3])), arg[4]
local n = bh.open(img)
local ok, err = pcall(function()
  if op == "z" then return n:zero(off, math.tointeger(tonumber(what))) end
  local f = assert(io.open(what, "rb")); local data = f:read("a"); f:close()
  n:write(off, data, { compress = op == "c" })
end)
n:close()
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end
LUA
}
# qw IMAGE OP OFFSET FILE-OR-LENGTH: the same with qemu-io.
qw() {
    local len
    case $2 in
    z) qemu-io -c "write -z $3 $4" "$1" ;;
    c) len=$(stat -c %s "$4"); qemu-io -c "write -c -s $4 $3 $len" "$1" ;;
    w) len=$(stat -c %s "$4"); qemu-io -c "write -s $4 $3 $len" "$1" ;;
    esac >qw.out 2>&1
    ! grep -q "failed" qw.out
}
# ew OFFSET FILE: the expected raw image gets FILE at OFFSET (z: zeros).
ew() {
    if [ "$2" = z ]; then dd if=/dev/zero of=exp.raw bs=1 seek="$1" count="$3" conv=notrunc status=none
    else dd if="$2" of=exp.raw bs=64k oflag=seek_bytes seek="$1" conv=notrunc status=none; fi
}
# twins SIZE CREATE-OPTS: b.qcow2 (blkhost's), q.qcow2 (qemu-io's), exp.raw.
twins() {
    rm -f b.qcow2 q.qcow2 exp.raw
    qemu-img create -q -f qcow2 ${2:+-o "$2"} b.qcow2 "$1"
    cp b.qcow2 q.qcow2
    qemu-img create -q -f raw exp.raw "$(qemu-img info --output=json b.qcow2 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')"
}
# both OP OFFSET FILE-OR-LENGTH: the write on both twins, which must end
# the same way (returns 1 if not, and same_result then fails too); exp.raw
# follows a success.  last_rc / last_err: blkhost's exit status and message.
mism=""
both() {
    local brc qrc berr
    berr=$(bw b.qcow2 "$@" 2>&1); brc=$?
    qw q.qcow2 "$@"; qrc=$?
    last_rc=$brc; last_err=$berr
    if [ $brc -ne $qrc ]; then
        mism+="$1 at $2 ($3): blkhost exit $brc, qemu-io exit $qrc: $berr $(cat qw.out)
"
        return 1
    fi
    if [ $brc -eq 0 ]; then
        if [ "$1" = z ]; then ew "$2" z "$3"; else ew "$2" "$3"; fi
    fi
    return 0
}
# refused DESC PATTERN OP OFFSET FILE: the write fails on both twins, the
# message matches PATTERN and blkhost's image is byte-identical.
refused() {
    local desc=$1 pat=$2; shift 2
    cp b.qcow2 before.qcow2
    if both "$@" && [ "$last_rc" -ne 0 ] && echo "$last_err" | grep -q -- "$pat" &&
       cmp -s b.qcow2 before.qcow2; then
        ok "$desc, as in qemu-io, the image byte-identical: $(echo "$last_err" | sed 's/.*compressed write/compressed write/' | cut -c1-90)"
    else
        not_ok "$desc, as in qemu-io, the image byte-identical"; diag "exit $last_rc: $last_err"; diag "$mism"
    fi
}
# accepted DESC OP OFFSET FILE: the write succeeds on both twins.
accepted() {
    local desc=$1; shift
    if both "$@" && [ "$last_rc" -eq 0 ]; then ok "$desc, as in qemu-io"
    else not_ok "$desc, as in qemu-io"; diag "exit $last_rc: $last_err"; diag "$mism"; fi
}
# kinds MAP: the map's kinds, host offsets left out (map-kinds.py says why).
kinds() { python3 "$SOURCE_ROOT/tests/qcow2/map-kinds.py" "$1"; }
# same_result DESC: the twins have the same qemu-img map (but for host
# offsets) and check, both clean, and both read as exp.raw (through
# qemu-img and through blkhost).
same_result() {
    local desc=$1 out
    qemu-img map --output=json b.qcow2 > b.map; qemu-img map --output=json q.qcow2 > q.map
    if [ -n "$mism" ]; then
        not_ok "$desc: every write ends as on qemu-io's twin"; diag "$mism"; mism=""; return
    fi
    qemu-img check b.qcow2 > b.chk 2>&1; local bc=$?
    qemu-img check q.qcow2 > q.chk 2>&1; local qc=$?
    # Fragmentation is left out: qemu compresses the clusters of one write
    # in parallel and packs them in the order they finish, so its own
    # figure varies from run to run.
    sed -i 's/[0-9.]*% fragmented, //' b.chk q.chk
    if [ $bc -ne 0 ] || ! cmp -s b.chk q.chk; then
        not_ok "$desc: qemu-img check as on qemu-io's twin (exit $qc)"; diag "$(diff q.chk b.chk)"
    elif [ "$(kinds b.map)" != "$(kinds q.map)" ]; then
        not_ok "$desc: qemu-img map as on qemu-io's twin"; diag "$(diff <(kinds q.map) <(kinds b.map))"
    elif ! out=$(qemu-img compare exp.raw b.qcow2 2>&1); then
        not_ok "$desc: qemu-img reads what was written"; diag "$out"
    elif ! out=$("$BLKHOST" compare exp.raw b.qcow2 2>&1); then
        not_ok "$desc: blkhost reads what was written"; diag "$out"
    else
        ok "$desc: qemu-img check ($(sed -n 2p b.chk | cut -d, -f3 | sed 's/^ //')) and map as on qemu-io write -c's twin, qemu-img and blkhost read it back"
    fi
}

# --- zlib, the default ---
twins 16M
both c 0 text.bin; both c $((8 * C)) rnd.bin; both c $((10 * C)) half.bin
same_result "compressed writes from Lua (zlib): 8 text clusters, 2 random, 1 half random"
if grep -q '"start": 0, "length": 524288, .*"data": true}' b.map && ! grep -q '"start": 0, .*"offset"' b.map; then
    ok "map: the compressed clusters show data and no offset, as qemu-img maps compressed clusters"
else
    not_ok "map: the compressed clusters show data and no offset"; diag "$(cat b.map)"
fi
if grep -q '"start": 524288, "length": 131072, .*"offset"' b.map; then
    ok "map: random clusters that do not shrink were written as normal clusters (they have an offset)"
else
    not_ok "map: random clusters that do not shrink were written as normal clusters"; diag "$(cat b.map)"
fi
"$BLKHOST" map --output=json b.qcow2 > bb.map 2>&1
cmp -s bb.map b.map && ok "map: blkhost map --output=json of the compressed image is byte-identical to qemu-img's" ||
    { not_ok "map: blkhost map --output=json is byte-identical to qemu-img's"; diag "$(diff b.map bb.map)"; }
# qemu-io leaves the file mid-sector; blkhost pads it to a sector at
# close, as qemu-img convert -c does.
bsize=$(stat -c %s b.qcow2); qsize=$(stat -c %s q.qcow2)
if [ "$bsize" = $(( (qsize + 511) / 512 * 512 )) ]; then
    ok "file size: blkhost's image is as long as qemu-io's rounded up to a sector ($bsize and $qsize bytes)"
else
    not_ok "file size: blkhost's image $(stat -c %s b.qcow2) bytes, qemu-io's $(stat -c %s q.qcow2)"
fi
"$BLKHOST" check b.qcow2 > bk.chk 2>&1; brc=$?
qemu-img check b.qcow2 > qk.chk 2>&1
[ $brc -eq 0 ] && cmp -s bk.chk qk.chk && ok "check: blkhost check of the compressed image says what qemu-img check says" ||
    { not_ok "check: blkhost check of the compressed image says what qemu-img check says"; diag "$(diff qk.chk bk.chk)"; }

# --- what a compressed write may not do, and what it may ---
refused "a compressed write onto a compressed cluster fails (EIO)" allocated c 0 text.bin
both w $((12 * C)) text.bin
refused "a compressed write onto a normal cluster fails (EIO)" allocated c $((12 * C)) text.bin
accepted "an incompressible compressed write onto a normal cluster is written plainly (qemu's fallback)" c $((12 * C)) rnd.bin
both z $((20 * C)) $((2 * C))
accepted "a compressed write onto zero clusters succeeds" c $((20 * C)) text.bin
refused "a compressed write at an unaligned offset fails (EINVAL)" "cluster boundary" c 512 text.bin
head -c $((C / 2)) text.bin > halfc.bin
refused "a compressed write of half a cluster inside the image fails (EINVAL)" "whole clusters" c $((30 * C)) halfc.bin
accepted "70 clusters in one compressed write (several compression batches, pipelined) succeed" c $((100 * C)) long.bin
same_result "after the refused and accepted writes"

# Overwrites and discards of compressed clusters free what they shared.
both w $((2 * C)) rnd.bin; both z $((5 * C)) $((2 * C))
same_result "compressed clusters overwritten plainly and zeroed (the shared host clusters' refcounts lowered)"

# --- the image's last, partial cluster ---
twins 100352
head -c 34816 text.bin > tail.bin
both c $C tail.bin
same_result "a compressed write of the image's last, partial cluster (100352-byte image)"
if [ $(( $(stat -c %s b.qcow2) % 512 )) -eq 0 ]; then
    ok "after compressed writes the file ends on a sector boundary ($(stat -c %s b.qcow2) bytes)"
else
    not_ok "after compressed writes the file ends on a sector boundary ($(stat -c %s b.qcow2) bytes)"
fi

# --- zstd ---
if qemu-img create -q -f qcow2 -o compression_type=zstd z.qcow2 1M 2>/dev/null; then
    twins 16M compression_type=zstd
    both c 0 text.bin; both c $((8 * C)) rnd.bin; both c $((100 * C)) long.bin
    same_result "compressed writes from Lua (zstd image)"
    out=$(qemu-img info b.qcow2)
    echo "$out" | grep -q "compression type: zstd" &&
        ok "zstd: qemu-img info still says compression type zstd after the writes" ||
        { not_ok "zstd: qemu-img info says compression type zstd"; diag "$out"; }
else
    skip "zstd: this qemu-img cannot make zstd images"
    skip "zstd: this qemu-img cannot make zstd images"
fi

# --- layouts: small and large clusters, 1-bit refcounts, version 2 ---
for o in cluster_size=512 cluster_size=2M refcount_bits=1 compat=0.10; do
    cs=$C
    case $o in cluster_size=512) cs=512 ;; cluster_size=2M) cs=$((2 * K * K)) ;; esac
    yes "blkhost layout $o" | head -c $((4 * cs)) > l-text.bin
    head -c "$cs" /dev/urandom > l-rnd.bin
    { head -c $((cs / 2)) /dev/urandom; head -c $((cs / 2)) l-text.bin; } > l-half.bin
    twins 16M "$o"
    both c 0 l-text.bin; both c $((4 * cs)) l-rnd.bin; both c $((5 * cs)) l-half.bin
    same_result "compressed writes with $o"
done

# --- reopen: packing restarts in a new host cluster, nothing leaks ---
twins 16M
head -c $C text.bin > one.bin
both c 0 one.bin; both c $C one.bin; both c $((2 * C)) one.bin
same_result "three compressed writes, each in its own open of the image"

# --- a snapshot shares compressed clusters ---
twins 16M
both c 0 text.bin
"$BLKHOST" snapshot -c s1 b.qcow2 && qemu-img snapshot -c s1 q.qcow2
both w 0 rnd.bin
same_result "a compressed cluster kept by an internal snapshot, then overwritten"

# --- threads: compressed writes racing with writes, zeroes, discards,
# flushes and reads on other clusters (sharing host clusters) ---
cstress() {
    local desc=$1 out rc seed=$RANDOM; shift
    rm -f s.qcow2 s.raw
    "$BLKHOST" create -f qcow2 "$@" s.qcow2 16M >/dev/null
    truncate -s 16M s.raw
    if ! out=$("$QCOW2_TOOL" cstress s.qcow2 s.raw $seed 4 3000 2>&1); then
        not_ok "$desc"; diag "seed $seed: $out"; return
    fi
    out=$(qemu-img check s.qcow2 2>&1); rc=$?
    if [ $rc -ne 0 ]; then not_ok "$desc"; diag "seed $seed: check exit $rc: $out"; return; fi
    if out=$(qemu-img compare -f qcow2 -F raw s.qcow2 s.raw 2>&1); then
        ok "$desc ($(echo "$(qemu-img check s.qcow2)" | sed -n 2p | sed 's/.*, //'))"
    else not_ok "$desc"; diag "seed $seed: $out"; fi
}
cstress "4 threads: compressed writes among writes, zeroes, discards, flushes and reads; check clean, same as mirror" \
    -o cluster_size=65536
cstress "the same with 4 KiB clusters (compressed data spilling over host clusters)" -o cluster_size=4096
truncate -s 16M zero.raw
cstress "the same over a backing file (discards leave zero clusters, compressed writes fill them)" \
    -o cluster_size=65536 -b zero.raw -F raw

# --- the open option compress=on: whole clusters onto unallocated ones
# compressed, the rest written as usual ---
rm -f co.qcow2 co.raw; qemu-img create -q -f qcow2 co.qcow2 4M; truncate -s 4M co.raw
head -c 300000 text.bin > co1.bin; head -c $C rnd.bin > co2.bin
out=$("$BLKHOST" run - co.qcow2 <<'LUA' 2>&1
local bh = require "blkhost"
local n <close> = bh.open(arg[1], { compress = "on" })
local function file(name) local f = assert(io.open(name, "rb")); local d = f:read("a"); f:close(); return d end
n:write(1000, file("co1.bin"))           -- a partial head, 3 whole clusters, a partial tail
n:write(2 * 65536, file("text.bin"):sub(1, 65536)) -- onto a compressed cluster: plainly
n:write(8 * 65536, file("co2.bin"))      -- random: does not shrink, written plainly
LUA
)
dd if=co1.bin of=co.raw bs=1 seek=1000 conv=notrunc status=none
dd if=text.bin of=co.raw bs=64k seek=2 count=1 conv=notrunc status=none
dd if=co2.bin of=co.raw bs=64k seek=8 conv=notrunc status=none
kinds_now=$(qemu-img map --output=json co.qcow2 | python3 "$SOURCE_ROOT/tests/qcow2/map-kinds.py" | tr '\n' ';')
# clusters 0 (partial) and 2 (overwritten) plain, 1 and 3 compressed, 8
# (random) plain
want="0 65536 0 True False True True;65536 65536 0 True False True False;131072 65536 0 True False True True;196608 65536 0 True False True False;262144 "
if [ -n "$out" ]; then
    not_ok "compress=on: writes succeed"; diag "$out"
elif ! qemu-img check -q co.qcow2 || ! qemu-img compare -q co.raw co.qcow2; then
    not_ok "compress=on: qemu-img check clean and the image as written"; diag "$(qemu-img check co.qcow2)"
elif [ "${kinds_now#"$want"}" = "$kinds_now" ] || [[ $kinds_now != *";524288 65536 0 True False True True;"* ]]; then
    not_ok "compress=on: whole clusters onto unallocated ones compressed, the rest plain"; diag "$kinds_now"
else
    ok "compress=on: a write's whole clusters onto unallocated ones are compressed; its partial ends, an allocated cluster and random data are written plainly; check clean, data as written"
fi
out=$("$BLKHOST" run - co.qcow2 <<'LUA' 2>&1
local bh = require "blkhost"
local ok, err = pcall(bh.open, arg[1], { compress = "maybe" })
print(ok and "opened" or tostring(err))
LUA
)
echo "$out" | grep -qi "compress" && ! echo "$out" | grep -q opened &&
    ok "compress=maybe is refused when opening, naming the option: $(echo "$out" | cut -c1-70)" ||
    { not_ok "compress=maybe is refused when opening, naming the option"; diag "$out"; }

# --- the asynchronous request path (bh_node_submit) ---
rm -f as.qcow2; qemu-img create -q -f qcow2 as.qcow2 1M
out=$("$QCOW2_TOOL" csubmit as.qcow2 65536 65536 0x41 2>&1)
if [ $? -eq 0 ] && qemu-img check -q as.qcow2 && [ "$(qemu-img check --output=json as.qcow2 |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("compressed-clusters"))')" = 1 ] &&
   qemu-io -c "read -P 0x41 64k 64k" as.qcow2 | grep -q "^read 65536/65536"; then
    ok "a compressed write submitted with bh_node_submit is stored compressed (qemu-img check: 1 compressed cluster; qemu-io reads it)"
else
    not_ok "a compressed write submitted with bh_node_submit is stored compressed"; diag "$out"; diag "$(qemu-img check as.qcow2)"
fi
truncate -s 1M as.raw; before=$(sum as.raw)
out=$("$QCOW2_TOOL" csubmit as.raw 0 65536 0x41 format=raw 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "cannot write compressed" && [ "$(sum as.raw)" = "$before" ]; then
    ok "a compressed write submitted with bh_node_submit to a raw node fails with ENOTSUP, nothing written: $(echo "$out" | tail -1 | cut -c1-70)"
else
    not_ok "a compressed write submitted with bh_node_submit to a raw node fails with ENOTSUP"; diag "$out"
fi

out=$("$QCOW2_TOOL" csubmit mem 0 65536 0x41 format=memory,size=1M 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "memory driver cannot write compressed"; then
    ok "a compressed write submitted to a driver with its own submit (memory) fails with ENOTSUP before it runs: $(echo "$out" | tail -1 | cut -c1-60)"
else
    not_ok "a compressed write submitted to a driver with its own submit (memory) fails with ENOTSUP"; diag "$out"
fi

# --- drivers that cannot ---
qemu-img create -q -f raw r.raw 1M; before=$(sum r.raw)
out=$(bw r.raw c 0 one.bin 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "cannot write compressed" && [ "$(sum r.raw)" = "$before" ]; then
    ok "a compressed write on a raw image fails with ENOTSUP, nothing written: $(echo "$out" | tail -1 | cut -c1-80)"
else
    not_ok "a compressed write on a raw image fails with ENOTSUP, nothing written"; diag "$out"
fi
