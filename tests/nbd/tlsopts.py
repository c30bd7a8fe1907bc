# SPDX-License-Identifier: BSD-3-Clause
# What a plaintext client gets from a server with tls=require, with a raw
# socket: every option but ABORT and STARTTLS answered ERR_TLS_REQD
# (LIST included: no export list before TLS), EXPORT_NAME a hang-up.
#   /usr/bin/python3 tlsopts.py SOCKET
# Prints "PASS desc" or "FAIL desc :: detail".
import socket
import struct
import sys

IHAVEOPT = 0x49484156454F5054
ERR_TLS_REQD = (1 << 31) + 5


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            return None
        buf += got
    return buf


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sys.argv[1])
    read_exact(s, 18)
    s.sendall(struct.pack(">I", 3))
    return s


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
    hdr = read_exact(s, 20)
    if hdr is None:
        return None, b""
    _, _, typ, ln = struct.unpack(">QIII", hdr)
    return typ, read_exact(s, ln) or b""


s = connect()
bad = []
for opt, data in [(3, b""), (8, b""), (6, struct.pack(">I", 0) + b"\0\0"),
                  (7, struct.pack(">I", 0) + b"\0\0"), (9, b""),
                  (10, b"\0" * 8)]:
    typ, msg = option(s, opt, data)
    if typ != ERR_TLS_REQD:
        bad.append("option %d got 0x%x %r" % (opt, typ or 0, msg))
    elif b"TLS" not in msg:
        bad.append("option %d message %r does not say TLS" % (opt, msg))
print(("FAIL" if bad else "PASS") + " LIST, STRUCTURED_REPLY, INFO, GO and "
      "META_CONTEXT before STARTTLS get ERR_TLS_REQD" +
      (" :: " + "; ".join(bad) if bad else ""))
typ, _ = option(s, 2)
print(("PASS" if typ == 1 else "FAIL") + " ABORT before STARTTLS is "
      "acknowledged" + ("" if typ == 1 else " :: got %r" % typ))
s.close()

s = connect()
s.sendall(struct.pack(">QII", IHAVEOPT, 1, 6) + b"secret")
try:
    rest = s.recv(200)
except OSError:
    rest = b""
print(("PASS" if rest == b"" else "FAIL") + " EXPORT_NAME before STARTTLS "
      "closes the connection without export details" +
      ("" if rest == b"" else " :: got %r" % rest))
