#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Images written by blkhost pass `qemu-img check` (exit 0) and equal a raw
# mirror that got the same operations: random writes of 1 byte to 3
# clusters, zero writes and discards, with and without backing files, over
# images blkhost created and images qemu-img created (with an internal
# snapshot, so shared clusters are copied on write; with compressed
# clusters, which are replaced).  QCOW2_RANDOM_OPS sets the operation count.
source "$SOURCE_ROOT/tests/tap.sh"
need qemu-img qemu-io
TOOL=$QCOW2_TOOL
OPS=${QCOW2_RANDOM_OPS:-10000}
seed=0

plan 20

# run DESC IMG MIRROR [OPS [OPEN-OPTS]]: random operations, then check
# and compare.
run() {
    local desc=$1 img=$2 mirror=$3 n=${4:-$OPS} opts=${5:-discard=unmap} out rc
    seed=$((seed + 1))
    if ! out=$("$TOOL" random "$img" "$mirror" $seed $n "$opts" 2>&1); then
        not_ok "$desc"; diag "$out"; return
    fi
    out=$(qemu-img check "$img" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then
        not_ok "$desc"; diag "qemu-img check exit $rc:"; diag "$out"; return
    fi
    if out=$(qemu-img compare -f qcow2 -F raw "$img" "$mirror" 2>&1); then
        ok "$desc"
    else
        not_ok "$desc"; diag "$out"
    fi
}

# fresh NAME SIZE CREATE-ARGS...: blkhost creates the image, zero mirror.
fresh() {
    local name=$1 size=$2; shift 2
    rm -f "$T/$name.qcow2" "$T/$name.raw"
    "$BLKHOST" create -f qcow2 "$@" "$T/$name.qcow2" $size >/dev/null || return 1
    truncate -s $size "$T/$name.raw"
}

for spec in "1.1 65536" "1.1 4096" "1.1 512" "0.10 65536" "0.10 512"; do
    set -- $spec
    fresh img 32M -o compat=$1,cluster_size=$2
    run "qcow2: $OPS random ops on a compat=$1 cluster_size=$2 image; check clean, same as mirror" \
        "$T/img.qcow2" "$T/img.raw"
done
fresh big 32M -o cluster_size=2M
run "qcow2: $((OPS / 30)) random ops on a 2 MiB-cluster image; check clean, same as mirror" \
    "$T/big.qcow2" "$T/big.raw" $((OPS / 30))

for rb in 1 2 8 64; do
    fresh rb 16M -o refcount_bits=$rb,cluster_size=4096
    run "qcow2: random ops with refcount_bits=$rb; check clean, same as mirror" \
        "$T/rb.qcow2" "$T/rb.raw" $((OPS / 3))
done

# Tiny caches: tables are evicted (and written back in order) all the time.
fresh small 16M -o cluster_size=4096
run "qcow2: random ops with 2-entry L2 and refcount caches; check clean, same as mirror" \
    "$T/small.qcow2" "$T/small.raw" $((OPS / 2)) discard=unmap,l2-cache-size=8K,refcount-cache-size=8K

fresh lazy 16M -o lazy_refcounts=on,cluster_size=4096
run "qcow2: random ops with lazy_refcounts=on, clean close; check clean" \
    "$T/lazy.qcow2" "$T/lazy.raw" $((OPS / 3))

fresh pre 16M -o preallocation=metadata
run "qcow2: random ops on a preallocation=metadata image; check clean" \
    "$T/pre.qcow2" "$T/pre.raw" $((OPS / 3))

# Backing files: raw and qcow2, v2 and v3 (v2 discards cannot hide the
# backing data, which the mirror knows).
head -c 24M /dev/urandom > "$T/base.raw"
qemu-img create -q -f qcow2 "$T/base.qcow2" 24M
qemu-io -f qcow2 -c 'write -P 0x5a 1M 5M' -c 'write -P 0xa5 13M 3M' "$T/base.qcow2" >/dev/null
for spec in "1.1 65536 raw" "1.1 4096 qcow2" "0.10 4096 raw" "0.10 65536 qcow2"; do
    set -- $spec
    rm -f "$T/ov.qcow2"
    "$BLKHOST" create -f qcow2 -o compat=$1,cluster_size=$2 -b "base.$3" -F $3 \
        "$T/ov.qcow2" >/dev/null
    qemu-img convert -O raw "$T/base.$3" "$T/ov.raw"
    run "qcow2: random ops over a $3 backing file (compat=$1, cluster_size=$2)" \
        "$T/ov.qcow2" "$T/ov.raw"
done

# Shared clusters: qemu-img takes an internal snapshot, blkhost writes.
qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/snap.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x42 0 16M' -c 'write -z 2M 1M' "$T/snap.qcow2" >/dev/null
qemu-img convert -O raw "$T/snap.qcow2" "$T/snap.raw"
cp "$T/snap.raw" "$T/snap-before.raw"
qemu-img snapshot -c s1 "$T/snap.qcow2"
run "qcow2: random ops on clusters shared with an internal snapshot (copy on write)" \
    "$T/snap.qcow2" "$T/snap.raw"
qemu-img convert -O raw -l snapshot.name=s1 "$T/snap.qcow2" "$T/snap-s1.raw"
if cmp -s "$T/snap-s1.raw" "$T/snap-before.raw"; then
    ok "qcow2: the internal snapshot still holds its data after the writes"
else
    not_ok "qcow2: the internal snapshot still holds its data after the writes"
fi

# Compressed clusters being overwritten and freed.
head -c 4M /dev/urandom > "$T/cz.src"
yes "a compressible line of text for the compressed clusters" | head -c 8M >> "$T/cz.src"
qemu-img convert -q -c -O qcow2 -f raw "$T/cz.src" "$T/cz.qcow2"
cp "$T/cz.src" "$T/cz.raw"
run "qcow2: random ops over compressed clusters; check clean, same as mirror" \
    "$T/cz.qcow2" "$T/cz.raw" $((OPS / 3))
