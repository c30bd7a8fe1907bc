#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""poke.py FILE OFFSET TYPE VALUE: overwrite a field of a (qcow2) file.

TYPE is be8, be16, be32, be64 (VALUE decimal or 0x hex) or hex (VALUE raw
bytes as hex digits).  Used by the bad-input tests to build broken images.
"""
import struct
import sys

path, off, kind, val = sys.argv[1], int(sys.argv[2], 0), sys.argv[3], sys.argv[4]
if kind == "hex":
    data = bytes.fromhex(val)
else:
    fmt = {"be8": ">B", "be16": ">H", "be32": ">I", "be64": ">Q"}[kind]
    # Negative values (bash arithmetic past 2^63) wrap like the C field.
    data = struct.pack(fmt, int(val, 0) % (1 << (8 * struct.calcsize(fmt))))
with open(path, "r+b") as f:
    f.seek(off)
    f.write(data)
