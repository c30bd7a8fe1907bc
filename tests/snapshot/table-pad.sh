#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The snapshot table is written in whole clusters; what follows the table
# in its last cluster must be zeros, never bytes left in the writer's heap
# (they would land in the image: other images' data, keys, paths).  glibc's
# MALLOC_PERTURB_ fills fresh heap memory, so garbage would show.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
plan 4

I=$T/pad.qcow2
qemu-img create -q -f qcow2 -o cluster_size=64k "$I" 64M
ok_all=1
for n in a bb ccc; do
    MALLOC_PERTURB_=85 "$B" snapshot -c "snap-$n" "$I" || ok_all=0
done
check "three snapshots made with a perturbed heap" test $ok_all = 1
# The header: nb_snapshots (u32 at 60), snapshots_offset (u64 at 64);
# walk the table to its end, then look at the rest of its last cluster.
tail_bytes=$(python3 - "$I" <<'PY'
import struct, sys
f = open(sys.argv[1], 'rb'); h = f.read(104)
cs = 1 << struct.unpack('>I', h[20:24])[0]
nb, off = struct.unpack('>I', h[60:64])[0], struct.unpack('>Q', h[64:72])[0]
pos = off
for _ in range(nb):
    f.seek(pos); e = f.read(40)
    extra, idl, nml = struct.unpack('>I', e[36:40])[0], *struct.unpack('>HH', e[12:16])
    pos += 40 + extra + idl + nml
    pos = (pos + 7) & ~7
end = ((pos + cs - 1) // cs) * cs
f.seek(pos); rest = f.read(end - pos)
print(len(rest), sum(1 for b in rest if b))
PY
)
diag "bytes after the table in its cluster, and how many are not zero: $tail_bytes"
check "the table leaves room in its cluster (the check looks at something)" \
    test "${tail_bytes% *}" -gt 0
check "every byte after the snapshot table in its cluster is zero" \
    test "${tail_bytes#* }" = 0
check "qemu-img check finds the image clean" qemu-img check -q "$I"
