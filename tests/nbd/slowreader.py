# SPDX-License-Identifier: BSD-3-Clause
# A client that asks for reads and never reads the replies must not slow
# down anybody else.  Usage: slowreader.py MODE HOST PORT
#   MODE "share": a stuck client with 16 reads of 8 MiB outstanding, then a
#     second client does 100 reads of 4 KiB; prints "PASS/FAIL desc" lines
#     and "DIAG ..." lines (latencies).
#   MODE "stuck": only the stuck client; waits (up to 30 s) until the
#     server closes it, prints "closed after S s".
import os, select, socket, struct, sys, threading, time
sys.path.insert(0, os.path.dirname(__file__))
from nbdraw import export_name, request, CMD_READ, REQUEST_MAGIC

mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])


def res(ok, desc, why=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", desc,
                       "" if ok else " :: " + why), flush=True)


def stuck_client():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window: the server's replies soon have nowhere to go.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    export_name(s)
    for i in range(16):
        request(s, CMD_READ, i, i * 8 << 20, 8 << 20)
    # Wait until replies started: the workers are busy on this client.
    select.select([s], [], [], 10)
    time.sleep(0.5)
    return s


def closed_by_server(s):
    """Without reading the replies: a send fails once the server closed
    (RST), or the socket shows an error."""
    try:
        s.send(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_READ, 99, 0,
                           4096), socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0


if mode == "stuck":
    s = stuck_client()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        if closed_by_server(s):
            print("closed after %.1f s" % (time.monotonic() - t0), flush=True)
            sys.exit(0)
        time.sleep(0.2)
    print("still open after 30 s", flush=True)
    sys.exit(0)

import nbd
s = stuck_client()
lat = []
err = []


def good():
    try:
        h = nbd.NBD()
        h.connect_uri("nbd://%s:%d/" % (host, port))
        for i in range(100):
            t = time.monotonic()
            h.pread(4096, (i * 4096) % (64 << 20))
            lat.append(time.monotonic() - t)
        h.shutdown()
    except Exception as e:
        err.append(str(e))


t = threading.Thread(target=good, daemon=True)
t0 = time.monotonic()
t.start()
# The old shared-sendmsg design hangs here forever: give up at 60 s.
t.join(60)
total = time.monotonic() - t0
inq = struct.unpack("i", __import__("fcntl").ioctl(
    s.fileno(), __import__("termios").FIONREAD, b"\0\0\0\0"))[0]
print("DIAG second client: %d reads of 4 KiB in %.3f s (connect included); "
      "max %.1f ms, median %.1f ms; stuck client has %d reply bytes unread"
      % (len(lat), total, 1000 * max(lat or [0]),
         1000 * sorted(lat or [0])[len(lat) // 2], inq), flush=True)
res(len(lat) == 100 and not err,
    "with a client stuck on 16 reads of 8 MiB, a second client's 100 "
    "reads of 4 KiB all complete", "%d done, %s" % (len(lat), err))
res(not closed_by_server(s) and inq > 0,
    "...while the stuck client is still connected and unread")
# The figure in the issue is 100 ms; timing is not asserted that tightly
# (the test bench is shared), only against a multi-second stall.
res(lat and max(lat) < 5.0, "no 4 KiB read of the second client took "
    "seconds (max %.1f ms)" % (1000 * max(lat or [0])))
s.close()
h = nbd.NBD()
h.connect_uri("nbd://%s:%d/" % (host, port))
h.pread(4096, 0)
h.shutdown()
res(True, "the server serves a new client after the stuck one left")
