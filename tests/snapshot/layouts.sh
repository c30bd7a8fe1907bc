#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Snapshot commits on unusual layouts, where one commit copies many small
# refcount blocks and L2 tables, grows the refcount table, or packs several
# refcounts in a byte: the same series of creates, writes, an apply and
# deletes runs with blkhost on one copy and qemu-img on another; then
# qemu-img check is clean and the active image and every snapshot read the
# same as qemu-img's.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
LAYOUTS=("cluster_size=512" "cluster_size=512,refcount_bits=64"
         "cluster_size=512,preallocation=metadata" "cluster_size=4k,refcount_bits=4"
         "cluster_size=2M" "compat=0.10,cluster_size=4k")
plan $((${#LAYOUTS[@]} + 1))

for o in "${LAYOUTS[@]}"; do
    A=$T/a.qcow2 Q=$T/q.qcow2
    rm -f "$A" "$Q"
    qemu-img create -q -f qcow2 -o "$o" "$A" 16M
    qemu-io -c 'write -P 1 0 3M' "$A" >/dev/null
    cp --sparse=always "$A" "$Q"
    err=
    for i in 1 2 3 4 5 6; do
        "$B" snapshot -c "s$i" "$A" || err="create s$i"
        qemu-img snapshot -c "s$i" "$Q"
        for img in "$A" "$Q"; do qemu-io -c "write -P $((i + 1)) $((i * 256))k 300k" "$img" >/dev/null; done
    done
    "$B" snapshot -a s3 "$A" || err="$err apply"
    qemu-img snapshot -a s3 "$Q"
    for i in 2 5 1; do
        "$B" snapshot -d "s$i" "$A" || err="$err delete s$i"
        qemu-img snapshot -d "s$i" "$Q"
    done
    out=$(qemu-img check "$A" 2>&1) || err="$err check: $out"
    qemu-img compare -q "$A" "$Q" || err="$err active data differs"
    [ "$(names "$A")" = "$(names "$Q")" ] || err="$err snapshot lists differ"
    for i in 3 4 6; do
        qemu-img convert -l "snapshot.name=s$i" -O raw "$A" "$T/a.raw"
        qemu-img convert -l "snapshot.name=s$i" -O raw "$Q" "$T/q.raw"
        cmp -s "$T/a.raw" "$T/q.raw" || err="$err s$i differs"
    done
    rm -f "$T/a.raw" "$T/q.raw"
    [ -z "$err" ] && ok "$o: 6 creates with writes, apply, 3 deletes: check clean, data and snapshots as qemu-img's" ||
        { not_ok "$o: $err"; }
done

# Compressed clusters (qemu-img convert -c): several entries share a host
# cluster, and the last one's sector count may reach past the file's end.
/usr/bin/python3 -c '
import random, sys
random.seed(7)
out = sys.stdout.buffer
for i in range(100):
    out.write((bytes([i]) * 3000 + random.randbytes(1096)) * 16)' > "$T/src.raw"
qemu-img convert -c -O qcow2 -o cluster_size=4k "$T/src.raw" "$T/z.qcow2"
err=
"$B" snapshot -c a "$T/z.qcow2" || err="create a"
qemu-io -c 'write -P 9 0 100k' "$T/z.qcow2" >/dev/null
"$B" snapshot -c b "$T/z.qcow2" || err="$err create b"
"$B" snapshot -a a "$T/z.qcow2" || err="$err apply a"
"$B" snapshot -d b "$T/z.qcow2" || err="$err delete b"
"$B" snapshot -d a "$T/z.qcow2" || err="$err delete a"
out=$(qemu-img check "$T/z.qcow2" 2>&1) || err="$err check: $out"
qemu-img compare -q "$T/z.qcow2" "$T/src.raw" || err="$err data differs"
[ -z "$err" ] && ok "compressed clusters: create, write, create, apply, 2 deletes: check clean, data as before" || not_ok "compressed clusters: $err"

