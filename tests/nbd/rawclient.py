# SPDX-License-Identifier: BSD-3-Clause
# Protocol abuse against the blkhost NBD server with a raw socket client.
#   /usr/bin/python3 rawclient.py SOCKET SERVER_PID [CYCLES]
# The export must be 80 MiB and writable.  Prints "PASS desc" or
# "FAIL desc :: detail"; badinput.sh turns them into TAP.
import os
import socket
import struct
import sys
import time

SOCK = sys.argv[1]
PID = int(sys.argv[2])
CYCLES = int(sys.argv[3]) if len(sys.argv) > 3 else 1000

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x3E889045565A9
REQMAGIC = 0x25609513
SIMPLE = 0x67446698
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO = 6, 7
REP_ACK, REP_INFO = 1, 3
ERR = 1 << 31
REP_ERR_UNSUP, REP_ERR_POLICY, REP_ERR_INVALID = ERR + 1, ERR + 2, ERR + 3
REP_ERR_UNKNOWN, REP_ERR_TOO_BIG = ERR + 6, ERR + 9
CMD_READ, CMD_WRITE, CMD_DISC, CMD_TRIM = 0, 1, 2, 4
EINVAL, EPERM = 22, 1
SIZE = 80 * 1024 * 1024


def res(ok, desc, detail=""):
    print(("PASS " if ok else "FAIL ") + desc +
          ("" if ok or not detail else " :: " + str(detail)))
    sys.stdout.flush()


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(SOCK)
    return s


def recvall(s, n):
    buf = b""
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c:
            raise EOFError("server closed the connection")
        buf += c
    return buf


def greet(s, flags=1):
    magic, opt, hflags = struct.unpack(">QQH", recvall(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting"
    s.sendall(struct.pack(">I", flags))
    return hflags


def send_opt(s, o, data=b"", length=None, magic=IHAVEOPT):
    s.sendall(struct.pack(">QII", magic, o,
                          len(data) if length is None else length) + data)


def opt_reply(s):
    magic, o, t, ln = struct.unpack(">QIII", recvall(s, 20))
    assert magic == REPMAGIC, "bad option reply magic"
    return o, t, recvall(s, ln)


def go(s, name=b"", o=OPT_GO):
    send_opt(s, o, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    while True:
        _, t, d = opt_reply(s)
        if t != REP_INFO:
            return t, d


def closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def request(s, typ, off, ln, flags=0, cookie=1, payload=b""):
    s.sendall(struct.pack(">IHHQQI", REQMAGIC, flags, typ, cookie, off, ln) +
              payload)


def simple_reply(s):
    magic, err, cookie = struct.unpack(">IIQ", recvall(s, 16))
    assert magic == SIMPLE, "bad reply magic 0x%x" % magic
    return err, cookie


def session():
    s = connect()
    greet(s)
    t, d = go(s)
    assert t == REP_ACK, "GO failed: 0x%x %r" % (t, d)
    return s


def read(s, off, ln, cookie=7):
    request(s, CMD_READ, off, ln, cookie=cookie)
    err, c = simple_reply(s)
    assert c == cookie, "cookie mismatch"
    return recvall(s, ln) if err == 0 else err


def alive():
    """A fresh client can still read."""
    try:
        s = session()
        d = read(s, 0, 4096)
        request(s, CMD_DISC, 0, 0)
        s.close()
        return isinstance(d, bytes)
    except Exception as e:
        print("# alive() failed: %s" % e)
        return False


def case(desc, fn):
    try:
        ok, detail = fn()
    except Exception as e:
        ok, detail = False, "%s: %s" % (type(e).__name__, e)
    res(ok and alive(), desc, detail)


# ---- handshake abuse ----

def unknown_client_flags():
    s = connect()
    greet(s, flags=0x1 | 0x80)
    return closed(s), "connection stayed open"


def bad_option_magic():
    s = connect()
    greet(s)
    send_opt(s, OPT_LIST, magic=0x1122334455667788)
    return closed(s), "connection stayed open"


def request_before_go():
    s = connect()
    greet(s)
    request(s, CMD_READ, 0, 512)
    return closed(s), "connection stayed open"


def option_too_long():
    s = connect()
    greet(s)
    send_opt(s, 99, b"z" * 4097)
    _, t, d = opt_reply(s)
    t2, _ = go(s)
    return (t == REP_ERR_TOO_BIG and t2 == REP_ACK,
            "reply 0x%x %r, then GO 0x%x" % (t, d, t2))


def option_absurd_length():
    s = connect()
    greet(s)
    send_opt(s, OPT_GO, length=2**31)
    return closed(s), "connection stayed open"


def unknown_export_go():
    s = connect()
    greet(s)
    t, d = go(s, b"no-such-export")
    t2, _ = go(s, b"")
    return (t == REP_ERR_UNKNOWN and b"not found" in d and t2 == REP_ACK,
            "reply 0x%x %r, then GO 0x%x" % (t, d, t2))


def unknown_export_name():
    s = connect()
    greet(s)
    send_opt(s, OPT_EXPORT_NAME, b"no-such-export")
    return closed(s), "connection stayed open"


def malformed_go():
    s = connect()
    greet(s)
    # name length 100 but only 3 bytes follow
    send_opt(s, OPT_GO, struct.pack(">I", 100) + b"abc")
    _, t, _ = opt_reply(s)
    t2, _ = go(s)
    return (t == REP_ERR_INVALID and t2 == REP_ACK,
            "reply 0x%x then GO 0x%x" % (t, t2))


def starttls_and_unknown():
    s = connect()
    greet(s)
    send_opt(s, OPT_STARTTLS)
    _, t1, _ = opt_reply(s)
    send_opt(s, 4242)
    _, t2, _ = opt_reply(s)
    send_opt(s, OPT_LIST, b"x")
    _, t3, _ = opt_reply(s)
    send_opt(s, OPT_ABORT)
    _, t4, _ = opt_reply(s)
    return ((t1, t2, t3, t4) == (REP_ERR_POLICY, REP_ERR_UNSUP,
                                 REP_ERR_INVALID, REP_ACK),
            "replies %s" % [hex(t) for t in (t1, t2, t3, t4)])


# ---- transmission abuse ----

def bad_request_magic():
    s = session()
    s.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, CMD_READ, 1, 0, 512))
    return closed(s), "connection stayed open"


def write_over_max():
    s = session()
    before = read(s, 0, 4096)
    n = 64 * 1024 * 1024 + 4096
    request(s, CMD_WRITE, 0, n, cookie=5)
    s.sendall(b"\xee" * n)
    err, c = simple_reply(s)
    after = read(s, 0, 4096)
    return (err == EINVAL and c == 5 and after == before,
            "error %d, data changed %s" % (err, after != before))


def zero_length():
    s = session()
    errs = []
    for typ in (CMD_READ, CMD_WRITE, CMD_TRIM, 6, 5):
        request(s, typ, 4096, 0, cookie=typ + 10)
        errs.append(simple_reply(s)[0])
    d = read(s, 0, 512)
    return (isinstance(d, bytes) and errs == [0, 0, 0, 0, 0],
            "errors %s" % errs)


def unknown_command():
    s = session()
    request(s, 99, 0, 512, cookie=3)
    err, c = simple_reply(s)
    d = read(s, 0, 512)
    return (err == EINVAL and c == 3 and isinstance(d, bytes),
            "error %d" % err)


def mid_payload():
    a = session()
    request(a, CMD_WRITE, 8192, 4096, cookie=1, payload=b"\xaa" * 4096)
    e1, _ = simple_reply(a)
    b = session()
    request(b, CMD_WRITE, 0, 1024 * 1024, cookie=2)
    b.sendall(b"\x55" * 1000)
    b.close()
    time.sleep(0.2)
    d = read(a, 8192, 4096)
    request(a, CMD_WRITE, 12288, 4096, cookie=3, payload=b"\xbb" * 4096)
    e2, _ = simple_reply(a)
    first = read(a, 0, 1000)
    return (e1 == 0 and e2 == 0 and d == b"\xaa" * 4096 and
            first != b"\x55" * 1000,
            "other client: write %d/%d, data ok %s, partial write applied %s"
            % (e1, e2, d == b"\xaa" * 4096, first == b"\x55" * 1000))


def in_flight_then_disc():
    s = session()
    for i in range(20):
        request(s, CMD_READ, i * 65536, 65536, cookie=100 + i)
    request(s, CMD_DISC, 0, 0)
    got = set()
    for _ in range(20):
        err, c = simple_reply(s)
        recvall(s, 65536)
        got.add(c)
    return (got == set(range(100, 120)) and closed(s),
            "answered %d of 20" % len(got))


# ---- resource use ----

def fd_count():
    return len(os.listdir("/proc/%d/fd" % PID))


def rss_kib():
    with open("/proc/%d/status" % PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cycle(i):
    s = connect()
    if i % 3 == 0:
        s.close()                       # connect and vanish
        return
    greet(s)
    if i % 3 == 1:
        t, _ = go(s)
        assert t == REP_ACK
        read(s, (i * 4096) % SIZE, 4096)
        request(s, CMD_DISC, 0, 0)      # clean disconnect
    else:
        send_opt(s, OPT_LIST)           # list, then hang up mid-haggle
        while opt_reply(s)[1] != REP_ACK:
            pass
    s.close()


def fd_targets():
    d = "/proc/%d/fd" % PID
    out = {}
    for f in os.listdir(d):
        try:
            out[f] = os.readlink(os.path.join(d, f))
        except OSError:
            pass
    return out


def settle(want_fds, limit=10.0):
    """The server's fd count once it is at most want_fds (connection
    threads finish a moment after the client hangs up), or after limit."""
    end = time.time() + limit
    n = fd_count()
    while n > want_fds and time.time() < end:
        time.sleep(0.05)
        n = fd_count()
    return n


def under_asan():
    # AddressSanitizer's shadow memory ends at 0x10007fff8000 on x86-64.
    with open("/proc/%d/maps" % PID) as f:
        return any(line.split()[0].endswith("-10007fff8000") for line in f)


def churn():
    for i in range(100):                # warm up thread stacks and caches
        cycle(i)
    fds0 = settle(0, 1.0)
    before = fd_targets()
    rss0 = rss_kib()
    t0 = time.time()
    for i in range(CYCLES):
        cycle(i)
    took = time.time() - t0
    fds1 = settle(fds0)
    rss1 = rss_kib()
    print("# %d cycles in %.2fs: fds %d -> %d, VmRSS %d -> %d KiB"
          % (CYCLES, took, fds0, fds1, rss0, rss1))
    if fds1 > fds0:
        after = fd_targets()
        print("# fds before: %s" % sorted(before.items()))
        print("# fds after: %s" % sorted(after.items()))
    res(fds1 <= fds0, "%d connect/disconnect cycles leave no fd behind "
        "(%d -> %d)" % (CYCLES, fds0, fds1))
    desc = ("%d connect/disconnect cycles grow VmRSS by less than 8 MiB "
            "(%d -> %d KiB)" % (CYCLES, rss0, rss1))
    if under_asan():
        # Freed memory sits in ASan's quarantine; LeakSanitizer checks
        # leaks in that build instead.
        print("SKIP " + desc + ": the server runs under AddressSanitizer")
    else:
        res(rss1 - rss0 < 8192, desc)


case("client sets unknown handshake flags: connection dropped",
     unknown_client_flags)
case("wrong IHAVEOPT magic in the first option: connection dropped",
     bad_option_magic)
case("transmission request before GO: connection dropped", request_before_go)
case("option length 4097 (over 4096): NBD_REP_ERR_TOO_BIG, haggling goes on",
     option_too_long)
case("option length 2^31: connection dropped", option_absurd_length)
case("GO for an unknown export: NBD_REP_ERR_UNKNOWN with a message, "
     "haggling goes on", unknown_export_go)
case("EXPORT_NAME for an unknown export: connection dropped",
     unknown_export_name)
case("GO whose name length overruns the option: NBD_REP_ERR_INVALID",
     malformed_go)
case("STARTTLS gets ERR_POLICY, unknown option ERR_UNSUP, LIST with data "
     "ERR_INVALID, ABORT ACK", starttls_and_unknown)
case("request with a bad magic: connection dropped", bad_request_magic)
case("write payload of 64 MiB + 4 KiB (over the maximum): EINVAL, nothing "
     "written, connection goes on", write_over_max)
case("zero-length read, write, trim, write-zeroes, cache: answered, no "
     "disconnect", zero_length)
case("unknown command 99: EINVAL, connection goes on", unknown_command)
case("client vanishing mid-payload: other clients unaffected, partial "
     "write not applied", mid_payload)
case("DISC after 20 queued reads: all 20 answered, then closed",
     in_flight_then_disc)
churn()
