# SPDX-License-Identifier: BSD-3-Clause
# Clients that never finish their handshake must not lock others out.
# Usage: handshake.py MODE HOST PORT DEADLINE
#   trickle: two clients send one byte of their handshake every 0.3 s;
#   idle:    300 clients connect and send nothing.
# Meanwhile a good client connects and reads 4 KiB.  Prints PASS/FAIL and
# DIAG lines.  The server runs with max_clients=2 and
# handshake_timeout=DEADLINE.
import socket, sys, threading, time
import nbd

mode, host, port, deadline = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                              float(sys.argv[4]))


def res(ok, desc, why=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", desc,
                       "" if ok else " :: " + why), flush=True)


class Hostile:
    """A client that connects and then trickles or idles; records when the
    server closed it (seconds after connecting), or None."""

    def __init__(self, trickle):
        self.s = socket.create_connection((host, port))
        self.t0 = time.monotonic()
        self.closed_at = None
        if trickle:
            threading.Thread(target=self.trickle, daemon=True).start()

    def trickle(self):
        # The client flags then an option header, one byte at a time: each
        # byte would reset a per-read timeout.
        msg = b"\0\0\0\1" + b"IHAVEOPT" + b"\0\0\0\1" + b"\0\0\0\0"
        try:
            self.s.recv(18)      # the greeting
            for b in msg * 100:
                self.s.send(bytes([b]))
                time.sleep(0.3)
        except OSError:
            pass

    def is_closed(self):
        if self.closed_at is not None:
            return True
        try:
            self.s.setblocking(False)
            while True:
                d = self.s.recv(4096)
                if not d:
                    break
        except BlockingIOError:
            return False
        except OSError:
            pass
        self.closed_at = time.monotonic() - self.t0
        return True


n = 2 if mode == "trickle" else 300
hostile = [Hostile(mode == "trickle") for _ in range(n)]
time.sleep(0.5)       # let them be accepted and (trickle) start sending

t = time.monotonic()
h = nbd.NBD()
h.connect_uri("nbd://%s:%d/" % (host, port))
h.pread(4096, 0)
lat = time.monotonic() - t
still = sum(not c.is_closed() for c in hostile)
print("DIAG good client connected and read 4 KiB in %.1f ms with %d %s "
      "clients still in the handshake" % (1000 * lat, still, mode),
      flush=True)
res(still == n, "%d %s clients in the handshake, max_clients=2: a good "
    "client is served while they all still are (%.1f ms)" % (n, mode,
                                                            1000 * lat),
    "only %d still connected" % still)
res(lat < 5.0, "the good client did not wait seconds (issue's figure: 1 s)",
    "%.1f s" % lat)
h.shutdown()

end = time.monotonic() + deadline + 20
while time.monotonic() < end and not all(c.is_closed() for c in hostile):
    time.sleep(0.1)
closed = [c.closed_at for c in hostile if c.closed_at is not None]
print("DIAG %d of %d %s clients closed by the server, after %.1f..%.1f s"
      % (len(closed), n, mode, min(closed or [0]), max(closed or [0])),
      flush=True)
res(len(closed) == n and min(closed) >= deadline - 0.5,
    "all %d %s clients are cut off at the %g s handshake deadline"
    % (n, mode, deadline), "closed: %s" % closed)
