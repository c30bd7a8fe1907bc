#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost create` (lua/cmd/create.lua, bh_create and the drivers' create):
# every option is checked before a file is touched, so a refused create
# leaves an existing image byte-identical and no new file behind; a create
# that fails half way removes only a file it made.  The options qemu-img
# 7.2 has (preallocation, compression_type, fractional sizes, -o help, -u,
# -b needing -F) are compared with Debian's qemu-img on the same input.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/cmd/lib.sh"
need qemu-img qemu-io qemu-nbd

plan 83

B=$BLKHOST
sum() { sha256sum "$1" | cut -d' ' -f1; }
# in_t FILE CMD ARGS...: run CMD in $T with every '@' in ARGS replaced by FILE.
in_t() {
    local f=$1 a=() x; shift
    for x in "$@"; do [[ $x == @ ]] && x=$f; a+=("$x"); done
    (cd "$T" && "${a[@]}")
}

# An image with data in it, the "existing image" refused creates must spare.
qemu-img create -q -f qcow2 "$T/orig.qcow2" 64M
qemu-io -c "write -P 0x5a 0 1M" "$T/orig.qcow2" >/dev/null
qemu-img create -q -f qcow2 "$T/base.qcow2" 64M
qemu-img create -q -f raw "$T/base.raw" 32M

# refused DESC CREATE-ARGS...: blkhost create fails over a copy of
# orig.qcow2 (left byte-identical) and on a new path (nothing left), and
# qemu-img create refuses the same arguments.
refused() {
    local desc=$1 before after out rc nout nrc qout qrc; shift
    cp "$T/orig.qcow2" "$T/old.img"
    before=$(sum "$T/old.img")
    out=$(in_t old.img "$B" create "$@" 2>&1); rc=$?
    after=$(sum "$T/old.img")
    if [ $rc -ne 0 ] && [ "$before" = "$after" ]; then
        ok "create: $desc over an existing image fails and leaves it byte-identical"
    else
        not_ok "create: $desc over an existing image fails and leaves it byte-identical"
        diag "rc=$rc $out"
    fi
    rm -f "$T/new.img" "$T/qnew.img"
    nout=$(in_t new.img "$B" create "$@" 2>&1); nrc=$?
    qout=$(in_t qnew.img qemu-img create "$@" 2>&1); qrc=$?
    if [ $nrc -ne 0 ] && [ ! -e "$T/new.img" ] && [ $qrc -ne 0 ]; then
        ok "create: $desc leaves no new file behind (qemu-img refuses it too)"
    else
        not_ok "create: $desc leaves no new file behind (qemu-img refuses it too)"
        diag "blkhost rc=$nrc $nout"; diag "qemu-img rc=$qrc $qout"; ls -l "$T"
    fi
    if echo "$out$nout" | grep -q "^Formatting"; then
        not_ok "create: $desc prints no 'Formatting' line (nothing is being made)"
        diag "$out"; diag "$nout"
    else
        ok "create: $desc prints no 'Formatting' line (nothing is being made)"
    fi
    rm -f "$T/new.img" "$T/qnew.img"
}

# --- refused before anything is touched --------------------------------
refused "-o bogus=1" -f qcow2 -o bogus=1 @ 64M
refused "qcow2 without a size" -f qcow2 @
refused "compression_type=lz4" -f qcow2 -o compression_type=lz4 @ 64M
refused "compat=0.10 with compression_type=zstd" -f qcow2 -o compat=0.10,compression_type=zstd @ 64M
refused "preallocation=bogus" -f qcow2 -o preallocation=bogus @ 64M
refused "raw preallocation=metadata" -f raw -o preallocation=metadata @ 1M
refused "cluster_size=1000" -f qcow2 -o cluster_size=1000 @ 64M
refused "refcount_bits=3" -f qcow2 -o refcount_bits=3 @ 64M
refused "a missing backing file" -f qcow2 -b missing.qcow2 -F qcow2 @ 64M
refused "-b without -F" -f qcow2 -b base.qcow2 @
refused "a backing file with preallocation" -f qcow2 -b base.qcow2 -F qcow2 -o preallocation=metadata @
refused "size 8E" -f raw @ 8E
refused "raw with a backing file" -f raw -b base.raw -F raw @ 1M
refused "a raw backing file named as -F qcow2" -f qcow2 -b base.raw -F qcow2 @ 64M

# An image backed by itself: qemu-img catches only the same spelling and
# with "./old.img" empties the image; blkhost compares the files.
cp "$T/orig.qcow2" "$T/old.img"
before=$(sum "$T/old.img")
out=$(cd "$T" && "$B" create -f qcow2 -b ./old.img -F qcow2 old.img 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$before" = "$(sum "$T/old.img")" ] && grep -q "image itself" <<<"$out"; then
    ok "create: -b ./old.img over old.img (backed by itself) refused, the image byte-identical"
else
    not_ok "create: -b ./old.img over old.img (backed by itself) refused, the image byte-identical"; diag "$out"
fi

# The same path through the Lua API.
cp "$T/orig.qcow2" "$T/old.img"
before=$(sum "$T/old.img")
out=$("$B" run /dev/stdin "$T" 2>&1 <<'EOF'
local bh = require "blkhost"
local T = arg[1]
assert(not pcall(bh.create, T .. "/old.img", { format = "qcow2", size = "64M", bogus = "1" }))
assert(not pcall(bh.create, T .. "/old.img", { format = "qcow2", size = "64M", preallocation = "sideways" }))
assert(not pcall(bh.create, T .. "/lua-new.img", { format = "qcow2", bogus = "1", size = "1M" }))
assert(not pcall(bh.create, T .. "/lua-new.img", { format = "raw", size = "1M", preallocation = "metadata" }))
EOF
)
if [ $? -eq 0 ] && [ "$before" = "$(sum "$T/old.img")" ] && [ ! -e "$T/lua-new.img" ]; then
    ok "create: bh.create with bogus=1 or a bad preallocation leaves an existing image byte-identical and makes no file"
else
    not_ok "create: bh.create with bogus=1 or a bad preallocation leaves an existing image byte-identical and makes no file"
    diag "$out"
fi

# An image somebody serves is locked: refused, left as it is, as qemu-img
# refuses it ("Failed to get write lock").
cp "$T/orig.qcow2" "$T/held.img"
before=$(sum "$T/held.img")
if qemu-nbd --fork --pid-file "$T/qn.pid" -k "$T/qn.sock" -f qcow2 "$T/held.img"; then
    at_exit "kill \$(cat '$T/qn.pid') 2>/dev/null"
    out=$("$B" create -f qcow2 "$T/held.img" 64M 2>&1); rc=$?
    qemu-img create -q -f qcow2 "$T/held.img" 64M 2>/dev/null; qrc=$?
    if [ $rc -ne 0 ] && [ $qrc -ne 0 ] && [ "$before" = "$(sum "$T/held.img")" ] &&
       grep -q "locked" <<<"$out"; then
        ok "create: over an image qemu-nbd serves refused (locked), the image byte-identical, as qemu-img refuses"
    else
        not_ok "create: over an image qemu-nbd serves refused (locked), the image byte-identical"
        diag "rc=$rc qrc=$qrc $out"
    fi
    stop qn
else
    not_ok "create: qemu-nbd could not serve the image to lock it"
fi

# --- failing half way: only a file this create made is removed -----------
# ulimit -f makes writes past 2 MiB fail with EFBIG (SIGXFSZ ignored).
limited() { (trap '' XFSZ; ulimit -f 2048; cd "$T" && "$@") >/dev/null 2>&1; }
for fmt in raw qcow2; do
    for m in falloc full; do
        rm -f "$T/half.img"
        if ! limited "$B" create -f $fmt -o preallocation=$m half.img 10M &&
           [ ! -e "$T/half.img" ]; then
            ok "create: $fmt preallocation=$m running out of room half way removes the file it created"
        else
            not_ok "create: $fmt preallocation=$m running out of room half way removes the file it created"
            ls -l "$T/half.img"
        fi
    done
done
cp "$T/orig.qcow2" "$T/old.img"; cp "$T/orig.qcow2" "$T/qold.img"
limited "$B" create -f raw -o preallocation=full old.img 10M; rc=$?
limited qemu-img create -f raw -o preallocation=full qold.img 10M; qrc=$?
if [ $rc -ne 0 ] && [ $qrc -ne 0 ] && [ -e "$T/old.img" ] &&
   [ "$(stat -c %s "$T/old.img")" = "$(stat -c %s "$T/qold.img")" ]; then
    ok "create: raw preallocation=full failing half way over an existing file keeps the file, emptied as qemu-img leaves it ($(stat -c %s "$T/old.img") bytes)"
else
    not_ok "create: raw preallocation=full failing half way over an existing file keeps the file, emptied as qemu-img leaves it"
    diag "rc=$rc qrc=$qrc"; ls -l "$T/old.img" "$T/qold.img"
fi
rm -f "$T/old.img" "$T/qold.img"

# --- preallocation, compared with qemu-img -----------------------------
alloc() { echo $(( $(stat -c %b "$1") * 512 )); }
for m in off metadata falloc full; do
    rm -f "$T/p.qcow2" "$T/q.qcow2"
    "$B" create -q -f qcow2 -o preallocation=$m "$T/p.qcow2" 1M
    qemu-img create -q -f qcow2 -o preallocation=$m "$T/q.qcow2" 1M
    check "create: qcow2 preallocation=$m passes qemu-img check" qemu-img check -q "$T/p.qcow2"
    pm=$(qemu-img map --output=json "$T/p.qcow2"); qm=$(qemu-img map --output=json "$T/q.qcow2")
    pa=$(alloc "$T/p.qcow2"); qa=$(alloc "$T/q.qcow2")
    # Allocation: falloc and full reserve the data clusters on disk (about
    # 1 MiB more than metadata); the metadata layouts differ by a few
    # clusters, so compare within 256 KiB.
    if [ "$pm" = "$qm" ] && (( pa - qa < 262144 && qa - pa < 262144 )) &&
       { [[ $m == off || $m == metadata ]] || (( pa >= 1048576 )); }; then
        ok "create: qcow2 preallocation=$m maps as qemu-img's and allocates $pa bytes on disk (qemu-img: $qa)"
    else
        not_ok "create: qcow2 preallocation=$m maps as qemu-img's and allocates like it"
        diag "blkhost $pa $pm"; diag "qemu-img $qa $qm"
    fi
done
for m in off falloc full; do
    rm -f "$T/p.raw" "$T/q.raw"
    "$B" create -q -f raw -o preallocation=$m "$T/p.raw" 1.7M
    qemu-img create -q -f raw -o preallocation=$m "$T/q.raw" 1.7M
    ps=$(stat -c %s "$T/p.raw"); qs=$(stat -c %s "$T/q.raw")
    pa=$(alloc "$T/p.raw"); qa=$(alloc "$T/q.raw")
    # qemu-img writes the first 4 KiB of every raw file (to probe the
    # alignment later); that block is the only allowed difference.
    if [ "$ps" = "$qs" ] && (( pa - qa <= 4096 && qa - pa <= 4096 )) &&
       { [[ $m == off ]] || (( pa >= ps )); }; then
        ok "create: raw preallocation=$m gives qemu-img's size ($ps) and allocation ($pa bytes, qemu-img $qa)"
    else
        not_ok "create: raw preallocation=$m gives qemu-img's size and allocation"
        diag "blkhost $ps/$pa qemu-img $qs/$qa"
    fi
done

# --- compression_type=zstd ----------------------------------------------
rm -f "$T/z.qcow2" "$T/qz.qcow2"
zout=$("$B" create -q -f qcow2 -o compression_type=zstd "$T/z.qcow2" 64M 2>&1)
qemu-img create -q -f qcow2 -o compression_type=zstd "$T/qz.qcow2" 64M
out=$(qemu-img info "$T/z.qcow2" 2>&1)
if grep -q "needs libzstd" <<<"$zout"; then
    skip "create: compression_type=zstd: this build has no libzstd ($zout)"
    skip "create: compression_type=zstd header: no libzstd"
    skip "create: zstd cluster read back: no libzstd"
elif echo "$out" | grep -q "compression type: zstd" && qemu-img check -q "$T/z.qcow2"; then
    ok "create: compression_type=zstd image: qemu-img info shows compression type zstd, check is clean"
else
    not_ok "create: compression_type=zstd image: qemu-img info shows compression type zstd, check is clean"
    diag "$out"
fi
if grep -q "needs libzstd" <<<"$zout"; then
    :
elif cmp -s <(head -c 112 "$T/z.qcow2") <(head -c 112 "$T/qz.qcow2"); then
    ok "create: compression_type=zstd header (incompatible bit 3, byte 104) equals qemu-img's"
else
    not_ok "create: compression_type=zstd header (incompatible bit 3, byte 104) equals qemu-img's"
    cmp <(head -c 112 "$T/z.qcow2") <(head -c 112 "$T/qz.qcow2")
fi
if ! grep -q "needs libzstd" <<<"$zout"; then
qemu-io -c "write -c -P 0x7e 0 64k" "$T/z.qcow2" >/dev/null
out=$("$B" run /dev/stdin "$T/z.qcow2" 2>&1 <<'EOF'
local bh = require "blkhost"
local n <close> = bh.open(arg[1], { readonly = true })
assert(n:read(0, 65536) == string.rep("~", 65536), "data differs")
EOF
)
if [ $? -eq 0 ] && qemu-img check -q "$T/z.qcow2"; then
    ok "create: a zstd cluster qemu-io wrote into the created image reads back in blkhost"
else
    not_ok "create: a zstd cluster qemu-io wrote into the created image reads back in blkhost"; diag "$out"
fi
fi

# --- sizes ----------------------------------------------------------------
for s in 1.5G 1.7M 1000 0.5K 0x400; do
    rm -f "$T/s.qcow2" "$T/qs.qcow2" "$T/s.raw" "$T/qs.raw"
    "$B" create -q -f qcow2 "$T/s.qcow2" $s; qemu-img create -q -f qcow2 "$T/qs.qcow2" $s
    "$B" create -q -f raw "$T/s.raw" $s; qemu-img create -q -f raw "$T/qs.raw" $s
    v=$(qemu-img info --output=json "$T/s.qcow2" | grep '"virtual-size"')
    qv=$(qemu-img info --output=json "$T/qs.qcow2" | grep '"virtual-size"')
    if [ -n "$v" ] && [ "$v" = "$qv" ] &&
       [ "$(stat -c %s "$T/s.raw")" = "$(stat -c %s "$T/qs.raw")" ]; then
        ok "create: size $s gives qemu-img's virtual size (qcow2 ${v##*: } raw $(stat -c %s "$T/s.raw"))"
    else
        not_ok "create: size $s gives qemu-img's virtual size"
        diag "qcow2 $v / $qv raw $(stat -c %s "$T/s.raw") / $(stat -c %s "$T/qs.raw")"
    fi
done
check_fails "create: size 1.5 (a fraction without a unit) refused, as qemu-img refuses it" \
    "fraction" "$B" create -f raw "$T/frac.raw" 1.5
if ! qemu-img create -q -f raw "$T/qfrac.raw" 1.5 2>/dev/null && [ ! -e "$T/frac.raw" ]; then
    ok "create: qemu-img refuses 1.5 too, and no file was made"
else
    not_ok "create: qemu-img refuses 1.5 too, and no file was made"
fi

# --- -o help --------------------------------------------------------------
for fmt in qcow2 raw; do
    out=$("$B" create -f $fmt -o help 2>&1); qout=$(qemu-img create -f $fmt -o help 2>&1)
    qall=$(qemu-img create -f $fmt -o help "$T/help.img" 2>&1)
    # Every option blkhost lists is one qemu-img lists with the same type,
    # at the format or (raw's preallocation) the protocol level; blkhost's
    # own "unsafe" aside.  The frame is qemu-img's.
    bad=""
    while read -r line; do
        case $line in *"unsafe="*|"") continue ;; esac
        grep -qF -- "${line%% - *}" <<<"$qall" || bad+="$line;"
    done < <(grep '^  ' <<<"$out")
    if [ "$(head -1 <<<"$out")" = "$(head -1 <<<"$qout")" ] &&
       [ "$(tail -2 <<<"$out")" = "$(tail -2 <<<"$qout")" ] &&
       grep -q "size=<size>" <<<"$out" && [ -z "$bad" ]; then
        ok "create: -f $fmt -o help lists $(grep -c '^  ' <<<"$out") options laid out as qemu-img's"
    else
        not_ok "create: -f $fmt -o help lists options laid out as qemu-img's"
        diag "$out"; diag "differs: $bad"
    fi
done
out=$("$B" create -f qcow2 -o help 2>&1)
if grep -q "preallocation=<str>.*falloc, full" <<<"$out" && grep -q "compression_type=<str>" <<<"$out"; then
    ok "create: -o help lists preallocation (off, metadata, falloc, full) and compression_type"
else
    not_ok "create: -o help lists preallocation (off, metadata, falloc, full) and compression_type"; diag "$out"
fi

# --- -b without -F, -u ------------------------------------------------------
for base in base.qcow2 base.raw; do
    out=$(cd "$T" && "$B" create -f qcow2 -b $base n.qcow2 2>&1)
    qout=$(cd "$T" && qemu-img create -f qcow2 -b $base n.qcow2 2>&1)
    if [ "${out#blkhost create: }" = "${qout#qemu-img: }" ] && [ ! -e "$T/n.qcow2" ]; then
        ok "create: -b $base without -F refused with qemu-img's message and detected format"
    else
        not_ok "create: -b $base without -F refused with qemu-img's message and detected format"
        diag "$out"; diag "$qout"
    fi
done
out=$(cd "$T" && "$B" create -f qcow2 -u -b base.qcow2 n.qcow2 1G 2>&1)
qout=$(cd "$T" && qemu-img create -f qcow2 -u -b base.qcow2 n.qcow2 1G 2>&1)
if [ "${out#blkhost create: }" = "${qout#qemu-img: }" ] && [ ! -e "$T/n.qcow2" ]; then
    ok "create: -u -b without -F refused with qemu-img's message (nothing is probed)"
else
    not_ok "create: -u -b without -F refused with qemu-img's message"; diag "$out"; diag "$qout"
fi
rm -f "$T/u.qcow2" "$T/qu.qcow2"
(cd "$T" && "$B" create -q -f qcow2 -u -b missing.qcow2 -F qcow2 u.qcow2 1G); rc=$?
(cd "$T" && qemu-img create -q -f qcow2 -u -b missing.qcow2 -F qcow2 qu.qcow2 1G); qrc=$?
facts() { qemu-img info --output=json "$1" | grep -E '"(virtual-size|backing-filename|backing-filename-format)"'; }
if [ $rc -eq 0 ] && [ $qrc -eq 0 ] && [ "$(facts "$T/u.qcow2")" = "$(facts "$T/qu.qcow2")" ]; then
    ok "create: -u with a missing backing file succeeds as in qemu-img, recording the same backing file and format"
else
    not_ok "create: -u with a missing backing file succeeds as in qemu-img"
    diag "rc=$rc qrc=$qrc"; facts "$T/u.qcow2"; facts "$T/qu.qcow2"
fi
refused "-u with a backing file and no size" -f qcow2 -u -b missing.qcow2 -F qcow2 @
rm -f "$T/f.qcow2"
(cd "$T" && "$B" create -q -f qcow2 -b base.raw -F raw f.qcow2)
if qemu-img info "$T/f.qcow2" | grep -q "backing file format: raw" &&
   qemu-img info "$T/f.qcow2" | grep -q "virtual size: 32 MiB"; then
    ok "create: -b base.raw -F raw records the backing format extension, size from the backing file"
else
    not_ok "create: -b base.raw -F raw records the backing format extension"; qemu-img info "$T/f.qcow2"
fi
rm -f "$T/l.qcow2"
out=$("$B" run /dev/stdin "$T" 2>&1 <<'EOF'
local bh = require "blkhost"
bh.create(arg[1] .. "/l.qcow2", { format = "qcow2", backing_file = "base.raw" })
EOF
)
if qemu-img info "$T/l.qcow2" 2>&1 | grep -q "backing file format: raw"; then
    ok "create: bh.create with a backing file and no backing_fmt records the probed format (raw)"
else
    not_ok "create: bh.create with a backing file and no backing_fmt records the probed format"; diag "$out"
fi
