# SPDX-License-Identifier: BSD-3-Clause
"""Soak driver for bench/soak.sh: many verifying NBD clients against one
server for a long time, then a report.  Not a test; see bench/README.md.

    soak.py SOCKET SERVER_PID   (knobs in the environment, see soak.sh)

Each verifying client owns a disjoint region of the export and keeps a
model of it: the generation number last written to every 4 KiB block.
Block data is a 16-byte header (client, block, generation, salt) repeated,
so a read that returns another block's, another client's or an older
write's data is caught, and generation 0 (never written) reads as zeros.
A block with a command in flight is never touched by a second command, so
the model is always exact.

Alongside: a churn process that connects and disconnects 10 times a second
(some of them with commands still in flight, some without a clean NBD
disconnect), and a slow reader speaking raw NBD that asks for big reads
and drains its socket slowly.  With SOAK_CONTROL (the server's control
socket), a snapshotter takes an internal snapshot every SOAK_SNAPSHOT_SECS
(10) through it and deletes the one three older, so that the clients'
writes run across live snapshots.  The server's RSS and open fds are sampled
before the clients, once under load after a warm-up, at the end under
load, and after everyone has left.
"""
import json
import math
import multiprocessing as mp
import os
import queue
import random
import select
import socket
import struct
import sys
import time

import nbd

BLOCK = 4096
MiB = 1 << 20

ENV = os.environ
SECONDS = float(ENV.get("SOAK_SECONDS", "600"))
WARMUP = float(ENV.get("SOAK_WARMUP", "10"))
CLIENTS = int(ENV.get("SOAK_CLIENTS", "64"))
PROCS = int(ENV.get("SOAK_PROCS", "4"))
QD = int(ENV.get("SOAK_QD", "16"))
REGION = int(ENV.get("SOAK_REGION_MIB", "8")) * MiB
CHURN_HZ = float(ENV.get("SOAK_CHURN_HZ", "10"))
SLOW_READ = int(ENV.get("SOAK_SLOW_READ_MIB", "8")) * MiB
SLOW_RATE = float(ENV.get("SOAK_SLOW_RATE_MIB", "2")) * MiB   # bytes/s
MAX_OP_BLOCKS = 16
CONTROL = ENV.get("SOAK_CONTROL", "")
SNAPSHOT_SECS = float(ENV.get("SOAK_SNAPSHOT_SECS", "10"))
SNAPSHOTS_KEPT = 3

# Layout of the export: the clients' regions, then 1 MiB for the churn in
# each of the two sessions (warm-up, measured), then two big reads' worth
# for the slow reader.
CHURN_OFF = CLIENTS * REGION
SLOW_OFF = CHURN_OFF + 2 * MiB
EXPORT_NEEDED = SLOW_OFF + 2 * SLOW_READ


def block_data(client, block, gen):
    """The 4 KiB written to BLOCK by CLIENT at generation GEN."""
    if gen == 0:
        return bytes(BLOCK)
    salt = (client * 2654435761 + block * 40503 + gen * 97) & 0xFFFFFFFF
    return struct.pack("<IIII", client, block, gen, salt) * (BLOCK // 16)


# ---- latency histogram: log buckets 2% wide, in microseconds ----

LOG_STEP = math.log(1.02)


def hist_add(hist, seconds):
    us = max(seconds * 1e6, 1.0)
    b = int(math.log(us) / LOG_STEP)
    hist[b] = hist.get(b, 0) + 1


def hist_quantile(hist, q):
    total = sum(hist.values())
    if not total:
        return 0.0
    want = q * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= want:
            return math.exp((b + 0.5) * LOG_STEP) / 1e3    # ms
    return 0.0


def new_stats(kind):
    return {"kind": kind, "pid": os.getpid(), "ops": 0, "reads": 0,
            "writes": 0, "errors": 0, "mismatches": 0, "bytes": 0,
            "hist": {}, "max": 0.0, "notes": []}


def note(stats, text):
    if len(stats["notes"]) < 20:
        stats["notes"].append(text)


def merge(into, s):
    for k in ("ops", "reads", "writes", "errors", "mismatches", "bytes"):
        into[k] += s[k]
    for b, n in s["hist"].items():
        into["hist"][b] = into["hist"].get(b, 0) + n
    into["max"] = max(into["max"], s["max"])
    into["notes"] += s["notes"][:20 - len(into["notes"])]


# ---- verifying clients: PROCS processes, each polling its handles ----

class Client:
    def __init__(self, cid, sock, session):
        self.cid = cid
        self.h = nbd.NBD()
        self.h.connect_unix(sock)
        if self.h.get_size() < EXPORT_NEEDED:
            raise SystemExit("soak: export is %d bytes, needs %d"
                             % (self.h.get_size(), EXPORT_NEEDED))
        self.fd = self.h.aio_get_fd()
        self.base = cid * REGION
        self.nblocks = REGION // BLOCK
        # The region holds the warm-up's data in the measured session: its
        # generations start higher, so a stale block cannot pass.
        self.gen = [session << 20] * self.nblocks
        self.busy = bytearray(self.nblocks)
        self.inflight = {}          # cookie -> op
        # Free buffers by length in blocks.  libnbd 1.14's Python bindings
        # never free a buffer handed to aio_pread/aio_pwrite (each command
        # leaked its buffer: 6.7 GB in one client process in 100 s), so
        # every buffer is made once and reused.
        self.bufs = {}
        self.prefill_next = 0       # next block of the first sequential fill

    def expected(self, first, n):
        return b"".join(block_data(self.cid, b, self.gen[b])
                        for b in range(first, first + n))

    def submit(self, stats, prefill):
        while len(self.inflight) < QD:
            if prefill:
                if self.prefill_next >= self.nblocks:
                    return
                first, n, write = self.prefill_next, MAX_OP_BLOCKS, True
                n = min(n, self.nblocks - first)
                self.prefill_next += n
            else:
                n = random.randint(1, MAX_OP_BLOCKS)
                first = random.randrange(self.nblocks - n + 1)
                if any(self.busy[first:first + n]):
                    continue
                write = random.random() < 0.5
            for b in range(first, first + n):
                self.busy[b] = 1
            off = self.base + first * BLOCK
            free = self.bufs.setdefault(n, [])
            buf = free.pop() if free else \
                nbd.Buffer.from_bytearray(bytearray(n * BLOCK))
            if write:
                gens = [self.gen[b] + 1 for b in range(first, first + n)]
                buf.to_buffer()[:] = b"".join(
                    block_data(self.cid, first + i, g)
                    for i, g in enumerate(gens))
                cookie = self.h.aio_pwrite(buf, off)
            else:
                gens = None
                cookie = self.h.aio_pread(buf, off)
            self.inflight[cookie] = (first, n, gens, buf, time.monotonic(),
                                     prefill)

    def harvest(self, stats):
        while self.inflight:
            cookie = self.h.aio_peek_command_completed()
            if cookie <= 0:
                return
            first, n, gens, buf, t0, prefill = self.inflight.pop(cookie)
            ok = True
            try:
                self.h.aio_command_completed(cookie)
            except nbd.Error as e:
                ok = False
                stats["errors"] += 1
                note(stats, "client %d %s at %d+%d: %s" % (
                    self.cid, "write" if gens else "read",
                    self.base + first * BLOCK, n * BLOCK, e))
            dt = time.monotonic() - t0
            for b in range(first, first + n):
                self.busy[b] = 0
            if gens is not None:
                # A failed write leaves the blocks unknown: the model
                # cannot say what they hold, so stop checking them.
                for i, g in enumerate(gens):
                    self.gen[first + i] = g if ok else -1
                stats["writes"] += 1
            else:
                stats["reads"] += 1
                if ok and -1 not in self.gen[first:first + n]:
                    got = buf.to_buffer()
                    if got != self.expected(first, n):
                        stats["mismatches"] += 1
                        note(stats, "client %d read at %d+%d: %s" % (
                            self.cid, self.base + first * BLOCK, n * BLOCK,
                            self.describe(first, n, got)))
            self.bufs[n].append(buf)
            stats["ops"] += 1
            stats["bytes"] += n * BLOCK
            if not prefill:
                hist_add(stats["hist"], dt)
                stats["max"] = max(stats["max"], dt)

    def describe(self, first, n, got):
        """Which block differs first, and what it held instead."""
        for i in range(n):
            want = block_data(self.cid, first + i, self.gen[first + i])
            have = bytes(got[i * BLOCK:(i + 1) * BLOCK])
            if have != want:
                c, b, g, _ = struct.unpack("<IIII", have[:16])
                return ("block %d expected gen %d, got header client=%d "
                        "block=%d gen=%d%s" % (
                            first + i, self.gen[first + i], c, b, g,
                            " (zeros)" if have == bytes(BLOCK) else ""))
        return "?"


def worker(cids, sock, session, ready, stop, results):
    random.seed(os.getpid())
    stats = new_stats("clients")
    clients = []
    prefill = True
    try:
        clients = [Client(c, sock, session) for c in cids]
        byfd = {c.fd: c for c in clients}
        prefill = True
        while True:
            stopping = stop.is_set()
            if prefill and all(c.prefill_next >= c.nblocks and not c.inflight
                               for c in clients):
                prefill = False
                ready.release()
            if not stopping:
                for c in clients:
                    c.submit(stats, prefill)
            if not any(c.inflight for c in clients):
                if stopping:
                    break
            p = select.poll()
            for c in clients:
                d = c.h.aio_get_direction()
                ev = (select.POLLIN if d & nbd.AIO_DIRECTION_READ else 0) | \
                     (select.POLLOUT if d & nbd.AIO_DIRECTION_WRITE else 0)
                if ev:
                    p.register(c.fd, ev)
            for fd, rev in p.poll(1000):
                c = byfd[fd]
                if rev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    c.h.aio_notify_read()
                elif rev & select.POLLOUT:
                    c.h.aio_notify_write()
            for c in clients:
                c.harvest(stats)
        for c in clients:
            c.h.shutdown()
    except Exception as e:          # a dead connection counts, and ends it
        stats["errors"] += 1
        note(stats, "clients %s: %s: %s" % (cids, type(e).__name__, e))
        if prefill:
            ready.release()
    results.put(stats)


# ---- connect/disconnect churn ----

def churn(sock, session, stop, results):
    random.seed(os.getpid())
    stats = new_stats("churn")
    base = CHURN_OFF + session * MiB
    nblocks = MiB // BLOCK
    gen = [0] * nblocks
    period = 1.0 / CHURN_HZ
    nxt = time.monotonic()
    i = 0
    cid = 0xC0DE
    # Reused: the bindings never free a buffer given to an aio call.
    churn_bufs = [nbd.Buffer.from_bytearray(bytearray(64 * 1024))
                  for _ in range(4)]
    while not stop.is_set():
        i += 1
        try:
            t0 = time.monotonic()
            h = nbd.NBD()
            h.connect_unix(sock)
            b = random.randrange(nblocks)
            off = base + b * BLOCK
            mode = i % 4
            if mode == 0:
                # Leave with commands in flight, without NBD_CMD_DISC.
                for k in range(4):
                    h.aio_pread(churn_bufs[k],
                                base + random.randrange(16) * 64 * 1024)
                del h
            else:
                got = h.pread(BLOCK, off)
                if got != block_data(cid, b, gen[b]):
                    stats["mismatches"] += 1
                    note(stats, "churn read at %d: block %d gen %d differs"
                         % (off, b, gen[b]))
                h.pwrite(block_data(cid, b, gen[b] + 1), off)
                gen[b] += 1
                stats["ops"] += 2
                if mode == 1:
                    del h                   # drop the socket, no DISC
                else:
                    h.shutdown()
            dt = time.monotonic() - t0
            stats["max"] = max(stats["max"], dt)
        except Exception as e:
            stats["errors"] += 1
            note(stats, "churn connection %d: %s: %s" % (i, type(e).__name__, e))
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    stats["connections"] = i
    results.put(stats)


# ---- snapshotter: live snapshots through the control socket ----

def control_call(path, execute, arguments):
    """One request on the control socket (docs/control.md); returns the
    answer's "return", raises on an error answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(120)
        c.connect(path)
        c.sendall((json.dumps({"execute": execute, "arguments": arguments})
                   + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                raise IOError("the control socket closed without an answer")
            buf += chunk
    answer = json.loads(buf)
    if "error" in answer:
        raise IOError("%s: %s" % (answer["error"].get("class"),
                                  answer["error"].get("desc")))
    return answer["return"]


def snapshotter(ctl, session, stop, results):
    """Every SNAPSHOT_SECS: create soak-SESSION-N, delete soak-SESSION-(N-3).
    ops counts the snapshot calls, max the slowest one (the clients' pause
    is in their own latency figures)."""
    stats = new_stats("snapshots")
    n = 0
    while not stop.wait(SNAPSHOT_SECS):
        try:
            t0 = time.monotonic()
            control_call(ctl, "snapshot-create",
                         {"name": "soak-%d-%d" % (session, n)})
            stats["ops"] += 1
            if n >= SNAPSHOTS_KEPT:
                control_call(ctl, "snapshot-delete",
                             {"name": "soak-%d-%d" % (session, n - SNAPSHOTS_KEPT)})
                stats["ops"] += 1
            stats["max"] = max(stats["max"], time.monotonic() - t0)
            stats["writes"] += 1            # snapshots taken
        except Exception as e:
            stats["errors"] += 1
            note(stats, "snapshot %d: %s: %s" % (n, type(e).__name__, e))
        n += 1
    results.put(stats)


# ---- slow reader: raw NBD, big reads, drained slowly ----

def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return bytes(buf)


def slow_reader(sock, session, stop, results):
    stats = new_stats("slow")
    cid = 0x510
    try:
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.connect(sock)
        hello = recv_exact(s, 18)
        assert hello[:16] == b"NBDMAGICIHAVEOPT", hello
        s.sendall(struct.pack(">I", 3))     # fixed newstyle, no zeroes
        s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, 0))   # EXPORT_NAME ""
        size, _flags = struct.unpack(">QH", recv_exact(s, 10))
        assert size >= EXPORT_NEEDED

        def request(typ, handle, off, length, payload=b""):
            s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, typ, handle, off,
                                  length) + payload)

        def reply():
            magic, err, h = struct.unpack(">IIQ", recv_exact(s, 16))
            if magic != 0x67446698:
                raise RuntimeError("bad reply magic %#x" % magic)
            return err, h

        # Fill the two big-read areas once, then read them back slowly.
        nblk = 2 * SLOW_READ // BLOCK
        want = b"".join(block_data(cid, b, session + 1)
                        for b in range(nblk))
        for k in range(0, len(want), 4 * MiB):
            part = want[k:k + 4 * MiB]
            request(1, 1, SLOW_OFF + k, len(part), part)
            if reply()[0]:
                raise RuntimeError("write failed")
        handle = 10
        chunk = 64 * 1024
        while not stop.is_set():
            # Two big reads outstanding, drained at SLOW_RATE.
            t0 = time.monotonic()
            request(0, handle, SLOW_OFF, SLOW_READ)
            request(0, handle + 1, SLOW_OFF + SLOW_READ, SLOW_READ)
            for _ in range(2):
                # The server may answer the two in either order.
                err, h = reply()
                j = h - handle
                if j not in (0, 1):
                    raise RuntimeError("reply for unknown handle %d" % h)
                if err:
                    stats["errors"] += 1
                    note(stats, "slow read error %d" % err)
                    continue
                got = bytearray()
                while len(got) < SLOW_READ:
                    got += recv_exact(s, min(chunk, SLOW_READ - len(got)))
                    time.sleep(chunk / SLOW_RATE)
                if got != want[j * SLOW_READ:(j + 1) * SLOW_READ]:
                    stats["mismatches"] += 1
                    note(stats, "slow read %d differs" % j)
                stats["reads"] += 1
                stats["ops"] += 1
                stats["bytes"] += SLOW_READ
            stats["max"] = max(stats["max"], time.monotonic() - t0)
            handle += 2
        request(2, 0, 0, 0)                 # NBD_CMD_DISC
        s.close()
    except Exception as e:
        stats["errors"] += 1
        note(stats, "slow reader: %s: %s" % (type(e).__name__, e))
    results.put(stats)


# ---- the server's resources ----

def server_usage(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])          # KiB
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def session(ctx, sock, pid, number, seconds, label):
    """Connect everyone, write the regions, run SECONDS of load with the
    churn and the slow reader, then have everyone leave.  Returns the
    stats by kind and the server's usage at the start and the end of the
    load."""
    stop, results = ctx.Event(), ctx.Queue()
    ready = ctx.Semaphore(0)
    groups = [list(range(CLIENTS))[p::PROCS] for p in range(PROCS)]
    procs = [ctx.Process(target=worker,
                         args=(g, sock, number, ready, stop, results))
             for g in groups if g]
    kinds = ["clients"] * len(procs)
    extras = [("churn", churn, sock), ("slow", slow_reader, sock)]
    if CONTROL:
        extras.append(("snapshots", snapshotter, CONTROL))
    for kind, fn, where in extras:
        procs.append(ctx.Process(target=fn,
                                 args=(where, number, stop, results)))
        kinds.append(kind)
    t0 = time.monotonic()
    for p in procs[:-len(extras)]:
        p.start()
    for _ in procs[:-len(extras)]:
        ready.acquire()
    print("soak: %s: %d clients connected and their %d MiB written in %.1f s"
          % (label, CLIENTS, CLIENTS * REGION // MiB, time.monotonic() - t0),
          flush=True)
    for p in procs[-len(extras):]:
        p.start()
    loaded = [server_usage(pid)]
    t_start = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - t_start)
        if left <= 0:
            break
        time.sleep(min(10.0, left))
        rss, fds = server_usage(pid)
        loaded.append((rss, fds))
        print("soak: %s: %4.0f s  server RSS %d KiB, %d fds, load %s"
              % (label, time.monotonic() - t_start, rss, fds,
                 open("/proc/loadavg").read().split()[0]), flush=True)
    stop.set()
    by_kind = {k: new_stats(k) for k in ("clients", "churn", "slow",
                                         "snapshots")}
    kinds = {p.pid: k for p, k in zip(procs, kinds)}
    for k in by_kind.values():
        k["connections"] = 0
    pending = set(kinds)
    deadline = time.monotonic() + 180
    while pending and time.monotonic() < deadline:
        try:
            s = results.get(timeout=1)
        except queue.Empty:
            # A process that died without its report (killed from outside,
            # or a crash in the bindings) must not hang the soak.
            for p in procs:
                if p.pid in pending and not p.is_alive() and results.empty():
                    pending.discard(p.pid)
                    st = by_kind[kinds[p.pid]]
                    st["errors"] += 1
                    note(st, "%s process %d died (exit code %s) without a "
                         "report" % (kinds[p.pid], p.pid, p.exitcode))
            continue
        pending.discard(s["pid"])
        merge(by_kind[s["kind"]], s)
        by_kind[s["kind"]]["connections"] += s.get("connections", 0)
    for pid in pending:
        note(by_kind[kinds[pid]], "process %d did not report in time" % pid)
        by_kind[kinds[pid]]["errors"] += 1
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    return by_kind, loaded


def settle(pid, before):
    """The server's usage once it has let go of the clients: wait until its
    fd count stops falling (at most 10 s)."""
    last = server_usage(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = server_usage(pid)
        if now[1] <= before[1] or now == last:
            break
        last = now
    return server_usage(pid)


def main():
    sock, pid = sys.argv[1], int(sys.argv[2])
    ctx = mp.get_context("fork")
    idle0 = server_usage(pid)
    if not CONTROL:
        print("soak: no SOAK_CONTROL: no live snapshots", flush=True)
    warm, _ = session(ctx, sock, pid, 0, WARMUP, "warm-up")
    idle1 = settle(pid, idle0)
    run, loaded = session(ctx, sock, pid, 1, SECONDS, "run")
    idle2 = settle(pid, idle0)

    c, ch, sl, sn = run["clients"], run["churn"], run["slow"], run["snapshots"]
    w_errors = sum(s["errors"] for s in warm.values())
    w_mism = sum(s["mismatches"] for s in warm.values())
    errors = sum(s["errors"] for s in run.values())
    mism = sum(s["mismatches"] for s in run.values())
    ops = c["ops"] + ch["ops"] + sl["ops"]
    print()
    print("soak: %d verifying clients at QD%d for %g s (after a %g s "
          "warm-up session), %d MiB regions, %d client processes"
          % (CLIENTS, QD, SECONDS, WARMUP, REGION // MiB, PROCS))
    print("  operations   %d: clients %d (%d reads, %d writes; %.0f/s, "
          "%.1f MB/s), churn %d, slow reader %d"
          % (ops, c["ops"], c["reads"], c["writes"], c["ops"] / SECONDS,
             c["bytes"] / SECONDS / 1e6, ch["ops"], sl["ops"]))
    print("  churn        %d connections (%.1f/s), slowest %.0f ms"
          % (ch["connections"], ch["connections"] / SECONDS, ch["max"] * 1e3))
    print("  slow reader  %d reads of %d MiB drained at %g MiB/s, "
          "slowest pair %.1f s"
          % (sl["reads"], SLOW_READ // MiB, SLOW_RATE / MiB, sl["max"]))
    if CONTROL:
        print("  snapshots    %d taken every %g s through the control socket "
              "(and the older ones deleted), slowest create+delete %.0f ms"
              % (sn["writes"], SNAPSHOT_SECS, sn["max"] * 1e3))
    print("  errors       %d (goal 0)%s" % (errors, "; warm-up: %d" % w_errors
                                           if w_errors else ""))
    print("  mismatches   %d (goal 0)%s" % (mism, "; warm-up: %d" % w_mism
                                            if w_mism else ""))
    for s in list(warm.values()) + list(run.values()):
        for n in s["notes"]:
            print("    " + n)
    print("  latency      p50 %.2f ms, p99 %.2f ms, max %.1f ms "
          "(verifying clients, submit to completion seen)"
          % (hist_quantile(c["hist"], 0.5), hist_quantile(c["hist"], 0.99),
             c["max"] * 1e3))
    print("  server RSS KiB / fds:")
    for label, (rss, fds) in [
            ("idle, before any client", idle0),
            ("idle, after the warm-up (start)", idle1),
            ("under load, start of the run", loaded[0]),
            ("under load, end of the run", loaded[-1]),
            ("idle, after the run (end)", idle2)]:
        print("    %-34s %8d / %d" % (label, rss, fds))
    rss_growth = idle2[0] - idle1[0]
    fd_growth = idle2[1] - idle1[1]
    print("  growth       RSS %+d KiB (goal <= 1024), fds %+d (goal 0), "
          "idle end against idle start" % (rss_growth, fd_growth))
    fails = []
    if errors or w_errors:
        fails.append("errors")
    if mism or w_mism:
        fails.append("mismatches")
    if rss_growth > 1024:
        fails.append("RSS growth")
    if fd_growth > 0 or idle2[1] > idle0[1]:
        fails.append("fd growth")
    print("soak: %s" % ("PASS" if not fails else "FAIL: " + ", ".join(fails)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
