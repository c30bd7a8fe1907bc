#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# The rbd driver against a one-node Ceph cluster: images it creates and
# resizes are what `rbd info` says, the bytes it writes are what `rbd
# export` reads, its extents are `rbd diff`'s, and an NBD export of an RBD
# image reads (nbdcopy, qemu-img compare) as the image.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/ceph/lib.sh"
need rbd nbdcopy qemu-img
plan 19
ceph_up

out=$("$BLKHOST" create -f raw rbd:rbd/a 64M 2>&1)
if [ $? = 0 ] && rbd info rbd/a 2>/dev/null | grep -q 'size 64 MiB'; then
    ok "create -f raw rbd:rbd/a 64M: rbd info sees a 64 MiB image"
else not_ok "create -f raw rbd:rbd/a 64M: rbd info sees a 64 MiB image"; diag "$out"; fi
out=$("$BLKHOST" create -f rbd -o cluster_size=1M rbd:rbd/b 8M 2>&1)
if [ $? = 0 ] && rbd info rbd/b 2>/dev/null | grep -q 'order 20'; then
    ok "create -f rbd -o cluster_size=1M: an 8 MiB image of 1 MiB objects"
else not_ok "create -f rbd -o cluster_size=1M: an 8 MiB image of 1 MiB objects"; diag "$out"; fi
check_fails "create over an existing image is refused, naming it" \
    "cannot create 'rbd/b': an image of that name exists already" \
    "$BLKHOST" create -f rbd rbd:rbd/b 8M
check_fails "create -o cluster_size=3000 is refused before anything is made" \
    "cluster_size 3000 is not a power of two" "$BLKHOST" create -f rbd -o cluster_size=3000 rbd:rbd/c 8M
if ! rbd info rbd/c >/dev/null 2>&1; then ok "... and rbd/c does not exist"
else not_ok "... and rbd/c does not exist"; fi

out=$("$BLKHOST" info rbd:rbd/a 2>&1)
if grep -q 'file format: raw' <<<"$out" && grep -q 'virtual size: 64 MiB' <<<"$out"; then
    ok "info rbd:rbd/a: the rbd: prefix picks the rbd driver, raw probed over it"
else not_ok "info rbd:rbd/a: the rbd: prefix picks the rbd driver, raw probed over it"; diag "$out"; fi
out=$("$BLKHOST" info -f rbd rbd:rbd/a 2>&1)
if grep -q 'rbd pool: rbd' <<<"$out" && grep -qi 'rbd exclusive lock: true' <<<"$out"; then
    ok "info -f rbd: the driver alone reports pool, image and exclusive-lock"
else not_ok "info -f rbd: the driver alone reports pool, image and exclusive-lock"; diag "$out"; fi

# Writes (40 MiB in one request, unaligned, FUA, zeroes, a discard): the
# nbdclient tests' client does the same to rbd:rbd/a and a local file.
truncate -s 64M "$T/expect.img"
check "writes, FUA write, write-zeroes (with and without unmap) and a discard on rbd:rbd/a" \
    client ops rbd:rbd/a "$T/expect.img" format=rbd
if rbd_export a "$T/a.exp" && cmp -s "$T/a.exp" "$T/expect.img"; then
    ok "rbd export of rbd/a equals what was written"
else not_ok "rbd export of rbd/a equals what was written"; fi

# Extents: RBD reports allocation by object (4 MiB here); every byte
# `rbd diff` lists as data is data for us, and the rest is a hole.
client extents rbd:rbd/a format=rbd >"$T/ours.map" 2>&1
rbd diff --whole-object rbd/a --format json 2>/dev/null | python3 -c '
import json, sys
size = 64 << 20
runs, pos = [], 0
for e in sorted(json.load(sys.stdin), key=lambda e: e["offset"]):
    if e["offset"] > pos: runs.append([pos, e["offset"] - pos, 3])
    if runs and runs[-1][2] == 0 and runs[-1][0] + runs[-1][1] == e["offset"]:
        runs[-1][1] += e["length"]
    else: runs.append([e["offset"], e["length"], 0])
    pos = e["offset"] + e["length"]
if pos < size: runs.append([pos, size - pos, 3])
for r in runs: print("%d\t%d\t%d" % tuple(r))' >"$T/theirs.map"
if [ -s "$T/ours.map" ] && diff "$T/ours.map" "$T/theirs.map" >"$T/map.diff"; then
    ok "extents of rbd:rbd/a equal rbd diff --whole-object ($(wc -l <"$T/ours.map") runs)"
else not_ok "extents of rbd:rbd/a equal rbd diff --whole-object"; diag "$(cat "$T/map.diff")"; fi

# An NBD export of the image, read by other clients.
serve_rbd a -f raw rbd:rbd/a || exit 1
check "blkhost nbd rbd:rbd/a: nbdcopy of the export equals rbd export" \
    bash -c "nbdcopy '$(uri a)' '$T/nbd.img' && cmp '$T/nbd.img' '$T/a.exp'"
check "blkhost nbd rbd:rbd/a: qemu-img compare of the export and rbd export" \
    qemu-img compare -f raw -F raw "$T/a.exp" "$(uri a)"
stop "$a_pid"

# Resize, both ways.
check "resize rbd:rbd/b to 24M: rbd info says 24 MiB" \
    bash -c "'$BLKHOST' resize -f rbd rbd:rbd/b 24M && rbd info rbd/b | grep -q 'size 24 MiB'"
check "resize --shrink rbd:rbd/b to 4M: rbd info says 4 MiB" \
    bash -c "'$BLKHOST' resize --shrink -f rbd rbd:rbd/b 4M && rbd info rbd/b | grep -q 'size 4 MiB'"

# Options as bh.open keys instead of the filename.
out=$("$BLKHOST" run - <<LUA 2>&1
local bh = require "blkhost"
local d <close> = bh.open("", { format = "rbd", pool = "rbd", image = "a",
                                conf = "$CEPH_CONF", user = "admin",
                                ["connect-timeout"] = "5" })
print(d:size(), #d:read(0, 4096))
LUA
)
if grep -q "^67108864	4096" <<<"$out"; then
    ok "bh.open with pool=, image=, conf=, user=, connect-timeout= and no filename"
else not_ok "bh.open with pool=, image=, conf=, user=, connect-timeout= and no filename"; diag "$out"; fi

# A namespace, and QEMU's filename options with escaped colons.
rbd namespace create rbd/ns1 >/dev/null 2>&1
check "create rbd:rbd/ns1/x 8M: rbd info rbd/ns1/x sees it in the namespace" \
    bash -c "'$BLKHOST' create -f rbd rbd:rbd/ns1/x 8M && rbd info rbd/ns1/x | grep -q 'size 8 MiB'"
mon=${CEPH_MON_ADDR//:/\\:}
out=$(env -u CEPH_CONF -u CEPH_ARGS "$BLKHOST" info -f rbd \
      "rbd:rbd/a:mon_host=v2\\:$mon:auth_client_required=none:id=admin" 2>&1)
if grep -q 'virtual size: 64 MiB' <<<"$out"; then
    ok "rbd:rbd/a:mon_host=v2\\:HOST\\:PORT:auth_client_required=none without a ceph.conf: options reach librados"
else not_ok "rbd:rbd/a:mon_host=v2\\:HOST\\:PORT:auth_client_required=none without a ceph.conf: options reach librados"; diag "$out"; fi
check_fails "rbd:rbd/a:bogus_option=1 is refused naming the option" \
    "cannot set the Ceph option bogus_option='1' for 'rbd/a': no such option" \
    "$BLKHOST" info rbd:rbd/a:bogus_option=1
# cache=none (librbd's cache off, as QEMU sets it): a write is in the
# cluster when it returns, seen by rbd export while the node is open.
out=$("$BLKHOST" run - rbd:rbd/b "$T/nc.img" <<'LUA' 2>&1
local bh = require "blkhost"
local d <close> = bh.open(arg[1], { format = "rbd", cache = "none" })
d:write(4096, string.rep("n", 4096))
os.execute("rbd export --no-progress rbd/b " .. arg[2] .. " >/dev/null 2>&1")
print("done")
LUA
)
if grep -q done <<<"$out" && [ "$(dd if="$T/nc.img" bs=4096 skip=1 count=1 2>/dev/null | tr -d n | wc -c)" = 0 ]; then
    ok "cache=none: a write without flush is in rbd export while the image is still open"
else not_ok "cache=none: a write without flush is in rbd export while the image is still open"; diag "$out"; fi
