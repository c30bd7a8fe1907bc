#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Broken snapshot tables and bad requests: each gets a clear error and
# leaves the image byte for byte as it was.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
plan 17
POKE="/usr/bin/python3 $QCOW2_POKE"

G=$T/good.qcow2
qemu-img create -q -f qcow2 "$G" 8M
qemu-io -c 'write -P 1 0 64k' "$G" >/dev/null
qemu-img snapshot -c one "$G"
TBL=$(/usr/bin/python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(struct.unpack(">Q", d[64:72])[0])' "$G")
L1=$(/usr/bin/python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(struct.unpack(">Q", d[int(sys.argv[2]):int(sys.argv[2])+8])[0])' "$G" "$TBL")

# refused DESC PATTERN IMG CMD...: CMD fails with PATTERN and IMG is unchanged.
refused() {
    local desc=$1 pat=$2 img=$3 out before; shift 3
    before=$(md5sum < "$img")
    if out=$("$@" 2>&1); then not_ok "$desc"; diag "unexpectedly succeeded: $out"; return; fi
    if ! echo "$out" | grep -qE -- "$pat"; then not_ok "$desc"; diag "output did not match /$pat/: $out"; return; fi
    [ "$(md5sum < "$img")" = "$before" ] && ok "$desc" || not_ok "$desc (the image changed)"
}
bad() { cp "$G" "$T/b.qcow2"; $POKE "$T/b.qcow2" "$@"; }

bad $((TBL)) be64 $((L1 + 512))
refused "snapshot entry with a misaligned L1 offset refused" "L1 table|not cluster aligned" "$T/b.qcow2" "$B" snapshot -c x "$T/b.qcow2"
refused "misaligned L1 offset: listing refused too" "L1" "$T/b.qcow2" "$B" snapshot -l "$T/b.qcow2"
bad $((TBL)) be64 0x100000000
refused "snapshot entry with an L1 offset past the end of the file refused" "L1 table.*(past|invalid)|invalid L1" "$T/b.qcow2" "$B" snapshot -a one "$T/b.qcow2"
bad $((TBL + 8)) be32 0x10000000
refused "snapshot entry with l1_size 0x10000000 refused" "L1|l1_size" "$T/b.qcow2" "$B" snapshot -d one "$T/b.qcow2"
bad $((TBL + 36)) be32 1025
refused "extra_data_size 1025 (over 1024) refused" "extra data" "$T/b.qcow2" "$B" snapshot -l "$T/b.qcow2"
cp "$G" "$T/b.qcow2"; truncate -s $((TBL + 20)) "$T/b.qcow2"
refused "snapshot table running past the end of the file refused" "past the end" "$T/b.qcow2" "$B" snapshot -l "$T/b.qcow2"
bad 60 be32 65537
refused "nb_snapshots 65537 refused" "65536|more than" "$T/b.qcow2" "$B" snapshot -l "$T/b.qcow2"

# A table of 65536 snapshots (sharing one L1 copy: only the count
# matters), then a 65537th create is refused before anything is written.
cp "$G" "$T/full.qcow2"
/usr/bin/python3 - "$T/full.qcow2" "$TBL" <<'PY'
import struct, sys
path, tbl = sys.argv[1], int(sys.argv[2])
d = bytearray(open(path, "rb").read())
ent = d[tbl:tbl + 40 + struct.unpack(">I", d[tbl + 36:tbl + 40])[0]]
out = bytearray()
for i in range(65536):
    idb, nm = str(i + 1).encode(), b"s%d" % i
    e = bytearray(ent)
    struct.pack_into(">HH", e, 12, len(idb), len(nm))
    e += idb + nm
    e += b"\0" * (-len(e) % 8)
    out += e
off = (len(d) + 65535) // 65536 * 65536
d += b"\0" * (off - len(d)) + out
struct.pack_into(">IQ", d, 60, 65536, off)
open(path, "wb").write(d)
PY
n=$("$B" snapshot -l -U "$T/full.qcow2" | tail -n +3 | wc -l)
[ "$n" = 65536 ] && ok "a table of 65536 snapshots is listed" || not_ok "65536 listed ($n)"
refused "a 65537th snapshot refused" "65536 snapshots" "$T/full.qcow2" "$B" snapshot -c extra "$T/full.qcow2"

long=$(head -c 65535 /dev/zero | tr '\0' n)
refused "a snapshot name of 65535 bytes refused" "at most 1023" "$G" "$B" snapshot -c "$long" "$G"
refused "a snapshot id of 65535 bytes refused" "at most 1023" "$G" blua 'local i = bh.open(arg[1]); i:snapshot_create("x", {id = string.rep("9", 65535)})' "$G"
refused "apply of a name that does not exist refused" "no snapshot with id or name 'ghost'" "$G" "$B" snapshot -a ghost "$G"
refused "delete of a name that does not exist refused with qemu-img's message" "Could not delete snapshot 'ghost': snapshot not found" "$G" "$B" snapshot -d ghost "$G"
refused "snapshot_open of a name that does not exist refused" "no snapshot" "$G" blua 'bh.open(arg[1], {readonly=true}):snapshot_open("ghost")' "$G"
refused "create on a read-only node refused" "read-only" "$G" blua 'bh.open(arg[1], {readonly=true}):snapshot_create("x")' "$G"
refused "snapshot=one on a writable open refused" "read-only" "$G" blua 'bh.open(arg[1], {snapshot="one"})' "$G"
qclean "the good image is still clean" "$G"
