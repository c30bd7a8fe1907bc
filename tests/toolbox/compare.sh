#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost compare` (lua/cmd/compare.lua): the same exit status (0
# identical, 1 different, 2 cannot open) and the same stdout as qemu-img
# 7.2 compare on the same pairs of images, -s and -p included.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 33

B=$BLKHOST
cd "$T" || exit 1

same() { same_as_qemu compare "$@"; }
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

qemu-img create -q -f qcow2 a.qcow2 8M
io a.qcow2 -c "write -P 1 0 1M" -c "write -P 2 3M 64k" -c "write -z 5M 1M"
qemu-img convert -O raw a.qcow2 a.raw
same "a qcow2 and its raw conversion are identical" a.qcow2 a.raw
same "the same pair in the other order" a.raw a.qcow2
same "an image with itself" a.qcow2 a.qcow2
same "-f and -F name the formats" -f qcow2 -F raw a.qcow2 a.raw
same "-T none (O_DIRECT reads)" -T none a.qcow2 a.raw
same "-f raw on a qcow2 compares its bytes, not its contents" -f raw a.qcow2 a.raw

cp a.raw b.raw; io b.raw -f raw -c "write -P 9 700001 1"
same "one byte differs: the first differing sector is named" a.raw b.raw
cp a.raw c.raw; io c.raw -f raw -c "write -P 9 0 1"
same "the first byte differs" a.raw c.raw
cp a.raw d.raw; io d.raw -f raw -c "write -P 9 6M 4k"
same "data where the other image has a hole" a.raw d.raw
same "data where the other qcow2 has a zero cluster" d.raw a.qcow2
same "the same, qcow2 first" a.qcow2 d.raw

# Sizes.
qemu-img create -q -f raw z6.raw 6M
qemu-img create -q -f raw z16.raw 16M
same "different sizes, the extra area zero: identical with a warning" z6.raw z16.raw
same "different sizes, larger first" z16.raw z6.raw
same "-s: different sizes are different" -s z6.raw z16.raw
io z16.raw -f raw -c "write -P 1 10001000 1"
same "different sizes, a byte set in the extra area" z6.raw z16.raw
same "the same, larger first" z16.raw z6.raw
qemu-img create -q -f qcow2 z10.qcow2 10M
io z10.qcow2 -c "write -z 7M 1M"
same "extra area of a qcow2 holding only a zero cluster" z6.raw z10.qcow2

# Strict allocation.
same "-s: allocation differs (qcow2 data vs raw hole)" -s a.qcow2 a.raw
same "-s: an image with itself" -s a.qcow2 a.qcow2
cp a.qcow2 a2.qcow2
same "-s: two copies of a qcow2" -s a.qcow2 a2.qcow2

# Backing chains and compressed clusters.
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 top.qcow2 8M
io top.qcow2 -c "write -P 7 512k 64k" -c "write -z 3M 64k"
qemu-img convert -O raw top.qcow2 top.raw
same "a chain and its flattened copy" top.qcow2 top.raw
same "a chain and its backing file differ where the top was written" top.qcow2 a.qcow2
qemu-img convert -c -O qcow2 a.qcow2 comp.qcow2
same "compressed clusters read like the data" comp.qcow2 a.raw

# Output options.
same "-p prints qemu-img's progress lines, identical" -p a.qcow2 a.raw
same "-p with a mismatch" -p a.raw b.raw
same "-q prints nothing, exit status tells" -q a.raw b.raw

# Failures.
qemu-img create -q -f qcow2 bad.qcow2 8M
io bad.qcow2 -c "write -P 1 0 2M"
corrupt_l2 bad.qcow2 16
cp bad.qcow2 bad-copy.qcow2
same "a corrupt L2 entry: the allocation cannot be read, status 3" a.qcow2 bad.qcow2
check_fails "compare: a corrupt L2 entry names the image" "Sector allocation test failed for bad-copy.qcow2" \
    "$B" compare a.qcow2 bad-copy.qcow2
same "a missing first image is status 2" nope.raw a.raw
same "a missing second image is status 2" a.raw nope.raw
check_fails "compare: a missing image is named" "nope.raw" "$B" compare a.raw nope.raw
same "one image only is a usage error (status 1)" a.raw
same "an unknown format is status 2" -f bogus a.raw a.raw
