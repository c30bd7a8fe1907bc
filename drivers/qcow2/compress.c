/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 compressed clusters: read one and inflate it into a whole cluster.
 *
 * zlib images (compression_type 0) hold raw deflate data (no zlib header,
 * 4 KiB window: inflateInit2 with -12 window bits, what QEMU writes);
 * zstd images (compression_type 1) hold zstd frames.  The descriptor gives
 * the number of 512-byte sectors, counted from the sector holding the
 * start, so the stored length is a bound: the data may end earlier and the
 * last compressed cluster may even run past the end of the file.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <zlib.h>
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

static int inflate_deflate(const uint8_t *src, size_t slen, uint8_t *dst,
                           size_t dlen)
{
    z_stream z = { 0 };
    int ret;

    if (inflateInit2(&z, -12) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)src;
    z.avail_in = slen;
    z.next_out = dst;
    z.avail_out = dlen;
    ret = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    /* A full output buffer is success even if the stream end was not
     * seen (trailing sector padding). */
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0)
        return 0;
    return -EIO;
}

#ifdef HAVE_ZSTD
static int inflate_zstd(const uint8_t *src, size_t slen, uint8_t *dst,
                        size_t dlen)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer in = { src, slen, 0 };
    ZSTD_outBuffer out = { dst, dlen, 0 };
    int ret = -EIO;

    if (!dctx)
        return -ENOMEM;
    while (out.pos < out.size) {
        size_t zr = ZSTD_decompressStream(dctx, &out, &in);
        if (ZSTD_isError(zr))
            break;
        if (in.pos == in.size && out.pos < out.size && zr != 0)
            break;   /* needs more input than there is */
        if (zr == 0 && out.pos < out.size && in.pos == in.size)
            break;
    }
    if (out.pos == out.size)
        ret = 0;
    ZSTD_freeDCtx(dctx);
    return ret;
}
#endif

/* Called without the lock: l2e was read under it and checked. */
int qcow2_read_compressed(Qcow2State *s, uint64_t l2e, void *cluster_buf,
                          BhError **errp)
{
    uint64_t coff = l2e & s->coffset_mask;
    uint64_t nsec = ((l2e >> s->csize_shift) & s->csize_mask) + 1;
    uint64_t clen = nsec * 512 - (coff & 511);
    int64_t flen = bh_node_size(s->file);
    g_autofree uint8_t *cbuf = NULL;
    int ret;

    if (flen < 0 || coff >= (uint64_t)flen)
        return bh_error_set(errp, EIO, "qcow2: compressed data at 0x%" PRIx64
                            " is past the end of the file", coff);
    if (coff + clen > (uint64_t)flen)
        clen = (uint64_t)flen - coff;
    cbuf = g_malloc(clen);
    ret = bh_node_pread(s->file, cbuf, coff, clen, 0, errp);
    if (ret < 0)
        return ret;
    if (s->compression_type == 0)
        ret = inflate_deflate(cbuf, clen, cluster_buf, s->cluster_size);
#ifdef HAVE_ZSTD
    else
        ret = inflate_zstd(cbuf, clen, cluster_buf, s->cluster_size);
#else
    else
        ret = -ENOTSUP;
#endif
    if (ret < 0)
        return bh_error_set(errp, EIO, "qcow2: cannot decompress the %s "
                            "cluster at host offset 0x%" PRIx64 " (%" PRIu64
                            " bytes)", s->compression_type ? "zstd" : "deflate",
                            coff, clen);
    return 0;
}
