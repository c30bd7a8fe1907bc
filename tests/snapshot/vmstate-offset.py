#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""vmstate-offset.py IMAGE NAME: host offset of the first byte of the
state stored in snapshot NAME of a qcow2 image (for poking broken streams
into it).  Also prints the offset of the snapshot's table entry."""
import struct
import sys

path, want = sys.argv[1], sys.argv[2].encode()
d = open(path, "rb").read()
cbits, = struct.unpack(">I", d[20:24])
cs = 1 << cbits
nb, tbl = struct.unpack(">IQ", d[60:72])
pos = tbl
for _ in range(nb):
    l1off, l1n, idl, nml = struct.unpack(">QIHH", d[pos:pos + 16])
    extra, = struct.unpack(">I", d[pos + 36:pos + 40])
    name = d[pos + 40 + extra + idl:pos + 40 + extra + idl + nml]
    disk = struct.unpack(">Q", d[pos + 48:pos + 56])[0] if extra >= 16 else struct.unpack(">Q", d[24:32])[0]
    if name == want:
        per_l1 = cs * (cs // 8)
        idx = -(-disk // per_l1)
        l2, = struct.unpack(">Q", d[l1off + idx * 8:l1off + idx * 8 + 8])
        l2 &= 0x00fffffffffffe00
        data, = struct.unpack(">Q", d[l2:l2 + 8])
        print(data & 0x00fffffffffffe00, pos)
        sys.exit(0)
    pos += (40 + extra + idl + nml + 7) // 8 * 8
sys.exit("no snapshot " + sys.argv[2])
