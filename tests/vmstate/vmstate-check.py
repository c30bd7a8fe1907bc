#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""Checks for vmstate-tool.sh on `blkhost vmstate --output=json`.

  vmstate-check.py sizes LIST.json DUMP
      Every FULL section's idstr, instance, version and size equal what
      the stream's own JSON description (in DUMP, the --dump file) says of
      its device, in order; a size is the sum of its fields, plus 6 + the
      name length for every subsection marker.
      And the records add up to the EOF offset, so the RAM section's size,
      which has no description, is right too (without footers when the
      listing says its sizes came from the description).
  vmstate-check.py patch LIST.json DUMP IMAGE footer|ram-flags IDSTR
      Corrupt the stream inside IMAGE (a qcow2 file, its vmstate stored
      as is): the footer byte of section IDSTR, or the flags of the RAM
      section's first word (an RDMA hook flag added).  The bytes around
      the spot (from DUMP) must occur once in IMAGE.
  vmstate-check.py keys LIST.json
      One "idstr (section id)" per line, in stream order: the keys
      analyze-migration.py -d state prints.
  vmstate-check.py desc LIST.json DESC.json
      The FULL sections (idstr, instance, version) equal the devices of
      analyze-migration.py -d desc, in order.
"""
import json
import sys


def desc_size(d):
    # QEMU writes a run of equal array elements once, with "array_len"
    n = sum(f["size"] * f.get("array_len", 1) for f in d.get("fields", []))
    for sub in d.get("subsections", []):
        n += 1 + 1 + len(sub["vmsd_name"]) + 4 + desc_size(sub)
    return n


def main():
    what, listing = sys.argv[1], json.load(open(sys.argv[2]))
    secs = listing["sections"]
    if what == "keys":
        for s in secs:
            print("%s (%d)" % (s["idstr"], s["section-id"]))
        return 0
    if what == "patch":
        dump, image, kind, idstr = sys.argv[3:7]
        s = next(s for s in secs if s["idstr"] == idstr)
        head = 1 + 4 + 1 + len(idstr) + 4 + 4
        if kind == "footer":
            at, new = s["offset"] + head + s["size"], 0x7f
        else:
            at = s["offset"] + head + 7
        data = open(dump, "rb").read()
        ctx = data[at - 24:at + 24]
        img = bytearray(open(image, "rb").read())
        where = img.find(ctx)
        if where < 0 or img.find(ctx, where + 1) >= 0:
            print("the bytes around offset %d are not once in %s" % (at, image))
            return 1
        if kind != "footer":
            new = data[at] | 0x80
        img[where + 24] = new
        open(image, "wb").write(img)
        print("patched offset %d of the stream" % at)
        return 0
    if what == "desc":
        devs = json.load(open(sys.argv[3]))["devices"]
        ours = [(s["idstr"], s["instance-id"], s["version-id"])
                for s in secs if not s["iterative"]]
        theirs = [(d["name"], d["instance_id"], d["version"]) for d in devs]
        if ours != theirs:
            print("ours:   %s\ntheirs: %s" % (ours, theirs))
            return 1
        print("%d devices agree" % len(ours))
        return 0
    # sizes
    data = open(sys.argv[3], "rb").read()
    off = listing["vmdesc-offset"]
    n = int.from_bytes(data[off + 1:off + 5], "big")
    devs = json.loads(data[off + 5:off + 5 + n])["devices"]
    full = [s for s in secs if not s["iterative"]]
    bad = []
    for s, d in zip(full, devs):
        if (s["idstr"], s["instance-id"], s["version-id"]) != \
                (d["name"], d["instance_id"], d["version"]) \
                or s["size"] != desc_size(d):
            bad.append("%s/%d: ours %d, described %d" % (
                s["idstr"], s["instance-id"], s["size"], desc_size(d)))
    if len(full) != len(devs):
        bad.append("%d FULL sections, %d described" % (len(full), len(devs)))
    # header, configuration, records (with footers unless the sizes came
    # from the description: a stream without footers), EOF
    foot = 0 if listing.get("sizes-from-description") else 5
    total = 8
    if listing.get("machine") is not None:
        total += 1 + 4 + len(listing["machine"])
    for s in secs:
        head = 1 + 4 + 1 + len(s["idstr"]) + 4 + 4
        total += head + s["size"] + foot + (s["records"] - 1) * (1 + 4 + foot)
    if total != listing["eof-offset"]:
        bad.append("records add up to %d, EOF is at %d" %
                   (total, listing["eof-offset"]))
    if off + 5 + n != listing["vm-state-size"]:
        bad.append("the description ends at %d, the state at %d" %
                   (off + 5 + n, listing["vm-state-size"]))
    if bad:
        print("\n".join(bad))
        return 1
    print("%d sections, %d bytes to EOF: every size agrees" %
          (len(secs), total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
