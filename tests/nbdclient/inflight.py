# SPDX-License-Identifier: BSD-3-Clause
# Requests in flight across a server restart, seen by a real client.
#   inflight.py URI IMAGE READY
# Issues 8 reads and 8 writes at once on URI (the blkhost proxy in front
# of the nbd driver), creates READY, then waits up to 60 s for all of
# them.  Prints PASS/FAIL lines (tests/nbd/lib.sh's py_tap): every
# command completed, reads equal IMAGE, writes landed in IMAGE.
import os
import sys
import time

import nbd

uri, image, ready = sys.argv[1:4]
N, L, MiB = 8, 65536, 1 << 20
# Another pattern each run, so a later run cannot pass on an earlier
# run's writes.
SEED = 1 + os.getpid() % 240

h = nbd.NBD()
h.connect_uri(uri)
reads = []
for i in range(N):
    buf = nbd.Buffer(L)
    reads.append((buf, i * MiB, h.aio_pread(buf, i * MiB)))
writes = []
for i in range(N):
    data = bytearray([(SEED + i) & 0xFF]) * L
    off = (32 + i) * MiB
    buf = nbd.Buffer.from_bytearray(data)
    writes.append((data, off, h.aio_pwrite(buf, off)))
open(ready, "w").close()

deadline = time.time() + 60
while h.aio_in_flight() > 0 and time.time() < deadline:
    h.poll(500)
if h.aio_in_flight() > 0:
    print("FAIL every request in flight completed :: %d still in flight "
          "after 60 s" % h.aio_in_flight())
    sys.exit(0)

errors = []
for _, off, c in reads + [(None, w[1], w[2]) for w in writes]:
    try:
        h.aio_command_completed(c)
    except nbd.Error as e:
        errors.append("offset %d: %s" % (off, e))
if errors:
    print("FAIL every request in flight completed :: " + "; ".join(errors))
else:
    print("PASS every request in flight completed (8 reads, 8 writes)")
h.flush()
h.shutdown()

with open(image, "rb") as f:
    bad = []
    for buf, off, _ in reads:
        f.seek(off)
        if buf.to_bytearray() != f.read(L):
            bad.append(off)
    print(("FAIL reads issued before the restart return the image's bytes"
           " :: differ at %s" % bad) if bad else
          "PASS reads issued before the restart return the image's bytes")
    bad = []
    for data, off, _ in writes:
        f.seek(off)
        if f.read(L) != data:
            bad.append(off)
    print(("FAIL writes issued before the restart are in the image :: "
           "missing at %s" % bad) if bad else
          "PASS writes issued before the restart are in the image")
