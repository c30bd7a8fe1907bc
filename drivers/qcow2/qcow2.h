/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 driver: what its files share.
 *
 * The driver is split by subject: header.c (parse, validate, update the
 * header), cache.c (the L2 and refcount-block caches), refcount.c (refcounts
 * and cluster allocation), rebuild.c (refcount repair of dirty images),
 * cluster.c (guest -> host mapping and L2 updates), io.c (the I/O
 * callbacks), compress.c (compressed clusters), create.c (image creation)
 * and qcow2.c (open, close, info and the plugin descriptor).
 *
 * Locking: Qcow2State.lock protects every piece of metadata (L1, caches,
 * refcount table, allocation state, in-flight allocations).  Guest data is
 * read and written with the lock released, so that parallel clients scale;
 * functions named *_locked expect the lock held.
 */
#ifndef BH_QCOW2_H
#define BH_QCOW2_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <glib.h>

#include <blkhost/blkhost.h>

#define QCOW2_MAGIC 0x514649fbu        /* "QFI\xfb" */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)       /* QEMU's limit */
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)  /* QEMU's limit */
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_BACKING_NAME 1023

/* Header feature bits. */
#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS     (1ull << 0)

/* Metadata sections for overlap checks (overlap.c); same bits as QEMU's
 * QCOW2_OL_*.  QCOW2_OL_CACHED is what is checked: all but inactive L2. */
#define QCOW2_OL_MAIN_HEADER      (1u << 0)
#define QCOW2_OL_ACTIVE_L1        (1u << 1)
#define QCOW2_OL_ACTIVE_L2        (1u << 2)
#define QCOW2_OL_REFCOUNT_TABLE   (1u << 3)
#define QCOW2_OL_REFCOUNT_BLOCK   (1u << 4)
#define QCOW2_OL_SNAPSHOT_TABLE   (1u << 5)
#define QCOW2_OL_INACTIVE_L1      (1u << 6)
#define QCOW2_OL_INACTIVE_L2      (1u << 7)
#define QCOW2_OL_BITMAP_DIRECTORY (1u << 8)
#define QCOW2_OL_CACHED (0x1ffu & ~QCOW2_OL_INACTIVE_L2)

/* Header extensions. */
#define QCOW2_EXT_END          0x00000000u
#define QCOW2_EXT_BACKING_FMT  0xe2792acau
#define QCOW2_EXT_FEATURES     0x6803f857u
#define QCOW2_EXT_BITMAPS      0x23852875u
#define QCOW2_EXT_CRYPTO       0x0537be77u
#define QCOW2_EXT_DATA_FILE    0x44415441u

/* Header field offsets. */
#define QH_VERSION 4
#define QH_BACKING_OFFSET 8
#define QH_BACKING_SIZE 16
#define QH_CLUSTER_BITS 20
#define QH_SIZE 24
#define QH_CRYPT 32
#define QH_L1_SIZE 36
#define QH_L1_OFFSET 40
#define QH_REFTABLE_OFFSET 48
#define QH_REFTABLE_CLUSTERS 56
#define QH_NB_SNAPSHOTS 60
#define QH_SNAPSHOTS_OFFSET 64
#define QH_INCOMPAT 72
#define QH_COMPAT 80
#define QH_AUTOCLEAR 88
#define QH_REFCOUNT_ORDER 96
#define QH_HEADER_LENGTH 100
#define QH_COMPRESSION_TYPE 104

/* Table entries. */
#define QCOW_OFLAG_COPIED     (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO       (1ull << 0)
#define L1E_OFFSET_MASK  0x00fffffffffffe00ull
#define L2E_OFFSET_MASK  0x00fffffffffffe00ull
#define L1E_RESERVED     0x7f000000000001ffull
#define L2E_STD_RESERVED 0x3f000000000001feull
#define REFT_OFFSET_MASK 0xfffffffffffffe00ull

/* What one L2 entry stands for. */
typedef enum {
    QCOW2_UNALLOCATED = 0, /* read from backing (or zeros) */
    QCOW2_ZERO_PLAIN,      /* reads as zeros, no host cluster */
    QCOW2_ZERO_ALLOC,      /* reads as zeros, host cluster kept */
    QCOW2_NORMAL,          /* data at a host cluster */
    QCOW2_COMPRESSED,      /* compressed data */
} Qcow2ClusterType;

typedef struct Qcow2Snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id;
    char *name;
} Qcow2Snapshot;

/* A persistent dirty bitmap, as listed in the bitmap directory. */
typedef struct Qcow2Bitmap {
    char *name;
    uint32_t granularity_bits;
    uint32_t flags;               /* bit 0 in use, 1 auto */
    uint64_t table_offset;        /* the bitmap table: where, how many */
    uint32_t table_size;          /* 8-byte entries */
} Qcow2Bitmap;

/* The cluster offsets a table (active L1, refcount table) points at,
 * sorted, for overlap checks by binary search; rebuilt whenever the table
 * array, its offset or its size differ from the key (see overlap.c). */
typedef struct Qcow2OverlapIndex {
    const uint64_t *table;        /* key */
    uint64_t offset, size;        /* key */
    bool valid;
    uint64_t *sorted;
    uint64_t n, cap;
} Qcow2OverlapIndex;

typedef struct Qcow2Cache Qcow2Cache;
typedef struct Qcow2State Qcow2State;

/* A guest cluster range whose allocation is being written right now. */
typedef struct Qcow2InFlight {
    uint64_t first, last;         /* guest cluster indexes, inclusive */
} Qcow2InFlight;

/* A host range whose refcount drops once the L2 tables no longer pointing
 * to it are on disk (see qcow2_meta_flush_locked). */
typedef struct Qcow2PendingFree {
    uint64_t offset;
    uint64_t bytes;
} Qcow2PendingFree;

struct Qcow2State {
    BhNode *bs;
    BhNode *file;
    BhNode *backing;              /* NULL when none */
    GMutex lock;
    GCond cond;                   /* in-flight allocations finished */

    /* Reads and in-place writes of host clusters run without the lock;
     * they count themselves in io_count[epoch & 1] so that a cluster is
     * not freed (and maybe reused) under them: see qcow2_io_begin_locked
     * and qcow2_io_drain_locked. */
    guint io_epoch;
    gint io_count[2];
    gint draining;
    bool flushing;                /* a qcow2_meta_flush_locked is running */
    GCond drain_cond;             /* an epoch drained, a flush ended */
    bool readonly;

    /* Header. */
    uint32_t version;
    uint32_t header_length;       /* 72 for v2 */
    int cluster_bits;
    uint64_t cluster_size;
    uint64_t size;
    int l2_bits;                  /* log2(entries per L2 table) */
    uint64_t l2_entries;
    uint64_t incompat, compat, autoclear;
    int refcount_order;
    int refcount_bits;
    uint64_t refcount_max;
    int rb_bits;                  /* log2(refcounts per refcount block) */
    int compression_type;         /* 0 zlib, 1 zstd */
    char *backing_file;
    char *backing_format;
    char *data_file_name;         /* only for the refusal message */

    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t *l1;                 /* host endian */

    uint64_t reftable_offset;
    uint32_t reftable_clusters;
    uint64_t reftable_size;       /* entries */
    uint64_t *reftable;           /* host endian */

    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t snapshots_bytes;
    Qcow2Snapshot *snapshots;

    /* Compressed cluster descriptors. */
    int csize_shift;
    uint64_t csize_mask;
    uint64_t coffset_mask;

    Qcow2Cache *l2_cache;
    Qcow2Cache *rb_cache;

    /* block_map: whether the image looks preallocated (more clusters in
     * use than the host holds), decided on first use, as QEMU does. */
    bool prealloc_checked;
    bool prealloc;

    uint64_t free_hint;           /* first cluster index maybe free */
    bool lazy;                    /* lazy refcounts in effect */
    bool header_touched;          /* dirty bit / autoclear done */
    GArray *pending_free;         /* Qcow2PendingFree */
    GPtrArray *in_flight;         /* Qcow2InFlight* */

    /* Persistent bitmaps (bitmaps.c): valid while autoclear bit 0 is set. */
    uint64_t bitmap_dir_offset;
    uint64_t bitmap_dir_size;
    uint32_t nb_bitmaps;
    Qcow2Bitmap *bitmaps;

    /* overlap.c */
    Qcow2OverlapIndex ol_l2, ol_rb;
    bool corrupt_reported;        /* the stderr message is printed once */
};

static inline uint64_t qcow2_be64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_BE(v);
}
static inline uint32_t qcow2_be32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}
static inline void qcow2_put_be64(void *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}
static inline void qcow2_put_be32(void *p, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(p, &v, 4);
}
static inline uint64_t qcow2_align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* header.c */
int qcow2_read_header(Qcow2State *s, BhError **errp);
int qcow2_read_snapshot_table(Qcow2State *s, BhError **errp);
int qcow2_header_write_field(Qcow2State *s, uint64_t offset,
                             const void *buf, size_t len, BhError **errp);
int qcow2_header_set_incompat(Qcow2State *s, uint64_t bits, bool set,
                              BhError **errp);
int qcow2_prepare_first_write_locked(Qcow2State *s, BhError **errp);

/* overlap.c, called with s->lock held: qcow2_overlap_check returns the
 * QCOW2_OL_* bit of a section that [offset, offset+size) meets (sections
 * in ignore skipped), or 0; it reads nothing.  qcow2_overlap_refuse_locked is what writers call: on
 * a hit it marks the image corrupt and fails with -EIO, naming the image
 * and the section.  qcow2_mark_corrupt_locked sets incompatible bit 1 and
 * prints why on stderr (once per open). */
int qcow2_overlap_check(Qcow2State *s, unsigned ignore, uint64_t offset,
                        uint64_t size);
int qcow2_overlap_refuse_locked(Qcow2State *s, unsigned ignore,
                                uint64_t offset, uint64_t size,
                                const char *what, BhError **errp);
int qcow2_mark_corrupt_locked(Qcow2State *s, const char *why);
const char *qcow2_overlap_name(int section);
void qcow2_overlap_entry_set(Qcow2State *s, bool l1, uint64_t old_entry,
                             uint64_t new_entry);
void qcow2_overlap_tables_replaced(Qcow2State *s);
void qcow2_overlap_free(Qcow2State *s);
const char *qcow2_metadata_overlap(Qcow2State *s, uint64_t offset,
                                   uint64_t bytes);

/* bitmaps.c */
int qcow2_read_bitmaps(Qcow2State *s, uint64_t ext_offset, uint64_t ext_len,
                       const uint8_t *ext, BhError **errp);
void qcow2_bitmaps_free(Qcow2State *s);

void qcow2_bitmaps_dropped(Qcow2State *s);

/* io.c: host-cluster I/O outside the lock */
int qcow2_io_begin_locked(Qcow2State *s);
void qcow2_io_end(Qcow2State *s, int epoch);
void qcow2_io_drain_locked(Qcow2State *s);

void qcow2_io_end_locked(Qcow2State *s, int epoch);

/* data.c: the host runs of one request, submitted to the file child at
 * once and waited for together.  add: the run's I/O epoch is held until
 * the batch settles.  settle: wait for the runs in flight and end their
 * epochs (locked: with s->lock held).  wait: settle, then 0 or the first
 * run's error (set in errp); the batch is done with. */
typedef struct Qcow2Batch {
    Qcow2State *s;
    GMutex lock;
    GCond cond;
    unsigned pending;
    unsigned held[2];      /* epochs held, by parity; the caller's thread only */
    int ret;
    char *msg;
} Qcow2Batch;
void qcow2_batch_init(Qcow2Batch *b, Qcow2State *s);
void qcow2_batch_add(Qcow2Batch *b, BhOp op, void *buf, uint64_t host,
                     uint64_t len, int epoch);
void qcow2_batch_settle(Qcow2Batch *b, bool locked);
int qcow2_batch_wait(Qcow2Batch *b, BhError **errp);

/* cache.c */
typedef int (*Qcow2CacheHook)(Qcow2State *s, BhError **errp);
Qcow2Cache *qcow2_cache_new(Qcow2State *s, const char *what, size_t entries,
                            Qcow2CacheHook before_write);
void qcow2_cache_free(Qcow2Cache *c);
int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table,
                    BhError **errp);
int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, void **table,
                          BhError **errp);
bool qcow2_cache_contains(Qcow2Cache *c, uint64_t offset);
void qcow2_cache_put(Qcow2Cache *c, void *table);
void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table);
int qcow2_cache_flush(Qcow2Cache *c, BhError **errp);
bool qcow2_cache_has_dirty(Qcow2Cache *c);
void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset);
void qcow2_cache_forget_all(Qcow2Cache *c);

/* refcount.c */
int qcow2_get_refcount_locked(Qcow2State *s, uint64_t cluster,
                              uint64_t *refcount, BhError **errp);
int qcow2_update_refcount_locked(Qcow2State *s, uint64_t cluster,
                                 int64_t delta, BhError **errp);
int64_t qcow2_alloc_clusters_locked(Qcow2State *s, uint64_t n,
                                    BhError **errp);
int qcow2_free_later_locked(Qcow2State *s, uint64_t offset, uint64_t bytes);
int qcow2_free_now_locked(Qcow2State *s, uint64_t offset, uint64_t bytes,
                          BhError **errp);
int qcow2_meta_flush_locked(Qcow2State *s, BhError **errp);
int qcow2_l2_before_write(Qcow2State *s, BhError **errp);
void qcow2_rb_get(Qcow2State *s, const void *block, uint64_t i,
                  uint64_t *v);
void qcow2_rb_set(Qcow2State *s, void *block, uint64_t i, uint64_t v);

/* check.c */
int qcow2_check(BhNode *bs, uint32_t fix, BhCheckResult *res, BhError **errp);

/* amend.c: `blkhost amend` (qemu-img amend -o) */
int qcow2_amend(BhNode *bs, BhOpts *opts, uint32_t flags,
                BhAmendProgress progress, void *opaque, BhError **errp);
extern const BhCreateOption qcow2_amend_options[];

/* resize.c */
int qcow2_truncate(BhNode *bs, uint64_t size, BhError **errp);

/* rebuild.c */
int qcow2_rebuild_refcounts_locked(Qcow2State *s, BhError **errp);

/* cluster.c */
Qcow2ClusterType qcow2_entry_type(Qcow2State *s, uint64_t l2e);
int qcow2_check_l2_entry(Qcow2State *s, uint64_t guest, uint64_t l2e,
                         BhError **errp);
int qcow2_get_l2e_locked(Qcow2State *s, uint64_t guest, uint64_t bytes,
                         uint64_t *l2e, uint64_t *contiguous, BhError **errp);
int qcow2_set_l2e_locked(Qcow2State *s, uint64_t guest, uint64_t l2e,
                         uint64_t *old, BhError **errp);
void qcow2_free_entry_later_locked(Qcow2State *s, uint64_t l2e);
uint64_t qcow2_compressed_range(Qcow2State *s, uint64_t l2e,
                                uint64_t *bytes);

/* compress.c */
int qcow2_read_compressed(Qcow2State *s, uint64_t l2e, void *cluster_buf,
                          BhError **errp);

/* io.c */
int qcow2_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                uint32_t flags, BhError **errp);
int qcow2_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                 uint32_t flags, BhError **errp);
int qcow2_flush(BhNode *bs, BhError **errp);
int qcow2_discard(BhNode *bs, uint64_t offset, uint64_t len, BhError **errp);
int qcow2_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                       uint32_t flags, BhError **errp);
int qcow2_block_map(BhNode *bs, uint64_t offset, uint64_t len,
                    uint64_t *pnum, uint32_t *flags, uint64_t *map,
                    BhNode **file, BhError **errp);
int qcow2_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                       uint64_t *pnum, uint32_t *status, BhError **errp);

/* create.c */
int qcow2_create_check(const char *filename, BhOpts *opts, BhError **errp);
int qcow2_create(const char *filename, BhNode *file, BhOpts *opts,
                 BhError **errp);
extern const BhCreateOption qcow2_create_options[];

#endif
