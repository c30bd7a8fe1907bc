#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost convert -c` (compressed qcow2 output, zlib and zstd) beside
# `qemu-img convert -c` on the same sources: the result equals the source
# (qemu-img compare), is clean (qemu-img check), maps as qemu-img's own -c
# output does (blkhost map byte for byte as qemu-img map on it), is about
# as large; and each tool reads the other's compressed images.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io python3

plan 26

B=$BLKHOST
cd "$T" || exit 1
K=1024; M=$((K * K))
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

# kinds IMAGE: what each guest range is, host offsets left out
# (tests/qcow2/map-kinds.py).
kinds() { qemu-img map --output=json "$1" | python3 "$SOURCE_ROOT/tests/qcow2/map-kinds.py"; }
# ccount IMAGE: the "N compressed clusters" count of qemu-img check.
ccount() { qemu-img check --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("compressed-clusters", 0))'; }

# side_by_side DESC SOURCE OUT -- ARGS: blkhost convert ARGS OUT and
# qemu-img convert ARGS q-OUT; OUT must equal SOURCE, be clean, map as
# q-OUT (but for host offsets) and have as many compressed clusters.
side_by_side() {
    local desc=$1 src=$2 out=$3 msg; shift 4
    rm -f "$out" "q-$out"
    if ! msg=$("$B" convert "$@" "$out" 2>&1); then not_ok "convert -c: $desc"; diag "$msg"; return; fi
    qemu-img convert "$@" "q-$out"
    if ! msg=$(qemu-img compare "$src" "$out" 2>&1); then
        not_ok "convert -c: $desc: qemu-img compare"; diag "$msg"
    elif ! msg=$(qemu-img check "$out" 2>&1); then
        not_ok "convert -c: $desc: qemu-img check"; diag "$msg"
    elif [ "$(kinds "$out")" != "$(kinds "q-$out")" ]; then
        not_ok "convert -c: $desc: maps as qemu-img's -c output"; diag "$(diff <(kinds "q-$out") <(kinds "$out"))"
    elif [ "$(ccount "$out")" != "$(ccount "q-$out")" ]; then
        not_ok "convert -c: $desc: $(ccount "$out") compressed clusters, qemu-img's $(ccount "q-$out")"
    else
        ok "convert -c: $desc (qemu-img compare: identical, check: clean, $(ccount "$out") compressed clusters and the map as qemu-img convert -c's; $(stat -c %s "$out") bytes, qemu-img's $(stat -c %s "q-$out"))"
    fi
}

# The source: text (compresses), random data (does not), written zeros
# and holes, with edges off the 64k clusters; 370001 bytes of it in odd.raw.
qemu-img create -q -f raw src.raw 32M
yes "a line of text that compresses well, over and over" | head -c $((5 * M)) > text.bin
head -c $((3 * M)) /dev/urandom > rnd.bin
dd if=text.bin of=src.raw bs=1k seek=100 conv=notrunc status=none
dd if=rnd.bin of=src.raw bs=1k seek=$((8 * K + 12)) conv=notrunc status=none
io src.raw -f raw -c "write -P 0 14M 1M" -c "write -P 7 20M 100k" -c "write -P 9 $((32 * M - 4 * K)) 4k"
head -c 370001 src.raw > odd.raw
qemu-img convert -O qcow2 src.raw src.qcow2
io src.qcow2 -c "write -z 20M 64k" -c "write -c -P 3 24M 128k"

side_by_side "raw -> qcow2 (zlib)" src.raw z.qcow2 -- -c -O qcow2 src.raw
if [ "$(ccount z.qcow2)" -gt 50 ]; then ok "convert -c: the text became compressed clusters ($(ccount z.qcow2))"
else not_ok "convert -c: the text became compressed clusters ($(ccount z.qcow2))"; fi
qemu-img map --output=json z.qcow2 > q.map; "$B" map --output=json z.qcow2 > b.map
cmp -s q.map b.map && ok "map: blkhost map --output=json on the -c image is byte-identical to qemu-img map's" ||
    { not_ok "map: blkhost map --output=json on the -c image is byte-identical to qemu-img map's"; diag "$(diff q.map b.map)"; }
same_as_qemu map "--output=human on the -c image refuses compressed clusters" --output=human z.qcow2
same_as_qemu check "on the -c image: the compressed cluster count" z.qcow2
same_as_qemu check "--output=json on the -c image" --output=json z.qcow2
bs=$(stat -c %s z.qcow2); qs=$(stat -c %s q-z.qcow2)
if [ "$bs" -le $((qs + 2 * 65536)) ]; then
    ok "file size: blkhost's -c image $bs bytes, qemu-img's $qs (within two clusters)"
else
    not_ok "file size: blkhost's -c image $bs bytes, qemu-img's $qs"
fi

if qemu-img create -q -f qcow2 -o compression_type=zstd probe.qcow2 1M 2>/dev/null; then
    side_by_side "raw -> qcow2 -o compression_type=zstd" src.raw zs.qcow2 -- -c -O qcow2 -o compression_type=zstd src.raw
    qemu-img info zs.qcow2 | grep -q "compression type: zstd" &&
        ok "convert -c -o compression_type=zstd: qemu-img info says compression type zstd" ||
        not_ok "convert -c -o compression_type=zstd: qemu-img info says compression type zstd"
    bs=$(stat -c %s zs.qcow2); qs=$(stat -c %s q-zs.qcow2)
    [ "$bs" -le $((qs + 2 * 65536)) ] && ok "file size (zstd): blkhost's $bs bytes, qemu-img's $qs (within two clusters)" ||
        not_ok "file size (zstd): blkhost's $bs bytes, qemu-img's $qs"
    msg=$("$B" compare src.raw q-zs.qcow2 2>&1) && ok "blkhost compare reads qemu-img's zstd -c image: $msg" ||
        { not_ok "blkhost compare reads qemu-img's zstd -c image"; diag "$msg"; }
else
    for i in 1 2 3 4; do skip "zstd: this qemu-img cannot make zstd images"; done
fi

side_by_side "qcow2 (data, zero and compressed clusters) -> qcow2" src.qcow2 qq.qcow2 -- -c -O qcow2 src.qcow2
side_by_side "a 370001-byte source (the last cluster partial, the size not a multiple of 512)" odd.raw odd.qcow2 -- -c -O qcow2 odd.raw
side_by_side "-S 0 (zero clusters written compressed too)" src.raw s0.qcow2 -- -c -S 0 -O qcow2 src.raw
side_by_side "-o cluster_size=4k" src.raw c4.qcow2 -- -c -O qcow2 -o cluster_size=4k src.raw
side_by_side "-o compat=0.10" src.raw v2.qcow2 -- -c -O qcow2 -o compat=0.10 src.raw
head -c $((4 * M)) /dev/urandom > rnd.raw
side_by_side "random data (no cluster shrinks: all written plainly)" rnd.raw rnd.qcow2 -- -c -O qcow2 rnd.raw
if [ "$(ccount rnd.qcow2)" = 0 ]; then ok "convert -c: incompressible clusters fall back to normal clusters (0 compressed)"
else not_ok "convert -c: incompressible clusters fall back to normal clusters ($(ccount rnd.qcow2) compressed)"; fi

# With a backing file: only the top layer is copied, compressed.
qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 top.qcow2
io top.qcow2 -c "write -P 5 1M 1M" -c "write -P 6 $((3 * M + 4 * K)) 8k"
qemu-img convert -O raw top.qcow2 top.raw
rm -f bt.qcow2
if msg=$("$B" convert -c -O qcow2 -B src.qcow2 -F qcow2 top.qcow2 bt.qcow2 2>&1) &&
   qemu-img compare top.qcow2 bt.qcow2 >/dev/null && qemu-img check -q bt.qcow2; then
    ok "convert -c -B: only the top layer is copied (compressed), the result equals the overlay and is clean"
else
    not_ok "convert -c -B: only the top layer is copied"; diag "$msg"
fi
side_by_side "qcow2 with a backing file -> qcow2 (the chain flattened)" top.raw flat.qcow2 -- -c -O qcow2 top.qcow2

# -n into an existing image.
qemu-img create -q -f qcow2 n.qcow2 32M; cp n.qcow2 qn.qcow2
qemu-img convert -c -n -O qcow2 src.raw qn.qcow2
if msg=$("$B" convert -c -n -O qcow2 src.raw n.qcow2 2>&1) && qemu-img compare src.raw n.qcow2 >/dev/null &&
   qemu-img check -q n.qcow2 && [ "$(ccount n.qcow2)" = "$(ccount qn.qcow2)" ] &&
   [ "$(kinds n.qcow2)" = "$(kinds qn.qcow2)" ]; then
    ok "convert -c -n into an empty qcow2: equal to the source, clean, $(ccount n.qcow2) compressed clusters and the map as qemu-img's (zeros as zero clusters)"
else
    not_ok "convert -c -n into an empty qcow2"; diag "$msg"; diag "$(diff <(kinds qn.qcow2) <(kinds n.qcow2))"
fi

# Each tool reads the other's.
qemu-img convert -c -O qcow2 src.raw qimg.qcow2
msg=$("$B" compare src.raw qimg.qcow2 2>&1) && ok "blkhost compare reads qemu-img's zlib -c image: $msg" ||
    { not_ok "blkhost compare reads qemu-img's zlib -c image"; diag "$msg"; }
rm -f back.raw
"$B" convert -O raw qimg.qcow2 back.raw && cmp -s src.raw back.raw &&
    ok "blkhost convert of qemu-img's -c image to raw gives the source back byte for byte" ||
    not_ok "blkhost convert of qemu-img's -c image to raw gives the source back byte for byte"
qemu-img convert -O raw z.qcow2 qback.raw && cmp -s src.raw qback.raw &&
    ok "qemu-img convert of blkhost's -c image to raw gives the source back byte for byte" ||
    not_ok "qemu-img convert of blkhost's -c image to raw gives the source back byte for byte"

# Refused, as by qemu-img, with nothing created.
for args in "-O raw" "-O qcow2 -o preallocation=metadata"; do
    rm -f none.img
    # shellcheck disable=SC2086
    bmsg=$("$B" convert -c $args src.raw none.img 2>&1); rc=$?
    made=no; [ -e none.img ] && made=yes
    rm -f none.img
    # shellcheck disable=SC2086
    qmsg=$(qemu-img convert -c $args src.raw none.img 2>&1 | sed 's/^qemu-img: //')
    if [ $rc -ne 0 ] && [ $made = no ] && [ "$bmsg" = "blkhost convert: $qmsg" ]; then
        ok "convert -c $args is refused with qemu-img's message ('$qmsg'), nothing created"
    else
        not_ok "convert -c $args is refused with qemu-img's message, nothing created"; diag "rc=$rc: $bmsg / qemu-img: $qmsg"
    fi
done
