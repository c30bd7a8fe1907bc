# SPDX-License-Identifier: BSD-3-Clause
# 64 MiB requests: advertised, accepted; 64 MiB + 1 refused by the server.
# Usage: bigio.py SOCKET  (export of at least 128 MiB, writable)
import os, socket, sys
import nbd
sys.path.insert(0, os.path.dirname(__file__))
from nbdraw import export_name, recv_exact, request, simple_reply, CMD_READ

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
export_name(s)
request(s, CMD_READ, 7, 0, 64 * MiB + 1)
err, cookie = simple_reply(s)
res(err == 22 and cookie == 7, "a 64 MiB + 1 read is refused with EINVAL",
    "error %d cookie %d" % (err, cookie))
request(s, CMD_READ, 8, 0, 4096)
err, cookie = simple_reply(s)
d = recv_exact(s, 4096) if err == 0 else b""
res(err == 0 and cookie == 8 and len(d) == 4096,
    "the connection goes on after the refusal", "error %d" % err)
