#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# map-kinds.py [MAP.json]: a `qemu-img map --output=json` (a file, or
# stdin) without host offsets (only whether there is one), neighbours of a
# kind merged: what each guest range is, wherever it was placed.  QEMU
# writes the clusters of one request in parallel, so their host offsets
# vary from run to run; the tests compare these lines instead.
import json
import sys

out = []
src = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
for e in json.load(src):
    k = (e["depth"], e["present"], e["zero"], e["data"], "offset" in e)
    if out and out[-1][2] == k and out[-1][0] + out[-1][1] == e["start"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["start"], e["length"], k])
for s, n, k in out:
    print(s, n, *k)
