#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# qcow2 features: creation options checked by qemu-img, info facts, the
# dirty bit with lazy refcounts (refcounts rebuilt on a read-write open),
# autoclear bits cleared at the first write, refcount table growth,
# block_status against `qemu-img map`, snapshot table kept intact.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/qcow2/lib.sh"
need qemu-img qemu-io
TOOL=$QCOW2_TOOL
POKE=$QCOW2_POKE

plan 16


# created DESC PATTERN SIZE CREATE-ARGS...: blkhost creates, qemu-img agrees.
created() {
    local desc=$1 pat=$2 size=$3 out; shift 3
    rm -f "$T/c.qcow2"
    if ! out=$(cd "$T" && "$BLKHOST" create -f qcow2 "$@" c.qcow2 $size 2>&1); then
        not_ok "$desc"; diag "$out"; return
    fi
    out=$(qemu-img info "$T/c.qcow2" 2>&1; qemu-img check "$T/c.qcow2" 2>&1)
    if echo "$out" | grep -qE -- "$pat" && qemu-img check -q "$T/c.qcow2"; then
        ok "$desc"
    else
        not_ok "$desc"; diag "$out"
    fi
}
head -c 2M /dev/urandom > "$T/base.raw"
created "qcow2: create compat=0.10" "compat: 0.10" 16M -o compat=0.10
created "qcow2: create compat=v3 with cluster_size=512" "cluster_size: 512" 16M -o compat=v3,cluster_size=512
created "qcow2: create refcount_bits=1 and lazy_refcounts=on" \
    "lazy refcounts: true" 16M -o refcount_bits=1,lazy_refcounts=on
created "qcow2: create with a relative backing file and backing format (size from it)" \
    "backing file format: raw" "" -b base.raw -F raw
created "qcow2: create with preallocation=metadata" "virtual size: 64 MiB" 64M -o preallocation=metadata

out=$("$BLKHOST" info "$T/c.qcow2" 2>&1)
if echo "$out" | grep -q "cluster" && echo "$out" | grep -q "refcount" &&
   echo "$out" | grep -q "compat"; then ok "qcow2: info shows cluster size, compat, refcount bits"
else not_ok "qcow2: info shows cluster size, compat, refcount bits"; diag "$out"; fi

# Dirty bit: a lazy-refcounts writer killed mid-way leaves the dirty bit;
# a read-write open rebuilds the refcounts, after which check is clean.
"$BLKHOST" create -f qcow2 -o lazy_refcounts=on,cluster_size=4096 "$T/lazy.qcow2" 32M >/dev/null
"$TOOL" crash-writer "$T/lazy.qcow2" "$T/lazy.log" 5 0 2>/dev/null &
pid=$!
sleep 0.5
kill -9 $pid; wait $pid 2>/dev/null
if (( ($(be "$T/lazy.qcow2" 72 8) & 1) == 1 )); then
    ok "qcow2: lazy refcounts set the dirty bit while writing"
else
    not_ok "qcow2: lazy refcounts set the dirty bit while writing"
fi
"$TOOL" open "$T/lazy.qcow2" >/dev/null
out=$(qemu-img check "$T/lazy.qcow2" 2>&1); rc=$?
if [ $rc -eq 0 ] && (( ($(be "$T/lazy.qcow2" 72 8) & 1) == 0 )); then
    ok "qcow2: opening a dirty image read-write rebuilds refcounts (check clean, bit cleared)"
else
    not_ok "qcow2: opening a dirty image read-write rebuilds refcounts (check clean, bit cleared)"
    diag "check exit $rc: $out"
fi
check "qcow2: durable writes survive the crash and the refcount rebuild" \
    "$TOOL" crash-verify "$T/lazy.qcow2" "$T/lazy.log"

# Autoclear bits: untouched by an open, cleared before the first write.
qemu-img create -q -f qcow2 "$T/ac.qcow2" 16M
"$POKE" "$T/ac.qcow2" 88 be64 0x8000000000000004
"$TOOL" open "$T/ac.qcow2" >/dev/null
a1=$(be "$T/ac.qcow2" 88 8)
"$TOOL" write "$T/ac.qcow2" 0 512 0x33
a2=$(be "$T/ac.qcow2" 88 8)
if [ "$a1" != 0 ] && [ "$a2" = 0 ] && qemu-img check -q "$T/ac.qcow2"; then
    ok "qcow2: unknown autoclear bits are cleared before the first write, not on open"
else
    not_ok "qcow2: unknown autoclear bits are cleared before the first write, not on open"
    diag "after open: $a1, after write: $a2"
fi

# Refcount table growth: 512-byte clusters, 12 MiB written at once and in
# pieces (the initial refcount table covers far less).
"$BLKHOST" create -f qcow2 -o cluster_size=512 "$T/grow.qcow2" 64M >/dev/null
"$TOOL" write "$T/grow.qcow2" 1000 12582912 0x5a
"$TOOL" write "$T/grow.qcow2" 50000000 3000 0x6b
out=$(qemu-img check "$T/grow.qcow2" 2>&1); rc=$?
if [ $rc -eq 0 ] && qemu-io -f qcow2 -c 'read -P 0x5a 1000 12582912' \
        -c 'read -P 0x6b 50000000 3000' -c 'read -P 0 0 1000' "$T/grow.qcow2" >/dev/null &&
   [ "$(be "$T/grow.qcow2" 56 4)" -gt 1 ]; then
    ok "qcow2: the refcount table grows as the image grows (check clean, data intact)"
else
    not_ok "qcow2: the refcount table grows as the image grows"; diag "$out"
fi

# block_status against qemu-img map, over a sparse raw backing file.
truncate -s 8M "$T/sparse.raw"
qemu-io -f raw -c 'write -P 0x12 1M 1M' -c 'write -P 0x13 5M 64k' "$T/sparse.raw" >/dev/null
(cd "$T" && qemu-img create -q -f qcow2 -b sparse.raw -F raw map.qcow2 8M)
qemu-io -f qcow2 -c 'write -P 0x21 0 100k' -c 'write -z 1M 128k' -c 'write -P 0x22 3M 64k' \
    -c 'write -z -u 6M 64k' "$T/map.qcow2" >/dev/null
"$TOOL" map "$T/map.qcow2" > "$T/ours.map"
qemu-img map --output=json "$T/map.qcow2" > "$T/qemu.map"
out=$(/usr/bin/python3 - "$T/ours.map" "$T/qemu.map" <<'PY'
import json, sys
ours = {}
for line in open(sys.argv[1]):
    off, n, st = line.split()
    for b in range(int(off) // 4096, (int(off) + int(n)) // 4096):
        ours[b] = st.startswith("zero")
bad = 0
for e in json.load(open(sys.argv[2])):
    for b in range(e["start"] // 4096, (e["start"] + e["length"]) // 4096):
        if ours.get(b) != e["zero"]:
            bad += 1
print(bad)
PY
)
if [ "$out" = 0 ]; then ok "qcow2: block_status (data/zero, through the backing file) agrees with qemu-img map"
else not_ok "qcow2: block_status agrees with qemu-img map"; diag "$out blocks differ"; diag "$(cat "$T/ours.map")"; fi
if grep -q "zero,hole" "$T/ours.map" && grep -q " data$" "$T/ours.map"; then
    ok "qcow2: block_status reports data, zero and holes"
else
    not_ok "qcow2: block_status reports data, zero and holes"
fi

# The snapshot table stays intact through blkhost writes.
qemu-img create -q -f qcow2 "$T/sn.qcow2" 8M
qemu-io -f qcow2 -c 'write -P 0x31 0 8M' "$T/sn.qcow2" >/dev/null
qemu-img snapshot -c first "$T/sn.qcow2"
qemu-img snapshot -c second "$T/sn.qcow2"
before=$(qemu-img snapshot -l "$T/sn.qcow2" | awk 'NR>2 {print $2}')
"$TOOL" write "$T/sn.qcow2" 4096 70000 0x44
after=$(qemu-img snapshot -l "$T/sn.qcow2" | awk 'NR>2 {print $2}')
if [ "$before" = "$after" ] && [ -n "$after" ] && qemu-img check -q "$T/sn.qcow2"; then
    ok "qcow2: the snapshot table stays intact through writes"
else
    not_ok "qcow2: the snapshot table stays intact through writes"; diag "$before / $after"
fi
qemu-img snapshot -d first "$T/sn.qcow2"
qemu-img snapshot -d second "$T/sn.qcow2"
out=$(qemu-img check "$T/sn.qcow2" 2>&1); rc=$?
if [ $rc -eq 0 ]; then ok "qcow2: after qemu-img deletes the snapshots, refcounts blkhost wrote are exact"
else not_ok "qcow2: after qemu-img deletes the snapshots, refcounts blkhost wrote are exact"; diag "$out"; fi

# A v2 zero flag is not a zero cluster: reading it is an error.
qemu-img create -q -f qcow2 -o compat=0.10 "$T/v2z.qcow2" 1M
qemu-io -f qcow2 -c 'write -P 1 0 64k' "$T/v2z.qcow2" >/dev/null
L1=$(be "$T/v2z.qcow2" 40 8)
L2=$(( $(be "$T/v2z.qcow2" $L1 8) & 0x00fffffffffffe00 ))
"$POKE" "$T/v2z.qcow2" $L2 be64 1
check_fails "qcow2: zero flag in a version 2 image is refused on read" \
    "zero cluster at guest offset 0x0 in a version 2 image" "$TOOL" read "$T/v2z.qcow2" 0 512
