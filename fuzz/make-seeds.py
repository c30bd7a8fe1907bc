#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes the seed corpus under fuzz/corpus/ (committed; rerun only to
change it).  Small valid inputs that reach deep: NBD client streams
(plain and over TLS),
qcow2 images made by qemu-img/qemu-io, MBR+EBR and GPT disks, and savevm
streams for the registry fuzz-savevm.c sets up, and QEMU-shaped streams for
the savevm scanner."""
import os, struct, subprocess, sys, tempfile, uuid, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


# make-seeds.py [TARGET...]: only those targets' seeds are written.
ONLY = set(sys.argv[1:])


def put(target, name, data):
    if ONLY and target not in ONLY:
        return
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- NBD: byte 0 is the mode (0 raw, 1 canned GO, 2 canned structured) ----
IHAVEOPT = 0x49484156454F5054


def opt(o, data=b''):
    return struct.pack('>QII', IHAVEOPT, o, len(data)) + data


def go(name=b'', infos=()):
    return (struct.pack('>I', len(name)) + name +
            struct.pack('>H', len(infos)) + b''.join(struct.pack('>H', i) for i in infos))


def meta(name=b'', queries=(b'base:allocation',)):
    return (struct.pack('>I', len(name)) + name + struct.pack('>I', len(queries)) +
            b''.join(struct.pack('>I', len(q)) + q for q in queries))


def req(typ, off=0, length=0, flags=0, cookie=1, payload=b''):
    return struct.pack('>IHHQQI', 0x25609513, flags, typ, cookie, off, length) + payload


READ, WRITE, DISC, FLUSH, TRIM, CACHE, ZERO, BLOCK_STATUS = 0, 1, 2, 3, 4, 5, 6, 7
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO = 1, 2, 4, 8, 16
FLAGS = struct.pack('>I', 3)   # fixed newstyle, no zeroes
io = (req(WRITE, 4096, 512, FUA, 1, b'\xab' * 512) + req(READ, 0, 8192, 0, 2) +
      req(FLUSH, cookie=3) + req(TRIM, 65536, 65536, cookie=4) +
      req(ZERO, 131072, 4096, FAST_ZERO, 5) + req(CACHE, 0, 4096, cookie=6))
put('nbd-server', 'raw-list-info-go', b'\0' + FLAGS + opt(3) + opt(6, go(b'disk', (0, 1, 2, 3))) +
    opt(7, go(b'disk', (3,))) + req(READ, 0, 512) + req(DISC))
put('nbd-server', 'raw-export-name', b'\0' + struct.pack('>I', 1) + opt(1, b'disk') +
    req(WRITE, 0, 16, 0, 7, b'x' * 16) + req(DISC))
put('nbd-server', 'raw-structured-meta', b'\0' + FLAGS + opt(8) + opt(9, meta(b'disk', (b'base:',))) +
    opt(10, meta(b'disk')) + opt(7, go(b'disk')) + req(BLOCK_STATUS, 0, 1 << 20) +
    req(READ, 0, 4096, DF) + req(DISC))
put('nbd-server', 'raw-abort', b'\0' + FLAGS + opt(2))
put('nbd-server', 'simple-io', b'\1' + io + req(READ, 1 << 20, 512, cookie=9) + req(DISC))
put('nbd-server', 'structured-io', b'\2' + io + req(BLOCK_STATUS, 0, 1 << 20, REQ_ONE, 7) +
    req(BLOCK_STATUS, 4096, 8192, 0, 8) + req(READ, 0, 65536, DF, 10) + req(DISC))



# ---- NBD with TLS: [mode][plain length:2][plain][tls]; mode bits: 1 the
# server requires TLS, 2 a real TLS client, 4 identity "stranger", 8 a
# canned GO with structured replies inside the session ----
def tls(mode, plain, inner=b''):
    return bytes([mode]) + struct.pack('>H', len(plain)) + plain + inner


def client_hello():
    """A TLS ClientHello as Python's ssl writes it (no PSK: the server,
    which has only PSK credentials, must refuse it cleanly)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ctx.wrap_bio(inc, out, server_hostname='disk')
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


STARTTLS = opt(5)
tls_io = io + req(BLOCK_STATUS, 0, 1 << 20, REQ_ONE, 7) + req(READ, 0, 65536, DF, 10) + req(DISC)
put('nbd-tls', 'offer-session-io', tls(2 | 8, FLAGS + STARTTLS, tls_io))
put('nbd-tls', 'require-refused-then-session', tls(1 | 2 | 8, FLAGS + opt(6, go(b'disk')) + opt(3) +
                                                      STARTTLS, tls_io))
put('nbd-tls', 'session-options', tls(2, FLAGS + STARTTLS, opt(8) + opt(9, meta(b'disk', (b'base:',))) +
                                      opt(10, meta(b'disk')) + opt(5) + opt(7, go(b'disk', (0, 3))) +
                                      req(BLOCK_STATUS, 0, 1 << 20) + req(READ, 0, 4096) + req(DISC)))
put('nbd-tls', 'stranger-refused', tls(4 | 2 | 1, FLAGS + STARTTLS, opt(3) + opt(7, go(b'disk')) + opt(2)))
put('nbd-tls', 'raw-client-hello', tls(1, FLAGS + STARTTLS, client_hello()))
put('nbd-tls', 'require-export-name', tls(1, struct.pack('>I', 1) + opt(1, b'disk') + req(DISC)))
put('nbd-tls', 'starttls-with-data', tls(2 | 8, FLAGS + opt(5, b'x') + opt(3) + STARTTLS,
                                         req(WRITE, 0, 16, 0, 7, b'y' * 16) + req(DISC)))
put('nbd-tls', 'offer-plain-go', tls(0, FLAGS + opt(7, go(b'disk')) + req(READ, 0, 512) + req(DISC)))


# ---- savevm: the registry of fuzz-savevm.c ----
def section(sid, idstr, inst, ver, state):
    return (struct.pack('>BIB', 4, sid, len(idstr)) + idstr + struct.pack('>II', inst, ver) +
            state + struct.pack('>BI', 0x7e, sid))


def fdev(ver, seed, irq=True, name=b'dev'):
    s = struct.pack('>4I', *(seed + i for i in range(4)))
    log = [0x100, seed & 0xffff, 0xffff]
    s += struct.pack('>B', len(log)) + b''.join(struct.pack('>H', v) for v in log)
    if ver >= 2:
        s += struct.pack('>B', int(irq))
    if ver >= 3:
        s += struct.pack('>qH', -seed, 3)
    s += struct.pack('>B', len(name)) + name
    if irq and ver >= 2:
        sub = b'fdev/extra'
        s += struct.pack('>BB', 5, len(sub)) + sub + struct.pack('>IQ', 1, seed << 33 | 5)
    return s


def script(name, counter):
    return struct.pack('>B', len(name)) + name + struct.pack('>I', counter)


HDR = struct.pack('>II', 0x5145564D, 3)
vmdesc = b'{"page_size": 4096, "devices": [{"name": "fdev", "instance_id": 0}]}'
full = (HDR + section(1, b'fdev', 0, 3, fdev(3, 7)) + section(2, b'fdev', 1, 3, fdev(3, 9, False)) +
        section(3, b'script', 0, 1, script(b'script-7', 49)) + b'\0')
put('savevm', 'full', full)
put('savevm', 'full-vmdesc', full + struct.pack('>BI', 6, len(vmdesc)) + vmdesc)
put('savevm', 'old-versions', HDR + section(5, b'fdev', 0, 1, fdev(1, 3, False)) +
    section(6, b'fdev', 1, 2, fdev(2, 4)) + b'\0')
put('savevm', 'script-only', HDR + section(1, b'script', 0, 1, script(b'', 0)) + b'\0')


# ---- savevm-scan: [ctl][hints][stream]; ctl bits 0-1 page size (stream's,
# 1024, 4096, 65536), bit 2 hints follow: [n] then [size:2][inst][idlen][idstr]
def cstr(b):
    return bytes([len(b)]) + b


def hdr(typ, sid, idstr, inst, ver):
    return struct.pack('>BI', typ, sid) + cstr(idstr) + struct.pack('>II', inst, ver)


def footer(sid):
    return struct.pack('>BI', 0x7e, sid)


F_ZERO, F_MEM_SIZE, F_PAGE, F_EOS, F_CONTINUE, F_XBZRLE = 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
PAGE = 1024


def ram_word(addr, flags):
    return struct.pack('>Q', addr | flags)


config = (struct.pack('>BI', 7, 13) + b'pc-i440fx-7.2' +
          b'\x05' + cstr(b'configuration/target-page-bits') + struct.pack('>II', 1, 10))
ram_start = (hdr(1, 2, b'ram', 0, 4) + ram_word(0xc00, F_MEM_SIZE) + cstr(b'pc.ram') +
             struct.pack('>Q', 0x800) + cstr(b'pc.rom') + struct.pack('>Q', 0x400) +
             ram_word(0, F_EOS) + footer(2))
ram_part = (struct.pack('>BI', 2, 2) + ram_word(0, F_PAGE) + cstr(b'pc.ram') + b'\x7e' * PAGE +
            ram_word(PAGE, F_ZERO | F_CONTINUE) + b'\0' +
            ram_word(0, F_XBZRLE | F_CONTINUE) + b'\x01' + struct.pack('>H', 3) + b'abc' +
            ram_word(0, F_EOS) + footer(2))
ram_end = struct.pack('>BI', 3, 2) + ram_word(0, F_EOS) + footer(2)
dev = hdr(4, 0, b'dev', 0, 1) + bytes([0x7e, 0, 0, 0, 0, 0x99, 1, 2]) + footer(0)
cmd = struct.pack('>BHH', 8, 0x0b, 0)
scan_json = b'{"page_size": 1024, "devices": [{"name": "dev", "instance_id": 0}]}'
qemu_like = (HDR + config + ram_start + dev + ram_part + cmd + ram_end +
             hdr(4, 7, b'dev', 1, 2) + b'\x05\x7e\x00' + footer(7) + b'\0' +
             struct.pack('>BI', 6, len(scan_json)) + scan_json)
put('savevm-scan', 'qemu-like-1024', bytes([1]) + qemu_like)
put('savevm-scan', 'qemu-like-stream-page-size', bytes([0]) + qemu_like)
# QEMU before 2.4: no footers, sizes from the trailer's description
old_stream = (HDR + hdr(4, 0, b'timer', 0, 2) + bytes(12) + hdr(4, 1, b'cpu', 0, 3) + bytes(7) +
              hdr(4, 2, b'cpu', 1, 3) + bytes(7) + b'\0')
hints = bytes([3]) + b''.join(struct.pack('>HBB', size, inst, len(n)) + n
                             for size, inst, n in ((12, 0, b'timer'), (7, 0, b'cpu'), (7, 1, b'cpu')))
put('savevm-scan', 'no-footers-hinted', bytes([4 | 2]) + hints + old_stream)
put('savevm-scan', 'blkhost-full', bytes([2]) + full + struct.pack('>BI', 6, len(vmdesc)) + vmdesc)


# ---- partition tables ----
def mbr_entry(boot, typ, start, count):
    return struct.pack('<B3sB3sII', boot, b'\0\0\0', typ, b'\0\0\0', start, count)


def mbr(entries, sig=0x1234abcd):
    ents = b''.join(entries) + b'\0' * 16 * (4 - len(entries))
    return b'\0' * 440 + struct.pack('<IH', sig, 0) + ents + b'\x55\xaa'


disk = bytearray(128 * 512)
disk[0:512] = mbr([mbr_entry(0x80, 0x83, 8, 16), mbr_entry(0, 0x05, 32, 96),
                   mbr_entry(0, 0x82, 24, 8)])
# EBRs: data partition relative to the EBR, link relative to the extended one
disk[32 * 512:33 * 512] = mbr([mbr_entry(0, 0x83, 2, 8), mbr_entry(0, 0x05, 16, 16)], 0)
disk[48 * 512:49 * 512] = mbr([mbr_entry(0, 0x07, 2, 8), mbr_entry(0, 0x05, 32, 16)], 0)
disk[64 * 512:65 * 512] = mbr([mbr_entry(0, 0x0c, 4, 40)], 0)
put('partition', 'mbr-ebr-chain', bytes(disk))


def gpt(sectors, ss, nent, parts):
    esz = 128
    ent_sectors = (nent * esz + ss - 1) // ss
    first, last = 2 + ent_sectors, sectors - 2 - ent_sectors
    ents = bytearray(nent * esz)
    for i, (typ, start, end, label) in enumerate(parts):
        ents[i * esz:(i + 1) * esz] = (uuid.UUID(typ).bytes_le + uuid.uuid5(uuid.NAMESPACE_DNS, label).bytes_le +
                                       struct.pack('<QQQ', start, end, 4 if i == 0 else 0) +
                                       label.encode('utf-16-le').ljust(72, b'\0'))
    ecrc = zlib.crc32(ents)
    guid = uuid.UUID('11111111-2222-3333-4444-555555555555').bytes_le

    def hdr(my, alt, entlba):
        h = struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0, my, alt, first, last,
                        guid, entlba, nent, esz, ecrc)
        h = h[:16] + struct.pack('<I', zlib.crc32(h)) + h[20:]
        return h.ljust(ss, b'\0')
    d = bytearray(sectors * ss)
    d[0:512] = mbr([mbr_entry(0, 0xee, 1, min(sectors - 1, 0xffffffff))], 0)
    d[ss:2 * ss] = hdr(1, sectors - 1, 2)
    d[2 * ss:2 * ss + len(ents)] = ents
    b = (sectors - 1 - ent_sectors) * ss
    d[b:b + len(ents)] = ents
    d[(sectors - 1) * ss:] = hdr(sectors - 1, 1, sectors - 1 - ent_sectors)
    return bytes(d)


LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'
put('partition', 'gpt-512', gpt(128, 512, 128, [(ESP, 34, 49, 'efi'), (LINUX, 50, 93, 'root')]))
put('partition', 'gpt-512-4-entries', gpt(16, 512, 4, [(LINUX, 3, 13, 'data')]))
put('partition', 'gpt-4096', gpt(12, 4096, 4, [(LINUX, 3, 9, 'big')]))
g = bytearray(gpt(16, 512, 4, [(LINUX, 3, 13, 'data')]))
g[512 + 16] ^= 1                     # primary header CRC broken: backup used
put('partition', 'gpt-backup', bytes(g))


# ---- qcow2: made by qemu-img and qemu-io ----
def sh(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


with tempfile.TemporaryDirectory() as t:
    def img(name, create_opts, size, ios=(), snaps=()):
        p = os.path.join(t, name)
        sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-o', create_opts, p, size)
        for c in ios:
            sh('qemu-io', '-f', 'qcow2', '-c', c, p)
        for s in snaps:
            sh('qemu-img', 'snapshot', '-c', s, p)
        with open(p, 'rb') as f:
            put('qcow2', name, f.read())
    img('v3-c512', 'cluster_size=512', '64K', ['write -P 0x11 0 2k', 'write -z 8k 4k'],
        ['snap1'])
    img('v3-snap-write', 'cluster_size=512', '32K', ['write -P 0x22 1k 1k'], ['a', 'b'])
    img('v2-c1k', 'cluster_size=1024,compat=0.10', '64K', ['write -P 0x33 0 3k'], ['old'])
    img('compressed', 'cluster_size=4096', '64K', ['write -c -P 0x44 0 4k'])
    img('zstd', 'cluster_size=4096,compression_type=zstd', '64K', ['write -c -P 0x55 4k 4k'])
    img('refbits1', 'cluster_size=512,refcount_bits=1', '16K', ['write -P 0x66 0 1k'])
    # -u: base.raw need not exist; the harness backs it with a null node
    p = os.path.join(t, 'backing')
    sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', 'base.raw', '-F', 'raw', '-o',
       'cluster_size=512', p, '16K')
    with open(p, 'rb') as f:
        put('qcow2', 'backing', f.read())
print('seeds written under', os.path.join(HERE, 'corpus'))


# ---- nbd-client: what a server says, as fuzz-nbd-client.c's records ----
# [ctl][len:2][bytes]; ctl 1: after the client's next message, 2: patch its
# option number or cookie in at byte 8, 3: both.
def rec(ctl, data):
    return struct.pack('>BH', ctl, len(data)) + data


REP_MAGIC = 0x0003e889045565a9
ERR_UNSUP, ERR_UNKNOWN = (1 << 31) + 1, (1 << 31) + 6


def rep(ctl, typ, data=b''):
    # the option number is patched in (ctl & 2)
    return rec(ctl, struct.pack('>QIII', REP_MAGIC, 0, typ, len(data)) + data)


def simple(err=0, data=b''):
    return rec(3, struct.pack('>IIQ', 0x67446698, err, 0) + data)


def chunk(ctl, typ, payload, done=True):
    return rec(ctl, struct.pack('>IHHQI', 0x668e33ef, 1 if done else 0, typ, 0,
                                len(payload)) + payload)


GREETING = rec(0, b'NBDMAGIC' + b'IHAVEOPT' + struct.pack('>H', 3))
TFLAGS = 1 | 4 | 8 | 32 | 64 | 128 | 256 | 2048
SIZE = 1 << 20


def go_replies(size=SIZE, tflags=TFLAGS, block=(512, 4096, 1 << 20)):
    return (rep(3, 3, struct.pack('>HQH', 0, size, tflags)) +
            rep(2, 3, struct.pack('>HIII', 3, *block)) + rep(2, 1))


data = bytes(range(256)) * 8          # 2 KiB: half a read
data4k = data * 2
structured = (GREETING + rep(3, 1) +                                  # STRUCTURED_REPLY
              rep(3, 4, struct.pack('>I', 1) + b'base:allocation') + rep(2, 1) +
              go_replies() +
              # read 4096 @ 0: data, then a hole
              chunk(3, 1, struct.pack('>Q', 0) + data, False) +
              chunk(2, 2, struct.pack('>QI', 2048, 2048)) +
              # block status: data, then zero hole
              chunk(3, 5, struct.pack('>IIIII', 1, 65536, 0, SIZE - 65536, 3)) +
              simple() +                                              # write
              chunk(3, 0, b'') +                                      # zero
              simple() +                                              # flush
              chunk(3, 32769, struct.pack('>IH', 5, 4) + b'oops'))    # read: EIO
put('nbd-client', 'structured', structured)
put('nbd-client', 'structured-error-offset',
    GREETING + rep(3, 1) + rep(3, 4, struct.pack('>I', 7) + b'base:allocation') + rep(2, 1) +
    go_replies(tflags=1 | 4 | 64) +
    chunk(3, 32770, struct.pack('>IHQ', 5, 0, 512)) +                # read: error at 512
    chunk(3, 5, struct.pack('>III', 7, 4096, 1), False) +
    chunk(2, 5, struct.pack('>III', 7, 4096, 2)) +
    simple(1) + simple(28) + simple() +                               # write, zero, flush
    chunk(3, 32769, struct.pack('>IH', 22, 0)))
put('nbd-client', 'simple',
    GREETING + rep(3, ERR_UNSUP) + go_replies(block=(1, 4096, 65536)) +
    simple(0, data4k) + simple() + simple() + simple() + simple(5))  # read write zero flush read
put('nbd-client', 'export-name',
    rec(0, b'NBDMAGIC' + b'IHAVEOPT' + struct.pack('>H', 0)) +
    rec(1, struct.pack('>QH', 65536, 1 | 4)) + rec(0, bytes(124)) +
    # read; write; zero (written as zeros: no WRITE_ZEROES); flush; read
    simple(0, data4k) + simple() + simple() + simple() + simple(0, data[:512]))
put('nbd-client', 'go-refused',
    GREETING + rep(3, 1) + rep(3, 1) +
    rep(3, ERR_UNKNOWN, b'no such export'))
put('nbd-client', 'read-only-size-odd',
    GREETING + rep(3, 1) + rep(3, 4, struct.pack('>I', 1) + b'base:allocation') + rep(2, 1) +
    go_replies(size=12345, tflags=1 | 2))


# ---- control: request lines (docs/control.md), one file each ----
def lines(*ls, end=b'\n'):
    return b''.join(l.encode() + end for l in ls)


put('control', 'query-exports', lines('{"execute": "query-exports", "id": 1}'))
put('control', 'snapshots', lines(
    '{"execute": "query-snapshots", "arguments": {"export": "disk"}, "id": "a"}',
    '{"execute": "snapshot-create", "arguments": {"name": "before-upgrade"}, "id": 2}',
    '{"execute": "snapshot-delete", "arguments": {"name": "never"}, "id": 3}',
    '{"execute": "snapshot-delete", "arguments": {"id": "1"}, "id": [4, {"x": null}]}'))
put('control', 'rotate', lines(
    '{"execute": "rotate", "arguments": {"prefix": "nightly-", "keep": {"daily": 7, '
    '"weekly": 4}, "now": 1795855292, "dry_run": true}, "id": 5}',
    '{"execute": "rotate", "arguments": {"prefix": "n-", "keep": {"hourly": 2}, "within": '
    '"1d", "min_age": "1h", "pin": "n-2026*", "state": {"job": "x"}, "timezone": "UTC", '
    '"exports": ["disk"]}}', end=b'\r\n'))
put('control', 'savevm', lines(
    '{"execute": "savevm", "arguments": {"name": "vm1"}, "id": 6}',
    '{"execute": "delvm", "arguments": {"name": "vm1"}, "id": 7}',
    '{"execute": "query-clients"}', '{"execute": "query-commands", "id": 8.5}'))
put('control', 'exports', lines(
    '{"execute": "export-add", "arguments": {"path": "/nonexistent", "name": "x", "options": '
    '{"format": "raw"}, "readonly": true, "description": "d"}, "id": 9}',
    '{"execute": "export-remove", "arguments": {"name": "disk", "mode": "hard"}, "id": 10}',
    '{"execute": "export-remove", "arguments": {"name": "nope", "mode": "bogus"}}'))
put('control', 'errors', lines(
    '{"execute": "nope", "id": true}', '{"execute": 1}', '[1, 2, "x"]', 'not json',
    '{"execute": "query-exports", "arguments": [1], "extra": 2}',
    '{"execute": "snapshot-create", "arguments": {"name": 5, "bogus": 1}, "id": null}',
    r'{"id": "\u00e9\ud83d\ude00\n", "execute": "snapshot-create", "arguments": {"name": ""}}',
    '{"execute":"quit","id":-1.5e300}', '   ',
    '{"execute": "query-exports", "id": {"a": [true, false, null, 1e5, -0]}}'))
