# SPDX-License-Identifier: BSD-3-Clause
# 64 MiB requests: advertised, accepted; 64 MiB + 1 refused by the server.
# Usage: bigio.py SOCKET  (export of at least 128 MiB, writable)
import os, socket, struct, sys
import nbd

sock = sys.argv[1]
MiB = 1 << 20


def res(ok, desc, why=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", desc,
                       "" if ok else " :: " + why), flush=True)


h = nbd.NBD()
h.connect_uri("nbd+unix:///?socket=" + sock)
mx = h.get_block_size(nbd.SIZE_MAXIMUM)
res(mx == 64 * MiB, "NBD_INFO_BLOCK_SIZE advertises a 64 MiB maximum",
    "got %d" % mx)
for size in (48 * MiB, 64 * MiB):
    data = os.urandom(size)
    try:
        h.pwrite(data, 4096)
        back = h.pread(size, 4096)
        res(back == data, "a %d MiB write then read at offset 4096 round-trips"
            % (size // MiB), "data differs")
    except nbd.Error as e:
        res(False, "a %d MiB write then read round-trips" % (size // MiB),
            e.string)
h.shutdown()

# libnbd will not send more than 64 MiB; a raw client shows the server's
# own answer, and that the connection goes on.
s = socket.socket(socket.AF_UNIX)
s.connect(sock)


def recv_exact(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


recv_exact(18)
s.sendall(struct.pack(">I", 3))
s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, 0))
recv_exact(10)
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 7, 0, 64 * MiB + 1))
magic, err, cookie = struct.unpack(">IIQ", recv_exact(16))
res(err == 22 and cookie == 7, "a 64 MiB + 1 read is refused with EINVAL",
    "error %d cookie %d" % (err, cookie))
s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 8, 0, 4096))
magic, err, cookie = struct.unpack(">IIQ", recv_exact(16))
d = recv_exact(4096) if err == 0 else b""
res(err == 0 and cookie == 8 and len(d) == 4096,
    "the connection goes on after the refusal", "error %d" % err)
