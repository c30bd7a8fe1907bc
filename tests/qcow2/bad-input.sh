#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# Broken images (the cases of qemu-iotests 080 and 060): each is built with
# poke.py from a good image, and must be refused with a message naming the
# problem, without a crash and without a byte written to the image.  Images
# whose metadata points into other metadata get marked corrupt, as QEMU
# does, and then open read-only only.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/qcow2/lib.sh"
need qemu-img qemu-io md5sum
TOOL=$QCOW2_TOOL
POKE=$QCOW2_POKE

plan 29

qemu-img create -q -f qcow2 "$T/good.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x11 0 128k' "$T/good.qcow2" >/dev/null
head -c 1M /dev/urandom > "$T/base.raw"
(cd "$T" && qemu-img create -q -f qcow2 -b base.raw -F raw backed.qcow2 1M)

L1=$(be "$T/good.qcow2" 40 8)
RT=$(be "$T/good.qcow2" 48 8)
L2=$(( $(be "$T/good.qcow2" $L1 8) & 0x00fffffffffffe00 ))

# refused DESC PATTERN IMG-TEMPLATE OFFSET TYPE VALUE [TOOL-ARGS...]:
# poke a copy of the template, open it read-write, expect PATTERN and an
# unchanged file.
refused() {
    local desc=$1 pat=$2 src=$3 off=$4 type=$5 val=$6; shift 6
    local img=$T/bad.qcow2 before after out
    cp "$src" "$img"
    "$POKE" "$img" "$off" "$type" "$val"
    before=$(md5sum < "$img")
    if [ $# -eq 0 ]; then set -- open "$img"; else set -- "$1" "$img" "${@:2}"; fi
    if out=$("$TOOL" "$@" 2>&1); then
        not_ok "$desc"; diag "unexpectedly succeeded: $out"; return
    fi
    after=$(md5sum < "$img")
    if ! echo "$out" | grep -qE -- "$pat"; then
        not_ok "$desc"; diag "output did not match /$pat/:"; diag "$out"
    elif [ "$before" != "$after" ]; then
        not_ok "$desc"; diag "the image was modified"
    else
        ok "$desc"
    fi
}

G=$T/good.qcow2
refused "qcow2: header_length 0xffffffff refused with EINVAL" \
    "header_length 4294967295" $G 100 be32 0xffffffff
refused "qcow2: header_length 0x7fffffff refused with EINVAL" \
    "header_length 2147483647" $G 100 be32 0x7fffffff
refused "qcow2: header_length 96 (below 104) refused" \
    "header_length 96" $G 100 be32 96
refused "qcow2: huge unknown header extension refused" \
    "header extension 0x12345678 .* claims 2147483647 bytes" $G 112 hex 123456787fffffff
refused "qcow2: l1_size 0x7fffffff refused with EFBIG" \
    "l1_size 2147483647 .*too large" $G 36 be32 0x7fffffff
refused "qcow2: l1_size 0xffffffff refused with EFBIG" \
    "l1_size 4294967295 .*too large" $G 36 be32 0xffffffff
refused "qcow2: l1_size 0 (too small for the virtual size) refused" \
    "l1_size 0 is too small" $G 36 be32 0
refused "qcow2: misaligned L1 table offset refused" \
    "L1 table offset 0x[0-9a-f]+ is not aligned" $G 40 be64 $((L1 + 512))
refused "qcow2: misaligned refcount table offset refused" \
    "refcount table offset 0x[0-9a-f]+ is not aligned" $G 48 be64 $((RT + 512))
refused "qcow2: refcount_table_clusters 0xffffffff refused with EFBIG" \
    "refcount_table_clusters 4294967295" $G 56 be32 0xffffffff
refused "qcow2: nb_snapshots 0xffffffff refused with EFBIG" \
    "nb_snapshots 4294967295" $G 60 be32 0xffffffff
cp $G "$T/snap.qcow2"; "$POKE" "$T/snap.qcow2" 60 be32 1
refused "qcow2: snapshot table past the end of the file refused" \
    "snapshot table at 0x[0-9a-f]+ .*past the end" "$T/snap.qcow2" 64 be64 0x40000000
refused "qcow2: cluster_bits 8 refused" "cluster_bits 8 is out of range" $G 20 be32 8
refused "qcow2: cluster_bits 22 refused" "cluster_bits 22 is out of range" $G 20 be32 22
refused "qcow2: refcount_order 7 refused" "refcount_order 7 is out of range" $G 96 be32 7
refused "qcow2: version 4 refused" "version 4 is not supported" $G 4 be32 4
refused "qcow2: backing_file_size 2000 refused" \
    "backing_file_size 2000 is too long" "$T/backed.qcow2" 16 be32 2000
refused "qcow2: unknown incompatible feature bit 10 refused, naming it" \
    "unsupported incompatible feature: .*bit 10" $G 72 be64 0x400
refused "qcow2: external data file bit refused, naming the feature" \
    "external data file" $G 72 be64 0x4
refused "qcow2: extended L2 entries bit refused, naming the feature" \
    "extended L2 entries" $G 72 be64 0x10
refused "qcow2: encryption (crypt_method 1) refused, naming the feature" \
    "encrypted images \(AES" $G 32 be32 1
refused "qcow2: corrupt bit refuses a read-write open" \
    "marked corrupt; it can only be opened read-only" $G 72 be64 0x2
check "qcow2: corrupt bit still allows a read-only open" \
    "$TOOL" read "$T/bad.qcow2" 0 4096 readonly=on
refused "qcow2: L2 entry pointing past the end of the file fails the read of that cluster" \
    "L2 entry for guest offset 0x0 points at host offset 0x100000000, past the end of the file" \
    $G $L2 be64 $(( 0x8000000100000000 )) read 0 4096

# The file truncated in the middle of a large L1 table.
qemu-img create -q -f qcow2 -o cluster_size=512 "$T/bigl1.qcow2" 1G
BL1=$(be "$T/bigl1.qcow2" 40 8)
truncate -s $((BL1 + 1000)) "$T/bigl1.qcow2"
refused "qcow2: file truncated in the middle of the L1 table refused" \
    "L1 table at 0x[0-9a-f]+ .*extends past the end of the file" "$T/bigl1.qcow2" 0 hex 514649fb

# Metadata overlap: the image gets marked corrupt and the access fails.
# (An L1 entry cannot point at the header: offset 0 means "no L2 table".)
overlap() {
    local desc=$1 pat=$2 off=$3 val=$4 out
    cp $G "$T/ov.qcow2"
    "$POKE" "$T/ov.qcow2" "$off" be64 "$val"
    if out=$("$TOOL" write "$T/ov.qcow2" 0 4096 0x77 2>&1); then
        not_ok "$desc"; diag "unexpectedly succeeded"; return
    fi
    if echo "$out" | grep -qE -- "$pat" &&
       qemu-img info "$T/ov.qcow2" | grep -q "corrupt: true"; then
        ok "$desc"
    else
        not_ok "$desc"; diag "$out"; diag "$(qemu-img info "$T/ov.qcow2" | grep corrupt)"
    fi
}
overlap "qcow2: L1 entry pointing at the L1 table itself marks the image corrupt" \
    "L1 entry 0 points at the active L1 table.*image marked corrupt" $L1 $(( L1 | 0x8000000000000000 ))
overlap "qcow2: L1 entry pointing at the refcount table marks the image corrupt" \
    "L1 entry 0 points at the refcount table.*image marked corrupt" $L1 $(( RT | 0x8000000000000000 ))
overlap "qcow2: L2 entry pointing at the L1 table marks the image corrupt" \
    "L2 entry for guest offset 0x0 points at the active L1 table.*image marked corrupt" $L2 $(( L1 | 0x8000000000000000 ))
check_fails "qcow2: after the overlap, read-write opens are refused" \
    "marked corrupt" "$TOOL" open "$T/ov.qcow2"
