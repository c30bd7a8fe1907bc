#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost map` (lua/cmd/map.lua over node:map and bh_node_block_map):
# its standard output and exit status are qemu-img 7.2 map's, byte for
# byte, on the same images: raw files with holes, qcow2 with data, zero
# and compressed clusters, backing chains (depth), ranges.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 46

B=$BLKHOST
cd "$T" || exit 1

same() { same_as_qemu map "$@"; }
# both DESC ARGS...: the same in human and json output.
both() {
    local desc=$1; shift
    same "$desc, human" "$@"
    same "$desc, json" --output=json "$@"
}

# A raw image: data, a written run of zeros (data on the host), holes.
qemu-img create -q -f raw r.raw 8M
qemu-io -f raw -c "write -P 7 1M 256k" -c "write -P 0 3M 64k" \
    -c "write -P 1 8188k 4k" r.raw >/dev/null
both "raw image with data, written zeros and holes" r.raw
truncate -s 16M empty.raw
both "raw image that is one hole" empty.raw

# qcow2: data, a zero cluster, a compressed run, unallocated space.
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c "write -P 1 0 64k" -c "write -P 2 1M 128k" -c "write -c -P 3 2M 128k" \
    -c "write -z 3M 64k" base.qcow2 >/dev/null
same "qcow2 with compressed clusters: json shows them without offset" --output=json base.qcow2
same "qcow2 with compressed clusters: human prints the areas before and fails" base.qcow2
qemu-img create -q -f qcow2 plain.qcow2 4M
qemu-io -c "write -P 1 0 64k" -c "write -P 2 1M 192k" -c "write -z 3M 64k" \
    -c "write -P 4 3200k 4k" plain.qcow2 >/dev/null
both "qcow2 with data, a zero cluster and unallocated space" plain.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4096 small.qcow2 1M
qemu-io -c "write -P 1 0 12k" -c "write -P 2 40k 4k" -c "write -P 3 16k 8k" small.qcow2 >/dev/null
both "qcow2 with 4 KiB clusters written out of order (host offsets not contiguous)" small.qcow2

# Backing chains: depth counts the layers down to the one holding an area.
qemu-img create -q -f qcow2 -b plain.qcow2 -F qcow2 mid.qcow2 6M
qemu-io -c "write -P 5 32k 64k" -c "write -z 1M 64k" -c "write -z -u 2M 64k" mid.qcow2 >/dev/null
both "qcow2 over a qcow2 backing file (depth 1, zero clusters, backing shorter)" mid.qcow2
qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 6M
qemu-io -c "write -P 6 5M 64k" top.qcow2 >/dev/null
both "three-layer chain (depth 2)" top.qcow2
qemu-img create -q -f qcow2 -b r.raw -F raw ov.qcow2 12M
qemu-io -c "write -P 9 2M 64k" ov.qcow2 >/dev/null
both "qcow2 over a raw backing file" ov.qcow2
mkdir -p sub
cp plain.qcow2 mid.qcow2 sub/
both "chain opened through a relative folder (file column)" sub/mid.qcow2
both "chain opened by absolute path (file column)" "$T/sub/mid.qcow2"

# Data clusters whose host bytes are holes: QEMU asks the file about them
# when the image looks preallocated, and so must blkhost.
qemu-img create -q -f qcow2 -o preallocation=metadata meta.qcow2 2M
qemu-io -c "write -P 1 64k 4k" meta.qcow2 >/dev/null
both "qcow2 with preallocation=metadata (data clusters that are host holes)" meta.qcow2
cp --sparse=always mid.qcow2 sparse.qcow2
both "a qcow2 copied sparse (zeroed parts of data clusters became holes)" sparse.qcow2

# Ranges.
same "--start-offset inside a cluster" --output=json --start-offset=1k top.qcow2
same "--start-offset with --max-length" --output=json --start-offset=1k --max-length=33k top.qcow2
same "--max-length with a suffix, human" --max-length=1M top.qcow2
same "--start-offset past the end (an empty entry)" --output=json --start-offset=7M top.qcow2
same "--max-length=0" --output=json --max-length=0 top.qcow2

# A named format.
same "-f raw on a qcow2 maps the file itself" -f raw --output=json plain.qcow2
same "-f qcow2" -f qcow2 --output=json plain.qcow2

# An image blkhost wrote itself.
"$B" create -q -f qcow2 own.qcow2 8M
"$B" run - own.qcow2 <<'LUA'
local bh = require "blkhost"
local n <close> = bh.open(arg[1])
n:write(0, string.rep("a", 70000))
n:zero(1048576, 65536)
n:write(5 * 1048576, string.rep("b", 4096))
LUA
both "qcow2 written by blkhost" own.qcow2

# node:map itself, on a node without a block_map callback (memory: a
# protocol, so every byte sits at its own offset) and out of range.
out=$("$B" run - <<'LUA'
local bh = require "blkhost"
local m <close> = bh.open(nil, {format = "memory", size = "4M"})
m:write(65536, string.rep("x", 4096))
local t = {}
for _, e in ipairs(m:map()) do
  t[#t + 1] = string.format("%d+%d:%d:%s:%s:%s:%s", e.start, e.length, e.depth,
    e.present, e.zero, e.data, e.offset)
end
print(table.concat(t, " "))
print(select(2, pcall(m.map, m, 5 * 1048576, 1)))
print(#m:map(4 * 1048576))
LUA
)
want="0+65536:0:true:true:false:0 65536+65536:0:true:false:true:65536 131072+4063232:0:true:true:false:131072"
if [ "$(echo "$out" | sed -n 1p)" = "$want" ]; then
    ok "map: node:map on a memory node: data and zero areas at their own offsets"
else
    not_ok "map: node:map on a memory node: data and zero areas at their own offsets"; diag "$out"
fi
if echo "$out" | sed -n 2p | grep -q "block map past the end"; then
    ok "map: node:map past the end is an error saying so"
else
    not_ok "map: node:map past the end is an error saying so"; diag "$out"
fi
[ "$(echo "$out" | sed -n 3p)" = 0 ] && ok "map: node:map at the very end is an empty list" ||
    { not_ok "map: node:map at the very end is an empty list"; diag "$out"; }

# Failures: qemu-img's exit status, and a message.
qemu-img create -q -f qcow2 bad.qcow2 4M
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }
io bad.qcow2 -c "write -P 1 0 512k" -c "write -z 512k 512k" -c "write -P 2 1M 1M"
corrupt_l2 bad.qcow2 16
both "a corrupt L2 entry at 1M: the areas before it are printed, then it fails" bad.qcow2
same "a missing image fails" nope.qcow2
check_fails "map: a missing image names it" "nope.qcow2" "$B" map nope.qcow2
same "--output=xml is refused" --output=xml plain.qcow2
check_fails "map: --output=xml says human or json" "human or json" "$B" map --output=xml plain.qcow2
same "a negative --start-offset is refused" --start-offset=-1 plain.qcow2
same "a bad --max-length is refused" --max-length=1x plain.qcow2
check_fails "map: a bad --max-length says which option" "Invalid max length" "$B" map --max-length=1x plain.qcow2
check_fails "map: no image is a usage error" "no image given" "$B" map
