# SPDX-License-Identifier: BSD-3-Clause
# A bare-socket NBD client for tests that must do what libnbd will not:
# never read replies, or send requests over the size limit.  Oldstyle
# EXPORT_NAME without structured replies, so every read is answered with
# a simple reply carrying all its data.
import struct

REQUEST_MAGIC = 0x25609513
IHAVEOPT = 0x49484156454F5054
CMD_READ = 0


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("the server closed the connection")
        b += c
    return b


def export_name(s, name=b""):
    """The handshake on a connected socket; returns the export size."""
    g = recv_exact(s, 18)
    assert g[:8] == b"NBDMAGIC", g
    s.sendall(struct.pack(">I", 3))            # FIXED_NEWSTYLE | NO_ZEROES
    s.sendall(struct.pack(">QII", IHAVEOPT, 1, len(name)) + name)
    return struct.unpack(">QH", recv_exact(s, 10))[0]


def request(s, typ, cookie, offset, length, flags=0):
    s.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, typ, cookie,
                          offset, length))


def simple_reply(s):
    """(error, cookie) of the next simple reply."""
    magic, err, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
    assert magic == 0x67446698, hex(magic)
    return err, cookie
