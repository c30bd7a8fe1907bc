#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Checks each snapshot left in IMAGE against the writer's and the
# server's logs (load.sh): every 4 KiB block must hold one whole write
# (no torn or foreign data), every write acknowledged before the
# rotation began must be in the snapshot, and no write issued after the
# snapshot existed.  Prints one line of counts per property.
#   load-verify.py IMAGE SNAPLOG WRITELOG BLOCKS TMPDIR [SHIFT]
# SHIFT, for the check of the check, gives every snapshot another
# window: "next" the window of the rotation after it (there must be
# missing writes: those issued after the snapshot and acknowledged before
# the next rotation began), "prev" the one before it (there must be late
# ones).  Either holds as soon as the writer finished one write between
# two rotations, however slow the machine; a number of seconds moves
# every window by that much instead.
import re, subprocess, sys

image, snaplog, writelog, blocks, tmp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
shift = sys.argv[6] if len(sys.argv) > 6 else "0"
BS = 4096

def content(block, seq):
    unit = b"blk=%08d seq=%012d " % (block, seq)
    return (unit * (BS // len(unit) + 1))[:BS]

# Per block, in issue order (writes to one block never overlap, so the
# acknowledgements are in that order too): seq, issued, acked as arrays,
# compact enough for a minute of writes.
from array import array
from bisect import bisect_left
seqs, issued, acked = {}, {}, {}
for line in open(writelog):
    b, s, i, a = line.split()
    b = int(b)
    if b not in seqs:
        seqs[b], issued[b], acked[b] = array("q"), array("d"), array("d")
    seqs[b].append(int(s)); issued[b].append(float(i)); acked[b].append(float(a))
for b in seqs:
    order = sorted(range(len(seqs[b])), key=seqs[b].__getitem__)
    seqs[b] = array("q", (seqs[b][k] for k in order))
    issued[b] = array("d", (issued[b][k] for k in order))
    acked[b] = array("d", (acked[b][k] for k in order))

window, order = {}, []
for line in open(snaplog):
    name, began, made = line.split()
    window[name] = (float(began), float(made))
    order.append(name)
if shift in ("next", "prev"):
    step = 1 if shift == "next" else -1
    # (a name taken twice keeps its last rotation, as the image does)
    last = {name: i for i, name in enumerate(order)}
    window = {name: window[order[i + step]] for name, i in last.items()
              if 0 <= i + step < len(order)}
else:
    window = {name: (b + float(shift), m + float(shift)) for name, (b, m) in window.items()}

listing = subprocess.run(["qemu-img", "snapshot", "-l", image], capture_output=True, text=True).stdout
names = [n for n in re.findall(r"^\d+\s+(\S+)", listing, re.M) if n.startswith("load-")]

torn = missing = late = checked = 0
for name in names:
    if name not in window:
        continue          # no neighbour to borrow a window from
    began, made = window[name]
    raw = "%s/snap.raw" % tmp
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", "-l",
                    "snapshot.name=" + name, image, raw], check=True)
    with open(raw, "rb") as f:
        data = f.read(blocks * BS)
    for b in range(blocks):
        blk = data[b * BS:(b + 1) * BS]
        if blk == bytes(BS):
            seq = 0
        else:
            m = re.match(rb"blk=(\d{8}) seq=(\d{12}) ", blk)
            seq = int(m.group(2)) if m else -1
            k = bisect_left(seqs.get(b, []), seq) if m else -1
            if (not m or int(m.group(1)) != b or blk != content(b, seq)
                    or k >= len(seqs.get(b, [])) or seqs[b][k] != seq):
                torn += 1
                continue
        # The last write acknowledged before the rotation began, if any.
        n = bisect_left(acked.get(b, []), began)
        need = seqs[b][n - 1] if n else 0
        if seq < need:
            missing += 1
        if seq and issued[b][bisect_left(seqs[b], seq)] >= made:
            late += 1
    checked += 1
print("snapshots_checked=%d torn=%d missing=%d late=%d" % (checked, torn, missing, late))
