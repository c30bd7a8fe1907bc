#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Snapshot operations do not grow the file: a commit places what it writes
# in clusters free in the committed refcounts and cuts off the free end of
# the file.  Each case runs the same steps with qemu-img on a copy and
# compares: qemu-img check clean, same guest data, file size and `du`.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
plan 20

kib() { du -k "$1" | cut -f1; }
iend() { qemu-img check "$1" 2>/dev/null | sed -n 's/Image end offset: //p'; }
same() {  # same DESC A B: qemu-img compare finds the guest data identical
    local out
    if out=$(qemu-img compare -q "$2" "$3" 2>&1); then ok "$1"; else not_ok "$1"; diag "$out"; fi
}

# ---- 100 create+delete cycles, 1 GiB preallocation=metadata ----
A=$T/a.qcow2 Q=$T/q.qcow2
qemu-img create -q -f qcow2 -o preallocation=metadata "$A" 1G
cp --sparse=always "$A" "$Q"
before=$(kib "$A")
fail=0
for i in $(seq 1 100); do
    "$B" snapshot -c s "$A" && "$B" snapshot -d s "$A" || { fail=$i; break; }
done
[ $fail -eq 0 ] && ok "100 create+delete cycles on a 1 GiB preallocation=metadata image" || not_ok "cycle $fail failed"
for i in $(seq 1 100); do qemu-img snapshot -c s "$Q" && qemu-img snapshot -d s "$Q"; done
growth=$(( $(kib "$A") - before )) qgrowth=$(( $(kib "$Q") - before ))
diag "du growth: blkhost $growth KiB, qemu-img $qgrowth KiB; image end: blkhost $(iend "$A"), qemu-img $(iend "$Q")"
[ $growth -le 2048 ] && ok "100 cycles: du grows by $growth KiB (at most 2 MiB; qemu-img $qgrowth KiB)" || not_ok "100 cycles: du grows by $growth KiB, more than 2 MiB"
qclean "100 cycles: qemu-img check clean (no error, no leak)" "$A"
[ $(( $(iend "$A") - $(iend "$Q") )) -le $((2 << 20)) ] && ok "100 cycles: image end at most 2 MiB past qemu-img's" || not_ok "image end $(iend "$A") against qemu-img's $(iend "$Q")"
same "100 cycles: guest data identical to qemu-img's copy" "$A" "$Q"
rm -f "$A" "$Q"

# ---- discard=unmap: what only the old state used is punched out ----
A=$T/u.qcow2
qemu-img create -q -f qcow2 -o preallocation=metadata "$A" 1G
before=$(kib "$A")
out=$(blua 'local i = bh.open(arg[1], {discard = "unmap"})
for n = 1, 100 do i:snapshot_create("s"); i:snapshot_delete("s") end' "$A") || diag "$out"
growth=$(( $(kib "$A") - before ))
[ $growth -le 256 ] && ok "discard=unmap: 100 cycles in one process, freed clusters punched: du grows by $growth KiB (at most 256)" || not_ok "discard=unmap: du grows by $growth KiB"
qclean "discard=unmap: qemu-img check clean" "$A"
rm -f "$A"

# ---- apply: data only the active image held is freed; the free end is cut ----
A=$T/b.qcow2 Q=$T/bq.qcow2
qemu-img create -q -f qcow2 "$A" 64M
qemu-io -c 'write -P 0x11 0 4M' "$A" >/dev/null
qemu-img snapshot -c s "$A"
qemu-io -c 'write -P 0x22 0 4M' "$A" >/dev/null      # copies on write, at the end
cp --sparse=always "$A" "$Q"
check "apply after overwriting 4 MiB: blkhost snapshot -a" "$B" snapshot -a s "$A"
qemu-img snapshot -a s "$Q"
qclean "apply: qemu-img check clean" "$A"
same "apply: guest data identical to qemu-img's apply" "$A" "$Q"
# The commit cannot reuse what the state it replaces still uses, so its
# new tables land past the freed data; the next commit moves below it.
sa=$(stat -c %s "$A") sq=$(stat -c %s "$Q")
[ "$sa" -le $((sq + 4 * 65536)) ] && ok "apply: file at most 4 clusters longer than qemu-img's ($sa bytes, qemu-img $sq)" || not_ok "apply: file $sa bytes, qemu-img $sq"
"$B" snapshot -c t "$A" && "$B" snapshot -d t "$A"
qemu-img snapshot -c t "$Q"; qemu-img snapshot -d t "$Q"
sa=$(stat -c %s "$A") sq=$(stat -c %s "$Q")
[ "$sa" -le $((sq - (3 << 20))) ] && ok "apply, create, delete: the 4 MiB freed at the end are cut off (at least 3 MiB shorter than qemu-img's: $sa bytes, qemu-img $sq)" || not_ok "apply, create, delete: file $sa bytes, qemu-img $sq"
qclean "apply, create, delete: qemu-img check clean" "$A"

# ---- many L2 tables and refcount blocks: 4 KiB clusters ----
A=$T/c.qcow2 Q=$T/cq.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k,preallocation=metadata "$A" 256M
qemu-io -c 'write -P 0x33 1M 3M' "$A" >/dev/null
cp --sparse=always "$A" "$Q"
before=$(kib "$A")
fail=0
for i in $(seq 1 20); do
    "$B" snapshot -c "s$i" "$A" && qemu-io -c "write -P $i $((i * 64))k 8k" "$A" >/dev/null &&
        { [ $((i % 3)) -eq 0 ] || "$B" snapshot -d "s$i" "$A"; } || { fail=$i; break; }
    qemu-img snapshot -c "s$i" "$Q"; qemu-io -c "write -P $i $((i * 64))k 8k" "$Q" >/dev/null
    [ $((i % 3)) -eq 0 ] || qemu-img snapshot -d "s$i" "$Q"
done
[ $fail -eq 0 ] && ok "4k clusters (64 L2 tables, 32 refcount blocks): 20 creates with writes between, 14 deletes" || not_ok "4k clusters: step $fail failed"
qclean "4k clusters: qemu-img check clean" "$A"
same "4k clusters: guest data identical to qemu-img's" "$A" "$Q"
[ "$(names "$A")" = "$(names "$Q")" ] && ok "4k clusters: same snapshots as qemu-img's" || not_ok "4k clusters: snapshots differ"
growth=$(( $(kib "$A") - before )) qgrowth=$(( $(kib "$Q") - before ))
diag "4k clusters: du growth blkhost $growth KiB, qemu-img $qgrowth KiB"
[ $growth -le $((qgrowth + 2048)) ] && ok "4k clusters: du grows at most 2 MiB more than qemu-img's ($growth KiB against $qgrowth)" || not_ok "4k clusters: du grows $growth KiB against qemu-img's $qgrowth"

# ---- refcount rebuild of a dirty image (lazy refcounts) with a snapshot ----
A=$T/l.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4k "$A" 64M
qemu-io -c 'write -P 1 0 8M' "$A" >/dev/null
qemu-img snapshot -c s "$A"
qemu-io -c 'write -P 2 0 1M' "$A" >/dev/null
size0=$(stat -c %s "$A")
fail=0
for i in $(seq 1 10); do
    /usr/bin/python3 "$QCOW2_POKE" "$A" 72 be64 1        # dirty bit
    out=$(blua 'local i = bh.open(arg[1]); i:close()' "$A") || { fail=$i; diag "$out"; break; }
done
dirty=$(od -An -tx1 -j79 -N1 "$A" | tr -d ' ')
[ $fail -eq 0 ] && [ "$dirty" = 00 ] && qemu-img check -q "$A" &&
    qemu-io -r -c 'read -P 2 0 1M' -c 'read -P 1 1M 7M' "$A" >/dev/null &&
    ok "10 read-write opens of a dirty image rebuild the refcounts: check clean, bit cleared, data kept" ||
    not_ok "dirty image rebuilds: open $fail failed, dirty byte $dirty"
size=$(stat -c %s "$A")
[ "$size" -le "$size0" ] && ok "10 refcount rebuilds do not grow the file ($size bytes, $size0 before)" || not_ok "10 rebuilds grew the file from $size0 to $size bytes"

