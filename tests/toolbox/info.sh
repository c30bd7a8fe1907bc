#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# `blkhost info --output=json` (lua/cmd/info.lua) prints qemu-img 7.2's
# JSON byte for byte: its keys in its order, the snapshot list, backing
# file names, "format-specific" for qcow2; the same exit status.
source "$SOURCE_ROOT/tests/tap.sh"
source "$SOURCE_ROOT/tests/toolbox/lib.sh"
need qemu-img qemu-io

plan 28

cd "$T" || exit 1
same() { same_as_qemu info "$@"; }

qemu-img create -q -f raw r.raw 1M
same "a raw image, --output=json" --output=json r.raw
qemu-img create -q -f qcow2 a.qcow2 10M
qemu-io -c "write -P 1 0 1M" a.qcow2 >/dev/null
same "a qcow2 image, --output=json (format-specific)" --output=json a.qcow2
qemu-img snapshot -c s1 a.qcow2
qemu-img snapshot -c s2 a.qcow2
same "a qcow2 with two snapshots: the snapshot list" --output=json a.qcow2
qemu-img create -q -f qcow2 -b a.qcow2 -F qcow2 top.qcow2
same "a qcow2 over a backing file (backing and full backing names)" --output=json top.qcow2
mkdir sub
qemu-img create -q -f qcow2 sub/base.qcow2 1M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 sub/top.qcow2
same "a backing name relative to the image's folder, image named by a relative path" \
    --output=json sub/top.qcow2
same "the same image named by its absolute path" --output=json "$T/sub/top.qcow2"
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
same "a version 2 qcow2 (compat 0.10, fewer format-specific keys)" --output=json v2.qcow2
qemu-img create -q -f qcow2 bm.qcow2 1M
qemu-img bitmap --add bm.qcow2 b0
same "a qcow2 with a persistent bitmap" --output=json bm.qcow2
qemu-img create -q -f qcow2 -o lazy_refcounts=on dirty.qcow2 8M
qemu-io -c "write -P 1 0 64k" -c "sigraise 9" dirty.qcow2 >/dev/null 2>&1
same "a dirty lazy-refcounts qcow2 (dirty-flag true)" --output=json dirty.qcow2
same "-f qcow2 names the format" --output=json -f qcow2 a.qcow2
same "a missing file: exit 1, nothing on stdout" --output=json missing.qcow2
check_fails "info: --output=xml is refused" "human or json" "$BLKHOST" info --output=xml r.raw

# --backing-chain: every image, top first, each by the name qemu-img
# resolves.
qemu-img create -q -f qcow2 -b top.qcow2 -F qcow2 top2.qcow2
same "--backing-chain --output=json on a three-image chain (a JSON list)" \
    --backing-chain --output=json top2.qcow2
same "--backing-chain --output=json through a backing name relative to a folder" \
    --backing-chain --output=json sub/top.qcow2
same "--backing-chain --output=json on an image without backing file" \
    --backing-chain --output=json r.raw
same "--backing-chain (human) on a three-image chain, qemu-img's blocks byte for byte" \
    --backing-chain top2.qcow2
same "--backing-chain (human): \"(actual path: ...)\" for a name relative to a folder" \
    --backing-chain sub/top.qcow2
same "--backing-chain (human) on a raw image" --backing-chain r.raw
qemu-img bitmap --add bm.qcow2 b1 --disable
qemu-img create -q -f qcow2 -b bm.qcow2 -F qcow2 overbm.qcow2
same "--backing-chain (human): bitmaps and a snapshot table in the chain" \
    --backing-chain overbm.qcow2
qemu-img create -q -f qcow2 -o compat=0.10 -b "$T/dirty.qcow2" -F qcow2 v2top.qcow2
same "--backing-chain (human): version 2 over a dirty image, by an absolute name" \
    --backing-chain v2top.qcow2
qemu-img create -q -f qcow2 -b r.raw -F raw onraw.qcow2
same "--backing-chain (human): a raw backing file" --backing-chain onraw.qcow2
qemu-img create -q -f qcow2 -u -b gone.qcow2 -F qcow2 orphan.qcow2 1M
same "--backing-chain with a missing backing file: exit 1, nothing on stdout" \
    --backing-chain --output=json orphan.qcow2
same "a missing backing file: the image alone, --output=json" --output=json orphan.qcow2
if "$BLKHOST" info orphan.qcow2 2>err.txt | grep -q '^backing file: gone.qcow2' &&
   grep -q "warning: .*gone.qcow2" err.txt; then
    ok "info: a missing backing file is shown, and a warning on stderr names it"
else
    not_ok "info: a missing backing file is shown, and a warning on stderr names it"
    diag "$(cat err.txt)"
fi

# Plain `info` (human) on qcow2: qemu-img info's layout byte for byte,
# the snapshot table and bitmaps included.
same "(human): a qcow2 with two snapshots, the snapshot table as qemu-img's" a.qcow2
same "(human): a qcow2 with a persistent bitmap" bm.qcow2
same "(human): a version 2 qcow2 over a backing file" v2top.qcow2
if diff <("$BLKHOST" info orphan.qcow2 2>/dev/null) <(qemu-img info orphan.qcow2 2>/dev/null) >diff.txt; then
    ok "info (human): a missing backing file: qemu-img's lines, the warning on stderr only"
else
    not_ok "info (human): a missing backing file: qemu-img's lines, the warning on stderr only"
    diag "$(cat diff.txt)"
fi
