/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 metadata cache: a fixed number of cluster-sized tables (L2 tables
 * or refcount blocks) kept in memory, written back when evicted or flushed.
 *
 * The write-back order between the two caches is what keeps the image
 * consistent after a crash, so a cache may carry a before_write hook: the
 * L2 cache's hook makes refcounts and guest data durable before any L2
 * table that points at them reaches the file (see refcount.c).
 * Every call runs under Qcow2State.lock.
 */
#include "qcow2.h"

#include <errno.h>

typedef struct {
    uint64_t offset;   /* 0: slot empty */
    uint64_t lru;
    int pins;
    bool dirty;
} Qcow2CacheSlot;

struct Qcow2Cache {
    Qcow2State *s;
    const char *what;
    size_t n;
    Qcow2CacheSlot *slots;
    uint8_t *mem;
    GHashTable *index;           /* offset -> slot + 1 */
    uint64_t lru_clock;
    Qcow2CacheHook before_write;
};

Qcow2Cache *qcow2_cache_new(Qcow2State *s, const char *what, size_t entries,
                            Qcow2CacheHook before_write)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    c->s = s;
    c->what = what;
    c->n = entries < 2 ? 2 : entries;
    c->slots = g_new0(Qcow2CacheSlot, c->n);
    c->mem = g_malloc(c->n * s->cluster_size);
    c->index = g_hash_table_new(g_int64_hash, g_int64_equal);
    c->before_write = before_write;
    return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
    if (!c)
        return;
    g_hash_table_destroy(c->index);
    g_free(c->slots);
    g_free(c->mem);
    g_free(c);
}

static void *slot_data(Qcow2Cache *c, size_t i)
{
    return c->mem + i * c->s->cluster_size;
}

static size_t slot_of(Qcow2Cache *c, const void *table)
{
    return (size_t)((const uint8_t *)table - c->mem) / c->s->cluster_size;
}

static int cache_write_slot(Qcow2Cache *c, size_t i, BhError **errp)
{
    Qcow2State *s = c->s;
    unsigned self = c == s->l2_cache ? QCOW2_OL_ACTIVE_L2 :
                    QCOW2_OL_REFCOUNT_BLOCK;
    int ret;

    /* Last line of defence against writing a table over other metadata
     * because of a corrupt pointer or refcount (overlap.c). */
    ret = qcow2_overlap_refuse_locked(s, self, c->slots[i].offset,
                                      s->cluster_size, c->what, errp);
    if (ret < 0)
        return ret;
    ret = bh_node_pwrite(s->file, slot_data(c, i), c->slots[i].offset,
                         s->cluster_size, 0, errp);
    if (ret < 0)
        return ret;
    c->slots[i].dirty = false;
    return 0;
}

bool qcow2_cache_has_dirty(Qcow2Cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].offset && c->slots[i].dirty)
            return true;
    return false;
}

int qcow2_cache_flush(Qcow2Cache *c, BhError **errp)
{
    int ret;

    if (!qcow2_cache_has_dirty(c))
        return 0;
    if (c->before_write) {
        ret = c->before_write(c->s, errp);
        if (ret < 0)
            return ret;
    }
    /* Ascending offsets keep the writes sequential on the file. */
    for (;;) {
        size_t best = c->n;
        for (size_t i = 0; i < c->n; i++) {
            if (c->slots[i].offset && c->slots[i].dirty &&
                (best == c->n || c->slots[i].offset < c->slots[best].offset))
                best = i;
        }
        if (best == c->n)
            return 0;
        ret = cache_write_slot(c, best, errp);
        if (ret < 0)
            return ret;
    }
}

/* Find a slot for a new table: an empty one, else the least recently used
 * unpinned one, written back first if dirty. */
static int cache_victim(Qcow2Cache *c, size_t *out, BhError **errp)
{
    size_t best = c->n;
    int ret;

    for (size_t i = 0; i < c->n; i++) {
        if (!c->slots[i].offset) {
            *out = i;
            return 0;
        }
        if (c->slots[i].pins)
            continue;
        if (best == c->n || c->slots[i].lru < c->slots[best].lru)
            best = i;
    }
    if (best == c->n)
        return bh_error_set(errp, ENOMEM, "qcow2: every %s cache entry is "
                            "in use", c->what);
    if (c->slots[best].dirty) {
        if (c->before_write) {
            ret = c->before_write(c->s, errp);
            if (ret < 0)
                return ret;
        }
        ret = cache_write_slot(c, best, errp);
        if (ret < 0)
            return ret;
    }
    g_hash_table_remove(c->index, &c->slots[best].offset);
    c->slots[best].offset = 0;
    *out = best;
    return 0;
}

static int cache_lookup(Qcow2Cache *c, uint64_t offset, void **table,
                        bool read, BhError **errp)
{
    gpointer v = g_hash_table_lookup(c->index, &offset);
    size_t i = 0;
    int ret;

    if (v) {
        i = GPOINTER_TO_SIZE(v) - 1;
    } else {
        ret = cache_victim(c, &i, errp);
        if (ret < 0)
            return ret;
        if (read) {
            ret = bh_node_pread(c->s->file, slot_data(c, i), offset,
                                c->s->cluster_size, 0, errp);
            if (ret < 0)
                return ret;
        } else {
            memset(slot_data(c, i), 0, c->s->cluster_size);
        }
        c->slots[i].offset = offset;
        c->slots[i].dirty = false;
        c->slots[i].pins = 0;
        g_hash_table_insert(c->index, &c->slots[i].offset,
                            GSIZE_TO_POINTER(i + 1));
    }
    c->slots[i].lru = ++c->lru_clock;
    c->slots[i].pins++;
    *table = slot_data(c, i);
    return 0;
}

int qcow2_cache_get(Qcow2Cache *c, uint64_t offset, void **table,
                    BhError **errp)
{
    return cache_lookup(c, offset, table, true, errp);
}

/* A table that is new on disk: zero-filled, not read. */
int qcow2_cache_get_empty(Qcow2Cache *c, uint64_t offset, void **table,
                          BhError **errp)
{
    int ret = cache_lookup(c, offset, table, false, errp);
    if (ret == 0)
        memset(*table, 0, c->s->cluster_size);
    return ret;
}

bool qcow2_cache_contains(Qcow2Cache *c, uint64_t offset)
{
    return g_hash_table_contains(c->index, &offset);
}

void qcow2_cache_put(Qcow2Cache *c, void *table)
{
    size_t i = slot_of(c, table);
    g_assert(i < c->n && c->slots[i].pins > 0);
    c->slots[i].pins--;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, void *table)
{
    size_t i = slot_of(c, table);
    g_assert(i < c->n && c->slots[i].offset);
    c->slots[i].dirty = true;
}

/* The cluster was freed: its cached copy must never be written back. */
void qcow2_cache_forget(Qcow2Cache *c, uint64_t offset)
{
    gpointer v = g_hash_table_lookup(c->index, &offset);
    size_t i;

    if (!v)
        return;
    i = GPOINTER_TO_SIZE(v) - 1;
    g_hash_table_remove(c->index, &offset);
    c->slots[i].offset = 0;
    c->slots[i].dirty = false;
    c->slots[i].pins = 0;
}

void qcow2_cache_forget_all(Qcow2Cache *c)
{
    g_hash_table_remove_all(c->index);
    for (size_t i = 0; i < c->n; i++) {
        c->slots[i].offset = 0;
        c->slots[i].dirty = false;
        c->slots[i].pins = 0;
    }
}
