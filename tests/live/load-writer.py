#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# The client side of the consistency-under-load check (load.sh): keeps 16
# writes in flight to an NBD export for SECONDS, never two on one block,
# and logs each write: block, sequence number, issue and acknowledgement
# instants (wall clock, as the server's snapshot log).
#   load-writer.py URI SECONDS BLOCKS LOG
# Block contents (4 KiB): "blk=%08d seq=%012d " repeated; seq 0 is never
# used, so an all-zero block means never written.
import random, sys, time
import nbd

uri, seconds, blocks, log_path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
BS = 4096
h = nbd.NBD()
h.connect_uri(uri)

def content(block, seq):
    unit = b"blk=%08d seq=%012d " % (block, seq)
    return (unit * (BS // len(unit) + 1))[:BS]

busy = set()
log = open(log_path, "w")
errors = 0
seq = 0
inflight = {}
rnd = random.Random(15)

def done(cookie_block, err):
    global errors
    block, s, issued = cookie_block
    if err.value != 0:
        errors += 1
    log.write("%d %d %.6f %.6f\n" % (block, s, issued, time.time()))
    busy.discard(block)
    return 1

end = time.time() + seconds
while time.time() < end or h.aio_in_flight() > 0:
    while time.time() < end and h.aio_in_flight() < 16:
        block = rnd.randrange(blocks)
        while block in busy:
            block = rnd.randrange(blocks)
        busy.add(block)
        seq += 1
        issued = time.time()
        info = (block, seq, issued)
        h.aio_pwrite(content(block, seq), block * BS,
                     completion=lambda err, info=info: done(info, err))
    h.poll(-1)
log.close()
# The final content of every block, read back through the server.
bad = 0
last = {}
for line in open(log_path):
    b, s, _, _ = line.split()
    last[int(b)] = max(last.get(int(b), 0), int(s))
for b, s in last.items():
    if h.pread(BS, b * BS) != content(b, s):
        bad += 1
h.shutdown()
# Latencies, for the record (load.sh prints them; they are not checked).
lat = sorted(float(a) - float(i) for _, _, i, a in (l.split() for l in open(log_path)))
p99 = lat[int(len(lat) * 0.99)] if lat else 0
print("latency_ms p50=%.2f p99=%.2f max=%.1f" % (lat[len(lat) // 2] * 1e3 if lat else 0, p99 * 1e3,
                                                lat[-1] * 1e3 if lat else 0))
print("writes=%d errors=%d final_mismatches=%d" % (seq, errors, bad))
