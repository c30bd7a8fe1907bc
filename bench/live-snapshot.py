#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
# Helper of bench/live-snapshot.sh: takes snapshots through a server's
# control socket while fio reads, and reduces fio's per-I/O latency logs to
# a stall and a p99 per snapshot window.
#
#   live-snapshot.py snap blkhost|qsd SOCKET COUNT GAP WINDOWS
#   live-snapshot.py report BLKHOST_LATLOG BLKHOST_WINDOWS QSD_LATLOG QSD_WINDOWS
#
# Both servers are driven by the same code over a raw socket (not
# `blkhost ctl`), so that a process start never lands in one window and
# not in the other.
import json
import socket
import statistics
import sys
import time


def snap_lines(sock):
    """JSON objects read one line at a time from SOCK."""
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("live-snapshot: the control socket closed")
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        if line.strip():
            yield json.loads(line)


def snap_answer(lines):
    """The next answer (events, which QMP interleaves, skipped)."""
    for msg in lines:
        if "return" in msg or "error" in msg:
            return msg
    raise SystemExit("live-snapshot: no answer")


def snap(kind, path, count, gap, out):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    lines = snap_lines(s)
    if kind == "qsd":
        next(lines)  # the QMP greeting
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        msg = snap_answer(lines)
        if "error" in msg:
            raise SystemExit("live-snapshot: qmp_capabilities: %s" % msg)
    windows = []
    for i in range(1, count + 1):
        time.sleep(gap)
        name = "live-%d" % i
        if kind == "qsd":
            cmd = {"execute": "blockdev-snapshot-internal-sync",
                   "arguments": {"device": "disk0", "name": name}}
        else:
            cmd = {"execute": "snapshot-create", "arguments": {"name": name}}
        data = (json.dumps(cmd) + "\n").encode()
        t0 = time.time()
        s.sendall(data)
        msg = snap_answer(lines)
        t1 = time.time()
        if "error" in msg:
            raise SystemExit("live-snapshot: %s %s: %s" % (kind, name, msg))
        windows.append((t0 * 1000.0, t1 * 1000.0))
    time.sleep(gap)
    with open(out, "w") as f:
        for t0, t1 in windows:
            f.write("%.3f %.3f\n" % (t0, t1))


def report_windows(path):
    with open(path) as f:
        return [tuple(float(x) for x in line.split()) for line in f if line.strip()]


def report_stats(latlog, windows):
    """Per window: (stall ms, p99 ms, reads, snapshot ms), and the
    (max ms, p99 ms) of the reads outside every window.

    fio's lat log line: completion time (ms since the epoch, with
    log_unix_epoch), latency (ns), direction, block size, offset.  A read
    overlaps [t0, t1] when it completed at or after t0 and was issued at or
    before t1; the log's 1 ms resolution is allowed for at both ends."""
    per = [[] for _ in windows]
    outside = []
    with open(latlog) as f:
        for line in f:
            parts = line.split(",")
            if len(parts) < 3 or parts[2].strip() != "0":
                continue
            done = float(parts[0])
            lat = int(parts[1]) / 1e6
            start = done - lat
            hit = False
            for i, (t0, t1) in enumerate(windows):
                if done + 1 >= t0 and start <= t1 + 1:
                    per[i].append(lat)
                    hit = True
            if not hit:
                outside.append(lat)
    out = []
    for lats, (t0, t1) in zip(per, windows):
        if not lats:
            out.append((float("nan"), float("nan"), 0, t1 - t0))
            continue
        lats.sort()
        p99 = lats[min(len(lats) - 1, int(0.99 * len(lats)))]
        out.append((lats[-1], p99, len(lats), t1 - t0))
    outside.sort()
    base = (outside[-1], outside[min(len(outside) - 1, int(0.99 * len(outside)))]) \
        if outside else (float("nan"), float("nan"))
    return out, base


def report(blk_log, blk_win, qsd_log, qsd_win):
    b, bbase = report_stats(blk_log, report_windows(blk_win))
    q, qbase = report_stats(qsd_log, report_windows(qsd_win))
    print("| snapshot | blkhost stall ms | qsd stall ms | blkhost p99 ms | qsd p99 ms "
          "| blkhost snapshot ms | qsd snapshot ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, (rb, rq) in enumerate(zip(b, q), 1):
        print("| %d | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f |"
              % (i, rb[0], rq[0], rb[1], rq[1], rb[3], rq[3]))
    med = statistics.median
    print("| median | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f |"
          % (med(r[0] for r in b), med(r[0] for r in q),
             med(r[1] for r in b), med(r[1] for r in q),
             med(r[3] for r in b), med(r[3] for r in q)))
    mb, mq = max(r[0] for r in b), max(r[0] for r in q)
    print("| max | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f |"
          % (mb, mq, max(r[1] for r in b), max(r[1] for r in q),
             max(r[3] for r in b), max(r[3] for r in q)))
    print()
    print("longest stall blkhost / qsd: %s (goal: <= 1.00)"
          % ("%.2f" % (mb / mq) if mq else "n/a"))
    print("outside the windows: blkhost max %.1f ms, p99 %.2f ms; qsd max %.1f ms, p99 %.2f ms"
          % (bbase + qbase))
    print("reads in the windows: blkhost %d, qsd %d"
          % (sum(r[2] for r in b), sum(r[2] for r in q)))


def main(argv):
    if len(argv) == 7 and argv[1] == "snap" and argv[2] in ("blkhost", "qsd"):
        snap(argv[2], argv[3], int(argv[4]), float(argv[5]), argv[6])
    elif len(argv) == 6 and argv[1] == "report":
        report(*argv[2:])
    else:
        raise SystemExit(__doc__ if __doc__ else "usage: see bench/live-snapshot.sh")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as e:   # e.g. the server stopped under us (Ctrl-C)
        sys.exit("live-snapshot: %s" % e)
