# SPDX-License-Identifier: BSD-3-Clause
# Which cipher the server picks for a client that lists ChaCha20-Poly1305
# before AES-GCM: AES-GCM on a CPU with AES instructions, else the
# client's first choice.  Python's ssl module (OpenSSL) is the client,
# over TLS 1.2, where a client can order the ciphers.
# Usage: tlscipher.py SOCKET EXPECT   (EXPECT: aes or chacha)
import os, socket, ssl, struct, sys
sys.path.insert(0, os.path.dirname(__file__))
from nbdraw import IHAVEOPT, recv_exact as read_exact

sock, expect = sys.argv[1], sys.argv[2]
OPT_STARTTLS = 5


def res(ok, desc, why=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", desc,
                       "" if ok else " :: " + why), flush=True)


s = socket.socket(socket.AF_UNIX)
s.connect(sock)
read_exact(s, 18)                          # NBDMAGIC, IHAVEOPT, flags
s.sendall(struct.pack(">I", 3))            # fixed newstyle, no zeroes
s.sendall(struct.pack(">QII", IHAVEOPT, OPT_STARTTLS, 0))
_, opt, rtype, rlen = struct.unpack(">QIII", read_exact(s, 20))
read_exact(s, rlen)
if rtype != 1:
    res(False, "STARTTLS is acknowledged", "reply type %d" % rtype)
    sys.exit(0)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:"
                "ECDHE-RSA-AES256-GCM-SHA384")
t = ctx.wrap_socket(s)
name = t.cipher()[0]
if expect == "aes":
    res("AES" in name and "GCM" in name,
        "a client listing ChaCha20 first gets AES-GCM from a server on a "
        "CPU with AES instructions", "negotiated %s" % name)
else:
    res("CHACHA20" in name,
        "without AES instructions the client's first choice, ChaCha20, "
        "stands", "negotiated %s" % name)
t.close()
