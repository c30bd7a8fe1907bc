/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The request path (request.h): request flags a driver did not declare
 * never reach it (testdrv is synchronous and declares none, holddrv-noflags
 * is a submit driver declaring none, holddrv declares FUA, MAY_UNMAP and
 * FAST_ZERO), and the four ways to meet a driver (synchronous or
 * bh_node_submit caller, synchronous or submit driver) leave the same
 * bytes.  argv: testdrv.so holddrv.so holddrv-noflags.so.
 */
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>

#include "open-spec.h"
#include "tap.h"

typedef struct {
    int preads, pwrites, flushes, discards, zeroes, fua_writes;
    uint32_t seen_flags;
} TestdrvStats;

typedef struct {
    int received, completed, held, flushes, fua_writes, zeroes, discards;
    uint32_t seen_flags;
} HolddrvStats;

#define SIZE (256 * 1024)

static void *load(const char *path, const char *sym)
{
    BhError *err = NULL;
    const BhPluginRecord *rec = bh_plugin_load(path, &err);
    if (!rec || rec->error) {
        printf("Bail out! cannot load %s: %s\n", path,
               err ? bh_error_message(err) : rec->error);
        exit(1);
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    void *p = h ? dlsym(h, sym) : NULL;
    if (!p) {
        printf("Bail out! no %s in %s\n", sym, path);
        exit(1);
    }
    return p;
}

/* ---- waiting for bh_node_submit callbacks ---- */

typedef struct {
    GMutex lock;
    GCond cond;
    int pending;
    int last_ret;
    char *last_msg;
} Waiter;

static void waiter_done(void *opaque, int ret, const BhError *err)
{
    Waiter *w = opaque;
    g_mutex_lock(&w->lock);
    w->last_ret = ret;
    g_free(w->last_msg);
    w->last_msg = g_strdup(err ? bh_error_message(err) : NULL);
    w->pending--;
    g_cond_broadcast(&w->cond);
    g_mutex_unlock(&w->lock);
}

static int waiter_submit(Waiter *w, BhNode *bs, BhOp op, uint64_t off,
                         uint64_t len, const struct iovec *iov, int niov,
                         uint32_t flags)
{
    g_mutex_lock(&w->lock);
    w->pending++;
    g_mutex_unlock(&w->lock);
    bh_node_submit(bh_request_new(bs, op, off, len, iov, niov, flags,
                                  waiter_done, w));
    g_mutex_lock(&w->lock);
    while (w->pending)
        g_cond_wait(&w->cond, &w->lock);
    int r = w->last_ret;
    g_mutex_unlock(&w->lock);
    return r;
}

/* ---- one workload, four ways ---- */

static void pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* Writes (some FUA, some split in three iovecs), zeroes and a discard,
 * by the synchronous calls or by bh_node_submit. */
static int workload(BhNode *bs, bool async, Waiter *w)
{
    uint8_t buf[24576];
    int r = 0;

    for (unsigned i = 0; i < 8 && r == 0; i++) {
        uint64_t off = (uint64_t)i * 28672 + i * 512;
        size_t len = 4096 * (i % 3 + 1) + 512 * (i % 2);
        pattern(buf, len, i + 1);
        uint32_t fl = i % 2 ? BH_IO_FUA : 0;
        if (!async) {
            r = bh_node_pwrite(bs, buf, off, len, fl, NULL);
            continue;
        }
        struct iovec iov[3] = {
            { buf, 512 }, { buf + 512, len - 1024 }, { buf + len - 512, 512 },
        };
        struct iovec whole = { buf, len };
        r = i % 2 ? waiter_submit(w, bs, BH_OP_WRITE, off, len, iov, 3, fl)
                  : waiter_submit(w, bs, BH_OP_WRITE, off, len, &whole, 1,
                                  fl);
    }
    if (r == 0)
        r = async ? waiter_submit(w, bs, BH_OP_WRITE_ZEROES, 30000, 9000,
                                  NULL, 0, BH_IO_MAY_UNMAP)
                  : bh_node_write_zeroes(bs, 30000, 9000, BH_IO_MAY_UNMAP,
                                         NULL);
    if (r == 0)
        r = async ? waiter_submit(w, bs, BH_OP_DISCARD, 65536, 4096, NULL, 0,
                                  0)
                  : bh_node_discard(bs, 65536, 4096, NULL);
    if (r == 0)
        r = async ? waiter_submit(w, bs, BH_OP_FLUSH, 0, 0, NULL, 0, 0)
                  : bh_node_flush(bs, NULL);
    return r;
}

/* The whole node, read back: synchronously, or by bh_node_submit into
 * two iovecs. */
static uint8_t *read_all(BhNode *bs, bool async, Waiter *w)
{
    uint8_t *img = g_malloc(SIZE);
    int r;
    if (async) {
        struct iovec iov[2] = { { img, 1000 }, { img + 1000, SIZE - 1000 } };
        r = waiter_submit(w, bs, BH_OP_READ, 0, SIZE, iov, 2, 0);
    } else {
        r = bh_node_pread(bs, img, 0, SIZE, 0, NULL);
    }
    if (r < 0) {
        g_free(img);
        return NULL;
    }
    return img;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        printf("1..0 # SKIP needs testdrv, holddrv, holddrv-noflags\n");
        return 0;
    }
    plan(19);
    TestdrvStats *ts = load(argv[1], "testdrv_stats");
    HolddrvStats *hs = load(argv[2], "holddrv_stats");
    HolddrvStats *ns = load(argv[3], "holddrv_stats");
    Waiter w = { 0 };
    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);
    uint8_t buf[4096];
    BhError *err = NULL;
    memset(buf, 0x5a, sizeof buf);

    /* --- a synchronous driver declaring no flags --- */
    BhNode *bs = open_spec("format=testdrv,size=64K,zeroes=on,"
                           "discard=unmap");
    memset(ts, 0, sizeof *ts);
    bh_node_pwrite(bs, buf, 0, 4096, BH_IO_FUA, NULL);
    ok(ts->pwrites == 1 && ts->flushes == 1 && ts->seen_flags == 0,
       "sync driver without declared flags: a FUA write reaches it without "
       "FUA, then a flush it sees");
    bh_node_write_zeroes(bs, 0, 4096, BH_IO_MAY_UNMAP, NULL);
    ok(ts->zeroes == 1 && ts->seen_flags == 0,
       "sync driver without declared flags: write_zeroes arrives without "
       "MAY_UNMAP");
    int r = bh_node_write_zeroes(bs, 0, 4096, BH_IO_FAST_ZERO, &err);
    ok(r == -ENOTSUP && ts->zeroes == 1 && ts->seen_flags == 0,
       "sync driver without declared flags: FAST_ZERO fails ENOTSUP without "
       "calling it: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bh_node_unref(bs);

    /* --- a submit driver declaring no flags --- */
    bs = open_spec("format=holddrv-noflags,size=64K,discard=unmap");
    memset(ns, 0, sizeof *ns);
    bh_node_pwrite(bs, buf, 0, 4096, BH_IO_FUA, NULL);
    ok(ns->fua_writes == 0 && ns->flushes == 1 && ns->seen_flags == 0,
       "submit driver without declared flags: sync FUA write is write + "
       "flush, no FUA seen");
    struct iovec one = { buf, 4096 };
    r = waiter_submit(&w, bs, BH_OP_WRITE, 4096, 4096, &one, 1, BH_IO_FUA);
    ok(r == 0 && ns->fua_writes == 0 && ns->flushes == 2 &&
       ns->seen_flags == 0, "submit driver without declared flags: an "
       "async FUA write is write + flush, no FUA seen");
    bh_node_write_zeroes(bs, 0, 4096, BH_IO_MAY_UNMAP, NULL);
    ok(ns->zeroes == 1 && ns->seen_flags == 0,
       "submit driver without declared flags: write_zeroes without "
       "MAY_UNMAP");
    r = bh_node_write_zeroes(bs, 0, 4096, BH_IO_FAST_ZERO, &err);
    ok(r == -ENOTSUP && ns->zeroes == 1 && ns->seen_flags == 0,
       "submit driver without declared flags: FAST_ZERO is ENOTSUP, driver "
       "not called");
    bh_error_clear(&err);
    bh_node_unref(bs);

    /* --- a submit driver declaring all three --- */
    bs = open_spec("format=holddrv,size=64K,discard=unmap");
    memset(hs, 0, sizeof *hs);
    bh_node_pwrite(bs, buf, 0, 4096, BH_IO_FUA, NULL);
    ok(hs->fua_writes == 1 && hs->flushes == 0,
       "submit driver declaring FUA gets FUA, no extra flush");
    r = waiter_submit(&w, bs, BH_OP_WRITE, 4096, 4096, &one, 1, BH_IO_FUA);
    ok(r == 0 && hs->fua_writes == 2 && hs->flushes == 0,
       "submit driver declaring FUA gets FUA from an async caller too");
    bh_node_write_zeroes(bs, 0, 4096, BH_IO_MAY_UNMAP, NULL);
    ok(hs->zeroes == 1 && (hs->seen_flags & BH_IO_MAY_UNMAP),
       "submit driver declaring MAY_UNMAP gets it with discard=unmap");
    r = bh_node_write_zeroes(bs, 0, 4096, BH_IO_FAST_ZERO, NULL);
    ok(r == 0 && hs->zeroes == 2 && (hs->seen_flags & BH_IO_FAST_ZERO),
       "submit driver declaring FAST_ZERO gets it and succeeds");
    bh_node_unref(bs);
    bs = open_spec("format=holddrv,size=64K");
    memset(hs, 0, sizeof *hs);
    bh_node_write_zeroes(bs, 0, 4096, BH_IO_MAY_UNMAP, NULL);
    ok(hs->zeroes == 1 && !(hs->seen_flags & BH_IO_MAY_UNMAP),
       "MAY_UNMAP is dropped with discard=ignore even where declared");
    bh_node_unref(bs);

    /* --- the same bytes four ways --- */
    BhNode *ref = open_spec("format=memory,size=256K,discard=unmap");
    BhNode *mem = open_spec("format=memory,size=256K,discard=unmap");
    BhNode *hsync = open_spec("format=holddrv,size=256K,discard=unmap");
    BhNode *hasync = open_spec("format=holddrv,size=256K,discard=unmap");
    ok(workload(ref, false, &w) == 0, "the workload runs synchronously on "
       "a sync driver (memory)");
    ok(workload(mem, true, &w) == 0, "the workload runs by bh_node_submit "
       "on a sync driver (memory)");
    ok(workload(hsync, false, &w) == 0, "the workload runs synchronously on "
       "a submit driver (holddrv)");
    ok(workload(hasync, true, &w) == 0, "the workload runs by bh_node_submit "
       "on a submit driver (holddrv)");
    g_autofree uint8_t *a = read_all(ref, false, &w);
    g_autofree uint8_t *b = read_all(mem, true, &w);
    g_autofree uint8_t *c = read_all(hsync, true, &w);
    g_autofree uint8_t *d = read_all(hasync, false, &w);
    ok(a && b && c && d && !memcmp(a, b, SIZE) && !memcmp(a, c, SIZE) &&
       !memcmp(a, d, SIZE), "async caller on a sync driver and sync caller "
       "on a submit driver leave the bytes the sync path does (read back "
       "both ways)");

    /* --- errors reach the callback --- */
    struct iovec small = { buf, 200 };
    r = waiter_submit(&w, mem, BH_OP_READ, SIZE - 100, 200, &small, 1, 0);
    ok(r == -EINVAL && w.last_msg && strstr(w.last_msg, "past the end"),
       "an async read past the end calls back with EINVAL and the message: "
       "%s", w.last_msg ? w.last_msg : "(none)");
    g_autoptr(BhOpts) ro = bh_opts_parse("readonly=on", NULL, NULL);
    BhNode *rnode = bh_node_open_over(hasync, "raw", ro, NULL);
    r = rnode ? waiter_submit(&w, rnode, BH_OP_WRITE, 0, 4096, &one, 1, 0)
              : -1;
    ok(r == -EPERM && w.last_msg && strstr(w.last_msg, "read-only"),
       "an async write to a read-only node calls back with EPERM: %s",
       w.last_msg ? w.last_msg : "(none)");
    bh_node_unref(rnode);

    bh_node_unref(ref);
    bh_node_unref(mem);
    bh_node_unref(hsync);
    bh_node_unref(hasync);
    g_free(w.last_msg);
    return done();
}
