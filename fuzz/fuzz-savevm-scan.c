/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Listing a savevm stream's sections without loading it (state/
 * savevm-scan.c, `blkhost vmstate -l`): the walker of QEMU's streams,
 * their RAM pages, footers, iterative sections and JSON trailer.  It
 * reads streams made by other programs, so its input is untrusted.
 *
 * Input: [ctl:1][hints...][stream].  ctl bits 0-1 pick the page size
 * (0: the stream's or 4096; 1024, 4096, 65536); bit 2: size hints, as
 * `blkhost vmstate` takes them from a QEMU trailer, follow ctl:
 * [n:1] then n times [size:2, big-endian][instance:1][idlen:1][idstr].
 * Checked: a NULL scan says why; a scan's sections lie inside the stream
 * in the order of their offsets; a complete scan's EOF and trailer lie
 * inside it, an incomplete one says why it stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include <blkhost/glib.h>

#define FUZZ_SCAN_MAX_HINTS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static const uint64_t page_sizes[4] = { 0, 1024, 4096, 65536 };
    BhSavevmSizeHint hints[FUZZ_SCAN_MAX_HINTS];
    char idstrs[FUZZ_SCAN_MAX_HINTS][256];
    size_t n = 0, pos = 1;

    fuzz_init();
    if (len < 1)
        return 0;
    uint8_t ctl = data[0];
    if ((ctl & 4) && pos < len) {
        size_t want = MIN(data[pos], FUZZ_SCAN_MAX_HINTS);
        pos++;
        while (n < want && pos + 4 <= len) {
            size_t idlen = data[pos + 3];
            if (pos + 4 + idlen > len)
                break;
            hints[n].size = (uint64_t)data[pos] << 8 | data[pos + 1];
            hints[n].instance_id = data[pos + 2];
            memcpy(idstrs[n], data + pos + 4, idlen);
            idstrs[n][idlen] = 0;
            hints[n].idstr = idstrs[n];
            pos += 4 + idlen;
            n++;
        }
    }
    const uint8_t *stream = data + pos;
    size_t slen = len - pos;

    BhError *err = NULL;
    BhStream *s = bh_stream_new_mem_reader(stream, slen);
    BhSavevmScan *sc = n ? bh_savevm_scan_sized(s, page_sizes[ctl & 3],
                                                hints, n, &err)
                         : bh_savevm_scan(s, page_sizes[ctl & 3], &err);
    bh_stream_close(s, NULL);
    if (!sc) {
        if (!err)
            g_error("savevm-scan: no scan and no message");
        bh_error_free(err);
        return 0;
    }
    if (err)
        g_error("savevm-scan: a scan and an error: %s", bh_error_message(err));

    uint64_t prev = 0;
    for (guint i = 0; i < sc->sections->len; i++) {
        const BhSavevmSection *sec =
            &g_array_index(sc->sections, BhSavevmSection, i);
        if (sec->offset < prev || sec->offset >= slen ||
            sec->size > slen - sec->offset)
            g_error("savevm-scan: section %u (%s) at %" G_GUINT64_FORMAT
                    ", %" G_GUINT64_FORMAT " bytes, outside a stream of %zu"
                    " or before the one listed before it", i, sec->idstr,
                    sec->offset, sec->size, slen);
        if (!memchr(sec->idstr, 0, sizeof(sec->idstr)))
            g_error("savevm-scan: section %u's name is not terminated", i);
        prev = sec->offset;
    }
    if (sc->complete) {
        if (sc->eof_offset >= slen)
            g_error("savevm-scan: EOF at %" G_GUINT64_FORMAT " past the end",
                    sc->eof_offset);
        if (sc->vmdesc && (sc->vmdesc_offset <= sc->eof_offset ||
                           sc->vmdesc_offset >= slen))
            g_error("savevm-scan: a trailer at %" G_GUINT64_FORMAT,
                    sc->vmdesc_offset);
    } else if (!sc->error || sc->stop_offset > slen) {
        g_error("savevm-scan: stopped at %" G_GUINT64_FORMAT " of %zu with%s"
                " a reason", sc->stop_offset, slen, sc->error ? "" : "out");
    }
    const char *v = g_getenv("FUZZ_VERBOSE");
    if (v && *v && strcmp(v, "0"))
        fprintf(stderr, "savevm-scan: %u sections, %s%s%s%s\n",
                sc->sections->len, sc->complete ? "complete" : "stopped: ",
                sc->complete ? "" : sc->error, sc->vmdesc ? ", a trailer" : "",
                sc->described ? ", described by hints" : "");
    bh_savevm_scan_free(sc);
    return 0;
}
