#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# --image-opts (lua/blkhost/imageopts.lua) on every command that opens
# images: the option string gives what the plain filename gives, qemu-img
# runs beside on the same strings (its errors for a missing driver=, an
# unknown option, -f with --image-opts), ",," escapes a comma, and
# blkhost nbd serves an image named that way.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io
plan 37

B=$BLKHOST
cd "$T" || exit 1
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-io -c "write -P 7 0 1M" -c "write -z 2M 64k" base.qcow2 >/dev/null
cp base.qcow2 'a,b.qcow2'
qemu-img create -q -f raw r.raw 1M
IO='driver=qcow2,file.filename=base.qcow2,file.aio=threads'

# same_as_plain DESC CMD ARGS...: `blkhost CMD ARGS --image-opts $IO`
# prints what `blkhost CMD ARGS base.qcow2` prints, with the same status.
same_as_plain() {
    local desc=$1 prc irc; shift
    "$B" "$@" base.qcow2 >p.out 2>&1; prc=$?
    "$B" "$@" --image-opts "$IO" >i.out 2>&1; irc=$?
    if [ $prc -eq $irc ] && cmp -s p.out i.out; then
        ok "$1 --image-opts: $desc (as the plain filename, exit $prc)"
    else
        not_ok "$1 --image-opts: $desc"; diag "plain exit $prc, image-opts exit $irc"
        diff p.out i.out | while read -r l; do diag "$l"; done
    fi
}
same_as_plain "human output" info
same_as_plain "JSON output" info --output=json
same_as_plain "JSON map" map --output=json
same_as_plain "counts" check
same_as_plain "required sizes" measure -O qcow2
same_as_plain "snapshot table" snapshot -l

# Beside qemu-img on the same option string.
same_as_qemu map "--image-opts $IO, JSON" --output=json --image-opts "$IO"
same_as_qemu check "--image-opts $IO" --image-opts "$IO"
same_as_qemu compare "--image-opts on both images" --image-opts "$IO" \
    "driver=raw,file.filename=r.raw"
same_as_qemu compare "--image-opts, identical" --image-opts "$IO" "driver=qcow2,file.filename=a,,b.qcow2"

# error_as_qemu DESC PATTERN ARGS...: both fail; blkhost's message
# matches PATTERN, taken from qemu-img's.  PATTERN "=": blkhost's one
# line is qemu-img's with "blkhost CMD: " for "qemu-img: ", and the
# statuses are the same.
error_as_qemu() {
    local desc=$1 pat=$2 bo qo brc qrc good=""; shift 2
    bo=$("$B" "$@" 2>&1); brc=$?
    qo=$(qemu-img "$@" 2>&1); qrc=$?
    if [ "$pat" = "=" ]; then
        [ $brc -eq $qrc ] && [ $qrc -ne 0 ] && [ "$bo" = "blkhost $1: ${qo#qemu-img: }" ] && good=1
        pat="${qo#qemu-img: }"
    else
        [ $brc -ne 0 ] && [ $qrc -ne 0 ] && echo "$bo" | grep -qE -- "$pat" &&
            echo "$qo" | grep -qE -- "$pat" && good=1
    fi
    if [ -n "$good" ]; then
        ok "$1 --image-opts: $desc (refused as by qemu-img: $pat)"
    else
        not_ok "$1 --image-opts: $desc"; diag "blkhost exit $brc: $bo"; diag "qemu-img exit $qrc: $qo"
    fi
}
error_as_qemu "no driver= nor file: qemu-img's message and status" = info --image-opts filename=base.qcow2
error_as_qemu "no driver= nor file: qemu-img's message and status" = check --image-opts filename=base.qcow2
error_as_qemu "no driver= nor file: qemu-img's message and status" = compare --image-opts filename=base.qcow2 "$IO"
error_as_qemu "no driver= nor file: qemu-img's message and status" = map --image-opts filename=base.qcow2
error_as_qemu "no driver= nor file: qemu-img's message and status" = measure -O qcow2 --image-opts filename=base.qcow2
error_as_qemu "no driver= nor file: qemu-img's message and status" = convert -O raw --image-opts filename=base.qcow2 c.raw
error_as_qemu "no driver= nor file: qemu-img's message and status" = dd --image-opts if=filename=base.qcow2 of=c.raw
error_as_qemu "no driver= nor file: qemu-img's message and status" = resize --image-opts filename=r.raw 2M
error_as_qemu "no driver= nor file: qemu-img's message and status" = snapshot -l --image-opts filename=base.qcow2
error_as_qemu "no driver= nor file: qemu-img's message and status" = amend -o lazy_refcounts=on --image-opts filename=base.qcow2
error_as_qemu "an unknown option is refused by name" "'bogus'" \
    info --image-opts "$IO,bogus=1"
error_as_qemu "-f together with --image-opts is refused" = info -f qcow2 --image-opts "$IO"
error_as_qemu "a missing file is named" "'nope.qcow2'" \
    check --image-opts driver=qcow2,file.filename=nope.qcow2

# Without driver= the format is probed under file.filename, as qemu-img.
"$B" info --image-opts file.filename=base.qcow2 >i.out 2>&1
if grep -q "^format: qcow2\|^file format: qcow2" i.out; then
    ok "info --image-opts: file.filename alone probes the format, as qemu-img"
else
    not_ok "info --image-opts: file.filename alone probes the format"; diag "$(cat i.out)"
fi

# The parser itself: ",," escaping, read-only, cache.direct/no-flush.
out=$("$B" run - <<'LUA' 2>&1
local io_ = require "blkhost.imageopts"
local name, o = io_.parse("driver=qcow2,file.filename=x,,y,,,,z.qcow2,read-only=on,cache.direct=on,file.locking=off,flag")
local keys = {}
for k, v in pairs(o) do keys[#keys + 1] = k .. "=" .. tostring(v) end
table.sort(keys)
print(name, table.concat(keys, " "))
LUA
)
if [ "$out" = "x,y,,z.qcow2	cache=none file.locking=off flag=on format=qcow2 readonly=on" ]; then
    ok "imageopts.parse: ',,' is one comma, read-only and cache.direct=on translated, a bare key is KEY=on"
else
    not_ok "imageopts.parse: escaping and translations"; diag "$out"
fi

# Commands that write.
"$B" convert -O qcow2 --image-opts "driver=qcow2,file.filename=a,,b.qcow2" out.qcow2
if qemu-img compare -q base.qcow2 out.qcow2 && qemu-img check -q out.qcow2; then
    ok "convert --image-opts: a source named with ',,' copied (qemu-img compare and check agree)"
else
    not_ok "convert --image-opts: a source named with ',,' copied"
fi
"$B" dd --image-opts -O raw bs=64k count=4 "if=$IO" of=dd.raw
qemu-img dd --image-opts -O raw bs=64k count=4 "if=$IO" of=qdd.raw
if cmp -s dd.raw qdd.raw; then ok "dd --image-opts if=STRING: the bytes qemu-img dd --image-opts writes"
else not_ok "dd --image-opts if=STRING: the bytes qemu-img dd writes"; fi
cp r.raw r2.raw
"$B" resize -q --image-opts driver=raw,file.filename=r2.raw 2M
if [ "$(stat -c %s r2.raw)" = 2097152 ]; then ok "resize --image-opts driver=raw,file.filename=F: grown to 2 MiB"
else not_ok "resize --image-opts: grown to 2 MiB"; diag "$(stat -c %s r2.raw)"; fi
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2
"$B" rebase -u -b '' --image-opts driver=qcow2,file.filename=top.qcow2
if ! qemu-img info top.qcow2 | grep -q "backing file"; then
    ok "rebase -u --image-opts: the backing file is gone from the header"
else not_ok "rebase -u --image-opts"; fi
check_fails "rebase --image-opts: an option it would drop is refused by name" \
    "not 'file.aio'" "$B" rebase -u -b '' --image-opts "driver=qcow2,file.filename=top.qcow2,file.aio=threads"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top2.qcow2
qemu-io -c "write -P 9 0 64k" top2.qcow2 >/dev/null
cp base.qcow2 base.orig
"$B" commit -q --image-opts driver=qcow2,file.filename=top2.qcow2
if qemu-img compare -q top2.qcow2 base.qcow2 && ! cmp -s base.qcow2 base.orig; then
    ok "commit --image-opts: the overlay's data is in the base"
else not_ok "commit --image-opts: the overlay's data is in the base"; fi
cp base.orig base.qcow2
"$B" snapshot -c s1 --image-opts "$IO"
if qemu-img snapshot -l base.qcow2 | grep -q " s1 "; then ok "snapshot -c --image-opts: the snapshot is made"
else not_ok "snapshot -c --image-opts: the snapshot is made"; fi

cp base.qcow2 am.qcow2
"$B" amend -q -o lazy_refcounts=on --image-opts driver=qcow2,file.filename=am.qcow2
if qemu-img info am.qcow2 | grep -q "lazy refcounts: true"; then ok "amend --image-opts: lazy_refcounts=on set"
else not_ok "amend --image-opts: lazy_refcounts=on set"; fi
out=$("$B" vmstate --image-opts "$IO" s1 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "Snapshot 's1' of .* is a disk-only snapshot"; then
    ok "vmstate --image-opts: opens the image and finds its disk-only snapshot s1"
else not_ok "vmstate --image-opts: finds snapshot s1"; diag "exit $rc: $out"; fi

# blkhost nbd, and an nbd driver string read back through the server.
if "$B" nbd --fork --pid-file nbd.pid -k "$T/s.sock" -r --image-opts "$IO" 2>nbd.err; then
    at_exit "kill $(cat "$T/nbd.pid") 2>/dev/null"
    if qemu-img compare -q "nbd+unix:///?socket=$T/s.sock" base.qcow2; then
        ok "nbd --image-opts: serves the image the string names (qemu-img compare)"
    else not_ok "nbd --image-opts: serves the image the string names"; fi
    same_as_qemu compare "--image-opts driver=nbd,server.type=unix,server.path=SOCK" \
        --image-opts "driver=nbd,server.type=unix,server.path=$T/s.sock" "$IO"
else
    not_ok "nbd --image-opts: serves the image the string names"; diag "$(cat nbd.err)"
    not_ok "compare --image-opts driver=nbd: no server"
fi
check_fails "nbd --image-opts with -f is refused with qemu-nbd's message" "^blkhost nbd: --image-opts and -f are mutually exclusive$" \
    "$B" nbd -k "$T/s2.sock" -f qcow2 --image-opts "$IO"
