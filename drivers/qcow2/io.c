/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 I/O callbacks: read, write, write_zeroes, discard, flush and
 * block_status.
 *
 * The metadata lock is held only to look up or change mappings; guest data
 * moves with it released.  A write into a cluster that the active image
 * owns alone (NORMAL with COPIED) goes straight to the host cluster.  Any
 * other write allocates new clusters; the guest clusters being allocated
 * are registered as in flight so that a second writer to them waits (and
 * then finds them allocated) instead of allocating twice.
 *
 * Reads and in-place writes are counted in I/O epochs (qcow2_io_begin_
 * locked), so that a discard racing with them cannot free and reuse their
 * host cluster while they still use it.  Their data moves through a batch
 * (data.c): the runs of one request are in flight together.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

#define MAX_ALLOC_CLUSTERS 8192

static Qcow2State *state(BhNode *bs)
{
    return bh_node_get_opaque(bs);
}

/*
 * Guarding host clusters that are read or written in place with the lock
 * released.  Such an I/O registers in the current epoch while it still
 * holds the lock (right after looking up the mapping); before queued frees
 * are applied, qcow2_io_drain_locked starts a new epoch and waits until
 * the old one is empty, so every I/O that could have seen a freed mapping
 * has finished before its cluster can be handed out again.
 */
int qcow2_io_begin_locked(Qcow2State *s)
{
    int e = s->io_epoch & 1;
    g_atomic_int_inc(&s->io_count[e]);
    return e;
}

void qcow2_io_end(Qcow2State *s, int epoch)
{
    if (g_atomic_int_dec_and_test(&s->io_count[epoch]) &&
        g_atomic_int_get(&s->draining)) {
        g_mutex_lock(&s->lock);
        g_cond_broadcast(&s->drain_cond);
        g_mutex_unlock(&s->lock);
    }
}

/* The same with s->lock held. */
void qcow2_io_end_locked(Qcow2State *s, int epoch)
{
    if (g_atomic_int_dec_and_test(&s->io_count[epoch]) &&
        g_atomic_int_get(&s->draining))
        g_cond_broadcast(&s->drain_cond);
}

/* Only called by qcow2_meta_flush_locked, one at a time. */
void qcow2_io_drain_locked(Qcow2State *s)
{
    int old;

    old = s->io_epoch & 1;
    s->io_epoch++;
    g_atomic_int_set(&s->draining, 1);
    while (g_atomic_int_get(&s->io_count[old]) > 0)
        g_cond_wait(&s->drain_cond, &s->lock);
    g_atomic_int_set(&s->draining, 0);
}

static int read_backing(Qcow2State *s, void *buf, uint64_t offset,
                        uint64_t len, BhError **errp)
{
    int64_t blen = s->backing ? bh_node_size(s->backing) : 0;
    uint64_t n = 0;

    if (blen > 0 && offset < (uint64_t)blen) {
        n = MIN(len, (uint64_t)blen - offset);
        int ret = bh_node_pread(s->backing, buf, offset, n, 0, errp);
        if (ret < 0)
            return ret;
    }
    memset((uint8_t *)buf + n, 0, len - n);
    return 0;
}

int qcow2_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                uint32_t flags, BhError **errp)
{
    Qcow2State *s = state(bs);
    uint8_t *p = buf;
    Qcow2Batch batch;
    int ret = 0;

    /* Allocated clusters are read through the batch (data.c), all runs
     * at once; the rest is filled in here meanwhile. */
    qcow2_batch_init(&batch, s);
    while (len) {
        uint64_t l2e, n, in = offset & (s->cluster_size - 1), chunk;
        int epoch = 0;

        g_mutex_lock(&s->lock);
        ret = qcow2_get_l2e_locked(s, offset, len, &l2e, &n, errp);
        if (ret == 0)
            epoch = qcow2_io_begin_locked(s);
        g_mutex_unlock(&s->lock);
        if (ret < 0)
            break;
        chunk = MIN((uint64_t)len, n * s->cluster_size - in);

        switch (qcow2_entry_type(s, l2e)) {
        case QCOW2_UNALLOCATED:
            ret = read_backing(s, p, offset, chunk, errp);
            break;
        case QCOW2_ZERO_PLAIN:
        case QCOW2_ZERO_ALLOC:
            memset(p, 0, chunk);
            ret = 0;
            break;
        case QCOW2_NORMAL:
            qcow2_batch_add(&batch, BH_OP_READ, p,
                            (l2e & L2E_OFFSET_MASK) + in, chunk, epoch);
            ret = 0;
            break;
        case QCOW2_COMPRESSED: {
            g_autofree uint8_t *cl = g_malloc(s->cluster_size);
            chunk = MIN((uint64_t)len, s->cluster_size - in);
            ret = qcow2_read_compressed(s, l2e, cl, errp);
            if (ret == 0)
                memcpy(p, cl + in, chunk);
            break;
        }
        }
        if (qcow2_entry_type(s, l2e) != QCOW2_NORMAL)
            qcow2_io_end(s, epoch);
        if (ret < 0)
            break;
        p += chunk;
        offset += chunk;
        len -= chunk;
    }
    int bret = qcow2_batch_wait(&batch, ret < 0 ? NULL : errp);
    return ret < 0 ? ret : bret;
}

/* The old content of one guest cluster, for copy on write. */
static int cow_fill(Qcow2State *s, uint64_t l2e, uint64_t guest_cluster_off,
                    uint64_t j, uint8_t *buf, BhError **errp)
{
    switch (qcow2_entry_type(s, l2e)) {
    case QCOW2_UNALLOCATED:
        return read_backing(s, buf, guest_cluster_off, s->cluster_size, errp);
    case QCOW2_ZERO_PLAIN:
    case QCOW2_ZERO_ALLOC:
        memset(buf, 0, s->cluster_size);
        return 0;
    case QCOW2_NORMAL:
        return bh_node_pread(s->file, buf, (l2e & L2E_OFFSET_MASK) +
                             j * s->cluster_size, s->cluster_size, 0, errp);
    case QCOW2_COMPRESSED:
        return qcow2_read_compressed(s, l2e, buf, errp);
    }
    return 0;
}

/* Whether the old content of a guest cluster is known to be zeros, so
 * copy on write can zero the new host cluster instead of writing a
 * buffer of zeros. */
static bool cow_is_zero(Qcow2State *s, uint64_t l2e, uint64_t guest_cluster_off)
{
    switch (qcow2_entry_type(s, l2e)) {
    case QCOW2_ZERO_PLAIN:
    case QCOW2_ZERO_ALLOC:
        return true;
    case QCOW2_UNALLOCATED:
        return !s->backing ||
               (int64_t)guest_cluster_off >= bh_node_size(s->backing);
    default:
        return false;
    }
}

/* Write n bytes of data at offset in within the new host cluster at host,
 * the rest of the cluster getting its old content. */
static int write_partial_cluster(Qcow2State *s, const uint8_t *data,
                                 uint64_t in, uint64_t n, uint64_t l2e,
                                 uint64_t gc, uint64_t j, uint64_t host,
                                 uint8_t *b, BhError **errp)
{
    int ret;

    if (cow_is_zero(s, l2e, gc)) {
        /* Like QEMU: one cheap zeroing of the host cluster, then the data
         * alone.  FAST_ZERO: if the file cannot, fall back to a buffer. */
        ret = bh_node_write_zeroes(s->file, host, s->cluster_size,
                                   BH_IO_FAST_ZERO, NULL);
        if (ret == 0)
            return bh_node_pwrite(s->file, data, host + in, n, 0, errp);
    }
    ret = cow_fill(s, l2e, gc, j, b, errp);
    if (ret < 0)
        return ret;
    memcpy(b + in, data, n);
    return bh_node_pwrite(s->file, b, host, s->cluster_size, 0, errp);
}

/* Whether guest clusters first..last (inclusive) are being allocated;
 * with the lock held.  compress.c registers its clusters the same way. */
bool qcow2_in_flight_overlaps(Qcow2State *s, uint64_t first, uint64_t last)
{
    for (guint i = 0; i < s->in_flight->len; i++) {
        Qcow2InFlight *f = s->in_flight->pdata[i];
        if (f->first <= last && first <= f->last)
            return true;
    }
    return false;
}

void qcow2_in_flight_end_locked(Qcow2State *s, Qcow2InFlight *f)
{
    g_ptr_array_remove_fast(s->in_flight, f);
    g_cond_broadcast(&s->cond);
}

/* Write guest data [offset, offset+len) of a run of k clusters starting at
 * guest cluster offset gc, whose old content is described by l2e, into new
 * host clusters at host.  Runs without the lock. */
static int write_new_clusters(Qcow2State *s, const uint8_t *data,
                              uint64_t offset, uint64_t len, uint64_t gc,
                              uint64_t k, uint64_t l2e, uint64_t host,
                              BhError **errp)
{
    uint64_t cs = s->cluster_size, head = offset - gc, end = head + len;
    bool first_partial = head != 0 || end < cs;
    bool last_partial = k > 1 && end < k * cs;
    uint64_t pos = 0, mid_end = last_partial ? (k - 1) * cs : k * cs;
    g_autofree uint8_t *b = NULL;
    int ret;

    if (first_partial || last_partial)
        b = g_malloc(cs);
    if (first_partial) {
        uint64_t n = MIN(end, cs) - head;
        ret = write_partial_cluster(s, data, head, n, l2e, gc, 0, host, b,
                                    errp);
        if (ret < 0 || k == 1)
            return ret;
        data += n;
        pos = cs;
    }
    if (mid_end > pos) {
        ret = bh_node_pwrite(s->file, data, host + pos, mid_end - pos, 0, errp);
        if (ret < 0)
            return ret;
        data += mid_end - pos;
    }
    if (!last_partial)
        return 0;
    return write_partial_cluster(s, data, 0, end - (k - 1) * cs, l2e,
                                 gc + (k - 1) * cs, k - 1, host + (k - 1) * cs,
                                 b, errp);
}

/*
 * One step of a write: returns the number of bytes written or -errno.
 *
 * An allocating write follows QEMU's order:
 *  1. allocate: new host clusters get refcount 1, in the refcount cache;
 *  2. write: the guest data and the rest of each partial cluster (copied
 *     from the old cluster, the backing file, or zeroed) go to the new
 *     clusters, with the lock released;
 *  3. flush, then link: the L2 entries are changed in the L2 cache, and
 *     the L2 cache's hook writes the refcount blocks and flushes the file
 *     before any L2 table reaches the disk, so the data and the refcounts
 *     are durable before the pointer is;
 *  4. the clusters the entries pointed to before are freed only after the
 *     new L2 tables are on disk (qcow2_meta_flush_locked).
 * A crash at any point leaves the old mapping or the new one, and at
 * worst leaked clusters.
 */
static int64_t write_step(Qcow2State *s, Qcow2Batch *batch,
                          const uint8_t *data, uint64_t offset, uint64_t len,
                          BhError **errp)
{
    uint64_t cs = s->cluster_size, in = offset & (cs - 1);
    uint64_t gc = offset - in, l2e, n, k, chunk, first;
    Qcow2InFlight fl;
    int64_t host;
    int ret;

    g_mutex_lock(&s->lock);
    ret = qcow2_prepare_first_write_locked(s, errp);
    if (ret < 0)
        goto out;
    for (;;) {
        ret = qcow2_get_l2e_locked(s, offset, len, &l2e, &n, errp);
        if (ret < 0)
            goto out;
        if (qcow2_entry_type(s, l2e) == QCOW2_NORMAL &&
            (l2e & QCOW_OFLAG_COPIED)) {
            int epoch;
            chunk = MIN(len, n * cs - in);
            /* Guest data in place: the cluster must hold no metadata. */
            ret = qcow2_overlap_refuse_locked(s, 0, (l2e & L2E_OFFSET_MASK) +
                                              in, chunk, "guest data", errp);
            if (ret < 0)
                goto out;
            epoch = qcow2_io_begin_locked(s);
            g_mutex_unlock(&s->lock);
            qcow2_batch_add(batch, BH_OP_WRITE, (void *)data,
                            (l2e & L2E_OFFSET_MASK) + in, chunk, epoch);
            return (int64_t)chunk;
        }
        /* Allocating may drain the I/O epochs (and waiting below holds
         * the lock up): first let go of the ones this request's writes
         * in place still hold. */
        qcow2_batch_settle(batch, true);
        first = offset >> s->cluster_bits;
        k = MIN(n, (in + len + cs - 1) / cs);
        k = MIN(k, MAX_ALLOC_CLUSTERS);
        if (!qcow2_in_flight_overlaps(s, first, first + k - 1))
            break;
        g_cond_wait(&s->cond, &s->lock);
    }
    chunk = MIN(len, k * cs - in);
    host = qcow2_alloc_clusters_locked(s, k, errp);
    if (host < 0) {
        ret = (int)host;
        goto out;
    }
    fl.first = first;
    fl.last = first + k - 1;
    g_ptr_array_add(s->in_flight, &fl);
    g_mutex_unlock(&s->lock);

    ret = write_new_clusters(s, data, offset, chunk, gc, k, l2e, host, errp);

    g_mutex_lock(&s->lock);
    if (ret < 0) {
        qcow2_free_later_locked(s, host, k * cs);
    } else {
        for (uint64_t j = 0; j < k && ret == 0; j++) {
            uint64_t old;
            ret = qcow2_set_l2e_locked(s, gc + j * cs, (host + j * cs) |
                                       QCOW_OFLAG_COPIED, &old, errp);
            if (ret == 0)
                qcow2_free_entry_later_locked(s, old);
            else
                qcow2_free_later_locked(s, host + j * cs, (k - j) * cs);
        }
    }
    qcow2_in_flight_end_locked(s, &fl);
    if (ret == 0 && s->pending_free->len >= 4096)
        ret = qcow2_meta_flush_locked(s, errp);
out:
    g_mutex_unlock(&s->lock);
    return ret < 0 ? ret : (int64_t)chunk;
}

/* A write as it comes (compressed ones: compress.c). */
int qcow2_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                 uint32_t flags, BhError **errp)
{
    Qcow2State *s = state(bs);

    if (flags & BH_IO_COMPRESSED)
        return qcow2_pwrite_compressed(s, buf, offset, len, errp);
    if (s->compress_writes)
        return qcow2_pwrite_compress_on(s, buf, offset, len, errp);
    return qcow2_pwrite_plain(s, buf, offset, len, errp);
}

/* A write stored as it is. */
int qcow2_pwrite_plain(Qcow2State *s, const void *buf, uint64_t offset,
                       size_t len, BhError **errp)
{
    const uint8_t *p = buf;
    Qcow2Batch batch;
    int64_t n = 0;

    /* Writes in place go through the batch (data.c), all at once; an
     * allocating step writes its new clusters before linking them, as
     * before. */
    qcow2_batch_init(&batch, s);
    while (len) {
        n = write_step(s, &batch, p, offset, len, errp);
        if (n < 0)
            break;
        p += n;
        offset += n;
        len -= n;
    }
    int bret = qcow2_batch_wait(&batch, n < 0 ? NULL : errp);
    return n < 0 ? (int)n : bret;
}

/*
 * Point whole guest clusters [offset, offset+len) at new_l2e (zero flag or
 * unallocated), freeing what they pointed to once the L2 tables are on
 * disk.  skip_same: leave entries alone that already read the same way.
 */
static int set_clusters(Qcow2State *s, uint64_t offset, uint64_t len,
                        uint64_t new_l2e, BhError **errp)
{
    uint64_t cs = s->cluster_size;
    int ret = 0;

    g_mutex_lock(&s->lock);
    ret = qcow2_prepare_first_write_locked(s, errp);
    while (ret == 0 && len) {
        uint64_t l2e, n, first = offset >> s->cluster_bits, k;
        ret = qcow2_get_l2e_locked(s, offset, len, &l2e, &n, errp);
        if (ret < 0)
            break;
        k = MIN(n, len / cs);
        if (qcow2_in_flight_overlaps(s, first, first + k - 1)) {
            g_cond_wait(&s->cond, &s->lock);
            continue;
        }
        if (l2e == new_l2e) {
            offset += k * cs;
            len -= k * cs;
            continue;
        }
        for (uint64_t j = 0; j < k && ret == 0; j++) {
            uint64_t old;
            ret = qcow2_set_l2e_locked(s, offset + j * cs, new_l2e, &old, errp);
            if (ret == 0)
                qcow2_free_entry_later_locked(s, old);
        }
        offset += k * cs;
        len -= k * cs;
        if (ret == 0 && s->pending_free->len >= 4096)
            ret = qcow2_meta_flush_locked(s, errp);
    }
    g_mutex_unlock(&s->lock);
    return ret;
}

int qcow2_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                       uint32_t flags, BhError **errp)
{
    Qcow2State *s = state(bs);
    uint64_t cs = s->cluster_size;
    uint64_t start = qcow2_align_up(offset, cs);
    uint64_t end = (offset + len) & ~(cs - 1);
    int ret;

    if (s->version < 3)
        return -ENOTSUP;   /* no zero flag: the core writes zeros */
    if (start >= end) {
        start = end = offset + len;
    }
    if ((start > offset || end < offset + len) && (flags & BH_IO_FAST_ZERO))
        return -ENOTSUP;
    if (start > offset) {
        g_autofree uint8_t *z = g_malloc0(start - offset);
        ret = qcow2_pwrite(bs, z, offset, MIN(start, offset + len) - offset, 0,
                           errp);
        if (ret < 0)
            return ret;
    }
    if (end > start) {
        ret = set_clusters(s, start, end - start, QCOW_OFLAG_ZERO, errp);
        if (ret < 0)
            return ret;
    }
    if (end < offset + len && end >= start) {
        g_autofree uint8_t *z = g_malloc0(offset + len - end);
        ret = qcow2_pwrite(bs, z, end, offset + len - end, 0, errp);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Frees whole clusters: they become unallocated, or zero clusters when a
 * backing file would otherwise show through (v2 cannot: nothing done). */
int qcow2_discard(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp)
{
    Qcow2State *s = state(bs);
    uint64_t cs = s->cluster_size;
    uint64_t start = qcow2_align_up(offset, cs);
    uint64_t end = (offset + len) & ~(cs - 1);

    /* A discard reaching the end of an image whose size is no cluster
     * multiple covers the last, partial cluster whole (as QEMU does), so
     * that emptying an overlay (blkhost commit) leaves nothing behind. */
    if (offset + len == s->size)
        end = qcow2_align_up(s->size, cs);
    if (end <= start)
        return 0;
    if (s->backing && s->version < 3)
        return 0;
    return set_clusters(s, start, end - start,
                        s->backing ? QCOW_OFLAG_ZERO : 0, errp);
}

int qcow2_flush(BhNode *bs, BhError **errp)
{
    Qcow2State *s = state(bs);
    int ret;

    if (s->readonly)
        return 0;
    g_mutex_lock(&s->lock);
    /* Marked corrupt while open: the cached tables are not written (they
     * may be what the check stopped), so nothing pending is durable. */
    if (s->incompat & QCOW2_INCOMPAT_CORRUPT)
        ret = bh_error_set(errp, EIO, "qcow2: %s: the image was marked "
                           "corrupt; not flushing its metadata",
                           bh_node_filename(s->file));
    else
        ret = qcow2_compress_pad_locked(s, errp);
    if (ret == 0)
        ret = qcow2_meta_flush_locked(s, errp);
    g_mutex_unlock(&s->lock);
    return ret;
}

/* The L2 entry mapping offset, and in *pnum how many bytes from offset
 * (at most len) map the same way. */
static int block_lookup(Qcow2State *s, uint64_t offset, uint64_t len,
                        uint64_t *l2e, uint64_t *pnum, BhError **errp)
{
    uint64_t n, in = offset & (s->cluster_size - 1);
    int ret;

    g_mutex_lock(&s->lock);
    ret = qcow2_get_l2e_locked(s, offset, len, l2e, &n, errp);
    g_mutex_unlock(&s->lock);
    if (ret < 0)
        return ret;
    *pnum = MIN(len, n * s->cluster_size - in);
    return 0;
}

int qcow2_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                       uint64_t *pnum, uint32_t *status, BhError **errp)
{
    Qcow2State *s = state(bs);
    uint64_t l2e;
    int64_t blen;
    int ret = block_lookup(s, offset, len, &l2e, pnum, errp);

    if (ret < 0)
        return ret;
    switch (qcow2_entry_type(s, l2e)) {
    case QCOW2_NORMAL:
    case QCOW2_COMPRESSED:
        *status = 0;
        return 0;
    case QCOW2_ZERO_ALLOC:
        *status = BH_BLOCK_ZERO;
        return 0;
    case QCOW2_ZERO_PLAIN:
        *status = BH_BLOCK_ZERO | BH_BLOCK_HOLE;
        return 0;
    case QCOW2_UNALLOCATED:
        break;
    }
    blen = s->backing ? bh_node_size(s->backing) : 0;
    if (blen <= 0 || offset >= (uint64_t)blen) {
        *status = BH_BLOCK_ZERO | BH_BLOCK_HOLE;
        return 0;
    }
    return bh_node_block_status(s->backing, offset,
                                MIN(*pnum, (uint64_t)blen - offset), pnum,
                                status, errp);
}

/* Whether clusters in use outnumber what the host really stores by more
 * than a ninth (and two): then data clusters may be holes on the host
 * (metadata preallocation, or a copy made sparse), and block_map asks
 * the file about them.  The test QEMU makes, so that map agrees. */
static bool looks_preallocated(Qcow2State *s)
{
    int64_t flen, alloc;
    uint64_t real, threshold, used = 0, end;

    if (s->prealloc_checked)
        return s->prealloc;
    s->prealloc_checked = true;
    flen = bh_node_size(s->file);
    alloc = bh_node_allocated_size(s->file);
    if (flen < 0 || alloc < 0)
        return false;
    real = (uint64_t)alloc >> s->cluster_bits;
    threshold = MAX(real * 10 / 9, real + 2);
    end = ((uint64_t)flen + s->cluster_size - 1) >> s->cluster_bits;
    g_mutex_lock(&s->lock);
    for (uint64_t c = 0; c < end && used <= threshold; c++) {
        uint64_t rc = 0;
        if (qcow2_get_refcount_locked(s, c, &rc, NULL) < 0)
            break;
        if (rc)
            used++;
    }
    g_mutex_unlock(&s->lock);
    s->prealloc = used > threshold;
    return s->prealloc;
}

/* This layer's mapping alone, for bh_node_block_map: data clusters (and
 * preallocated zero clusters) give their host offset, compressed ones
 * none (their bytes are not where a reader could take them), and
 * unallocated ones are left to the core, which looks at the backing file. */
int qcow2_block_map(BhNode *bs, uint64_t offset, uint64_t len,
                    uint64_t *pnum, uint32_t *flags, uint64_t *map,
                    BhNode **file, BhError **errp)
{
    Qcow2State *s = state(bs);
    uint64_t l2e, in = offset & (s->cluster_size - 1);
    int ret = block_lookup(s, offset, len, &l2e, pnum, errp);

    if (ret < 0)
        return ret;
    *flags = 0;
    switch (qcow2_entry_type(s, l2e)) {
    case QCOW2_NORMAL:
        *flags = BH_MAP_DATA;
        if (looks_preallocated(s))
            *flags |= BH_MAP_RECURSE;
        break;
    case QCOW2_COMPRESSED:
        *flags = BH_MAP_DATA;
        return 0;
    case QCOW2_ZERO_ALLOC:
        /* A run of these need not be contiguous on the host: one cluster
         * at a time, so the offset is right for all of *pnum. */
        *pnum = MIN(len, s->cluster_size - in);
        *flags = BH_MAP_ZERO;
        break;
    case QCOW2_ZERO_PLAIN:
        *flags = BH_MAP_ZERO;
        return 0;
    case QCOW2_UNALLOCATED:
        return 0;
    }
    *flags |= BH_MAP_OFFSET;
    *map = (l2e & L2E_OFFSET_MASK) + in;
    *file = s->file;
    return 0;
}
