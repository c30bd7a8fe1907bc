/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "delay" filter: sleeps before passing a request on, as nbdkit's
 * delay filter, per operation:
 *   delay-read=, delay-write=, delay-zero=, delay-trim=, delay-flush=,
 *   delay-extents=, with rdelay= (reads) and wdelay= (writes, zeroes,
 *   trims) as nbdkit spells the common pair, and delay= for every op.
 * A value is a duration with a unit, s, ms, us or ns (a bare number is
 * seconds), or a range "5ms-20ms" for a uniformly random delay.  The
 * most specific key wins.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <blkhost/glib.h>

#include "../filter.h"

typedef struct {
    uint64_t lo_ns, hi_ns;
} DelayRange;

typedef struct DelayState {
    DelayRange d[FILTER_N_OPS];
} DelayState;

static bool delay_parse_one(const char *s, uint64_t *ns, const char **end)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (e == s || errno || v < 0)
        return false;
    static const struct { const char *unit; double mul; } units[] = {
        { "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
    };
    double mul = 1e9;
    for (size_t i = 0; i < G_N_ELEMENTS(units); i++)
        if (!strncmp(e, units[i].unit, strlen(units[i].unit))) {
            mul = units[i].mul;
            e += strlen(units[i].unit);
            break;
        }
    if (v * mul > 3600e9)
        return false;
    *ns = (uint64_t)(v * mul);
    *end = e;
    return true;
}

static bool delay_parse(const char *value, void *slot, BhError **errp)
{
    DelayRange *r = slot;
    const char *e;
    if (!value)
        return true;
    if (!delay_parse_one(value, &r->lo_ns, &e))
        goto bad;
    r->hi_ns = r->lo_ns;
    if (*e == '-' && (!delay_parse_one(e + 1, &r->hi_ns, &e) ||
                      r->hi_ns < r->lo_ns))
        goto bad;
    if (*e)
        goto bad;
    return true;
bad:
    bh_error_set(errp, EINVAL, "not a duration: expected e.g. 5ms, "
                 "100us, 0.5s or a range 5ms-20ms (at most an hour)");
    return false;
}

static int delay_open(BhNode *bs, const char *filename, BhOpts *opts,
                      uint32_t open_flags, BhError **errp)
{
    if (!filter_open_child(bs, "delay", errp))
        return -EINVAL;
    DelayState st = { 0 };
    /* Least specific first: each later parse overrides. */
    if (!filter_parse_ops(opts, "delay", "delay", delay_parse, st.d,
                          sizeof(DelayRange), errp))
        return -EINVAL;
    const char *r = bh_opts_get(opts, "rdelay"), *w = bh_opts_get(opts, "wdelay");
    const struct { const char *v, *key; FilterOp op; } pairs[] = {
        { r, "delay-read", FILTER_READ }, { w, "delay-write", FILTER_WRITE },
        { w, "delay-zero", FILTER_ZERO }, { w, "delay-trim", FILTER_TRIM },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(pairs); i++) {
        if (!pairs[i].v || bh_opts_has(opts, pairs[i].key))
            continue;
        if (!delay_parse(pairs[i].v, &st.d[pairs[i].op], errp)) {
            bh_error_prefix(errp, "delay: %s=%s: ", i ? "wdelay" : "rdelay",
                            pairs[i].v);
            return -EINVAL;
        }
    }
    bh_node_set_opaque(bs, g_memdup2(&st, sizeof(st)));
    return 0;
}

static void delay_close(BhNode *bs)
{
    g_free(bh_node_get_opaque(bs));
}

static void delay_wait(BhNode *bs, FilterOp op)
{
    DelayState *s = bh_node_get_opaque(bs);
    const DelayRange *r = &s->d[op];
    if (!r->hi_ns)
        return;
    uint64_t ns = r->lo_ns;
    if (r->hi_ns > r->lo_ns)
        ns += (uint64_t)(g_random_double() * (double)(r->hi_ns - r->lo_ns));
    struct timespec ts = { (time_t)(ns / 1000000000u),
                           (long)(ns % 1000000000u) };
    /* Restarted on a signal, so the delay is never shorter. */
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

static int delay_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                       uint32_t flags, BhError **errp)
{
    delay_wait(bs, FILTER_READ);
    return filter_pread(bs, buf, offset, len, flags, errp);
}

static int delay_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                        size_t len, uint32_t flags, BhError **errp)
{
    delay_wait(bs, FILTER_WRITE);
    return filter_pwrite(bs, buf, offset, len, flags, errp);
}

static int delay_flush(BhNode *bs, BhError **errp)
{
    delay_wait(bs, FILTER_FLUSH);
    return filter_flush(bs, errp);
}

static int delay_discard(BhNode *bs, uint64_t offset, uint64_t len,
                         BhError **errp)
{
    delay_wait(bs, FILTER_TRIM);
    return filter_discard(bs, offset, len, errp);
}

static int delay_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                              uint32_t flags, BhError **errp)
{
    delay_wait(bs, FILTER_ZERO);
    return filter_write_zeroes(bs, offset, len, flags, errp);
}

static int delay_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                              uint64_t *pnum, uint32_t *status,
                              BhError **errp)
{
    delay_wait(bs, FILTER_EXTENTS);
    return filter_block_status(bs, offset, len, pnum, status, errp);
}

static const BhDriver delay_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = delay_open,
    .close = delay_close,
    .get_length = filter_get_length,
    .pread = delay_pread,
    .pwrite = delay_pwrite,
    .flush = delay_flush,
    .discard = delay_discard,
    .write_zeroes = delay_write_zeroes,
    .block_status = delay_block_status,
    .truncate = filter_truncate,
    .get_allocated_size = filter_get_allocated_size,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "delay",
    .version = "1.0",
    .description = "filter delaying requests by op (rdelay=, wdelay=, "
                   "delay-OP=; 5ms or 5ms-20ms)",
    .driver = &delay_driver,
};

BH_PLUGIN_REGISTER(desc)
