#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost measure` (lua/cmd/measure.lua) beside qemu-img 7.2 measure: the
# same bytes on stdout (human and --output=json) and the same exit status,
# for --size alone and for input images (raw with holes, qcow2 with data,
# zero and compressed clusters, a backing chain, persistent bitmaps, a
# snapshot), for qcow2 creation options and for what both refuse.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 36

cd "$T" || exit 1
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

qemu-img create -q -f raw holes.raw 10M
io holes.raw -f raw -c "write -P 1 1M 100k" -c "write -P 2 5M 4k"
qemu-img create -q -f qcow2 data.qcow2 100M
io data.qcow2 -c "write -P 1 0 10M" -c "write -z 20M 1M" -c "write -P 3 50M 3k" \
    -c "write -c -P 4 60M 64k"
qemu-img create -q -f qcow2 -b data.qcow2 -F qcow2 top.qcow2
io top.qcow2 -c "write -P 5 30M 1M" -c "write -z 0 1M"
qemu-img create -q -f qcow2 bm.qcow2 100M
io bm.qcow2 -c "write 0 1M"
qemu-img bitmap --add bm.qcow2 b0
qemu-img bitmap --add -g 512 bm.qcow2 a-longer-bitmap-name
qemu-img create -q -f qcow2 snap.qcow2 10M
io snap.qcow2 -c "write -P 1 0 5M"
qemu-img snapshot -c s1 snap.qcow2
io snap.qcow2 -c "write -z 0 5M"

m() { local desc=$1; shift; same_as_qemu measure "$desc" "$@"; }
m "--size, raw (the default -O)" --size 1G
m "--size, raw, rounded up to 512 bytes" --size 1000 -O raw
m "--size, qcow2" --size 1G -O qcow2
m "--size, qcow2, --output=json" --size 1G -O qcow2 --output=json
m "--size 0, qcow2" --size 0 -O qcow2
m "--size not a cluster multiple, qcow2" --size 1000 -O qcow2
m "-o cluster_size=4k" --size 1G -O qcow2 -o cluster_size=4k
m "-o cluster_size=512, refcount_bits=1" --size 1G -O qcow2 -o cluster_size=512,refcount_bits=1
m "-o cluster_size=2M, 5T" --size 5T -O qcow2 -o cluster_size=2M
m "-o refcount_bits=64" --size 1G -O qcow2 -o refcount_bits=64
m "-o extended_l2=on" --size 1G -O qcow2 -o extended_l2=on,cluster_size=128k
m "-o compat=0.10" --size 1G -O qcow2 -o compat=0.10
m "-o preallocation=full" --size 1G -O qcow2 -o preallocation=full
m "-o backing_file= (an empty image over it)" --size 1G -O qcow2 -o backing_file=data.qcow2
m "a raw file with holes, as raw" holes.raw
m "a raw file with holes, as qcow2 (holes left out)" -O qcow2 holes.raw
m "a qcow2 with data, zero and compressed clusters, as qcow2" -O qcow2 data.qcow2
m "... as JSON (with qemu-img's \"bitmaps\": 0)" -O qcow2 --output=json data.qcow2
m "... as qcow2 with 512-byte clusters" -O qcow2 -o cluster_size=512 data.qcow2
m "... as raw" -O raw data.qcow2
m "... as qcow2 with -o preallocation=falloc" -O qcow2 -o preallocation=falloc data.qcow2
m "... as qcow2 over a backing file (all of it counted)" -O qcow2 -o backing_file=x data.qcow2
m "... as qcow2 compat=0.10 (no bitmaps line)" -O qcow2 -o compat=0.10 data.qcow2
m "a backing chain, through every layer" -O qcow2 top.qcow2
m "persistent bitmaps: bitmaps size" -O qcow2 bm.qcow2
m "persistent bitmaps, as JSON" -O qcow2 --output=json bm.qcow2
m "-l: an internal snapshot" -O qcow2 -l s1 snap.qcow2
m "neither --size nor a file is refused" -O qcow2
m "--size with a file is refused" --size 1G data.qcow2
m "two files are refused" data.qcow2 holes.raw
m "an unparsable --size is refused" --size abc
m "a negative --size is refused" --size -1
m "an unknown -O is refused" --size 1G -O bogus
m "an unknown -o key is refused" --size 1G -O qcow2 -o bogus=1
m "a bad cluster size is refused" --size 1G -O qcow2 -o cluster_size=1000
m "a size too large for the cluster size is refused" --size 100P -O qcow2
