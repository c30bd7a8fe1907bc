#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost convert` (lua/cmd/convert.lua): every result is checked with
# qemu-img compare (and qemu-img check for qcow2) against its source, and
# sparseness with qemu-img map; every refused command line leaves an
# existing target byte-identical and makes no new file, and a convert that
# fails after creating its target removes it.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 72

B=$BLKHOST
cd "$T" || exit 1
sum() { sha256sum "$1" | cut -d' ' -f1; }
io() { local f=$1; shift; qemu-io "$@" "$f" >/dev/null; }

# converted DESC SOURCE TARGET [FMT] -- CONVERT-ARGS...: blkhost convert
# ARGS succeeds, qemu-img compare finds TARGET identical to SOURCE, and a
# qcow2 TARGET passes qemu-img check.
converted() {
    local desc=$1 src=$2 dst=$3 out checked=""; shift 3
    if ! out=$("$B" convert "$@" 2>&1); then
        not_ok "convert: $desc"; diag "$out"; return
    fi
    if ! out=$(qemu-img compare "$src" "$dst" 2>&1); then
        not_ok "convert: $desc"; diag "qemu-img compare: $out"; return
    fi
    if [ "$(qemu-img info --output=json "$dst" | grep -c '"format": "qcow2"')" -gt 0 ]; then
        if ! out=$(qemu-img check "$dst" 2>&1); then
            not_ok "convert: $desc"; diag "qemu-img check: $out"; return
        fi
        checked=", qemu-img check: clean"
    fi
    ok "convert: $desc (qemu-img compare: identical$checked)"
}
# data_at IMAGE OFFSET: qemu-img map's "data" at OFFSET (true/false).
data_at() {
    qemu-img map --output=json "$1" | python3 -c '
import json, sys
off = int(sys.argv[1])
for e in json.load(sys.stdin):
    if e["start"] <= off < e["start"] + e["length"]:
        print(str(e["data"]).lower())' "$2"
}
depth_at() {
    qemu-img map --output=json "$1" | python3 -c '
import json, sys
off = int(sys.argv[1])
for e in json.load(sys.stdin):
    if e["start"] <= off < e["start"] + e["length"]:
        print(e["depth"])' "$2"
}

# Sources: a raw file with data, written zeros and holes; a qcow2 with
# data, a zero cluster and compressed clusters; a chain.
qemu-img create -q -f raw src.raw 16M
io src.raw -f raw -c "write -P 1 0 1M" -c "write -P 0 2M 1M" -c "write -P 2 5M 4k" \
    -c "write -P 3 8M 100k" -c "write -P 4 16380k 4k"
qemu-img create -q -f qcow2 src.qcow2 16M
io src.qcow2 -c "write -P 5 0 512k" -c "write -z 1M 1M" -c "write -P 6 3M 64k" \
    -c "write -c -P 7 6M 128k" -c "write -P 8 15M 1M"
qemu-img create -q -f qcow2 -b src.qcow2 -F qcow2 top.qcow2 20M
io top.qcow2 -c "write -P 9 256k 64k" -c "write -z 3M 64k" -c "write -P 10 17M 64k"

converted "raw -> qcow2" src.raw a.qcow2 -O qcow2 src.raw a.qcow2
converted "qcow2 -> raw" src.qcow2 a.raw -O raw src.qcow2 a.raw
converted "qcow2 with a backing file -> raw (the chain flattened)" top.qcow2 b.raw -O raw top.qcow2 b.raw
converted "qcow2 with a backing file -> qcow2" top.qcow2 b.qcow2 -O qcow2 top.qcow2 b.qcow2
converted "raw -> raw" src.raw c.raw src.raw c.raw
converted "-f and -O named" src.qcow2 d.qcow2 -f qcow2 -O qcow2 src.qcow2 d.qcow2
converted "-o cluster_size=4096,lazy_refcounts=on" src.raw e.qcow2 -O qcow2 -o cluster_size=4096,lazy_refcounts=on src.raw e.qcow2
if qemu-img info e.qcow2 | grep -q "cluster_size: 4096"; then
    ok "convert: -o cluster_size reaches the target"
else
    not_ok "convert: -o cluster_size reaches the target"; diag "$(qemu-img info e.qcow2)"
fi
converted "-o size= is overridden by the source's size (as qemu-img)" src.raw f.qcow2 -O qcow2 -o size=1M src.raw f.qcow2

# The target's allocation is qemu-img convert's: qemu-img compare -s
# (strict: same data, zero and hole areas) between the two results.
for pair in "src.raw raw" "src.raw qcow2" "src.qcow2 raw" "src.qcow2 qcow2" "top.qcow2 raw"; do
    set -- $pair
    rm -f "sb.$2" "sq.$2"
    "$B" convert -O "$2" "$1" "sb.$2" && qemu-img convert -O "$2" "$1" "sq.$2"
    if out=$(qemu-img compare -s "sb.$2" "sq.$2" 2>&1); then
        ok "convert: $1 -> $2 allocates what qemu-img convert allocates (compare -s)"
    else
        not_ok "convert: $1 -> $2 allocates what qemu-img convert allocates (compare -s)"; diag "$out"
    fi
done
out=$("$B" convert -O qcow2 -o help 2>&1)
if [ "$out" = "$("$B" create -f qcow2 -o help 2>&1)" ] && echo "$out" | grep -q "^Supported qcow2 options:"; then
    ok "convert: -o help lists the -O format's creation options (as create -o help)"
else
    not_ok "convert: -o help lists the -O format's creation options (as create -o help)"; diag "$out"
fi

# -B: only the source's top layer is copied; the rest shows through.
converted "-B: qcow2 chain -> qcow2 over the same backing file" top.qcow2 g.qcow2 -O qcow2 -B src.qcow2 -F qcow2 top.qcow2 g.qcow2
if qemu-img info g.qcow2 | grep -q "backing file: src.qcow2"; then
    ok "convert: -B names the backing file in the target"
else
    not_ok "convert: -B names the backing file in the target"; diag "$(qemu-img info g.qcow2)"
fi
d0=$(depth_at g.qcow2 0); d1=$(depth_at g.qcow2 $((256 * 1024)))
if [ "$d0" = 1 ] && [ "$d1" = 0 ]; then
    ok "convert: -B leaves areas only the backing file holds unallocated in the target"
else
    not_ok "convert: -B leaves areas only the backing file holds unallocated in the target"
    diag "depth at 0: $d0 (want 1), at 256k: $d1 (want 0)"
fi
z=$(qemu-img map --output=json g.qcow2 | grep '"start": 3145728,' || true)
if echo "$z" | grep -q '"depth": 0, "present": true, "zero": true'; then
    ok "convert: -B writes the top layer's zero cluster (the backing data must not show)"
else
    not_ok "convert: -B writes the top layer's zero cluster (the backing data must not show)"
    diag "$(qemu-img map --output=json g.qcow2)"
fi

# Sparseness.
# allocated DESC IMAGE OFFSET=true|false...: qemu-img map's "data" at
# each OFFSET is as given.
allocated() {
    local desc=$1 img=$2 x got bad=""; shift 2
    for x in "$@"; do
        got=$(data_at "$img" "${x%=*}")
        [ "$got" = "${x#*=}" ] || bad="$bad ${x%=*}:$got"
    done
    if [ -z "$bad" ]; then
        ok "convert: $desc"
    else
        not_ok "convert: $desc"; diag "wrong at$bad"; diag "$(qemu-img map --output=json "$img")"
    fi
}
M=$((1024 * 1024)); K=1024
allocated "written zeros and holes of the source are holes in the target" c.raw \
    $((2 * M))=false $((12 * M))=false 0=true
converted "-S 0 (no sparse detection)" src.raw h.raw -S 0 src.raw h.raw
allocated "-S 0 allocates the whole target" h.raw $((12 * M))=true
qemu-img create -q -f raw sp.raw 1M
io sp.raw -f raw -c "write -P 1 0 1M" -c "write -P 0 64k 64k" -c "write -P 0 256k 8k"
converted "-S 64k" sp.raw i.raw -S 64k sp.raw i.raw
allocated "-S 64k skips a 64k zero run but writes an 8k one" i.raw $((64 * K))=false $((256 * K))=true
converted "-S 512" sp.raw j.raw -S 512 sp.raw j.raw
allocated "-S 512 also skips the 8k zero run" j.raw $((256 * K))=false

# -n: into an existing image full of other bytes.
qemu-img create -q -f raw k.raw 16M
io k.raw -f raw -c "write -P 0xff 0 16M"
converted "-n into an existing raw full of 0xff (zeros written where the source is zero)" src.qcow2 k.raw -n src.qcow2 k.raw
qemu-img create -q -f qcow2 l.qcow2 16M
io l.qcow2 -c "write -P 0xee 0 16M"
converted "-n -O qcow2 into an existing qcow2" src.raw l.qcow2 -n -O qcow2 src.raw l.qcow2

qemu-img create -q -f raw tz.raw 16M
converted "-n --target-is-zero into an empty raw" src.qcow2 tz.raw -n --target-is-zero src.qcow2 tz.raw
allocated "--target-is-zero writes no zeros" tz.raw $((1 * M))=false

# Several sources, end to end: the same bytes as qemu-img's result.
qemu-img convert -O raw src.raw src.qcow2 q-cat.raw
converted "two sources joined end to end (as qemu-img convert)" q-cat.raw cat.qcow2 -O qcow2 src.raw src.qcow2 cat.qcow2

converted "compressed clusters are read and written plain" src.qcow2 m.raw src.qcow2 m.raw
converted "-m 1" src.qcow2 n1.raw -m 1 src.qcow2 n1.raw
converted "-m 16 -W" src.qcow2 n2.raw -m 16 -W src.qcow2 n2.raw
converted "-t none -T none (O_DIRECT)" src.qcow2 n3.qcow2 -t none -T none -O qcow2 src.qcow2 n3.qcow2
cp src.qcow2 o.raw
converted "an existing target without -n is replaced, as qemu-img does" src.raw o.raw src.raw o.raw

# -p: qemu-img's progress lines.
out=$("$B" convert -p -O qcow2 src.raw p.qcow2 | od -An -c | tr -d ' \n')
if echo "$out" | grep -qE '^\(0\.00/100%\)\\r.*\(100\.00/100%\)\\r\\n$'; then
    ok "convert: -p prints '    (NN.NN/100%)' lines ended by \\r, then a newline"
else
    not_ok "convert: -p prints '    (NN.NN/100%)' lines ended by \\r, then a newline"; diag "$out"
fi
out=$("$B" convert -p -q src.raw p2.raw)
if [ -z "$out" ]; then ok "convert: -q silences -p"; else not_ok "convert: -q silences -p"; diag "$out"; fi

# refused DESC PATTERN ARGS... (@ is the target): blkhost convert fails
# with a message matching PATTERN, over a copy of keep.qcow2 (left
# byte-identical) and on a new path (nothing made).
qemu-img create -q -f qcow2 keep.qcow2 16M
io keep.qcow2 -c "write -P 0x5a 0 1M"
refused() {
    local desc=$1 pat=$2 before a x out rc nout nrc; shift 2
    cp keep.qcow2 old.img; before=$(sum old.img)
    a=(); for x in "$@"; do [[ $x == @ ]] && x=old.img; a+=("$x"); done
    out=$("$B" convert "${a[@]}" 2>&1); rc=$?
    rm -f new.img
    a=(); for x in "$@"; do [[ $x == @ ]] && x=new.img; a+=("$x"); done
    nout=$("$B" convert "${a[@]}" 2>&1); nrc=$?
    if [ $rc -ne 0 ] && [ $nrc -ne 0 ] && [ "$(sum old.img)" = "$before" ] && [ ! -e new.img ] &&
       echo "$out" | grep -qE -- "$pat"; then
        ok "convert: $desc is refused ('$(echo "$out" | head -1 | cut -c1-70)'), an existing target byte-identical, no new file"
    else
        not_ok "convert: $desc is refused, an existing target byte-identical, no new file"
        diag "rc=$rc $out"; diag "new: rc=$nrc $nout"; ls -l
    fi
    rm -f new.img
}
refused "a missing source" "nope.raw" nope.raw @
refused "a missing second source" "nope.raw" src.raw nope.raw @
refused "an unknown -O format" "bogus" -O bogus src.raw @
refused "an unknown -o key" "bogus" -O qcow2 -o bogus=1 src.raw @
refused "a bad -o value (cluster_size=3)" "luster" -O qcow2 -o cluster_size=3 src.raw @
refused "-o with a malformed item" "not key=value" -O qcow2 -o lazy src.raw @
refused "-c (no compressed writes)" "compress" -c -O qcow2 src.raw @
refused "-B without -F" "explicit backing format" -O qcow2 -B src.qcow2 top.qcow2 @
refused "-F without -B" "needs -B" -O qcow2 -F qcow2 top.qcow2 @
refused "-B with -O raw" "Backing file not supported for file format 'raw'" -O raw -B src.qcow2 -F qcow2 top.qcow2 @
refused "-B naming a missing backing file" "nope" -O qcow2 -B nope.qcow2 -F qcow2 top.qcow2 @
refused "-S 100 (not a multiple of 512)" "multiples of 512" -S 100 src.raw @
refused "-S 1x (not a size)" "Invalid buffer size" -S 1x src.raw @
refused "-m 0" "between 1 and 16" -m 0 src.raw @
refused "-m 17" "between 1 and 16" -m 17 src.raw @
refused "-n with -o" "no effect" -n -o cluster_size=4k src.raw @
refused "-p -q with an unknown -O" "bogus" -p -q -O bogus src.raw @
refused "--target-is-zero without -n" "requires use of -n" --target-is-zero src.raw @

# The target is the source.
cp src.raw self.raw; before=$(sum self.raw)
check_fails "convert: target same as source is refused" "onto itself" "$B" convert self.raw self.raw
[ "$(sum self.raw)" = "$before" ] && ok "convert: target same as source leaves it byte-identical" ||
    not_ok "convert: target same as source leaves it byte-identical"
check_fails "convert: target same as source through another path is refused" "onto itself" \
    "$B" convert "$T/self.raw" ./self.raw
check_fails "convert: target that is the -B backing file is refused" "own backing file" \
    "$B" convert -O qcow2 -B self.raw -F raw top.qcow2 self.raw
[ "$(sum self.raw)" = "$before" ] && ok "convert: ... and leaves it byte-identical" ||
    not_ok "convert: ... and leaves it byte-identical"
mkdir -p sub && cp src.raw sub/self.raw
check_fails "convert: -B relative to the target's folder naming the target is refused" "own backing file" \
    "$B" convert -O qcow2 -B self.raw -F raw top.qcow2 sub/self.raw
cmp -s src.raw sub/self.raw && ok "convert: ... and leaves it byte-identical" ||
    not_ok "convert: ... and leaves it byte-identical"

cp keep.qcow2 kbase.qcow2
qemu-img create -q -f qcow2 -b kbase.qcow2 -F qcow2 ktop.qcow2
before=$(sum kbase.qcow2)
check_fails "convert: target that is the source's backing file is refused" "is locked|backing chain" \
    "$B" convert -O raw ktop.qcow2 kbase.qcow2
check_fails "convert: ... also with -U (no locks)" "backing chain" \
    "$B" convert -U -O raw ktop.qcow2 kbase.qcow2
[ "$(sum kbase.qcow2)" = "$before" ] && ok "convert: ... and the backing file is left byte-identical" ||
    not_ok "convert: ... and the backing file is left byte-identical"

# -n needs the target.
check_fails "convert: -n with a missing target fails" "nothere" "$B" convert -n src.raw nothere.raw
[ ! -e nothere.raw ] && ok "convert: -n with a missing target makes no file" ||
    not_ok "convert: -n with a missing target makes no file"
qemu-img create -q -f raw small.raw 1M
check_fails "convert: -n into a smaller target fails before writing" "smaller" "$B" convert -n src.raw small.raw
check_fails "convert: only one file name is a usage error" "Must specify image file name" "$B" convert src.raw

# A source that fails half way: a corrupt L2 entry (unaligned host offset).
qemu-img create -q -f qcow2 bad.qcow2 4M
io bad.qcow2 -c "write -P 1 0 2M"
corrupt_l2 bad.qcow2 16
check_fails "convert: a source whose L2 entry is corrupt fails with the driver's message" \
    "unaligned" "$B" convert -O qcow2 bad.qcow2 made.qcow2
[ ! -e made.qcow2 ] && ok "convert: the target it created is removed after the failure" ||
    not_ok "convert: the target it created is removed after the failure"
