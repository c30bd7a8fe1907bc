/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 compressed clusters: reading one (inflated into a whole cluster)
 * and writing them.
 *
 * zlib images (compression_type 0) hold raw deflate data (no zlib header,
 * 4 KiB window: -12 window bits, what QEMU writes and reads);
 * zstd images (compression_type 1) hold zstd frames.  The descriptor gives
 * the number of 512-byte sectors, counted from the sector holding the
 * start, so the stored length is a bound: the data may end earlier and the
 * last compressed cluster may even run past the end of the file.
 *
 * Writing (BH_IO_COMPRESSED) follows QEMU's rules, so images and
 * behaviour match qemu-img convert -c and qemu-io write -c:
 *  - whole guest clusters only: the offset on a cluster boundary, the
 *    length whole clusters, or ending at the end of the image (the last,
 *    partial cluster is compressed padded with zeros);
 *  - only into clusters that are unallocated or plain zero: any other
 *    cluster fails the write with EIO before anything changes;
 *  - a cluster whose compressed form is not smaller than cluster_size - 1
 *    is written as a normal cluster (by the ordinary write path, which
 *    also overwrites an allocated cluster, as QEMU's fallback does);
 *  - compressed clusters are packed one after another, sharing host
 *    clusters; each host cluster that a compressed cluster's bytes touch
 *    gets one more reference, which is what freeing one takes away.
 * The clusters of one request are compressed in parallel on a thread pool,
 * then their places are allocated in order under the lock, the data goes
 * out in contiguous runs without the lock, and the L2 entries are set
 * last, so the refcounts and the data are durable before the pointers
 * (the L2 cache's hook flushes them first, as for every allocating write).
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/types.h>
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

/* ---- writing ---- */

/* Clusters compressed together, then allocated and written as one batch,
 * while the helpers compress the next batch: small enough that writing
 * one overlaps compressing the next within a 2 MiB request, and bounds
 * the memory a large request holds (4 x this many clusters). */
#define COMPRESS_BATCH 8

/* Compression contexts live as long as their thread: a deflate state
 * costs about 270 KiB to set up, a zstd one more. */
static void deflate_ctx_free(gpointer p)
{
    deflateEnd(p);
    g_free(p);
}
static GPrivate deflate_ctx = G_PRIVATE_INIT(deflate_ctx_free);

/* src (n bytes) deflated into dst: the length, or 0 when it does not fit
 * in cap bytes (or compression failed: the cluster is then written as it
 * is).  Default level, raw deflate with a 4 KiB window, as QEMU. */
static size_t deflate_cluster(const uint8_t *src, size_t n, uint8_t *dst,
                              size_t cap)
{
    z_stream *z = g_private_get(&deflate_ctx);
    int ret;

    if (!z) {
        z = g_new0(z_stream, 1);
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            g_free(z);
            return 0;
        }
        g_private_set(&deflate_ctx, z);
    } else if (deflateReset(z) != Z_OK) {
        return 0;
    }
    z->next_in = (Bytef *)src;
    z->avail_in = n;
    z->next_out = dst;
    z->avail_out = cap;
    ret = deflate(z, Z_FINISH);
    return ret == Z_STREAM_END ? cap - z->avail_out : 0;
}

#ifdef HAVE_ZSTD
static void zstd_ctx_free(gpointer p)
{
    ZSTD_freeCCtx(p);
}
static GPrivate zstd_ctx = G_PRIVATE_INIT(zstd_ctx_free);

/* The same with one zstd frame at zstd's default level. */
static size_t zstd_cluster(const uint8_t *src, size_t n, uint8_t *dst,
                           size_t cap)
{
    ZSTD_CCtx *c = g_private_get(&zstd_ctx);
    size_t r;

    if (!c) {
        c = ZSTD_createCCtx();
        if (!c)
            return 0;
        g_private_set(&zstd_ctx, c);
    }
    r = ZSTD_compressCCtx(c, dst, cap, src, n, ZSTD_CLEVEL_DEFAULT);
    return ZSTD_isError(r) ? 0 : r;
}
#endif

/* One guest cluster of a compressed write. */
typedef struct CompressJob {
    int type;                 /* compression_type */
    const uint8_t *src;       /* cluster_size bytes */
    size_t size;              /* cluster_size */
    uint8_t *dst;             /* cluster_size - 1 bytes */
    size_t out;               /* compressed length; 0: write it plainly */
    uint64_t host;            /* where its compressed bytes go */
    bool allocated;           /* compress=on: the target was allocated, so
                               * it is written plainly after the batch */
    uint64_t old;             /* the target's L2 entry before */
} CompressJob;

/* The jobs of one batch, taken one at a time by the caller and by the
 * helpers it asked from the pool. */
typedef struct CompressWork {
    CompressJob *jobs;
    guint n;
    guint next;               /* atomic: the next job to take */
    GMutex lock;
    GCond cond;
    unsigned helpers;         /* helpers still running */
} CompressWork;

static void compress_job_run(CompressJob *j)
{
#ifdef HAVE_ZSTD
    if (j->type == 1) {
        j->out = zstd_cluster(j->src, j->size, j->dst, j->size - 1);
        return;
    }
#endif
    j->out = j->type == 0 ? deflate_cluster(j->src, j->size, j->dst,
                                            j->size - 1) : 0;
}

static void compress_work_run(CompressWork *w)
{
    for (;;) {
        guint i = (guint)g_atomic_int_add((gint *)&w->next, 1);
        if (i >= w->n)
            return;
        compress_job_run(&w->jobs[i]);
    }
}

static void compress_helper(gpointer data, gpointer user_data)
{
    CompressWork *w = data;

    compress_work_run(w);
    g_mutex_lock(&w->lock);
    if (--w->helpers == 0)
        g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

/* Helper threads for every image, kept for the process: as many as
 * QEMU's qcow2 uses (4), or the processors when there are more. */
static GThreadPool *compress_pool(guint *threads)
{
    static gsize once;
    static GThreadPool *pool;
    static guint n;

    if (g_once_init_enter(&once)) {
        n = MAX(4u, MIN(g_get_num_processors(), 16u));
        pool = g_thread_pool_new(compress_helper, NULL, (gint)n, FALSE, NULL);
        g_once_init_leave(&once, 1);
    }
    *threads = n;
    return pool;
}

/* Start compressing w's jobs on the pool; compress_wait finishes them. */
static void compress_start(CompressWork *w, CompressJob *jobs, size_t n)
{
    guint threads = 0;
    GThreadPool *pool = compress_pool(&threads);
    unsigned want = (unsigned)MIN(n, threads);

    *w = (CompressWork){ .jobs = jobs, .n = (guint)n };
    g_mutex_init(&w->lock);
    g_cond_init(&w->cond);
    for (unsigned i = 0; i < want; i++) {
        g_mutex_lock(&w->lock);
        w->helpers++;
        g_mutex_unlock(&w->lock);
        if (!g_thread_pool_push(pool, w, NULL)) {
            g_mutex_lock(&w->lock);
            w->helpers--;
            g_mutex_unlock(&w->lock);
            break;
        }
    }
}

/* The caller takes the jobs no helper has taken yet, then waits for the
 * helpers. */
static void compress_wait(CompressWork *w)
{
    compress_work_run(w);
    g_mutex_lock(&w->lock);
    while (w->helpers)
        g_cond_wait(&w->cond, &w->lock);
    g_mutex_unlock(&w->lock);
    g_mutex_clear(&w->lock);
    g_cond_clear(&w->cond);
}

/*
 * Room for size bytes of compressed data (size < cluster_size): right
 * after the previous compressed cluster while its host cluster has space
 * (spilling into the next host cluster when that is the one allocated
 * next), else at the start of a new host cluster.  Every host cluster the
 * bytes touch gains one reference: a new cluster gets its first from the
 * allocation, the partly filled one is raised here.  A partly filled
 * cluster whose refcount is at its maximum (refcount_bits=1 always) is
 * left.
 */
static int64_t alloc_bytes_locked(Qcow2State *s, uint64_t size,
                                  BhError **errp)
{
    uint64_t cs = s->cluster_size, off = s->free_byte_offset, rc = 0;
    uint64_t room = 0;
    int ret;

    if (off) {
        ret = qcow2_get_refcount_locked(s, off >> s->cluster_bits, &rc, errp);
        if (ret < 0)
            return ret;
        if (rc == 0 || rc >= s->refcount_max)
            off = 0;
        else
            room = cs - (off & (cs - 1));
    }
    if (!off || room < size) {
        int64_t nc = qcow2_alloc_clusters_locked(s, 1, errp);
        if (nc < 0)
            return nc;
        if (!off || qcow2_align_up(off, cs) != (uint64_t)nc)
            off = (uint64_t)nc;   /* the old cluster's tail stays unused */
        else if ((ret = qcow2_update_refcount_locked(s, off >> s->cluster_bits,
                                                     1, errp)) < 0) {
            qcow2_free_later_locked(s, (uint64_t)nc, cs);
            return ret;
        }
    } else {
        ret = qcow2_update_refcount_locked(s, off >> s->cluster_bits, 1, errp);
        if (ret < 0)
            return ret;
    }
    if (off + size - 1 > s->coffset_mask) {
        qcow2_free_later_locked(s, off, size);
        return bh_error_set(errp, EFBIG, "qcow2: no room for compressed data "
                            "at host offset 0x%" PRIx64 ": compressed "
                            "clusters must lie below 0x%" PRIx64, off,
                            s->coffset_mask + 1);
    }
    s->free_byte_offset = (off + size) & (cs - 1) ? off + size : 0;
    return (int64_t)off;
}

/* The L2 entry of a compressed cluster whose data is at host, size bytes:
 * the offset, and the sectors past the one holding it. */
static uint64_t compressed_l2e(Qcow2State *s, uint64_t host, uint64_t size)
{
    uint64_t extra = ((host + size - 1) >> 9) - (host >> 9);
    return QCOW_OFLAG_COMPRESSED | host | (extra << s->csize_shift);
}

/* Refuse a guest cluster a compressed write may not fill (lock held);
 * with plain_if_allocated (compress=on), return 1 instead.  *l2e: its
 * entry. */
static int check_target_locked(Qcow2State *s, uint64_t guest,
                               bool plain_if_allocated, uint64_t *l2e,
                               BhError **errp)
{
    int ret = qcow2_get_l2e_locked(s, guest, s->cluster_size, l2e, NULL,
                                   errp);
    if (ret < 0)
        return ret;
    switch (qcow2_entry_type(s, *l2e)) {
    case QCOW2_UNALLOCATED:
    case QCOW2_ZERO_PLAIN:
        return 0;
    default:
        if (plain_if_allocated)
            return 1;
        return bh_error_set(errp, EIO, "qcow2: %s: compressed write to guest "
                            "offset 0x%" PRIx64 ": the cluster is allocated "
                            "(compressed data only goes into unallocated or "
                            "zero clusters, as in QEMU)",
                            bh_node_filename(s->file), guest);
    }
}

/* Write the compressed data of jobs (out > 0) in runs that are contiguous
 * on the host: the usual case is one run for the whole batch. */
static int write_runs(Qcow2State *s, CompressJob *jobs, size_t n,
                      BhError **errp)
{
    g_autofree uint8_t *run = NULL;
    size_t i = 0;

    while (i < n) {
        size_t j = i, len = 0;
        if (!jobs[i].out) {
            i++;
            continue;
        }
        /* Gather jobs[i..j) whose bytes follow one another. */
        while (j < n && (!jobs[j].out || jobs[j].host == jobs[i].host + len)) {
            len += jobs[j].out;
            j++;
        }
        const void *p = jobs[i].dst;
        if (j - i > 1) {
            size_t at = 0;
            if (!run)
                run = g_malloc(n * s->cluster_size);
            for (size_t k = i; k < j; k++) {
                memcpy(run + at, jobs[k].dst, jobs[k].out);
                at += jobs[k].out;
            }
            p = run;
        }
        int ret = bh_node_pwrite(s->file, p, jobs[i].host, len, 0, errp);
        if (ret < 0)
            return ret;
        i = j;
    }
    return 0;
}

/*
 * Allocate, write and link the compressible clusters of one batch (jobs[i]
 * for guest cluster first + i).  Every target is checked before anything
 * is allocated, so a refused write changes nothing.
 */
static int link_compressed(Qcow2State *s, uint64_t first, CompressJob *jobs,
                           size_t n, bool plain_if_allocated, BhError **errp)
{
    uint64_t cs = s->cluster_size;
    Qcow2InFlight fl = { first, first + n - 1 };
    size_t done = 0;
    int ret;

    g_mutex_lock(&s->lock);
    ret = qcow2_prepare_first_write_locked(s, errp);
    while (ret == 0 && qcow2_in_flight_overlaps(s, fl.first, fl.last))
        g_cond_wait(&s->cond, &s->lock);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        if (!jobs[i].out)
            continue;
        ret = check_target_locked(s, (first + i) * cs, plain_if_allocated,
                                  &jobs[i].old, errp);
        if (ret == 1) {
            jobs[i].out = 0;
            jobs[i].allocated = true;
            ret = 0;
        }
    }
    /* All accepted: rewriting each entry as it is gives it a writable L2
     * table now, before the data's place is taken, so that (as in QEMU)
     * tables come first and the file ends with compressed data. */
    for (size_t i = 0; ret == 0 && i < n; i++)
        if (jobs[i].out)
            ret = qcow2_set_l2e_locked(s, (first + i) * cs, jobs[i].old, NULL,
                                       errp);
    for (; ret == 0 && done < n; done++) {
        int64_t host;
        if (!jobs[done].out)
            continue;
        host = alloc_bytes_locked(s, jobs[done].out, errp);
        if (host < 0) {
            ret = (int)host;
            break;
        }
        jobs[done].host = (uint64_t)host;
        ret = qcow2_overlap_refuse_locked(s, 0, jobs[done].host,
                                          jobs[done].out, "compressed data",
                                          errp);
        if (ret < 0) {
            done++;
            break;
        }
    }
    if (ret < 0) {
        for (size_t i = 0; i < done; i++)
            if (jobs[i].out && jobs[i].host)
                qcow2_free_later_locked(s, jobs[i].host, jobs[i].out);
        g_mutex_unlock(&s->lock);
        return ret;
    }
    g_ptr_array_add(s->in_flight, &fl);
    s->compress_in_flight++;
    s->compressed_written = true;
    g_mutex_unlock(&s->lock);

    ret = write_runs(s, jobs, n, errp);

    g_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        uint64_t old;
        if (!jobs[i].out)
            continue;
        if (ret == 0)
            ret = qcow2_set_l2e_locked(s, (first + i) * cs,
                                       compressed_l2e(s, jobs[i].host,
                                                      jobs[i].out),
                                       &old, errp);
        if (ret == 0)
            qcow2_free_entry_later_locked(s, old);
        else
            qcow2_free_later_locked(s, jobs[i].host, jobs[i].out);
    }
    s->compress_in_flight--;
    qcow2_in_flight_end_locked(s, &fl);
    if (ret == 0 && s->pending_free->len >= 4096)
        ret = qcow2_meta_flush_locked(s, errp);
    g_mutex_unlock(&s->lock);
    return ret;
}

/* COMPRESS_BATCH clusters at most from guest offset (cluster aligned);
 * len bytes, whole clusters but for the image's last one. */
typedef struct CompressBatch {
    const uint8_t *buf;
    uint64_t offset;
    size_t len, n;
    CompressJob *jobs;
    uint8_t *out;             /* the jobs' dst, one after another */
    uint8_t *last;            /* the image's partial last cluster, padded */
    CompressWork work;
} CompressBatch;

static void batch_start(Qcow2State *s, CompressBatch *b, const uint8_t *buf,
                        uint64_t offset, size_t len)
{
    uint64_t cs = s->cluster_size;

    *b = (CompressBatch){ .buf = buf, .offset = offset, .len = len,
                          .n = (len + cs - 1) / cs };
    b->jobs = g_new0(CompressJob, b->n);
    b->out = g_malloc(b->n * (cs - 1));
    for (size_t i = 0; i < b->n; i++) {
        b->jobs[i].type = s->compression_type;
        b->jobs[i].src = buf + i * cs;
        b->jobs[i].size = cs;
        b->jobs[i].dst = b->out + i * (cs - 1);
    }
    if (len % cs) {
        b->last = g_malloc0(cs);
        memcpy(b->last, buf + (b->n - 1) * cs, len % cs);
        b->jobs[b->n - 1].src = b->last;
    }
    compress_start(&b->work, b->jobs, b->n);
}

static void batch_free(CompressBatch *b)
{
    g_free(b->jobs);
    g_free(b->out);
    g_free(b->last);
}

/* The jobs of b that go out plainly (want: did not shrink, or were
 * found allocated), through the normal path, neighbours together. */
static int batch_write_plain(Qcow2State *s, CompressBatch *b, bool allocated,
                             BhError **errp)
{
    uint64_t cs = s->cluster_size;

    for (size_t i = 0; i < b->n;) {
        size_t j = i;
        while (j < b->n && !b->jobs[j].out && b->jobs[j].allocated == allocated)
            j++;
        if (j > i) {
            int ret = qcow2_pwrite_plain(s, b->buf + i * cs,
                                         b->offset + i * cs,
                                         MIN(j * cs, b->len) - i * cs, errp);
            if (ret < 0)
                return ret;
        }
        i = j + 1;
    }
    return 0;
}

/* Write a compressed batch: what did not shrink goes out as it is, the
 * rest compressed; with compress=on, clusters found allocated after. */
static int batch_commit(Qcow2State *s, CompressBatch *b,
                        bool plain_if_allocated, BhError **errp)
{
    int ret = batch_write_plain(s, b, false, errp);
    if (ret == 0)
        ret = link_compressed(s, b->offset / s->cluster_size, b->jobs, b->n,
                              plain_if_allocated, errp);
    if (ret == 0 && plain_if_allocated)
        ret = batch_write_plain(s, b, true, errp);
    return ret;
}

/* Whole clusters from offset (aligned) compressed, batch after batch:
 * while one batch is written, the helpers compress the next. */
static int write_compressed(Qcow2State *s, const uint8_t *p, uint64_t offset,
                            size_t len, bool plain_if_allocated,
                            BhError **errp)
{
    uint64_t cs = s->cluster_size;
    CompressBatch b[2];
    int cur = 0, ret = 0;
    size_t n = MIN(len, COMPRESS_BATCH * cs);

    if (!len)
        return 0;
    batch_start(s, &b[cur], p, offset, n);
    compress_wait(&b[cur].work);
    for (;;) {
        bool more;
        p += n;
        offset += n;
        len -= n;
        more = len > 0;
        if (more) {
            n = MIN(len, COMPRESS_BATCH * cs);
            batch_start(s, &b[!cur], p, offset, n);
        }
        ret = batch_commit(s, &b[cur], plain_if_allocated, errp);
        batch_free(&b[cur]);
        cur = !cur;
        if (!more)
            break;
        compress_wait(&b[cur].work);
        if (ret < 0) {
            batch_free(&b[cur]);
            break;
        }
    }
    return ret;
}

int qcow2_pwrite_compressed(Qcow2State *s, const void *buf, uint64_t offset,
                            size_t len, BhError **errp)
{
    uint64_t cs = s->cluster_size;

    if (offset & (cs - 1))
        return bh_error_set(errp, EINVAL, "qcow2: %s: compressed write at "
                            "offset %" PRIu64 ": not on a cluster boundary "
                            "(cluster size %" PRIu64 ")",
                            bh_node_filename(s->file), offset, cs);
    if ((len & (cs - 1)) && offset + len != s->size)
        return bh_error_set(errp, EINVAL, "qcow2: %s: compressed write of %zu "
                            "bytes at offset %" PRIu64 ": only whole clusters "
                            "(%" PRIu64 " bytes), or up to the end of the "
                            "image, can be compressed",
                            bh_node_filename(s->file), len, offset, cs);
#ifndef HAVE_ZSTD
    if (s->compression_type == 1)
        return bh_error_set(errp, ENOTSUP, "qcow2: %s: compressed write: "
                            "this blkhost was built without libzstd",
                            bh_node_filename(s->file));
#endif
    return write_compressed(s, buf, offset, len, false, errp);
}

int qcow2_compress_open(Qcow2State *s, BhOpts *opts, BhError **errp)
{
    if (!bh_opts_get_bool(opts, "compress", false, &s->compress_writes, errp))
        return -EINVAL;
#ifndef HAVE_ZSTD
    if (s->compress_writes && s->compression_type == 1)
        return bh_error_set(errp, ENOTSUP, "qcow2: compress=on: this blkhost "
                            "was built without libzstd, which the image's "
                            "compression type needs");
#endif
    return 0;
}

/*
 * compress=on: the whole clusters of a write that land on unallocated or
 * zero clusters are compressed; the rest (partial clusters at its ends,
 * clusters already allocated) is written as usual.  QEMU's compress filter
 * would instead read-modify-write partial clusters and fail on allocated
 * ones; writing them plainly keeps every write working.
 */
int qcow2_pwrite_compress_on(Qcow2State *s, const void *buf, uint64_t offset,
                             size_t len, BhError **errp)
{
    uint64_t cs = s->cluster_size, end = offset + len;
    uint64_t a = MIN(end, qcow2_align_up(offset, cs));   /* whole from here */
    uint64_t b = end == s->size ? end : end & ~(cs - 1); /* to here */
    const uint8_t *p = buf;
    int ret = 0;

    /* The vmstate area past the disk is not guest data: left alone. */
    if (b <= a || end > s->size)
        return qcow2_pwrite_plain(s, buf, offset, len, errp);
    if (a > offset)
        ret = qcow2_pwrite_plain(s, p, offset, a - offset, errp);
    if (ret == 0)
        ret = write_compressed(s, p + (a - offset), a, b - a, true, errp);
    if (ret == 0 && end > b)
        ret = qcow2_pwrite_plain(s, p + (b - offset), b, end - b, errp);
    return ret;
}

/* QEMU ends a compressed copy with the file a whole number of sectors
 * long; the last compressed cluster may have left it mid-sector. */
int qcow2_compress_pad_locked(Qcow2State *s, BhError **errp)
{
    static const uint8_t zeros[512];
    int64_t flen;

    if (!s->compressed_written || s->compress_in_flight)
        return 0;
    flen = bh_node_size(s->file);
    if (flen < 0 || !(flen & 511))
        return 0;
    return bh_node_pwrite(s->file, zeros, (uint64_t)flen,
                          512 - ((uint64_t)flen & 511), 0, errp);
}
