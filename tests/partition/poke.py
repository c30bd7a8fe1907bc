#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Damage partition tables made by sfdisk in precise ways, for the bad-input
# tests.  Each command edits IMAGE in place and keeps every checksum right
# except the one it means to break, so that the reader sees exactly one
# problem.
#
#   poke.py IMAGE ebr-link N REL      EBR number N (0 = first) links to REL
#                                     (sectors from the extended partition;
#                                     "self": to itself, "back": to EBR N-1,
#                                     "past": 8 sectors past the extended end)
#   poke.py IMAGE ebr-data N REL      its logical partition starts REL
#                                     sectors after the EBR
#   poke.py IMAGE ebr-unsign N        clear the 55 aa of EBR N
#   poke.py IMAGE mbr-count SLOT N    primary SLOT (1-4) gets N sectors
#   poke.py IMAGE gpt-field WHICH FIELD VALUE   WHICH: primary|backup|both;
#                                     FIELD: count|entry_size|my_lba; header
#                                     CRC recomputed
#   poke.py IMAGE gpt-badcrc WHICH    break the header CRC
#   poke.py IMAGE gpt-badarray WHICH  break one byte of the entry array
#   poke.py IMAGE gpt-entry N FIELD VALUE  FIELD: first|last, entry N (1-based)
#                                     in both arrays, all CRCs recomputed
# Option --ss 4096 before IMAGE for 4096-byte sectors (default 512).
import os
import struct
import sys
import zlib

EXTENDED = (0x05, 0x0F, 0x85)

args = sys.argv[1:]
ss = 512
if args[0] == "--ss":
    ss = int(args[1])
    args = args[2:]
path, cmd, rest = args[0], args[1], args[2:]
f = open(path, "r+b")
disk_sectors = os.path.getsize(path) // ss


def read(lba, n=1):
    f.seek(lba * ss)
    return bytearray(f.read(n * ss))


def write(lba, data):
    f.seek(lba * ss)
    f.write(data)


def entry(sector, slot):
    off = 446 + 16 * slot
    return struct.unpack_from("<BxxxBxxxII", sector, off)  # boot, type, start, count


def set_entry_start(sector, slot, start):
    struct.pack_into("<I", sector, 446 + 16 * slot + 8, start)


def ebrs():
    """[(lba, sector)] of the EBR chain of the first extended partition,
    and the extended partition's (start, count)."""
    mbr = read(0)
    for slot in range(4):
        _, typ, start, count = entry(mbr, slot)
        if typ in EXTENDED and count:
            break
    else:
        sys.exit("no extended partition")
    chain, lba = [], start
    while len(chain) < 64:
        sec = read(lba)
        chain.append((lba, sec))
        nxt = None
        for s in range(4):
            _, typ, rel, cnt = entry(sec, s)
            if typ in EXTENDED and cnt:
                nxt = start + rel
                break
        if nxt is None or nxt <= lba:
            break
        lba = nxt
    return chain, (start, count)


def ebr_slot(sec, want_link):
    for s in range(4):
        _, typ, _, cnt = entry(sec, s)
        if cnt and (typ in EXTENDED) == want_link:
            return s
    if want_link:  # the last EBR: give it a link in slot 1
        struct.pack_into("<BxxxBxxxII", sec, 446 + 16, 0, 0x05, 0, 1)
        return 1
    sys.exit("EBR has no such entry")


def gpt_header_lbas(which):
    lbas = []
    if which in ("primary", "both"):
        lbas.append(1)
    if which in ("backup", "both"):
        lbas.append(disk_sectors - 1)
    return lbas


def fix_header_crc(hdr):
    size = struct.unpack_from("<I", hdr, 12)[0]
    struct.pack_into("<I", hdr, 16, 0)
    struct.pack_into("<I", hdr, 16, zlib.crc32(bytes(hdr[:size])))


FIELDS = {"my_lba": (24, "<Q"), "count": (80, "<I"), "entry_size": (84, "<I")}

if cmd in ("ebr-link", "ebr-data", "ebr-unsign"):
    chain, (ext_start, ext_count) = ebrs()
    lba, sec = chain[int(rest[0])]
    if cmd == "ebr-unsign":
        sec[510] = sec[511] = 0
    else:
        rel = {"self": lba - ext_start,
               "back": chain[max(int(rest[0]) - 1, 0)][0] - ext_start,
               "past": ext_count + 8}.get(rest[1])
        if rel is None:
            rel = int(rest[1], 0)
        set_entry_start(sec, ebr_slot(sec, cmd == "ebr-link"), rel)
    write(lba, sec)
elif cmd == "mbr-count":
    mbr = read(0)
    struct.pack_into("<I", mbr, 446 + 16 * (int(rest[0]) - 1) + 12, int(rest[1]))
    write(0, mbr)
elif cmd == "gpt-field":
    off, fmt = FIELDS[rest[1]]
    for lba in gpt_header_lbas(rest[0]):
        hdr = read(lba)
        struct.pack_into(fmt, hdr, off, int(rest[2], 0))
        fix_header_crc(hdr)
        write(lba, hdr)
elif cmd == "gpt-badcrc":
    for lba in gpt_header_lbas(rest[0]):
        hdr = read(lba)
        hdr[16] ^= 0xFF
        write(lba, hdr)
elif cmd == "gpt-badarray":
    for lba in gpt_header_lbas(rest[0]):
        hdr = read(lba)
        alba = struct.unpack_from("<Q", hdr, 72)[0]
        arr = read(alba)
        arr[40] ^= 0x01  # inside entry 1's first LBA
        write(alba, arr)
elif cmd == "gpt-entry":
    n, field, value = int(rest[0]), rest[1], int(rest[2], 0)
    for lba in gpt_header_lbas("both"):
        hdr = read(lba)
        alba, count, esize = struct.unpack_from("<QII", hdr, 72)
        nsect = (count * esize + ss - 1) // ss
        arr = read(alba, nsect)
        struct.pack_into("<Q", arr, (n - 1) * esize + (32 if field == "first" else 40), value)
        write(alba, arr)
        struct.pack_into("<I", hdr, 88, zlib.crc32(bytes(arr[:count * esize])))
        fix_header_crc(hdr)
        write(lba, hdr)
else:
    sys.exit("unknown command " + cmd)
f.close()
