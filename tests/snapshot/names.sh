#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# How a string picks a snapshot, against qemu-img and qemu-nbd 7.2 on copies
# of one image where ids and names collide: snapshot "first" has id 1 and
# snapshot "1" has id 2.  snapshot -a and qemu-nbd -l STRING take an id
# first, then a name; snapshot -d takes a name only (the first of that
# name); -l snapshot.id=/snapshot.name= take exactly what they say.  Each
# case runs both programs on their own copy and compares the exit status,
# what is left (or what is served) and the message.
. "$SOURCE_ROOT/tests/tap.sh"
. "$SOURCE_ROOT/tests/snapshot/lib.sh"
need qemu-nbd
plan 23

I=$T/i.qcow2
qemu-img create -q -f qcow2 "$I" 1M
qemu-io -c 'write -P 0xaa 0 4k' "$I" >/dev/null
qemu-img snapshot -c first "$I"          # id 1: 0xaa
qemu-io -c 'write -P 0xbb 0 4k' "$I" >/dev/null
qemu-img snapshot -c 1 "$I"              # id 2, named "1": 0xbb
qemu-io -c 'write -P 0xcc 0 4k' "$I" >/dev/null

byte0() { qemu-io -r -c 'read -v 0 1' "$@" 2>&1 | awk 'NR==1 {print $2}'; }
# state IMG: its snapshot ids and names on one line, then its first byte.
state() { echo "$(names "$1" | tr '\n' ' ')/ $(byte0 "$1")"; }

[ "$("$B" snapshot -l "$I")" = "$(qemu-img snapshot -l "$I")" ] &&
    ok "-l on an image whose names look like ids prints qemu-img's table" ||
    not_ok "-l on an image whose names look like ids prints qemu-img's table"

# same_as_qemu DESC OP NAME: blkhost snapshot OP NAME and qemu-img snapshot
# OP NAME, each on a fresh copy, end the same way.
same_as_qemu() {
    local desc=$1 op=$2 name=$3 qo bo qr br
    cp "$I" "$T/q.qcow2"; cp "$I" "$T/b.qcow2"
    qo=$(qemu-img snapshot "$op" "$name" "$T/q.qcow2" 2>&1); qr=$?
    bo=$("$B" snapshot "$op" "$name" "$T/b.qcow2" 2>&1); br=$?
    qo=${qo#qemu-img: }; bo=${bo#blkhost snapshot: }
    if [ $qr = $br ] && [ "$(state "$T/q.qcow2")" = "$(state "$T/b.qcow2")" ]; then
        ok "$desc (exit $br, left: $(state "$T/b.qcow2"))"
    else
        not_ok "$desc"; diag "qemu-img exit $qr: $(state "$T/q.qcow2") $qo"
        diag "blkhost  exit $br: $(state "$T/b.qcow2") $bo"
    fi
    # Messages: the part before the first ": " reason names the operation.
    if [ $qr != 0 ]; then
        [ "${bo%%: *}" = "${qo%%: *}" ] &&
            ok "$desc: the message starts as qemu-img's ('${bo%%: *}')" ||
            { not_ok "$desc: message"; diag "qemu-img: $qo"; diag "blkhost: $bo"; }
    fi
}
same_as_qemu "-a 1: id 1 ('first') wins over the name '1'" -a 1
same_as_qemu "-a 2: id 2 (named '1')" -a 2
same_as_qemu "-a first: by name" -a first
same_as_qemu "-a 3: neither an id nor a name, refused" -a 3
same_as_qemu "-d 1: deletes the snapshot named '1' (id 2), not id 1" -d 1
same_as_qemu "-d first: by name" -d first
same_as_qemu "-d 2: an id only, refused" -d 2
same_as_qemu "-d 3: neither, refused" -d 3
cp "$T/b.qcow2" "$T/q.qcow2"
bo=$("$B" snapshot -d 3 "$T/b.qcow2" 2>&1)
qo=$(qemu-img snapshot -d 3 "$T/q.qcow2" 2>&1)
[ "${bo#blkhost snapshot: }" = "${qo#qemu-img: }" ] &&
    ok "-d of a missing name: qemu-img's whole message ('${bo#blkhost snapshot: }')" ||
    { not_ok "-d missing message"; diag "$bo / $qo"; }

# Two snapshots of one name: -d deletes the first in the table.
D=$T/dup.qcow2
qemu-img create -q -f qcow2 "$D" 1M
qemu-img snapshot -c dup "$D"; qemu-img snapshot -c dup "$D"; qemu-img snapshot -c 1 "$D"
cp "$D" "$T/q.qcow2"; cp "$D" "$T/b.qcow2"
qemu-img snapshot -d dup "$T/q.qcow2"; "$B" snapshot -d dup "$T/b.qcow2"
[ "$(names "$T/b.qcow2")" = "$(names "$T/q.qcow2")" ] &&
    ok "-d of a name two snapshots have deletes the first, as qemu-img ($(names "$T/b.qcow2" | tr '\n' ' '))" ||
    { not_ok "-d dup"; diag "$(names "$T/b.qcow2") vs $(names "$T/q.qcow2")"; }

# nbd -l: what is served (the first byte), or the exit status of a refusal.
# Both fork once they listen and serve one client.
serve() {
    local prog=$1 l=$2 sock=$T/$1.sock rc pid
    rm -f "$sock" "$T/$1.pid"
    # Output to a file: a forked server would hold a $(...) pipe open.
    if [ "$prog" = qemu ]; then
        qemu-nbd --fork --pid-file "$T/$1.pid" -r -l "$l" -k "$sock" "$I" >"$T/$1.out" 2>&1; rc=$?
    else
        "$B" nbd --fork --pid-file "$T/$1.pid" -r -l "$l" -k "$sock" "$I" >"$T/$1.out" 2>&1; rc=$?
    fi
    if [ $rc = 0 ]; then
        echo "serves $(byte0 -f raw "nbd+unix:///?socket=$sock")"
        # One client served, it exits by itself; make sure of it.
        pid=$(cat "$T/$1.pid" 2>/dev/null) && kill "$pid" 2>/dev/null
    else
        echo "exit $rc - $(sed 's/^[^:]*: //' "$T/$1.out")"
    fi
}
for l in 1 2 first 3 snapshot.id=1 snapshot.name=1 snapshot.id=2,snapshot.name=1 \
         snapshot.id=1,snapshot.name=1 snapshot.name=2; do
    q=$(serve qemu "$l"); b=$(serve blkhost "$l")
    # A refusal's reason is worded by each program: compare up to it.
    if [ "${q%%:*}" = "${b%%:*}" ] && [ "${q%% *}" != "" ]; then
        ok "nbd -l $l: ${b%%:*} as qemu-nbd"
    else
        not_ok "nbd -l $l"; diag "qemu-nbd: $q"; diag "blkhost:  $b"
    fi
done
