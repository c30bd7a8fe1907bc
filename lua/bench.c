/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qemu-img bench's request loop (bh_bench_run, inflight.h) and bh.bench,
 * its Lua binding, which `blkhost bench` uses.
 *
 * The loop is qemu-img's: keep `depth` requests of `bufsize` bytes in
 * flight until `count` have completed; each starts `step` bytes after the
 * one before, wrapping at the end of the image (the first one at
 * `offset`).  Writes send the pattern byte.  With a flush interval, when
 * the number of requests still to complete reaches a multiple of it, a
 * flush is sent: by default once the queue has drained (nothing new
 * starts until the flush is done), with no drain beside the requests.
 * The results are collected on the calling thread (inflight.c).
 */
#include <errno.h>
#include <string.h>

#include "bh-lua.h"
#include "inflight.h"

#define BENCH_ALIGN 4096

/* Tags of the requests in flight (inflight.h): what completed. */
static char bench_tag_io, bench_tag_flush, bench_tag_flush_undrained;

/* Start requests until depth are in flight or none is left to start. */
static void bench_fill(const BhBench *b, BhInflight *q, uint8_t *buf,
                       uint64_t n, uint64_t *in_flight, uint64_t *offset,
                       uint64_t step, uint64_t size)
{
    while (n > *in_flight && *in_flight < b->depth) {
        uint64_t off = *offset;
        (*in_flight)++;
        *offset = (*offset + step) % size;
        bh_inflight_submit(q, b->bs, b->write ? BH_OP_WRITE : BH_OP_READ,
                           off, b->bufsize, buf, 0, &bench_tag_io);
    }
}

int bh_bench_run(const BhBench *b, double *seconds, BhError **errp)
{
    const int64_t size = bh_node_size(b->bs);
    const uint64_t step = b->step ? b->step : b->bufsize;
    uint64_t n = b->count, in_flight = 0, offset = b->offset;
    bool in_flush = false;
    BhError *err = NULL;
    int ret = 0;

    g_assert(b->depth >= 1);
    if (size <= 0)
        return bh_error_set(errp, EINVAL, "the image is empty");
    /* One buffer serves every request, as in qemu-img: writes send the
     * same bytes, reads land where nobody looks. */
    uint8_t *buf = g_aligned_alloc(1, MAX(b->bufsize, 1), BENCH_ALIGN);
    memset(buf, b->pattern, b->bufsize);
    BhInflight *q = bh_inflight_new(b->depth);

    gint64 t0 = g_get_monotonic_time();
    bench_fill(b, q, buf, n, &in_flight, &offset, step, (uint64_t)size);
    while (n > 0) {
        void *tag = bh_inflight_wait(q, &ret, &err);
        if (ret < 0)
            break;
        if (tag == &bench_tag_flush_undrained)
            continue;
        if (in_flush) {
            /* The flush sent once the queue was empty: start again. */
            in_flush = false;
        } else {
            uint64_t remaining = n - in_flight;
            n--;
            in_flight--;
            /* Time for a flush?  Draining, each completion comes here
             * until the queue is empty (remaining does not move), and no
             * request starts meanwhile. */
            if (b->flush_interval && remaining % b->flush_interval == 0) {
                if (in_flight == 0 || !b->drain_on_flush) {
                    in_flush = b->drain_on_flush;
                    bh_inflight_submit(q, b->bs, BH_OP_FLUSH, 0, 0, NULL, 0,
                                       in_flush ? &bench_tag_flush
                                                : &bench_tag_flush_undrained);
                }
                if (b->drain_on_flush)
                    continue;
            }
        }
        bench_fill(b, q, buf, n, &in_flight, &offset, step, (uint64_t)size);
    }
    *seconds = (double)(g_get_monotonic_time() - t0) / 1e6;

    if (ret < 0 && !err)
        err = bh_error_new(-ret, "%s", g_strerror(-ret));
    bh_inflight_free(q);  /* what is still in flight ends first */
    g_aligned_free(buf);
    if (ret < 0)
        bh_error_propagate(errp, err);
    return ret;
}

/* ---- bh.bench ---- */

static uint64_t bench_opt_u64(lua_State *L, const char *name, uint64_t def,
                              uint64_t max)
{
    lua_getfield(L, 2, name);
    uint64_t v = lua_isnil(L, -1) ? def : bh_lua_check_u64(L, -1, name);
    lua_pop(L, 1);
    if (v > max)
        luaL_error(L, "bh.bench: %s must be at most %I", name,
                   (lua_Integer)max);
    return v;
}

/*
 * bh.bench(node [, opts]) -> seconds: qemu-img bench's run on node.
 * opts (qemu-img's defaults): write (false), count (75000), depth (64),
 * offset (0), size (4096 bytes per request), step (0: size),
 * flush_interval (0: none; writes only), drain (true: flushes wait for
 * an empty queue), pattern (0: the byte written).  The first failed
 * request is raised once the others have ended.
 */
static int bench_lua(lua_State *L)
{
    BhBench b = { .bs = bh_lua_checknode(L, 1) };
    BhError *err = NULL;
    double seconds = 0;

    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    else
        lua_settop(L, 1), lua_newtable(L);
    b.write = bh_lua_opt_flag(L, 2, "write", false);
    b.count = bench_opt_u64(L, "count", 75000, INT64_MAX);
    b.depth = (unsigned)bench_opt_u64(L, "depth", 64, 1u << 20);
    if (b.depth < 1)
        return luaL_error(L, "bh.bench: depth must be at least 1");
    b.offset = bench_opt_u64(L, "offset", 0, INT64_MAX);
    b.bufsize = bench_opt_u64(L, "size", 4096, INT32_MAX);
    b.step = bench_opt_u64(L, "step", 0, INT64_MAX);
    b.flush_interval = bench_opt_u64(L, "flush_interval", 0, INT64_MAX);
    if (b.flush_interval && !b.write)
        return luaL_error(L, "bh.bench: flush_interval is for writes");
    b.drain_on_flush = bh_lua_opt_flag(L, 2, "drain", true);
    b.pattern = (uint8_t)bench_opt_u64(L, "pattern", 0, 255);

    bh_lua_driver_release();
    int r = bh_bench_run(&b, &seconds, &err);
    bh_lua_driver_reacquire();
    if (r < 0)
        return bh_lua_error(L, err);
    lua_pushnumber(L, seconds);
    return 1;
}

void bh_lua_open_bench(lua_State *L, int module_index)
{
    lua_pushcfunction(L, bench_lua);
    lua_setfield(L, module_index, "bench");
}
