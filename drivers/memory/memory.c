/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "memory" protocol driver: a sparse RAM disk of size=N.
 *
 * Storage is a two-level table of 64 KiB chunks, allocated on the first
 * write of non-zero data and freed again by discard or by write-zeroes
 * that may unmap, so a large disk costs only what was written.  Unallocated
 * chunks read as zeros and report HOLE|ZERO, which makes this driver a
 * good stand-in for a sparse file in tests and benchmarks.
 *
 * Concurrency: reads and writes never free memory, so they only need a
 * chunk to stay put: they take a shared lock on the chunk's stripe (one of
 * 64 read-write locks, picked by chunk number) and allocate a missing
 * chunk with compare-and-swap.  Only freeing (discard, unmap, shrink) takes
 * a stripe exclusively.  Readers of a hole take no lock at all.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#include <blkhost/driver.h>
#include <blkhost/glib.h>

#define CHUNK_SHIFT 16
#define CHUNK_SIZE  (1u << CHUNK_SHIFT)
#define LEAF_SHIFT  12                       /* chunks per leaf: 4096 */
#define LEAF_CHUNKS (1u << LEAF_SHIFT)
#define LEAF_BYTES  ((uint64_t)LEAF_CHUNKS << CHUNK_SHIFT)   /* 256 MiB */
#define NSTRIPES    64
/* The table is sized once at open for at least MIN_CAPACITY (so a
 * growable disk has room to grow) and at most MAX_SIZE. */
#define MIN_CAPACITY ((uint64_t)1 << 40)     /* 1 TiB: a 32 KiB top table */
#define MAX_SIZE     ((uint64_t)1 << 50)     /* 1 PiB: a 32 MiB top table */

typedef struct MemLeaf {
    _Atomic(uint8_t *) chunk[LEAF_CHUNKS];
} MemLeaf;

typedef struct MemState {
    _Atomic int64_t size;
    uint64_t capacity;          /* bytes the table can address */
    size_t nleaves;
    _Atomic(MemLeaf *) *leaves;
    atomic_size_t nallocated;   /* chunks holding memory */
    bool growable;
    GRWLock stripe[NSTRIPES];
} MemState;

static GRWLock *mem_stripe(MemState *s, uint64_t ci)
{
    return &s->stripe[ci % NSTRIPES];
}

static uint8_t *mem_chunk_get(MemState *s, uint64_t ci)
{
    MemLeaf *leaf = atomic_load(&s->leaves[ci >> LEAF_SHIFT]);
    return leaf ? atomic_load(&leaf->chunk[ci & (LEAF_CHUNKS - 1)]) : NULL;
}

/* The slot for chunk ci, creating its leaf if needed; NULL on ENOMEM. */
static _Atomic(uint8_t *) *mem_chunk_slot(MemState *s, uint64_t ci)
{
    _Atomic(MemLeaf *) *lp = &s->leaves[ci >> LEAF_SHIFT];
    MemLeaf *leaf = atomic_load(lp);
    if (!leaf) {
        MemLeaf *fresh = g_try_new0(MemLeaf, 1);
        if (!fresh)
            return NULL;
        if (atomic_compare_exchange_strong(lp, &leaf, fresh))
            leaf = fresh;
        else
            g_free(fresh);  /* somebody else won; leaf is theirs */
    }
    return &leaf->chunk[ci & (LEAF_CHUNKS - 1)];
}

/* Free chunk ci; caller holds its stripe exclusively. */
static void mem_chunk_free(MemState *s, uint64_t ci)
{
    MemLeaf *leaf = atomic_load(&s->leaves[ci >> LEAF_SHIFT]);
    if (!leaf)
        return;
    uint8_t *p = atomic_exchange(&leaf->chunk[ci & (LEAF_CHUNKS - 1)], NULL);
    if (p) {
        g_free(p);
        atomic_fetch_sub(&s->nallocated, 1);
    }
}

static bool mem_is_zero(const uint8_t *p, size_t len)
{
    size_t head = MIN(len, 16);
    for (size_t i = 0; i < head; i++)
        if (p[i])
            return false;
    return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

static void mem_state_free(MemState *s)
{
    for (size_t l = 0; l < s->nleaves; l++) {
        MemLeaf *leaf = atomic_load(&s->leaves[l]);
        if (!leaf)
            continue;
        for (size_t c = 0; c < LEAF_CHUNKS; c++)
            g_free(atomic_load(&leaf->chunk[c]));
        g_free(leaf);
    }
    for (int i = 0; i < NSTRIPES; i++)
        g_rw_lock_clear(&s->stripe[i]);
    g_free(s->leaves);
    g_free(s);
}

static int mem_open(BhNode *bs, const char *filename, BhOpts *opts,
                    uint32_t open_flags, BhError **errp)
{
    uint64_t size;
    bool growable = open_flags & BH_OPEN_GROWABLE;
    if (!bh_opts_get(opts, "size") && !growable)
        return bh_error_set(errp, EINVAL, "memory: option 'size' is "
                            "required (for example size=1G)");
    if (!bh_opts_get_size(opts, "size", 0, &size, errp))
        return -EINVAL;
    if (size > MAX_SIZE)
        return bh_error_set(errp, EFBIG, "memory: size %" PRIu64 " is too "
                            "large (at most %" PRIu64 " bytes, 1P)", size,
                            MAX_SIZE);

    MemState *s = g_new0(MemState, 1);
    s->capacity = MAX(MIN_CAPACITY, (size + LEAF_BYTES - 1) & ~(LEAF_BYTES - 1));
    s->nleaves = s->capacity / LEAF_BYTES;
    /* calloc'd memory is only backed once touched, so a large top table
     * costs address space, not RAM. */
    s->leaves = g_try_malloc0_n(s->nleaves, sizeof(*s->leaves));
    if (!s->leaves) {
        g_free(s);
        return bh_error_set(errp, ENOMEM, "memory: no memory for the table "
                            "of a %" PRIu64 "-byte disk", size);
    }
    s->growable = growable;
    atomic_store(&s->size, (int64_t)size);
    for (int i = 0; i < NSTRIPES; i++)
        g_rw_lock_init(&s->stripe[i]);
    bh_node_set_opaque(bs, s);
    bh_node_set_caps(bs, BH_CAP_FUA | BH_CAP_DISCARD | BH_CAP_ZERO);
    bh_node_set_block_limits(bs, 1, 4096, 0);
    return 0;
}

static void mem_close(BhNode *bs)
{
    MemState *s = bh_node_get_opaque(bs);
    if (s)
        mem_state_free(s);
    bh_node_set_opaque(bs, NULL);
}

static int64_t mem_get_length(BhNode *bs)
{
    MemState *s = bh_node_get_opaque(bs);
    return atomic_load(&s->size);
}

static int mem_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                     uint32_t flags, BhError **errp)
{
    MemState *s = bh_node_get_opaque(bs);
    uint8_t *dst = buf;
    while (len > 0) {
        uint64_t ci = offset >> CHUNK_SHIFT;
        size_t in = offset & (CHUNK_SIZE - 1);
        size_t n = MIN(len, (size_t)CHUNK_SIZE - in);
        uint8_t *p = offset < s->capacity ? mem_chunk_get(s, ci) : NULL;
        if (!p) {
            memset(dst, 0, n);
        } else {
            GRWLock *l = mem_stripe(s, ci);
            g_rw_lock_reader_lock(l);
            p = mem_chunk_get(s, ci);  /* may have been freed meanwhile */
            if (p)
                memcpy(dst, p + in, n);
            else
                memset(dst, 0, n);
            g_rw_lock_reader_unlock(l);
        }
        dst += n;
        offset += n;
        len -= n;
    }
    return 0;
}

static void mem_grow(MemState *s, uint64_t end)
{
    int64_t cur = atomic_load(&s->size);
    while ((int64_t)end > cur &&
           !atomic_compare_exchange_weak(&s->size, &cur, (int64_t)end))
        ;
}

static int mem_check_capacity(MemState *s, const char *what, uint64_t offset,
                              uint64_t len, BhError **errp)
{
    if (offset > s->capacity || len > s->capacity - offset)
        return bh_error_set(errp, ENOSPC, "memory: %s at offset %" PRIu64
                            " + %" PRIu64 " is beyond the disk's capacity (%"
                            PRIu64 " bytes)", what, offset, len, s->capacity);
    return 0;
}

static int mem_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                      size_t len, uint32_t flags, BhError **errp)
{
    MemState *s = bh_node_get_opaque(bs);
    const uint8_t *src = buf;
    uint64_t end = offset + len;
    int r = mem_check_capacity(s, "write", offset, len, errp);
    if (r < 0)
        return r;
    while (len > 0) {
        uint64_t ci = offset >> CHUNK_SHIFT;
        size_t in = offset & (CHUNK_SIZE - 1);
        size_t n = MIN(len, (size_t)CHUNK_SIZE - in);
        /* Zeros over a hole change nothing: keep it a hole. */
        if (mem_chunk_get(s, ci) || !mem_is_zero(src, n)) {
            GRWLock *l = mem_stripe(s, ci);
            g_rw_lock_reader_lock(l);
            _Atomic(uint8_t *) *slot = mem_chunk_slot(s, ci);
            uint8_t *p = slot ? atomic_load(slot) : NULL;
            if (slot && !p) {
                uint8_t *fresh = g_try_malloc0(CHUNK_SIZE);
                if (fresh && atomic_compare_exchange_strong(slot, &p, fresh)) {
                    p = fresh;
                    atomic_fetch_add(&s->nallocated, 1);
                } else {
                    g_free(fresh);  /* lost the race (p is the winner's) */
                }
            }
            if (p)
                memcpy(p + in, src, n);
            g_rw_lock_reader_unlock(l);
            if (!p)
                return bh_error_set(errp, ENOMEM, "memory: out of memory "
                                    "writing at offset %" PRIu64, offset);
        }
        src += n;
        offset += n;
        len -= n;
    }
    mem_grow(s, end);
    return 0;
}

/* Zero [offset, offset+len): whole chunks are freed when unmap is set,
 * everything else is cleared in place.  Holes stay holes. */
static void mem_zero_range(MemState *s, uint64_t offset, uint64_t len,
                           bool unmap)
{
    uint64_t end = MIN(offset + len, s->capacity);
    while (offset < end) {
        uint64_t ci = offset >> CHUNK_SHIFT;
        size_t in = offset & (CHUNK_SIZE - 1);
        size_t n = (size_t)MIN(end - offset, (uint64_t)(CHUNK_SIZE - in));
        if (!atomic_load(&s->leaves[ci >> LEAF_SHIFT])) {
            /* A whole missing leaf: skip to its end at once. */
            uint64_t leaf_end = ((ci >> LEAF_SHIFT) + 1) * LEAF_BYTES;
            offset = MIN(leaf_end, end);
            continue;
        }
        if (mem_chunk_get(s, ci)) {
            GRWLock *l = mem_stripe(s, ci);
            if (unmap && n == CHUNK_SIZE) {
                g_rw_lock_writer_lock(l);
                mem_chunk_free(s, ci);
                g_rw_lock_writer_unlock(l);
            } else {
                g_rw_lock_reader_lock(l);
                uint8_t *p = mem_chunk_get(s, ci);
                if (p)
                    memset(p + in, 0, n);
                g_rw_lock_reader_unlock(l);
            }
        }
        offset += n;
    }
}

static int mem_discard(BhNode *bs, uint64_t offset, uint64_t len,
                       BhError **errp)
{
    mem_zero_range(bh_node_get_opaque(bs), offset, len, true);
    return 0;
}

static int mem_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                            uint32_t flags, BhError **errp)
{
    MemState *s = bh_node_get_opaque(bs);
    int r = mem_check_capacity(s, "write zeroes", offset, len, errp);
    if (r < 0)
        return r;
    mem_zero_range(s, offset, len, flags & BH_IO_MAY_UNMAP);
    mem_grow(s, offset + len);
    return 0;
}

static int mem_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                            uint64_t *pnum, uint32_t *status, BhError **errp)
{
    MemState *s = bh_node_get_opaque(bs);
    uint64_t end = offset + len, pos = offset;
    bool first_alloc = pos < s->capacity &&
                       mem_chunk_get(s, pos >> CHUNK_SHIFT) != NULL;
    while (pos < end && pos < s->capacity) {
        uint64_t ci = pos >> CHUNK_SHIFT;
        bool alloc;
        uint64_t next;
        if (!atomic_load(&s->leaves[ci >> LEAF_SHIFT])) {
            alloc = false;
            next = ((ci >> LEAF_SHIFT) + 1) * LEAF_BYTES;
        } else {
            alloc = mem_chunk_get(s, ci) != NULL;
            next = (ci + 1) << CHUNK_SHIFT;
        }
        if (alloc != first_alloc)
            break;
        pos = next;
    }
    if (pos >= s->capacity && !first_alloc)
        pos = end;  /* past the table everything is a hole */
    *pnum = MIN(pos, end) - offset;
    *status = first_alloc ? 0 : (BH_BLOCK_HOLE | BH_BLOCK_ZERO);
    return 0;
}

static int mem_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    MemState *s = bh_node_get_opaque(bs);
    if (size > s->capacity)
        return bh_error_set(errp, EFBIG, "memory: cannot grow to %" PRIu64
                            " bytes: the disk was opened with room for %"
                            PRIu64, size, s->capacity);
    int64_t old = atomic_load(&s->size);
    if ((int64_t)size < old) {
        /* Drop what lies past the new end, so growing again reads zeros. */
        uint64_t keep = (size + CHUNK_SIZE - 1) & ~(uint64_t)(CHUNK_SIZE - 1);
        mem_zero_range(s, size, keep - size, false);
        mem_zero_range(s, keep, (uint64_t)old > keep ? old - keep : 0, true);
    }
    atomic_store(&s->size, (int64_t)size);
    return 0;
}

static int64_t mem_get_allocated_size(BhNode *bs)
{
    MemState *s = bh_node_get_opaque(bs);
    return (int64_t)atomic_load(&s->nallocated) * CHUNK_SIZE;
}

static void mem_info(BhNode *bs, BhInfo *info)
{
    bh_info_add_int(info, "chunk-size", CHUNK_SIZE);
}

#ifdef MEMORY_SUBMIT
/*
 * The same driver behind submit, completing each request inline: built
 * only as bench/'s "memory-submit" (never installed), to measure what the
 * core's path for synchronous callbacks costs against a native submit
 * path over the same storage (bench/shim.sh).
 */
static void mem_submit(BhNode *bs, BhRequest *req)
{
    uint64_t off = bh_request_offset(req);
    uint32_t flags = bh_request_flags(req);
    int niov, r = 0;
    const struct iovec *iov = bh_request_iov(req, &niov);
    BhError *err = NULL;

    switch (bh_request_op(req)) {
    case BH_OP_READ:
    case BH_OP_WRITE:
        for (int i = 0; i < niov && r == 0; off += iov[i++].iov_len)
            r = bh_request_op(req) == BH_OP_READ ?
                mem_pread(bs, iov[i].iov_base, off, iov[i].iov_len, flags,
                          &err) :
                mem_pwrite(bs, iov[i].iov_base, off, iov[i].iov_len, flags,
                           &err);
        break;
    case BH_OP_FLUSH:
        break;
    case BH_OP_DISCARD:
        r = mem_discard(bs, off, bh_request_length(req), &err);
        break;
    case BH_OP_WRITE_ZEROES:
        r = mem_write_zeroes(bs, off, bh_request_length(req), flags, &err);
        break;
    }
    if (err) {
        bh_request_error(req, bh_error_errno(err), "%s",
                         bh_error_message(err));
        bh_error_free(err);
    }
    bh_request_complete(req, r);
}
#define MEMORY_NAME "memory-submit"
#else
#define MEMORY_NAME "memory"
#endif

static const BhDriver memory_driver = {
    .flags = BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE,
    .open = mem_open,
    .close = mem_close,
    .get_length = mem_get_length,
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .discard = mem_discard,
    .write_zeroes = mem_write_zeroes,
    .block_status = mem_block_status,
    .truncate = mem_truncate,
    .info = mem_info,
    .get_allocated_size = mem_get_allocated_size,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
#ifdef MEMORY_SUBMIT
    .submit = mem_submit,
#endif
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = MEMORY_NAME,
    .version = "1.0",
    .description = "sparse RAM disk (size=N), 64 KiB chunks allocated on "
                   "first write",
    .driver = &memory_driver,
};

BH_PLUGIN_REGISTER(desc)
