# SPDX-License-Identifier: BSD-3-Clause
# Error codes and request handling checked with libnbd, strict mode off so
# that the server, not the client, decides.  Prints "PASS desc" or
# "FAIL desc :: detail" lines; errors.sh turns them into TAP.
#   /usr/bin/python3 errors.py SOCKET   (exports "rw" and "ro")
import errno
import sys

import nbd

sock = sys.argv[1]


def uri(name):
    return "nbd+unix:///%s?socket=%s" % (name, sock)


def res(ok, desc, detail=""):
    print(("PASS " if ok else "FAIL ") + desc +
          ("" if ok or not detail else " :: " + detail))
    sys.stdout.flush()


def errname(e):
    # libnbd gives the errno as its symbolic name.
    return e.errno if isinstance(e.errno, str) else errno.errorcode.get(e.errno)


def expect_err(desc, fn, want):
    try:
        fn()
        res(False, desc, "succeeded")
    except nbd.Error as e:
        res(errname(e) == errno.errorcode[want], desc,
            "errno %s (%s)" % (e.errno, e.string))


def expect_ok(desc, fn):
    try:
        fn()
        res(True, desc)
    except nbd.Error as e:
        res(False, desc, "errno %s (%s)" % (e.errno, e.string))


def handle(name, structured=True):
    h = nbd.NBD()
    h.set_strict_mode(0)
    h.set_request_structured_replies(structured)
    h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri(name))
    return h


def noop_extent(*args):
    return 0


for structured in (True, False):
    tag = "structured" if structured else "simple replies"
    h = handle("rw", structured)
    size = h.get_size()
    expect_err("%s: write past the end gets ENOSPC" % tag,
               lambda: h.pwrite(b"x" * 512, size), errno.ENOSPC)
    expect_err("%s: write straddling the end gets ENOSPC" % tag,
               lambda: h.pwrite(b"x" * 1024, size - 512), errno.ENOSPC)
    expect_err("%s: read past the end gets EINVAL" % tag,
               lambda: h.pread(512, size), errno.EINVAL)
    expect_err("%s: write zeroes past the end gets ENOSPC" % tag,
               lambda: h.zero(512, size), errno.ENOSPC)
    expect_err("%s: trim past the end gets EINVAL" % tag,
               lambda: h.trim(512, size), errno.EINVAL)
    expect_err("%s: read at offset 2^64-512 (wraps) gets EINVAL" % tag,
               lambda: h.pread(1024, 2**64 - 512), errno.EINVAL)
    expect_err("%s: read with the NO_HOLE flag (not for READ) gets EINVAL"
               % tag, lambda: h.pread(512, 0, nbd.CMD_FLAG_NO_HOLE),
               errno.EINVAL)
    # libnbd itself refuses requests over 64 MiB (ERANGE) before sending;
    # the server's own check is tested by rawclient.py and bigio.py.
    expect_err("%s: read over the 64 MiB maximum is refused" % tag,
               lambda: h.pread(64 * 1024 * 1024 + 1, 0), errno.ERANGE)
    if structured:
        expect_err("%s: block status past the end gets EINVAL" % tag,
                   lambda: h.block_status(512, size, noop_extent),
                   errno.EINVAL)
    expect_ok("%s: write with FUA accepted" % tag,
              lambda: h.pwrite(b"f" * 4096, 0, nbd.CMD_FLAG_FUA))
    expect_ok("%s: flush accepted" % tag, lambda: h.flush())
    expect_ok("%s: write zeroes with FUA and NO_HOLE accepted" % tag,
              lambda: h.zero(4096, 8192,
                             nbd.CMD_FLAG_FUA | nbd.CMD_FLAG_NO_HOLE))
    expect_ok("%s: cache accepted" % tag, lambda: h.cache(65536, 0))
    expect_ok("%s: zero-length read answered" % tag, lambda: h.pread(0, 0))
    expect_ok("%s: zero-length write answered" % tag,
              lambda: h.pwrite(b"", 0))
    expect_ok("%s: zero-length write zeroes answered" % tag,
              lambda: h.zero(0, 0))
    d = h.pread(4096, 0)
    res(d == b"f" * 4096, "%s: data written with FUA reads back" % tag)
    if structured:
        expect_ok("%s: read with DF (don't fragment) accepted" % tag,
                  lambda: h.pread(65536, 0, nbd.CMD_FLAG_DF))

    # 16 requests in flight at once, completing in any order.
    bufs = []
    cookies = []
    for i in range(8):
        cookies.append(h.aio_pwrite(bytes([0x40 + i]) * 65536,
                                    1048576 + i * 65536))
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for i in range(8):
        b = nbd.Buffer(65536)
        bufs.append(b)
        cookies.append(h.aio_pread(b, 1048576 + i * 65536))
    for i in range(8):
        cookies.append(h.aio_pwrite(bytes([0x60 + i]) * 4096,
                                    2097152 + i * 4096, flags=0))
    peak = h.aio_in_flight()
    while h.aio_in_flight() > 0:
        h.poll(-1)
    done = all(h.aio_command_completed(c) for c in cookies)
    good = all(bufs[i].to_bytearray() == bytes([0x40 + i]) * 65536
               for i in range(8))
    res(done and good and peak >= 16,
        "%s: 16 requests in flight all answered with the right data" % tag,
        "peak %d, completed %s, data %s" % (peak, done, good))
    h.shutdown()

r = handle("ro")
res(r.is_read_only(), "read-only export advertised read-only")
expect_err("write on a read-only export gets EPERM",
           lambda: r.pwrite(b"x" * 512, 0), errno.EPERM)
expect_err("write zeroes on a read-only export gets EPERM",
           lambda: r.zero(512, 0), errno.EPERM)
expect_err("trim on a read-only export gets EPERM",
           lambda: r.trim(512, 0), errno.EPERM)
expect_ok("read on a read-only export works", lambda: r.pread(512, 0))
r.shutdown()

u = nbd.NBD()
try:
    u.connect_uri(uri("no-such-export"))
    res(False, "unknown export refused with NBD_REP_ERR_UNKNOWN", "connected")
except nbd.Error as e:
    res(errname(e) == "ENOENT",
        "unknown export refused with NBD_REP_ERR_UNKNOWN (ENOENT)",
        "errno %s (%s)" % (e.errno, e.string))

# LIST and INFO without GO.
l = nbd.NBD()
l.set_opt_mode(True)
l.connect_uri(uri(""))
names = []
l.opt_list(lambda name, desc: names.append((name, desc)))
res(sorted(n for n, _ in names) == ["ro", "rw"],
    "LIST names both exports", repr(names))
l.set_export_name("ro")
l.opt_info()
res(l.get_size() == size and l.is_read_only(),
    "INFO on 'ro' gives its size and read-only flag")
l.set_export_name("nope")
try:
    l.opt_info()
    res(False, "INFO on an unknown export fails and haggling goes on")
except nbd.Error:
    l.set_export_name("rw")
    l.opt_go()
    res(l.get_size() == size,
        "INFO on an unknown export fails and haggling goes on")
l.shutdown()
