/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "rate" filter: a bandwidth limit, as nbdkit's rate filter, in
 * bytes per second with K/M/G suffixes (powers of 1024):
 *   rate=        reads and writes together share one limit;
 *   read-rate=   reads alone;   write-rate=  writes alone.
 * A direction with its own limit is held to it, and to rate= too.
 * Zeroes and trims move no data and pass freely.
 *
 * Each limit is a clock of when its link is next free: a request of n
 * bytes books n/rate seconds from then (or now, if that is past) and
 * waits until its booking ends.  So any run of requests takes at least
 * bytes/rate, and an idle link saves up no burst.
 */
#include <errno.h>
#include <time.h>

#include <blkhost/glib.h>

#include "../filter.h"

typedef struct {
    uint64_t rate;     /* bytes/s, 0: no limit */
    GMutex lock;
    double free_at;    /* CLOCK_MONOTONIC seconds */
} RateLink;

typedef struct RateState {
    RateLink all, read, write;
} RateState;

static double rate_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Book len bytes on link; the time its booking ends. */
static double rate_book(RateLink *l, uint64_t len, double now)
{
    if (!l->rate)
        return 0;
    g_mutex_lock(&l->lock);
    double start = l->free_at > now ? l->free_at : now;
    l->free_at = start + (double)len / (double)l->rate;
    double end = l->free_at;
    g_mutex_unlock(&l->lock);
    return end;
}

static void rate_wait(RateLink *own, RateLink *all, uint64_t len)
{
    double now = rate_now();
    /* Booked once each: MAX() would evaluate a booking twice. */
    double a = rate_book(own, len, now), b = rate_book(all, len, now);
    double until = MAX(a, b);
    if (until <= now)
        return;
    double d = until - now;
    struct timespec ts = { (time_t)d, (long)((d - (time_t)d) * 1e9) + 1 };
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

static int rate_open(BhNode *bs, const char *filename, BhOpts *opts,
                     uint32_t open_flags, BhError **errp)
{
    if (!filter_open_child(bs, "rate", errp))
        return -EINVAL;
    uint64_t all, rd, wr;
    if (!bh_opts_get_size(opts, "rate", 0, &all, errp) ||
        !bh_opts_get_size(opts, "read-rate", 0, &rd, errp) ||
        !bh_opts_get_size(opts, "write-rate", 0, &wr, errp))
        return -EINVAL;
    if (!all && !rd && !wr)
        return bh_error_set(errp, EINVAL, "rate: give a limit in bytes per "
                            "second: rate=, read-rate= or write-rate= "
                            "(e.g. rate=10M)");
    RateState *s = g_new0(RateState, 1);
    s->all.rate = all;
    s->read.rate = rd;
    s->write.rate = wr;
    g_mutex_init(&s->all.lock);
    g_mutex_init(&s->read.lock);
    g_mutex_init(&s->write.lock);
    bh_node_set_opaque(bs, s);
    return 0;
}

static void rate_close(BhNode *bs)
{
    RateState *s = bh_node_get_opaque(bs);
    g_mutex_clear(&s->all.lock);
    g_mutex_clear(&s->read.lock);
    g_mutex_clear(&s->write.lock);
    g_free(s);
}

static int rate_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                      uint32_t flags, BhError **errp)
{
    RateState *s = bh_node_get_opaque(bs);
    rate_wait(&s->read, &s->all, len);
    return filter_pread(bs, buf, offset, len, flags, errp);
}

static int rate_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                       size_t len, uint32_t flags, BhError **errp)
{
    RateState *s = bh_node_get_opaque(bs);
    rate_wait(&s->write, &s->all, len);
    return filter_pwrite(bs, buf, offset, len, flags, errp);
}

static const BhDriver rate_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = rate_open,
    .close = rate_close,
    .get_length = filter_get_length,
    .pread = rate_pread,
    .pwrite = rate_pwrite,
    .flush = filter_flush,
    .discard = filter_discard,
    .write_zeroes = filter_write_zeroes,
    .block_status = filter_block_status,
    .truncate = filter_truncate,
    .get_allocated_size = filter_get_allocated_size,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "rate",
    .version = "1.0",
    .description = "filter limiting bandwidth (rate=, read-rate=, "
                   "write-rate= in bytes/s)",
    .driver = &rate_driver,
};

BH_PLUGIN_REGISTER(desc)
