#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Allocation with small clusters and wide refcounts: a refcount block then
# covers few clusters (64 with 512-byte clusters and 64-bit refcounts), and
# a 64 KiB write needs a contiguous run longer than one block's range.
# The file must come out as small as qemu-io makes it, with qemu-img check
# clean and the data equal.  Before the fix, 512/64 grew the file without
# bound (hundreds of MB for 3 MiB of data) and 512/32 doubled it.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io

combos=("512 1" "512 16" "512 32" "512 64" "1024 64" "4096 64" "65536 16")
plan $(( ${#combos[@]} * 2 + 1 ))

cat > "$T/w.lua" <<'LUA'
local bh = require "blkhost"
local n = bh.open(arg[1], {format = "qcow2"})
local d = string.rep("x", 65536)
-- 48 pieces of 64 KiB, every other one first, then the gaps: runs that
-- cross many refcount block ranges, and allocations between existing ones.
for i = 0, 47, 2 do n:write(i * 65536, d) end
for i = 1, 47, 2 do n:write(i * 65536, d) end
n:close()
LUA

for c in "${combos[@]}"; do
    set -- $c; cs=$1 rb=$2
    opts="cluster_size=$cs,refcount_bits=$rb"
    qemu-img create -q -f qcow2 -o "$opts" "$T/b.qcow2" 4M
    qemu-img create -q -f qcow2 -o "$opts" "$T/q.qcow2" 4M
    args=()
    for i in $(seq 0 2 47) $(seq 1 2 47); do
        args+=(-c "write -P 0x78 $((i * 65536)) 64k")
    done
    qemu-io -f qcow2 "${args[@]}" "$T/q.qcow2" >/dev/null
    if ! out=$(timeout 120 "$BLKHOST" run "$T/w.lua" "$T/b.qcow2" 2>&1); then
        not_ok "qcow2 $opts: 3 MiB of 64 KiB writes complete"; diag "$out"
        not_ok "qcow2 $opts: file size within 2% of qemu-io's (skipped: the writes failed)"
        continue
    fi
    if qemu-img check -q "$T/b.qcow2" && qemu-img compare -q "$T/b.qcow2" "$T/q.qcow2"; then
        ok "qcow2 $opts: 3 MiB of 64 KiB writes complete, check clean, data equal to qemu-io's"
    else
        not_ok "qcow2 $opts: 3 MiB of 64 KiB writes complete, check clean, data equal to qemu-io's"
        diag "$(qemu-img check "$T/b.qcow2" 2>&1 | tail -3)"
    fi
    ours=$(stat -c %s "$T/b.qcow2") theirs=$(stat -c %s "$T/q.qcow2")
    if [ "$ours" -le $(( theirs + theirs / 50 )) ]; then
        ok "qcow2 $opts: file size $ours within 2% of qemu-io's $theirs"
    else
        not_ok "qcow2 $opts: file size $ours within 2% of qemu-io's $theirs"
    fi
done

# A refcount table that must grow while runs cross block ranges: 64 MiB
# written in 512-byte clusters with 64-bit refcounts needs many blocks and
# a table of several clusters.
qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 "$T/g.qcow2" 64M
cat > "$T/g.lua" <<'LUA'
local bh = require "blkhost"
local n = bh.open(arg[1], {format = "qcow2"})
local d = string.rep("y", 1024 * 1024)
for i = 0, 63 do n:write(i * 1024 * 1024, d) end
n:close()
LUA
size_ok=0
if timeout 300 "$BLKHOST" run "$T/g.lua" "$T/g.qcow2" >"$T/g.log" 2>&1 &&
   qemu-img check -q "$T/g.qcow2"; then
    size=$(stat -c %s "$T/g.qcow2")
    # 64 MiB of data, L2 tables (8 bytes per 512-byte cluster: 1/64) and
    # refcount blocks (1/64): about 66 MiB.
    [ "$size" -le $(( 70 * 1024 * 1024 )) ] && size_ok=1
fi
if [ $size_ok = 1 ]; then
    ok "qcow2 512/64: 64 MiB in 1 MiB writes grows the refcount table, check clean, file $(stat -c %s "$T/g.qcow2") bytes"
else
    not_ok "qcow2 512/64: 64 MiB in 1 MiB writes grows the refcount table, check clean"
    diag "$(cat "$T/g.log"; qemu-img check "$T/g.qcow2" 2>&1 | tail -3; stat -c %s "$T/g.qcow2")"
fi
