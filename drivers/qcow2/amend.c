/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 amend: change compat, lazy_refcounts, refcount_bits and size of an
 * existing image (`blkhost amend`, as `qemu-img amend -o`).
 *
 * Every option and every combination is checked first, with qemu-img's
 * messages, before anything is written: a refused amend leaves the image
 * byte-identical (qemu-img sometimes rewrites the header before it finds
 * the problem).  Then the steps run in qemu's order: upgrade, refcount
 * width, lazy refcounts, size, downgrade.  Each step is crash safe:
 *
 *  - upgrade to v3: a snapshot table whose entries lack the extra data v3
 *    requires is rewritten first (a snapshot commit: new table, one header
 *    write), then the header is rewritten as version 3;
 *  - refcount width: the refcounts are converted in memory, the new
 *    refcount blocks and table go to clusters free in the old refcounts
 *    (so the old structure stays valid), are flushed, and one write of
 *    the header's bytes 48..99 (table offset and size, refcount_order,
 *    all in its first sector) switches to them; the old structure is
 *    given back afterwards;
 *  - lazy_refcounts=off: metadata flushed and the dirty bit cleared
 *    (refcounts in memory are exact; a dirty image was rebuilt on open)
 *    before the compatible bit goes;
 *  - downgrade to v2: the image is made clean, zero clusters become
 *    unallocated (no backing file) or allocated clusters of zeros (data
 *    before the L2 tables, as every allocating write), in snapshots' L2
 *    tables too, and the header is rewritten as version 2 last.
 *
 * Memory for a refcount width change: 8 bytes per cluster of the file
 * (128 MiB for a fully allocated 1 TiB image with 64 KiB clusters).
 */
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <blkhost/glib.h>

/* qemu-img 7.2's amend options for qcow2, as `amend -o help` lists them;
 * the entries without help are creation options qemu-img knows beyond
 * qcow2_create_options, refused with its creation-only hint. */
const BhCreateOption qcow2_amend_options[] = {
    { "backing_file", "str", "File name of a base image" },
    { "backing_fmt", "str", "Image format of the base image" },
    { "compat", "str", "Compatibility level (v2 [0.10] or v3 [1.1])" },
    { "data_file", "str", "File name of an external data file" },
    { "data_file_raw", "bool (on/off)", "The external data file must stay "
      "valid as a raw image" },
    { "encrypt.iter-time", "num", "Time to spend in PBKDF in milliseconds" },
    { "encrypt.keyslot", "num", "Select a single keyslot to modify "
      "explicitly" },
    { "encrypt.new-secret", "str", "New secret to set in the matching "
      "keyslots. Empty string to erase" },
    { "encrypt.old-secret", "str", "Select all keyslots that match this "
      "password" },
    { "encrypt.state", "str", "Select new state of affected keyslots "
      "(active/inactive)" },
    { "lazy_refcounts", "bool (on/off)", "Postpone refcount updates" },
    { "refcount_bits", "num", "Width of a reference count entry in bits" },
    { "size", "size", "Virtual disk size" },
    { "encryption", NULL, NULL },
    { "encrypt.format", NULL, NULL },
    { "encrypt.key-secret", NULL, NULL },
    { "encrypt.cipher-alg", NULL, NULL },
    { "encrypt.cipher-mode", NULL, NULL },
    { "encrypt.ivgen-alg", NULL, NULL },
    { "encrypt.ivgen-hash-alg", NULL, NULL },
    { "encrypt.hash-alg", NULL, NULL },
    { "extended_l2", NULL, NULL },
    { NULL, NULL, NULL },
};

/* What the options ask for, all checked before the first write. */
typedef struct {
    int version;
    bool lazy;
    int refcount_order;
    uint64_t size;              /* 0: unchanged */
    /* progress, over the steps that take time, as qemu counts them */
    BhAmendProgress cb;
    void *opaque;
    int steps, step;
} Amend;

static void amend_progress(Amend *a, uint64_t done, uint64_t total)
{
    const uint64_t unit = 10000;
    if (!a->cb)
        return;
    if (!total)
        total = done = 1;
    a->cb(a->opaque, (uint64_t)a->step * unit + done * unit / total,
          (uint64_t)MAX(a->steps, 1) * unit);
}

static bool amend_parse_bool(const char *v, bool *out)
{
    static const char *const on[] = { "on", "yes", "true", "y" };
    static const char *const off[] = { "off", "no", "false", "n" };
    for (size_t i = 0; i < G_N_ELEMENTS(on); i++) {
        if (!strcmp(v, on[i]))
            return *out = true;
        if (!strcmp(v, off[i]))
            return !(*out = false);
    }
    return false;
}

static int amend_get_bool(BhOpts *opts, const char *key, bool *out,
                          BhError **errp)
{
    const char *v = bh_opts_get(opts, key);
    if (v && !amend_parse_bool(v, out))
        return bh_error_set(errp, EINVAL, "Parameter '%s' expects 'on' or "
                            "'off'", key);
    return 0;
}

/* ---- the header ---- */

/*
 * Rewrite the header for s->version (with s's fields), keeping every
 * extension but the feature table for version 2, and the backing file
 * name, in one write of the sectors they take.
 */
static int amend_write_header_locked(Qcow2State *s, BhError **errp)
{
    uint64_t cs = s->cluster_size, old_end, pos, end, bo;
    int64_t flen = bh_node_size(s->file);
    g_autofree uint8_t *old = g_malloc0(cs);
    g_autofree uint8_t *h = g_malloc0(cs);
    uint32_t old_hl, bl;
    size_t name_len = s->backing_file ? strlen(s->backing_file) : 0;
    int ret;

    if (flen < 0)
        return (int)flen;
    ret = bh_node_pread(s->file, old, 0, MIN((uint64_t)flen, cs), 0, errp);
    if (ret < 0)
        return ret;
    old_hl = qcow2_be32(old + QH_VERSION) >= 3 ?
             qcow2_be32(old + QH_HEADER_LENGTH) : 72;
    bo = qcow2_be64(old + QH_BACKING_OFFSET);
    bl = qcow2_be32(old + QH_BACKING_SIZE);
    end = bo && bo < cs ? bo : cs;
    old_end = bo ? bo + bl : old_hl;

    qcow2_put_be32(h, QCOW2_MAGIC);
    qcow2_put_be32(h + QH_VERSION, s->version);
    qcow2_put_be32(h + QH_CLUSTER_BITS, s->cluster_bits);
    qcow2_put_be64(h + QH_SIZE, s->size);
    qcow2_put_be32(h + QH_L1_SIZE, s->l1_size);
    qcow2_put_be64(h + QH_L1_OFFSET, s->l1_offset);
    qcow2_put_be64(h + QH_REFTABLE_OFFSET, s->reftable_offset);
    qcow2_put_be32(h + QH_REFTABLE_CLUSTERS, s->reftable_clusters);
    qcow2_put_be32(h + QH_NB_SNAPSHOTS, s->nb_snapshots);
    qcow2_put_be64(h + QH_SNAPSHOTS_OFFSET, s->snapshots_offset);
    if (s->version >= 3) {
        /* Fields past the compression type byte that a later version
         * wrote are kept when the image already was version 3. */
        if (old_hl > 104 && qcow2_be32(old + QH_VERSION) >= 3)
            memcpy(h + 104, old + 104, old_hl - 104);
        s->header_length = MAX(old_hl, 112);
        if (qcow2_be32(old + QH_VERSION) < 3)
            s->header_length = 112;
        qcow2_put_be64(h + QH_INCOMPAT, s->incompat);
        qcow2_put_be64(h + QH_COMPAT, s->compat);
        qcow2_put_be64(h + QH_AUTOCLEAR, s->autoclear);
        qcow2_put_be32(h + QH_REFCOUNT_ORDER, s->refcount_order);
        qcow2_put_be32(h + QH_HEADER_LENGTH, s->header_length);
        h[QH_COMPRESSION_TYPE] = (uint8_t)s->compression_type;
    } else {
        s->header_length = 72;
    }
    pos = s->header_length;
    for (uint64_t at = old_hl; at + 8 <= end;) {
        uint32_t type = qcow2_be32(old + at), len = qcow2_be32(old + at + 4);
        uint64_t n = 8 + qcow2_align_up(len, 8);
        if (type == QCOW2_EXT_END || n > end - at)
            break;
        old_end = MAX(old_end, at + n);
        if (!(type == QCOW2_EXT_FEATURES && s->version < 3)) {
            if (pos + n + 8 > cs)
                return bh_error_set(errp, EFBIG, "qcow2: the header "
                                    "extensions do not fit in the first "
                                    "cluster");
            memcpy(h + pos, old + at, n);
            pos += n;
        }
        at += n;
    }
    pos += 8;                   /* the end of the extensions (zeros) */
    if (s->backing_file) {
        if (pos + name_len > cs)
            return bh_error_set(errp, EFBIG, "qcow2: the backing file name "
                                "does not fit in the first cluster");
        qcow2_put_be64(h + QH_BACKING_OFFSET, pos);
        qcow2_put_be32(h + QH_BACKING_SIZE, (uint32_t)name_len);
        memcpy(h + pos, s->backing_file, name_len);
        pos += name_len;
    }
    /* Whole sectors, and at least what the old header took, so that no
     * stale extension or name is left behind. */
    end = MIN(cs, qcow2_align_up(MAX(pos, old_end), 512));
    return qcow2_header_write_field(s, 0, h, end, errp);
}

/* ---- refcount width ---- */

typedef struct {
    Qcow2State *s;
    int order;                 /* the new refcount_order */
    uint64_t per;              /* refcounts per new block */
    uint64_t *ref;             /* the new refcount of every cluster */
    uint64_t n;                /* clusters in ref */
    GHashTable *old_meta;      /* clusters of the old refcount structure */
    GArray *blocks;            /* uint64_t: new block offsets by index */
    uint64_t rt_off, rt_clusters;
    uint64_t cursor;
} Width;

static void width_grow(Width *w, uint64_t n)
{
    if (n <= w->n)
        return;
    w->ref = g_renew(uint64_t, w->ref, n);
    memset(w->ref + w->n, 0, (n - w->n) * 8);
    w->n = n;
}

static bool width_free(Width *w, uint64_t c)
{
    return (c >= w->n || !w->ref[c]) &&
           !g_hash_table_contains(w->old_meta, &c);
}

/* n contiguous clusters free in the old refcounts and not yet taken. */
static int64_t width_alloc(Width *w, uint64_t n, BhError **errp)
{
    Qcow2State *s = w->s;
    uint64_t start = w->cursor, run = 0, first_free = UINT64_MAX;
    int ret;

    for (uint64_t c = w->cursor; run < n; c++) {
        if ((c + n) << s->cluster_bits > L2E_OFFSET_MASK)
            return bh_error_set(errp, ENOSPC, "qcow2: no room left in the "
                                "image file for %" PRIu64 " clusters", n);
        if (!width_free(w, c)) {
            run = 0;
            continue;
        }
        if (first_free == UINT64_MAX)
            first_free = c;
        if (!run++)
            start = c;
    }
    ret = qcow2_overlap_refuse_locked(s, 0, start << s->cluster_bits,
                                      n << s->cluster_bits,
                                      "the new refcount structure", errp);
    if (ret < 0)
        return ret;
    width_grow(w, start + n);
    for (uint64_t c = start; c < start + n; c++)
        w->ref[c] = 1;
    /* Free clusters skipped for a short run stay findable. */
    w->cursor = first_free == start ? start + n : first_free;
    return (int64_t)(start << s->cluster_bits);
}

static uint64_t width_top(Width *w)
{
    uint64_t top = w->n;
    while (top > 1 && !w->ref[top - 1])
        top--;
    return top;
}

/* The old refcounts, less the old structure's own clusters (the new
 * state does not keep it), into w->ref.  That each fits the new width
 * was checked before anything was written (amend_check_width_locked). */
static int width_read(Width *w, Amend *a, BhError **errp)
{
    Qcow2State *s = w->s;
    uint64_t per_old = 1ull << s->rb_bits, cs = s->cluster_size;
    uint64_t last = 0;
    int ret;

    for (uint64_t i = 0; i < s->reftable_size; i++)
        if (s->reftable[i])
            last = i + 1;
    width_grow(w, last * per_old);
    for (uint64_t c = s->reftable_offset / cs;
         c < s->reftable_offset / cs + s->reftable_clusters; c++)
        g_hash_table_add(w->old_meta, g_memdup2(&c, 8));
    for (uint64_t i = 0; i < last; i++) {
        uint64_t e = s->reftable[i], c = e / cs;
        void *block;
        amend_progress(a, i, last * 2);
        if (!e)
            continue;
        if ((e & ~REFT_OFFSET_MASK) || (e & (cs - 1)))
            return bh_error_set(errp, EIO, "qcow2: refcount table entry %"
                                PRIu64 " (0x%" PRIx64 ") is invalid", i, e);
        g_hash_table_add(w->old_meta, g_memdup2(&c, 8));
        ret = qcow2_cache_get(s->rb_cache, e, &block, errp);
        if (ret < 0)
            return ret;
        for (uint64_t k = 0; k < per_old; k++)
            qcow2_rb_get(s, block, k, &w->ref[i * per_old + k]);
        qcow2_cache_put(s->rb_cache, block);
    }
    for (uint64_t c = 0; c < w->n; c++)
        if (w->ref[c] && g_hash_table_contains(w->old_meta, &c))
            w->ref[c]--;
    return 0;
}

/* Give every new block that holds a refcount a cluster, and the table
 * room for every block.  Placing them raises refcounts, which may need
 * more blocks and a larger table: repeat until nothing changes. */
static int width_place(Width *w, BhError **errp)
{
    Qcow2State *s = w->s;
    uint64_t cs = s->cluster_size;
    bool changed = true;
    int64_t off;

    while (changed) {
        uint64_t top = width_top(w), nb = (top + w->per - 1) / w->per, nt;
        changed = false;
        for (uint64_t b = 0; b < nb; b++) {
            bool used = false;
            if (b < w->blocks->len && g_array_index(w->blocks, uint64_t, b))
                continue;
            for (uint64_t c = b * w->per; c < MIN(w->n, (b + 1) * w->per) &&
                 !used; c++)
                used = w->ref[c] != 0;
            if (!used)
                continue;
            off = width_alloc(w, 1, errp);
            if (off < 0)
                return (int)off;
            if (w->blocks->len <= b)
                g_array_set_size(w->blocks, b + 1);
            g_array_index(w->blocks, uint64_t, b) = (uint64_t)off;
            changed = true;
        }
        nb = (width_top(w) + w->per - 1) / w->per;
        nt = MAX(1, qcow2_align_up(MAX(nb, w->blocks->len) * 8, cs) / cs);
        if (nt * cs > QCOW2_MAX_REFTABLE_BYTES)
            return bh_error_set(errp, EFBIG, "qcow2: the refcount table "
                                "would exceed %u bytes",
                                QCOW2_MAX_REFTABLE_BYTES);
        if (w->rt_clusters >= nt)
            continue;
        for (uint64_t c = 0; c < w->rt_clusters; c++)
            w->ref[w->rt_off / cs + c] = 0;
        if (w->rt_clusters)
            w->cursor = MIN(w->cursor, w->rt_off / cs);
        off = width_alloc(w, nt, errp);
        if (off < 0)
            return (int)off;
        w->rt_off = (uint64_t)off;
        w->rt_clusters = nt;
        changed = true;
    }
    return 0;
}

/* Write the new blocks and table (flushed); nothing points at them yet. */
static int width_write(Width *w, Amend *a, BhError **errp)
{
    Qcow2State *s = w->s;
    /* qcow2_rb_set reads only the width from the state it is given. */
    Qcow2State fmt = { .refcount_order = w->order,
                       .refcount_bits = 1 << w->order };
    uint64_t cs = s->cluster_size, nrt = w->rt_clusters * cs / 8;
    g_autofree uint8_t *buf = g_malloc(cs);
    g_autofree uint64_t *rt = g_new0(uint64_t, nrt);
    int ret = 0;

    for (guint b = 0; ret == 0 && b < w->blocks->len; b++) {
        uint64_t off = g_array_index(w->blocks, uint64_t, b);
        amend_progress(a, w->blocks->len + b, 2 * w->blocks->len);
        if (!off)
            continue;
        memset(buf, 0, cs);
        for (uint64_t k = 0; k < w->per && b * w->per + k < w->n; k++)
            qcow2_rb_set(&fmt, buf, k, w->ref[b * w->per + k]);
        rt[b] = GUINT64_TO_BE(off);
        ret = qcow2_overlap_refuse_locked(s, 0, off, cs, "a new refcount "
                                          "block", errp);
        if (ret == 0)
            ret = bh_node_pwrite(s->file, buf, off, cs, 0, errp);
    }
    if (ret == 0)
        ret = qcow2_overlap_refuse_locked(s, 0, w->rt_off, nrt * 8,
                                          "the new refcount table", errp);
    if (ret == 0)
        ret = bh_node_pwrite(s->file, rt, w->rt_off, nrt * 8, 0, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    return ret;
}

static void width_free_state(Width *w)
{
    g_free(w->ref);
    g_hash_table_destroy(w->old_meta);
    g_array_free(w->blocks, TRUE);
}

static int amend_refcount_order_locked(Qcow2State *s, Amend *a,
                                       BhError **errp)
{
    Width w = {
        .s = s, .order = a->refcount_order,
        .per = 1ull << (s->cluster_bits + 3 - a->refcount_order),
        .old_meta = g_hash_table_new_full(g_int64_hash, g_int64_equal,
                                          g_free, NULL),
        .blocks = g_array_new(FALSE, TRUE, sizeof(uint64_t)),
        .cursor = 1,
    };
    uint64_t cs = s->cluster_size, top;
    int64_t flen_now;
    uint8_t hdr[52];
    GHashTableIter it;
    gpointer k;
    int ret;

    ret = qcow2_meta_flush_locked(s, errp);
    if (ret == 0)
        ret = width_read(&w, a, errp);
    if (ret == 0)
        ret = width_place(&w, errp);
    if (ret == 0)
        ret = width_write(&w, a, errp);
    if (ret < 0)
        goto out;

    /* The switch: bytes 48..99 of the header in one write.  The fields
     * between the two that change are written with their values. */
    qcow2_put_be64(hdr, w.rt_off);
    qcow2_put_be32(hdr + 8, (uint32_t)w.rt_clusters);
    qcow2_put_be32(hdr + 12, s->nb_snapshots);
    qcow2_put_be64(hdr + 16, s->snapshots_offset);
    qcow2_put_be64(hdr + 24, s->incompat);
    qcow2_put_be64(hdr + 32, s->compat);
    qcow2_put_be64(hdr + 40, s->autoclear);
    qcow2_put_be32(hdr + 48, (uint32_t)w.order);
    ret = qcow2_header_write_field(s, QH_REFTABLE_OFFSET, hdr, sizeof(hdr),
                                   errp);
    if (ret < 0)
        goto out;

    g_free(s->reftable);
    s->reftable = g_new0(uint64_t, w.rt_clusters * cs / 8);
    for (guint b = 0; b < w.blocks->len; b++)
        s->reftable[b] = g_array_index(w.blocks, uint64_t, b);
    s->reftable_size = w.rt_clusters * cs / 8;
    s->reftable_offset = w.rt_off;
    s->reftable_clusters = (uint32_t)w.rt_clusters;
    s->refcount_order = w.order;
    s->refcount_bits = 1 << w.order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX :
                      (1ull << s->refcount_bits) - 1;
    s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
    qcow2_cache_forget_all(s->rb_cache);
    qcow2_overlap_tables_replaced(s);
    s->free_hint = 1;

    /* Space only, from here: the old structure's clusters are free in
     * the new refcounts; punch them out and cut off the free tail. */
    g_hash_table_iter_init(&it, w.old_meta);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        uint64_t c = *(uint64_t *)k;
        if (c >= w.n || !w.ref[c])
            bh_node_discard(s->file, c * cs, cs, NULL);
    }
    top = width_top(&w);
    flen_now = bh_node_size(s->file);
    if (flen_now > 0 && (uint64_t)flen_now > top * cs)
        bh_node_truncate(s->file, top * cs, NULL);
out:
    width_free_state(&w);
    return ret;
}

/* Whether some refcount is above what order's width holds (the check a
 * narrower width needs before anything is written). */
static int amend_check_width_locked(Qcow2State *s, int order, BhError **errp)
{
    uint64_t max = order == 6 ? UINT64_MAX : (1ull << (1 << order)) - 1;
    uint64_t per = 1ull << s->rb_bits, v;
    void *block;
    int ret;

    if (order >= s->refcount_order)
        return 0;
    for (uint64_t i = 0; i < s->reftable_size; i++) {
        uint64_t e = s->reftable[i];
        if (!e || (e & ~REFT_OFFSET_MASK) || (e & (s->cluster_size - 1)))
            continue;
        ret = qcow2_cache_get(s->rb_cache, e, &block, errp);
        if (ret < 0)
            return ret;
        for (uint64_t k = 0; k < per; k++) {
            qcow2_rb_get(s, block, k, &v);
            if (v > max) {
                qcow2_cache_put(s->rb_cache, block);
                return bh_error_set(errp, EINVAL, "Cannot decrease refcount "
                                    "entry width to %d bits: Cluster at "
                                    "offset %#" PRIx64 " has a refcount of %"
                                    PRIu64, 1 << order,
                                    ((i * per) + k) << s->cluster_bits, v);
            }
        }
        qcow2_cache_put(s->rb_cache, block);
    }
    return 0;
}

/* ---- every L2 table (active and snapshots') ---- */

/* The distinct L2 table offsets of the active L1 and every snapshot's. */
static int amend_l2_tables_locked(Qcow2State *s, GArray *out, BhError **errp)
{
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_int64_hash,
                                                       g_int64_equal, g_free,
                                                       NULL);
    int ret = 0;

    for (int32_t n = -1; ret == 0 && n < (int32_t)s->nb_snapshots; n++) {
        g_autofree uint64_t *l1 = NULL;
        const uint64_t *t = s->l1;
        uint64_t size = s->l1_size;
        if (n >= 0) {
            ret = qcow2_snapshot_read_l1(s, s->snapshots[n].l1_offset,
                                         s->snapshots[n].l1_size, &l1, errp);
            t = l1;
            size = s->snapshots[n].l1_size;
        }
        for (uint64_t i = 0; ret == 0 && i < size; i++) {
            uint64_t off = t[i] & L1E_OFFSET_MASK;
            if (!off || g_hash_table_contains(seen, &off))
                continue;
            g_array_append_val(out, off);
            g_hash_table_add(seen, g_memdup2(&off, 8));
        }
    }
    return ret;
}

/* Whether any L2 table holds a compressed cluster. */
static int amend_has_compressed_locked(Qcow2State *s, BhError **errp)
{
    g_autoptr(GArray) l2s = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    int ret = amend_l2_tables_locked(s, l2s, errp);

    for (guint i = 0; ret == 0 && i < l2s->len; i++) {
        uint64_t *t;
        ret = qcow2_cache_get(s->l2_cache, g_array_index(l2s, uint64_t, i),
                              (void **)&t, errp);
        if (ret < 0)
            return ret;
        for (uint64_t j = 0; j < s->l2_entries && ret == 0; j++)
            if (qcow2_entry_type(s, GUINT64_FROM_BE(t[j])) ==
                QCOW2_COMPRESSED)
                ret = 1;
        qcow2_cache_put(s->l2_cache, t);
    }
    return ret;
}

/* A cluster of zeros counted refs times, for an entry of a table that
 * refs L1 entries share. */
static int64_t amend_zero_cluster_locked(Qcow2State *s, uint64_t refs,
                                         BhError **errp)
{
    int64_t off = qcow2_alloc_clusters_locked(s, 1, errp);
    int ret;

    if (off < 0)
        return off;
    ret = refs > 1 ? qcow2_update_refcount_locked(s, (uint64_t)off >>
                                                  s->cluster_bits,
                                                  (int64_t)refs - 1, errp) : 0;
    if (ret == 0)
        ret = bh_node_write_zeroes(s->file, (uint64_t)off, s->cluster_size,
                                   0, errp);
    return ret < 0 ? ret : off;
}

/* v2 has no zero flag: every zero cluster of the L2 table at l2_off
 * becomes unallocated (nothing shows through without a backing file) or
 * an allocated cluster of zeros.  The zeros are written before the table
 * (the L2 cache's write hook flushes them first); old clusters are freed
 * once the table is on disk. */
static int amend_expand_l2_locked(Qcow2State *s, uint64_t l2_off,
                                  BhError **errp)
{
    uint64_t refs, *t;
    int ret = qcow2_get_refcount_locked(s, l2_off >> s->cluster_bits, &refs,
                                        errp);

    if (ret < 0)
        return ret;
    refs = MAX(refs, 1);
    ret = qcow2_cache_get(s->l2_cache, l2_off, (void **)&t, errp);
    if (ret < 0)
        return ret;
    for (uint64_t j = 0; j < s->l2_entries && ret == 0; j++) {
        uint64_t e = GUINT64_FROM_BE(t[j]), host = e & L2E_OFFSET_MASK;
        uint64_t ne, hrefs = 0;
        int64_t off;

        switch (qcow2_entry_type(s, e)) {
        case QCOW2_ZERO_ALLOC:
            ret = qcow2_get_refcount_locked(s, host >> s->cluster_bits,
                                            &hrefs, errp);
            if (ret < 0)
                break;
            if (hrefs <= refs) {
                /* Only this entry reaches it (through every L1 entry
                 * that shares the table): zeros in place. */
                ret = bh_node_write_zeroes(s->file, host, s->cluster_size,
                                           0, errp);
                ne = e & ~QCOW_OFLAG_ZERO;
                break;
            }
            /* Shared: other tables may read its data; a new one. */
            /* fall through */
        case QCOW2_ZERO_PLAIN:
            ne = 0;
            if (s->backing_file) {
                off = amend_zero_cluster_locked(s, refs, errp);
                if (off < 0) {
                    ret = (int)off;
                    break;
                }
                ne = (uint64_t)off | (refs == 1 ? QCOW_OFLAG_COPIED : 0);
            }
            for (uint64_t r = 0; host && r < refs; r++)
                qcow2_free_later_locked(s, host, s->cluster_size);
            break;
        default:
            continue;
        }
        if (ret < 0)
            break;
        t[j] = GUINT64_TO_BE(ne);
        qcow2_cache_mark_dirty(s->l2_cache, t);
    }
    qcow2_cache_put(s->l2_cache, t);
    return ret;
}

/* ---- the steps ---- */

static void amend_set_caps(BhNode *bs, Qcow2State *s)
{
    bh_node_set_caps(bs, BH_CAP_DISCARD | (s->version >= 3 ? BH_CAP_ZERO : 0));
}

/* Flush everything and clear the dirty bit: the refcounts in memory are
 * exact (a dirty image was rebuilt when it was opened read-write). */
static int amend_mark_clean_locked(Qcow2State *s, BhError **errp)
{
    int ret = qcow2_meta_flush_locked(s, errp);
    if (ret == 0)
        ret = qcow2_header_set_incompat(s, QCOW2_INCOMPAT_DIRTY, false, errp);
    return ret;
}

static int amend_upgrade_locked(BhNode *bs, Qcow2State *s, Amend *a,
                                BhError **errp)
{
    GArray *t = qcow2_sn_table_read(s, errp);
    bool rewrite = false;
    int ret = 0;

    if (!t)
        return -EINVAL;
    amend_progress(a, 0, 2);
    /* v3 wants every snapshot's VM state size and disk size in its extra
     * data; the table is written with them (a commit: new table, one
     * header write). */
    for (guint i = 0; i < t->len; i++)
        rewrite |= g_array_index(t, Qcow2SnEntry, i).extra_size < 16;
    if (rewrite) {
        g_autofree uint64_t *l1 = g_memdup2(s->l1, MAX(s->l1_size, 1) * 8);
        ret = qcow2_meta_flush_locked(s, errp);
        if (ret == 0)
            ret = qcow2_snapshot_commit_locked(s, l1, s->l1_size, s->size, t,
                                               errp);
    }
    qcow2_sn_table_free(t);
    if (ret < 0)
        return ret;
    amend_progress(a, 1, 2);
    s->version = 3;
    s->incompat = s->compat = s->autoclear = 0;
    s->compression_type = 0;
    ret = amend_write_header_locked(s, errp);
    if (ret < 0) {
        s->version = 2;
        s->header_length = 72;
        return ret;
    }
    amend_set_caps(bs, s);
    amend_progress(a, 2, 2);
    return 0;
}

static int amend_lazy_locked(Qcow2State *s, bool lazy, BhError **errp)
{
    uint64_t v = lazy ? s->compat | QCOW2_COMPAT_LAZY_REFCOUNTS
                      : s->compat & ~QCOW2_COMPAT_LAZY_REFCOUNTS;
    uint8_t be[8];
    int ret = 0;

    if (!lazy)
        ret = amend_mark_clean_locked(s, errp);
    if (ret < 0)
        return ret;
    qcow2_put_be64(be, v);
    ret = qcow2_header_write_field(s, QH_COMPAT, be, 8, errp);
    if (ret < 0)
        return ret;
    s->compat = v;
    s->lazy = lazy;
    return 0;
}

static int amend_downgrade_locked(BhNode *bs, Qcow2State *s, Amend *a,
                                  BhError **errp)
{
    g_autoptr(GArray) l2s = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    int ret = amend_mark_clean_locked(s, errp);

    /* v2 has no lazy refcounts, and nothing keeps the autoclear bits. */
    if (ret == 0 && s->compat) {
        uint8_t zero[8] = { 0 };
        ret = qcow2_header_write_field(s, QH_COMPAT, zero, 8, errp);
        if (ret == 0)
            s->compat = 0;
    }
    s->lazy = false;
    if (ret == 0)
        ret = amend_l2_tables_locked(s, l2s, errp);
    for (guint i = 0; ret == 0 && i < l2s->len; i++) {
        amend_progress(a, i, l2s->len + 1);
        ret = amend_expand_l2_locked(s, g_array_index(l2s, uint64_t, i),
                                     errp);
    }
    if (ret == 0)
        ret = qcow2_meta_flush_locked(s, errp);
    if (ret < 0) {
        bh_error_prefix(errp, "Failed to turn zero into data clusters: ");
        return ret;
    }
    /* zstd with no compressed cluster (checked first): zlib will do. */
    s->incompat &= ~QCOW2_INCOMPAT_COMPRESSION;
    s->compression_type = 0;
    s->autoclear = 0;
    s->version = 2;
    ret = amend_write_header_locked(s, errp);
    if (ret < 0) {
        s->version = 3;
        return ret;
    }
    amend_set_caps(bs, s);
    amend_progress(a, l2s->len + 1, l2s->len + 1);
    return 0;
}

/* ---- options ---- */

static int amend_check_locked(Qcow2State *s, BhOpts *opts, Amend *a,
                              bool *lazy_set, BhError **errp)
{
    const char *compat = bh_opts_get(opts, "compat");
    const char *bits = bh_opts_get(opts, "refcount_bits");
    const char *size = bh_opts_get(opts, "size");
    const char *bf = bh_opts_get(opts, "backing_file");
    const char *bfmt = bh_opts_get(opts, "backing_fmt");
    bool raw = false;
    int ret;

    /* What qemu-img finds while parsing the list, first. */
    if (size && !bh_parse_size(size, &a->size, NULL))
        return bh_error_set(errp, EINVAL, "Parameter 'size' expects a "
                            "non-negative number below 2^64\nOptional suffix"
                            " k, M, G, T, P or E means kilo-, mega-, giga-, "
                            "tera-, peta-\nand exabytes, respectively.");
    *lazy_set = bh_opts_has(opts, "lazy_refcounts");
    if (amend_get_bool(opts, "lazy_refcounts", &a->lazy, errp) < 0 ||
        amend_get_bool(opts, "data_file_raw", &raw, errp) < 0)
        return -EINVAL;
    if (bits) {
        char *end = NULL;
        guint64 v = g_ascii_strtoull(bits, &end, 0);
        if (!*bits || *end || *bits == '-')
            return bh_error_set(errp, EINVAL, "Parameter 'refcount_bits' "
                                "expects a number");
        if (v == 0 || v > 64 || (v & (v - 1)))
            return bh_error_set(errp, EINVAL, "Refcount width must be a "
                                "power of two and may not exceed 64 bits");
        a->refcount_order = __builtin_ctzll(v);
    }
    for (size_t i = 0; i < bh_opts_count(opts); i++)
        if (!strncmp(bh_opts_key(opts, i), "encrypt.", 8))
            return bh_error_set(errp, EINVAL, "Can't amend encryption "
                                "options - encryption not present");
    if (compat) {
        if (!strcmp(compat, "0.10") || !strcmp(compat, "v2"))
            a->version = 2;
        else if (!strcmp(compat, "1.1") || !strcmp(compat, "v3"))
            a->version = 3;
        else
            return bh_error_set(errp, EINVAL, "Unknown compatibility level "
                                "%s", compat);
    }
    if (bh_opts_get(opts, "data_file"))
        return bh_error_set(errp, EINVAL, "data-file can only be set for "
                            "images that use an external data file");
    if (raw)
        return bh_error_set(errp, EINVAL, "data-file-raw cannot be set on "
                            "existing images");

    /* Then what qemu-img finds on its way through the steps. */
    if (a->refcount_order != s->refcount_order) {
        if (a->version < 3 && a->refcount_order != 4)
            return bh_error_set(errp, EINVAL, "Refcount widths other than 16"
                                " bits require compatibility level 1.1 or "
                                "above (use compat=1.1 or greater)");
        ret = amend_check_width_locked(s, a->refcount_order, errp);
        if (ret < 0)
            return ret;
    }
    if ((bf || bfmt) && (g_strcmp0(bf, s->backing_file) ||
                         g_strcmp0(bfmt, s->backing_format)))
        return bh_error_set(errp, EINVAL, "Cannot amend the backing file\n"
                            "You can use 'qemu-img rebase' instead.");
    if (a->lazy && !s->lazy && a->version < 3)
        return bh_error_set(errp, EINVAL, "Lazy refcounts only supported "
                            "with compatibility level 1.1 and above (use "
                            "compat=1.1 or greater)");
    if (a->size && a->size % 512)
        return bh_error_set(errp, EINVAL, "The new size must be a multiple "
                            "of 512");
    if (a->version < (int)s->version) {
        uint64_t disk = a->size ? a->size : s->size;
        GArray *t;
        if (a->refcount_order != 4)
            return bh_error_set(errp, ENOTSUP, "compat=0.10 requires "
                                "refcount_bits=16");
        t = qcow2_sn_table_read(s, errp);
        if (!t)
            return -EINVAL;
        for (guint i = 0; i < t->len; i++) {
            Qcow2SnEntry *e = &g_array_index(t, Qcow2SnEntry, i);
            if (e->vm_state_size > UINT32_MAX || e->disk_size != disk) {
                qcow2_sn_table_free(t);
                return bh_error_set(errp, ENOTSUP, "Internal snapshots "
                                    "prevent downgrade of image");
            }
        }
        qcow2_sn_table_free(t);
        if (s->incompat & ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_COMPRESSION))
            return bh_error_set(errp, ENOTSUP, "Cannot downgrade an image "
                                "with incompatible features 0x%" PRIx64
                                " set", (uint64_t)(s->incompat &
                                ~(QCOW2_INCOMPAT_DIRTY |
                                  QCOW2_INCOMPAT_COMPRESSION)));
        if (s->compression_type) {
            ret = amend_has_compressed_locked(s, errp);
            if (ret < 0)
                return ret;
            if (ret)
                return bh_error_set(errp, ENOTSUP, "Cannot downgrade an "
                                    "image with zstd compression type and "
                                    "existing compressed clusters");
        }
    }
    return 0;
}

int qcow2_amend(BhNode *bs, BhOpts *opts, uint32_t flags,
                BhAmendProgress progress, void *opaque, BhError **errp)
{
    Qcow2State *s = bh_node_get_opaque(bs);
    Amend a = { .cb = progress, .opaque = opaque };
    bool lazy_set = false;
    int ret;

    (void)flags;   /* --force only matters to encryption, which qcow2
                    * images blkhost opens never have */
    g_mutex_lock(&s->lock);
    a.version = (int)s->version;
    a.lazy = s->lazy;
    a.refcount_order = s->refcount_order;
    ret = amend_check_locked(s, opts, &a, &lazy_set, errp);
    if (ret < 0)
        goto out;
    if (!lazy_set && a.version < 3)
        a.lazy = false;
    a.steps = (a.version != (int)s->version) +
              (a.refcount_order != s->refcount_order);
    if (a.version != (int)s->version || a.refcount_order != s->refcount_order ||
        a.lazy != s->lazy || (a.size && a.size != s->size)) {
        ret = qcow2_prepare_first_write_locked(s, errp);
        if (ret < 0)
            goto out;
    }

    /* Upgrade first: the rest may need version 3. */
    if (a.version > (int)s->version) {
        ret = amend_upgrade_locked(bs, s, &a, errp);
        if (ret < 0)
            goto out;
        a.step++;
    }
    if (a.refcount_order != s->refcount_order) {
        ret = amend_refcount_order_locked(s, &a, errp);
        if (ret < 0)
            goto out;
        a.step++;
    }
    if (a.lazy != s->lazy && a.version >= 3) {
        ret = amend_lazy_locked(s, a.lazy, errp);
        if (ret < 0)
            goto out;
    }
    if (a.size && a.size != s->size) {
        g_mutex_unlock(&s->lock);
        ret = qcow2_truncate(bs, a.size, errp);
        g_mutex_lock(&s->lock);
        if (ret < 0)
            goto out;
        bh_node_refresh_size(bs);
    }
    /* Downgrade last, once nothing needs version 3 any more. */
    if (a.version < (int)s->version) {
        ret = amend_downgrade_locked(bs, s, &a, errp);
        if (ret < 0)
            goto out;
        a.step++;
    }
    ret = qcow2_meta_flush_locked(s, errp);
    if (ret == 0 && a.steps) {
        a.step = a.steps;          /* all of it */
        amend_progress(&a, 0, 1);
    }
out:
    g_mutex_unlock(&s->lock);
    return ret;
}
