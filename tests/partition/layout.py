#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Print the partition table of IMAGE as util-linux sees it, one line per
# partition: "NUMBER OFFSET SIZE TYPE BOOT LABEL" (bytes; MBR types as
# 0xNN; BOOT 1 or 0; LABEL "-" when there is none).  layout.lua prints the
# same from blkhost, so the two outputs must be equal.
#   layout.py IMAGE            sfdisk --json (512-byte sectors)
#   layout.py IMAGE 4096       fdisk -b 4096, whose dump is an sfdisk script
import json
import re
import subprocess
import sys
import tempfile

img = sys.argv[1]
parts, ss, label = [], 512, None
if len(sys.argv) > 2:
    ss = int(sys.argv[2])
    with tempfile.NamedTemporaryFile("r") as dump:
        subprocess.run(["fdisk", "-b", str(ss), img], input="O\n%s\nq\n" % dump.name,
                       text=True, check=True, stdout=subprocess.DEVNULL)
        script = dump.read()
    label = re.search(r"^label: (\w+)", script, re.M).group(1)
    for line in script.splitlines():
        m = re.match(r"^\S*?(\d+) : (.*)$", line)
        if not m:
            continue
        p = {"node": "x" + m.group(1)}
        for k, v in re.findall(r'(\w+)=\s*("[^"]*"|[^,]+)', m.group(2)):
            p[k] = v.strip().strip('"')
        p["start"], p["size"] = int(p["start"]), int(p["size"])
        parts.append(p)
else:
    t = json.loads(subprocess.run(["sfdisk", "--json", img], check=True,
                                  capture_output=True, text=True).stdout)["partitiontable"]
    label, ss, parts = t["label"], t.get("sectorsize", 512), t["partitions"]

for p in parts:
    number = int(re.search(r"(\d+)$", p["node"]).group(1))
    if label == "dos":
        typ = "0x%02x" % int(p["type"], 16)
        boot = 1 if p.get("bootable") in (True, "*") else 0
    else:
        typ = p["type"].upper()
        boot = 1 if "LegacyBIOSBootable" in p.get("attrs", "") else 0
    print(number, p["start"] * ss, p["size"] * ss, typ, boot, p.get("name") or "-")
