/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Copying a node into another with many requests in flight: the engine
 * (bh_copy_run, inflight.h) and bh.copy, its Lua binding, which `blkhost
 * convert` uses.
 *
 * The engine walks the source's map (bh_node_block_map) chunk by chunk,
 * as qemu-img convert does with its coroutines: each of `workers` slots
 * takes the next chunk, reads it if it holds data, then writes it (zero
 * areas are not read).  Out of order (-W), a slot writes as soon as its
 * read is in; in order, chunk k's writes start only when chunk k-1's are
 * done, so one write is in flight and the reads run ahead of it.  Inside
 * a chunk, blocks of `sparse` zero bytes (aligned in the target) are not
 * written, or become zero requests when the target does not read as
 * zeros; neighbouring blocks of a kind go out as one request, one after
 * the other.  With `align` (compressed writes take whole clusters) chunks
 * start and end on multiples of it in the target.
 *
 * Everything but the requests themselves runs on the calling thread: the
 * map walk, the zero scan, the progress callback.  The Lua binding lets
 * go of the script lock while the engine runs (drivers the script
 * registered may be called from the pool) and takes it back around each
 * progress call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bh-lua.h"
#include "inflight.h"

#define COPY_CHUNK (2u << 20)  /* qemu-img convert's buffer */
#define COPY_ALIGN 4096        /* O_DIRECT targets need no bounce */

typedef enum { SLOT_FREE, SLOT_READING, SLOT_READY, SLOT_WRITING } SlotState;

typedef struct {
    SlotState state;
    bool data;          /* read from the source; else zeros */
    uint64_t seq;       /* chunk number, for in-order writes */
    uint64_t src_off, dst_off, len;
    uint64_t wlen;      /* bytes written: len, or with the zeros that
                         * complete the range's last unit (align) */
    bool plain;         /* written without c->write_flags */
    uint64_t pos;       /* bytes of the chunk written (or skipped) */
    uint8_t *buf;
} CopySlot;

typedef struct {
    const BhCopy *c;
    BhInflight *q;
    CopySlot *slots;
    uint64_t chunk;
    uint64_t cursor, end;       /* source bytes not yet given to a slot */
    uint64_t dst_size;
    uint64_t map_end;           /* the cached map entry: [.., map_end) */
    int map_kind;               /* MAP_* below */
    uint64_t next_seq, next_write;
    uint8_t *zeros;             /* chunk bytes of zeros, for -S 0 */
    BhError *err;               /* the first failure */
    int ret;
} CopyRun;

enum { MAP_DATA, MAP_ZERO, MAP_BACKING };

static bool copy_is_zero(const uint8_t *p, size_t len)
{
    /* A short head byte by byte, then the buffer against itself shifted:
     * all zero iff the head is and they match. */
    size_t head = len < 16 ? len : 16;
    for (size_t i = 0; i < head; i++)
        if (p[i])
            return false;
    return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}

static void copy_fail(CopyRun *r, int ret, BhError *err)
{
    if (r->ret == 0) {
        r->ret = ret < 0 ? ret : -EIO;
        r->err = err ? err : bh_error_new(-r->ret, "copy failed: %s",
                                          g_strerror(-r->ret));
    } else if (err) {
        bh_error_free(err);
    }
}

static bool copy_progress(CopyRun *r, uint64_t bytes)
{
    BhError *err = NULL;
    if (!r->c->progress || r->c->progress(r->c->opaque, bytes, &err))
        return true;
    copy_fail(r, -ECANCELED, err);
    return false;
}

/* What the map says about the source at cursor, and until where. */
static int copy_map(CopyRun *r)
{
    uint64_t pnum;
    BhMapEntry e;
    BhError *err = NULL;
    int ret = bh_node_block_map(r->c->src, r->cursor, r->end - r->cursor,
                                &pnum, &e, &err);
    if (ret < 0) {
        copy_fail(r, ret, err);
        return ret;
    }
    r->map_end = r->cursor + pnum;
    if ((r->c->skip_backing && e.depth > 0) ||
        (r->c->max_depth && (!e.present || e.depth >= r->c->max_depth)))
        r->map_kind = MAP_BACKING;
    else if (e.flags & BH_MAP_ZERO)
        r->map_kind = MAP_ZERO;
    else
        r->map_kind = MAP_DATA;
    return 0;
}

/*
 * With c->align, chunks begin and end on multiples of it in dst (or at
 * the ends of the range), for writes that take whole units (compressed
 * clusters).  A map area ending inside a unit ends its chunk at the unit
 * before; one ending inside the chunk's first unit makes that unit a
 * chunk of its own, read as data: reading through the chain gives every
 * byte of it, whatever each part's kind.  *len and the kind returned
 * are the chunk's.
 */
static int copy_align(CopyRun *r, uint64_t *len, int kind)
{
    const uint64_t align = r->c->align;
    const uint64_t base = r->c->dst_offset - r->c->offset; /* src -> dst */
    uint64_t dpos = r->cursor + base, dend = dpos + *len;
    uint64_t dlast = r->end + base;
    uint64_t down = dend / align * align;

    if (down == dend)
        return kind;
    if (down > dpos) {
        /* Up to the last whole unit; the rest (at the range's end too:
         * its last unit is a chunk apart, copy_last_unit) comes next. */
        *len = down - dpos;
        return kind;
    }
    if (dend == dlast)
        return kind;
    *len = MIN((dpos / align + 1) * align, dlast) - dpos;
    return MAP_DATA;
}

/*
 * The range's last unit (align) when it stops short of a unit boundary
 * and of dst's end (a source whose size is not a multiple of 512 in a
 * target rounded up): a target that reads as zeros gets the unit whole,
 * completed with zeros it holds already; another gets the bytes written
 * as they are, without the flags (a compressed write would be refused).
 */
static void copy_last_unit(CopyRun *r, CopySlot *s)
{
    const uint64_t align = r->c->align;
    uint64_t dend = s->dst_off + s->len;
    uint64_t unit_end = MIN((dend + align - 1) / align * align, r->dst_size);

    if (dend % align == 0 || unit_end <= dend)
        return;
    if (r->c->zero_init) {
        s->wlen = unit_end - s->dst_off;
        memset(s->buf + s->len, 0, (size_t)(s->wlen - s->len));
    } else {
        s->plain = true;
    }
}

/* Give slot s the next chunk that needs a request; false when there is
 * none left (or the walk failed).  Chunks needing nothing (the backing
 * file shows through, zeros over zeros) are counted done here. */
static bool copy_assign(CopyRun *r, CopySlot *s)
{
    while (r->cursor < r->end && r->ret == 0) {
        if (r->cursor >= r->map_end && copy_map(r) < 0)
            return false;
        uint64_t len = MIN(r->map_end - r->cursor, r->chunk);
        int kind = r->map_kind;
        if (r->c->align)
            kind = copy_align(r, &len, kind);
        /* Zeros over zeros need nothing, unless zeros are data (-S 0). */
        bool skip = kind == MAP_BACKING ||
                    (kind == MAP_ZERO && r->c->zero_init &&
                     (r->c->sparse || r->c->zeros_as_requests));
        if (skip) {
            r->cursor += len;
            if (!copy_progress(r, len))
                return false;
            continue;
        }
        s->data = kind == MAP_DATA;
        s->seq = r->next_seq++;
        s->src_off = r->cursor;
        s->dst_off = r->c->dst_offset + (r->cursor - r->c->offset);
        s->len = s->wlen = len;
        s->plain = false;
        s->pos = 0;
        r->cursor += len;
        if (r->c->align && r->cursor == r->end)
            copy_last_unit(r, s);
        if (s->data) {
            s->state = SLOT_READING;
            bh_inflight_submit(r->q, r->c->src, BH_OP_READ, s->src_off, len,
                               s->buf, 0, s);
        } else {
            s->state = SLOT_READY;
        }
        return true;
    }
    return false;
}

/* The next request of slot s's chunk from s->pos: false when the chunk
 * is all written. */
static bool copy_write_next(CopyRun *r, CopySlot *s)
{
    const BhCopy *c = r->c;
    const uint64_t sparse = c->sparse;

    while (s->pos < s->wlen) {
        uint64_t start = s->pos, pos = s->pos;
        bool zero = false;

        if (!s->data) {
            pos = s->wlen;
            zero = true;
        } else if (sparse == 0) {
            pos = s->wlen;
        } else {
            /* Blocks end at multiples of sparse in the target; a run
             * goes on while the blocks are of its kind. */
            for (bool first = true; pos < s->wlen; first = false) {
                uint64_t abs = s->dst_off + pos;
                uint64_t bend = MIN(s->wlen, (abs / sparse + 1) * sparse -
                                    s->dst_off);
                bool z = bend - pos == sparse &&
                         copy_is_zero(s->buf + pos, (size_t)sparse);
                if (first)
                    zero = z;
                else if (z != zero)
                    break;
                pos = bend;
            }
        }
        uint64_t len = pos - start;
        uint32_t flags = s->plain ? 0 : c->write_flags;
        s->pos = pos;
        if (!zero) {
            bh_inflight_submit(r->q, c->dst, BH_OP_WRITE, s->dst_off + start,
                               len, s->buf + start, flags, s);
            return true;
        }
        if (sparse == 0 && !c->zeros_as_requests) {
            /* Fully allocated output: zeros are written as data. */
            s->pos = start + MIN(len, r->chunk);
            bh_inflight_submit(r->q, c->dst, BH_OP_WRITE, s->dst_off + start,
                               s->pos - start, r->zeros, flags, s);
            return true;
        }
        if (!c->zero_init) {
            bh_inflight_submit(r->q, c->dst, BH_OP_WRITE_ZEROES,
                               s->dst_off + start, len, NULL,
                               BH_IO_MAY_UNMAP, s);
            return true;
        }
        /* Zeros over zeros: nothing to write. */
    }
    return false;
}

/* Slot s's chunk is written: count it, free the slot. */
static void copy_chunk_done(CopyRun *r, CopySlot *s)
{
    s->state = SLOT_FREE;
    if (r->c->in_order)
        r->next_write++;
    copy_progress(r, s->len);
}

/* Start the writes that may start; true if any slot changed. */
static bool copy_start_writes(CopyRun *r)
{
    bool moved = false;
    for (unsigned i = 0; i < r->c->workers && r->ret == 0; i++) {
        CopySlot *s = &r->slots[i];
        if (s->state != SLOT_READY ||
            (r->c->in_order && s->seq != r->next_write))
            continue;
        moved = true;
        s->state = SLOT_WRITING;
        if (!copy_write_next(r, s))
            copy_chunk_done(r, s);
    }
    return moved;
}

int bh_copy_run(const BhCopy *c, BhError **errp)
{
    CopyRun r = {
        .c = c,
        .chunk = c->chunk ? c->chunk : COPY_CHUNK,
        .cursor = c->offset,
        .end = c->offset + c->length,
        .map_end = c->offset,
    };
    g_assert(c->workers >= 1);
    int64_t dst_size = bh_node_size(c->dst);
    r.dst_size = dst_size > 0 ? (uint64_t)dst_size : 0;
    if (c->align)
        r.chunk = MAX(c->align, r.chunk / c->align * c->align);
    r.q = bh_inflight_new(c->workers);
    r.slots = g_new0(CopySlot, c->workers);
    /* A chunk may grow by the zeros completing the last unit (align). */
    for (unsigned i = 0; i < c->workers; i++)
        r.slots[i].buf = g_aligned_alloc(1, r.chunk + c->align, COPY_ALIGN);
    if (c->sparse == 0 && !c->zeros_as_requests)
        r.zeros = g_aligned_alloc0(1, r.chunk + c->align, COPY_ALIGN);

    for (;;) {
        bool moved;
        do {
            moved = false;
            for (unsigned i = 0; i < c->workers && r.ret == 0; i++)
                if (r.slots[i].state == SLOT_FREE &&
                    copy_assign(&r, &r.slots[i]))
                    moved = true;
            moved |= copy_start_writes(&r);
        } while (moved && r.ret == 0);
        if (bh_inflight_count(r.q) == 0)
            break;  /* all done, or failed and drained */

        BhError *err = NULL;
        int ret;
        CopySlot *s = bh_inflight_wait(r.q, &ret, &err);
        if (ret < 0 || r.ret < 0) {
            if (ret < 0)
                copy_fail(&r, ret, err);
            s->state = SLOT_FREE;
            continue;
        }
        if (s->state == SLOT_READING)
            s->state = SLOT_READY;
        else if (!copy_write_next(&r, s))
            copy_chunk_done(&r, s);
    }

    bh_inflight_free(r.q);
    for (unsigned i = 0; i < c->workers; i++)
        g_aligned_free(r.slots[i].buf);
    g_free(r.slots);
    g_aligned_free(r.zeros);
    if (r.ret < 0)
        bh_error_propagate(errp, r.err);
    return r.ret;
}

/* ---- bh.copy ---- */

/* Flags a write may carry, by their names in node:write's options. */
static const struct {
    const char *name;
    uint32_t flag;
} copy_flag_names[] = {
    { "fua", BH_IO_FUA },
#ifdef BH_IO_COMPRESSED
    { "compress", BH_IO_COMPRESSED },
#endif
};

typedef struct {
    lua_State *L;
    int fn;   /* stack index of the progress function, 0: none */
} CopyLua;

/* On the calling thread, between two waits: call fn(bytes) with the
 * script lock held. */
static bool copy_lua_progress(void *opaque, uint64_t bytes, BhError **errp)
{
    CopyLua *cl = opaque;
    lua_State *L = cl->L;

    bh_lua_driver_reacquire();
    lua_pushvalue(L, cl->fn);
    lua_pushinteger(L, (lua_Integer)bytes);
    bool ok = lua_pcall(L, 1, 0, 0) == LUA_OK;
    if (!ok) {
        bh_error_set(errp, ECANCELED, "%s", lua_isstring(L, -1) ?
                     lua_tostring(L, -1) : "progress callback failed");
        lua_pop(L, 1);
    }
    bh_lua_driver_release();
    return ok;
}

/* Integer field name of the options table at idx (absent: def). */
static uint64_t copy_opt_u64(lua_State *L, int idx, const char *name,
                             uint64_t def)
{
    lua_getfield(L, idx, name);
    uint64_t v = lua_isnil(L, -1) ? def : bh_lua_check_u64(L, -1, name);
    lua_pop(L, 1);
    return v;
}

/*
 * bh.copy(src, dst [, opts]): copy src's bytes into dst.  opts:
 *   offset, length   the source's range (default all of it)
 *   target_offset    where it lands in dst (default offset)
 *   workers          requests in flight, 1 to 64 (default 8)
 *   in_order         writes in offset order, one at a time (default true)
 *   sparse           zero blocks this long not written (default 4096;
 *                    0: everything written, zeros as data)
 *   zero_init        dst reads as zeros already: zeros are not written
 *   zero_requests    areas reading as zeros become zero requests even
 *                    with sparse 0 (data is written whole)
 *   skip_backing     what src's backing files hold is left alone
 *   max_depth        only what the layers above this depth of src's
 *                    chain hold is copied (1: src's own layer)
 *   chunk            bytes per read (default 2 MiB)
 *   align            chunks start and end on multiples of it in dst
 *                    (compressed writes take whole clusters)
 *   flags            the data writes' flags, as node:write's: {fua=true}
 *   progress         function(bytes), called as pieces are done
 * Raises the first failure after the requests in flight have ended.
 */
static int copy_lua(lua_State *L)
{
    BhCopy c = {
        .src = bh_lua_checknode(L, 1),
        .dst = bh_lua_checknode(L, 2),
    };
    CopyLua cl = { .L = L };
    int64_t size = bh_node_size(c.src);
    BhError *err = NULL;

    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    else
        lua_settop(L, 2), lua_newtable(L);
    if (size < 0)
        return luaL_error(L, "bh.copy: the size of the source is unknown");
    c.offset = copy_opt_u64(L, 3, "offset", 0);
    if (c.offset > (uint64_t)size)
        return luaL_error(L, "bh.copy: offset %I is past the end of the "
                          "source (%I bytes)", (lua_Integer)c.offset,
                          (lua_Integer)size);
    c.length = copy_opt_u64(L, 3, "length", (uint64_t)size - c.offset);
    if (c.length > (uint64_t)size - c.offset)
        return luaL_error(L, "bh.copy: offset %I + length %I is past the "
                          "end of the source (%I bytes)",
                          (lua_Integer)c.offset, (lua_Integer)c.length,
                          (lua_Integer)size);
    c.dst_offset = copy_opt_u64(L, 3, "target_offset", c.offset);
    uint64_t workers = copy_opt_u64(L, 3, "workers", 8);
    if (workers < 1 || workers > 64)
        return luaL_error(L, "bh.copy: workers must be 1 to 64, not %I",
                          (lua_Integer)workers);
    c.workers = (unsigned)workers;
    c.in_order = bh_lua_opt_flag(L, 3, "in_order", true);
    c.sparse = copy_opt_u64(L, 3, "sparse", 4096);
    c.chunk = copy_opt_u64(L, 3, "chunk", COPY_CHUNK);
    if (c.chunk == 0 || c.chunk > (64u << 20))
        return luaL_error(L, "bh.copy: chunk must be 1 byte to 64 MiB");
    c.align = copy_opt_u64(L, 3, "align", 0);
    if (c.align > (64u << 20))
        return luaL_error(L, "bh.copy: align must be at most 64 MiB");
    if (c.align > c.chunk)
        c.chunk = c.align;
    if (c.sparse > c.chunk)
        return luaL_error(L, "bh.copy: sparse (%I) is larger than chunk "
                          "(%I)", (lua_Integer)c.sparse,
                          (lua_Integer)c.chunk);
    c.zero_init = bh_lua_opt_flag(L, 3, "zero_init", false);
    c.zeros_as_requests = bh_lua_opt_flag(L, 3, "zero_requests", false);
    c.skip_backing = bh_lua_opt_flag(L, 3, "skip_backing", false);
    c.max_depth = (unsigned)copy_opt_u64(L, 3, "max_depth", 0);
    lua_getfield(L, 3, "flags");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        int t = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            size_t i;
            const char *k = lua_type(L, -2) == LUA_TSTRING ?
                            lua_tostring(L, -2) : "?";
            for (i = 0; i < G_N_ELEMENTS(copy_flag_names); i++)
                if (!strcmp(k, copy_flag_names[i].name))
                    break;
            if (i == G_N_ELEMENTS(copy_flag_names))
                return luaL_error(L, "bh.copy: unknown write flag '%s'", k);
            if (lua_toboolean(L, -1))
                c.write_flags |= copy_flag_names[i].flag;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, 3, "progress");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TFUNCTION);
        cl.fn = lua_gettop(L);
        c.progress = copy_lua_progress;
        c.opaque = &cl;
    }

    /* The progress callback runs Lua, which could close the nodes: keep
     * them until the copy is over. */
    bh_node_ref(c.src);
    bh_node_ref(c.dst);
    bh_lua_driver_release();
    int r = bh_copy_run(&c, &err);
    bh_lua_driver_reacquire();
    bh_node_unref(c.src);
    bh_node_unref(c.dst);
    if (r < 0)
        return bh_lua_error(L, err);
    return 0;
}

void bh_lua_open_copy(lua_State *L, int module_index)
{
    lua_pushcfunction(L, copy_lua);
    lua_setfield(L, module_index, "copy");
}
