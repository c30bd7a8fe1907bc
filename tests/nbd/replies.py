# SPDX-License-Identifier: BSD-3-Clause
# Read replies arrive intact, in every reply shape the server sends: plain
# and TLS, simple and structured replies, one at a time and many in flight
# at once (so that some replies meet a full socket and are finished by the
# connection's writer thread), dense and sparse data.
# Usage: replies.py IMAGE URI [URI...]  (URIs may carry tls-psk-file=)
import sys
import nbd

img, uris = sys.argv[1], sys.argv[2:]
with open(img, "rb") as f:
    data = f.read()
KiB, MiB = 1 << 10, 1 << 20
LENGTHS = (1, 511, 4096, 65536, MiB + 1, 32 * MiB)
SPARSE = 40 * MiB            # where replies.sh wrote the sparse pattern


def res(ok, desc, why=""):
    print("%s %s%s" % ("PASS" if ok else "FAIL", desc,
                       "" if ok else " :: " + why), flush=True)


def first_diff(a, b):
    if len(a) != len(b):
        return "length %d, expected %d" % (len(a), len(b))
    for i in range(len(a)):
        if a[i] != b[i]:
            return "first difference at byte %d" % i
    return "same"


def connect(uri, structured):
    h = nbd.NBD()
    h.set_uri_allow_local_file(True)
    h.set_request_structured_replies(structured)
    h.connect_uri(uri)
    return h


for uri in uris:
    tls = uri.startswith("nbds")
    for structured in (True, False):
        what = "%s, %s replies" % ("TLS" if tls else "plain",
                                   "structured" if structured else "simple")
        h = connect(uri, structured)
        res(h.get_structured_replies_negotiated() == structured and
            h.get_tls_negotiated() == tls,
            "%s: negotiated as asked" % what)

        bad = []
        for n in LENGTHS:
            for off in (0, 12345):
                got = h.pread(n, off)
                if got != data[off:off + n]:
                    bad.append("%d at %d: %s" % (n, off,
                               first_diff(got, data[off:off + n])))
        res(not bad, "%s: reads of %s bytes at offsets 0 and 12345 match "
            "the image" % (what, ", ".join(map(str, LENGTHS))), "; ".join(bad))

        # Everything in flight at once: a 32 MiB reply fills the socket,
        # so the replies behind it wait in the connection's queue.
        reqs = []
        for i in range(48):
            n = LENGTHS[i % len(LENGTHS)]
            off = (i * 777773) % (36 * MiB - n)
            buf = nbd.Buffer(n)
            reqs.append((h.aio_pread(buf, off), buf, off, n))
        while h.aio_in_flight() > 0:
            h.poll(-1)
        bad = []
        for cookie, buf, off, n in reqs:
            if not h.aio_command_completed(cookie):
                bad.append("read %d at %d did not complete" % (n, off))
            elif buf.to_bytearray() != data[off:off + n]:
                bad.append("%d at %d: %s" % (n, off, first_diff(
                    bytes(buf.to_bytearray()), data[off:off + n])))
        res(not bad, "%s: 48 reads of mixed sizes in flight together all "
            "match the image" % what, "; ".join(bad))

        # The sparse area: data and holes alternate, more runs than one
        # reply has chunks.
        n = 2 * MiB + 4096
        got = h.pread(n, SPARSE)
        res(got == data[SPARSE:SPARSE + n],
            "%s: a read over alternating data and holes matches the image"
            % what, first_diff(got, data[SPARSE:SPARSE + n]))
        if structured:
            seen = []

            def chunk(subbuf, offset, status, err):
                seen.append((offset, len(subbuf), status, bytes(subbuf)))
                return 0
            h.pread_structured(n, SPARSE, chunk)
            seen.sort()
            pos, why = SPARSE, ""
            for off, ln, status, sub in seen:
                if off != pos:
                    why = "chunk at %d, expected %d" % (off, pos)
                    break
                if status == nbd.READ_DATA and sub != data[off:off + ln]:
                    why = "data chunk at %d differs" % off
                    break
                if status == nbd.READ_HOLE and data[off:off + ln].strip(b"\0"):
                    why = "hole chunk at %d covers data" % off
                    break
                pos = off + ln
            if not why and pos != SPARSE + n:
                why = "chunks end at %d, expected %d" % (pos, SPARSE + n)
            kinds = {s for _, _, s, _ in seen}
            if not why and kinds != {nbd.READ_DATA, nbd.READ_HOLE}:
                why = "chunk kinds %s, expected data and holes" % kinds
            res(not why, "%s: its %d chunks, data and holes, tile the range "
                "and hold the image's bytes" % (what, len(seen)), why)
        h.shutdown()
