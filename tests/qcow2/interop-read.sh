#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Images made by qemu-img and qemu-io (v2 and v3, cluster sizes 512 B to
# 2 MiB, refcount widths, backing chains, compressed and zero clusters)
# read back through blkhost exactly as `qemu-img convert -O raw` reads them.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io cmp
TOOL=$QCOW2_TOOL

plan 19

# same DESC IMG: blkhost's guest view of IMG equals qemu-img's.
same() {
    local desc=$1 img=$2 out
    rm -f "$T/ours.raw" "$T/ref.raw"
    if ! out=$("$TOOL" dump "$img" "$T/ours.raw" 2>&1); then
        not_ok "$desc"; diag "$out"; return
    fi
    qemu-img convert -O raw "$img" "$T/ref.raw"
    if cmp -s "$T/ours.raw" "$T/ref.raw"; then ok "$desc"
    else not_ok "$desc"; diag "$(cmp "$T/ours.raw" "$T/ref.raw" 2>&1 | head -3)"; fi
}

# Some data qemu-io writes: patterns, partial clusters, zero writes, discards.
scribble() {
    qemu-io -f qcow2 -c 'write -P 0x11 0 4097' -c 'write -P 0x22 65000 200000' \
        -c 'write -P 0x33 3M 1M' -c 'write -P 0x44 7340031 3' \
        -c 'write -P 0x55 14M 2M' "$1" >/dev/null
}

for compat in 0.10 1.1; do
    for cs in 512 4096 65536 2M; do
        img=$T/c$compat-$cs.qcow2
        qemu-img create -q -f qcow2 -o compat=$compat,cluster_size=$cs "$img" 16M
        scribble "$img"
        if [ $compat = 1.1 ]; then
            # Zero clusters, with and without their host cluster kept.
            qemu-io -f qcow2 -c 'write -z 3M 128k' -c 'write -z -u 14M 1M' \
                -c 'discard 0 64k' "$img" >/dev/null
        fi
        same "qcow2: compat=$compat cluster_size=$cs made by qemu-img reads the same" "$img"
    done
done

for rb in 1 2 4 8 32 64; do
    img=$T/rb$rb.qcow2
    qemu-img create -q -f qcow2 -o refcount_bits=$rb,cluster_size=4096 "$img" 8M
    qemu-io -f qcow2 -c 'write -P 0x77 100 1M' "$img" >/dev/null
    same "qcow2: refcount_bits=$rb image made by qemu-img reads the same" "$img"
done

# Random data with holes, converted (plain and compressed).
head -c 6M /dev/urandom > "$T/src.raw"
truncate -s 12M "$T/src.raw"
yes "compressible text line, with some numbers 1234567890" | head -c 3M \
    | dd of="$T/src.raw" bs=1M seek=8 conv=notrunc status=none
qemu-img convert -q -O qcow2 "$T/src.raw" "$T/conv.qcow2"
same "qcow2: qemu-img convert output reads the same" "$T/conv.qcow2"
qemu-img convert -q -c -O qcow2 "$T/src.raw" "$T/deflate.qcow2"
same "qcow2: deflate-compressed clusters (qemu-img convert -c) read the same" "$T/deflate.qcow2"
if qemu-img convert -q -c -O qcow2 -o compression_type=zstd "$T/src.raw" "$T/zstd.qcow2" 2>/dev/null; then
    same "qcow2: zstd-compressed clusters (compression_type=zstd) read the same" "$T/zstd.qcow2"
else
    skip "qemu-img cannot write zstd compressed images"
fi
qemu-img convert -q -c -O qcow2 -o cluster_size=512 "$T/src.raw" "$T/deflate512.qcow2"
same "qcow2: compressed 512-byte clusters read the same" "$T/deflate512.qcow2"

# Backing chain: raw <- qcow2 <- qcow2, relative names, partial overwrites.
mkdir -p "$T/chain"
head -c 4M /dev/urandom > "$T/chain/base.raw"
(cd "$T/chain" && qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 6M &&
    qemu-io -f qcow2 -c 'write -P 0x99 1M 100k' -c 'write -z 2M 64k' mid.qcow2 >/dev/null &&
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 -o cluster_size=4096 top.qcow2 &&
    qemu-io -f qcow2 -c 'write -P 0xaa 1000 3000' -c 'write -P 0xbb 4100000 5000' top.qcow2 >/dev/null)
same "qcow2: backing chain raw <- qcow2 <- qcow2 with relative names reads the same" "$T/chain/top.qcow2"
