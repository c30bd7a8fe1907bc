/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "error" filter: fails chosen requests with a chosen errno, to test
 * what sits above (a guest over NBD, a format, a copy).  Options:
 *   error=NAME        the errno for every op (EIO when absent): EIO,
 *                     ENOSPC, EPERM, ... any name the C library knows;
 *   error-OP=NAME     the errno for one op, OP one of read, write, zero,
 *                     trim, flush, extents (nbdkit's error-pread and
 *                     error-pwrite are taken too); naming ops this way
 *                     makes only those fail, unless op= says more;
 *   op=LIST           the ops that fail, comma separated (default: all);
 *   rate=P            the chance a matching request fails, 0..1 or N%
 *                     (default 1: every one);
 *   start=, end=      only requests overlapping [start, end) fail (sizes
 *                     with K/M/G; flush, which has no range, then never);
 *   after=N           the first N matching requests pass, the rest fail.
 * A failure happens before the child sees the request.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <blkhost/glib.h>

#include "../filter.h"

typedef struct ErrorState {
    int err[FILTER_N_OPS];     /* 0: this op never fails */
    double rate;
    uint64_t start, end;
    bool ranged;
    uint64_t after, seen;
} ErrorState;

static bool error_parse_errno(const char *value, void *slot, BhError **errp)
{
    if (!value)
        return true;
    int e = filter_errno_parse(value);
    if (!e) {
        bh_error_set(errp, EINVAL, "unknown errno name (expected e.g."
                     " EIO, ENOSPC, EPERM)");
        return false;
    }
    *(int *)slot = e;
    return true;
}

static bool error_parse_rate(const char *v, double *rate, BhError **errp)
{
    char *e;
    if (!v)
        return true;
    errno = 0;
    double r = strtod(v, &e);
    if (*e == '%' && e != v) {
        r /= 100;
        e++;
    }
    if (e == v || *e || errno || !(r >= 0 && r <= 1)) {
        bh_error_set(errp, EINVAL, "error: rate=%s is not a probability "
                     "(0..1, or a percentage such as 10%%)", v);
        return false;
    }
    *rate = r;
    return true;
}

/* op=read,write: set *mask, or say which name is wrong. */
static bool error_parse_op_list(const char *v, unsigned *mask,
                                BhError **errp)
{
    g_auto(GStrv) names = g_strsplit(v, ",", -1);
    *mask = 0;
    for (int i = 0; names[i]; i++) {
        int op = 0;
        while (op < FILTER_N_OPS && strcmp(names[i], filter_op_names[op]))
            op++;
        if (op == FILTER_N_OPS) {
            bh_error_set(errp, EINVAL, "error: op=%s: unknown op '%s' "
                         "(expected read, write, zero, trim, flush, "
                         "extents)", v, names[i]);
            return false;
        }
        *mask |= 1u << op;
    }
    return true;
}

static int error_open(BhNode *bs, const char *filename, BhOpts *opts,
                      uint32_t open_flags, BhError **errp)
{
    if (!filter_open_child(bs, "error", errp))
        return -EINVAL;
    ErrorState st = { .rate = 1 };
    static const char *const nbdkit[][2] = {
        { "error-pread", "error-read" }, { "error-pwrite", "error-write" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(nbdkit); i++)
        if (bh_opts_has(opts, nbdkit[i][0]) && !bh_opts_has(opts, nbdkit[i][1]))
            bh_opts_set(opts, nbdkit[i][1], bh_opts_get(opts, nbdkit[i][0]));
    /* Which ops: op=, else those named by error-OP=, else all. */
    unsigned mask = 0;
    for (int op = 0; op < FILTER_N_OPS; op++) {
        g_autofree char *key = g_strdup_printf("error-%s", filter_op_names[op]);
        if (bh_opts_has(opts, key))
            mask |= 1u << op;
    }
    const char *ops = bh_opts_get(opts, "op");
    if (ops && !error_parse_op_list(ops, &mask, errp))
        return -EINVAL;
    if (!mask)
        mask = (1u << FILTER_N_OPS) - 1;
    int errs[FILTER_N_OPS];
    for (int op = 0; op < FILTER_N_OPS; op++)
        errs[op] = EIO;
    if (!filter_parse_ops(opts, "error", "error", error_parse_errno, errs,
                          sizeof(int), errp) ||
        !error_parse_rate(bh_opts_get(opts, "rate"), &st.rate, errp) ||
        !bh_opts_get_size(opts, "start", 0, &st.start, errp) ||
        !bh_opts_get_size(opts, "end", UINT64_MAX, &st.end, errp) ||
        !bh_opts_get_uint(opts, "after", 0, UINT64_MAX, &st.after, errp))
        return -EINVAL;
    if (st.start >= st.end)
        return bh_error_set(errp, EINVAL, "error: start=%" PRIu64 " must be "
                            "below end=%" PRIu64, st.start, st.end);
    st.ranged = bh_opts_has(opts, "start") || bh_opts_has(opts, "end");
    for (int op = 0; op < FILTER_N_OPS; op++)
        st.err[op] = (mask & (1u << op)) ? errs[op] : 0;
    bh_node_set_opaque(bs, g_memdup2(&st, sizeof(st)));
    return 0;
}

static void error_close(BhNode *bs)
{
    g_free(bh_node_get_opaque(bs));
}

/* 0, or the injected -errno with *errp set. */
static int error_inject(BhNode *bs, FilterOp op, uint64_t offset,
                        uint64_t len, BhError **errp)
{
    ErrorState *s = bh_node_get_opaque(bs);
    int e = s->err[op];
    if (!e)
        return 0;
    if (s->ranged && (op == FILTER_FLUSH || offset + len <= s->start ||
                      offset >= s->end))
        return 0;
    if (__atomic_fetch_add(&s->seen, 1, __ATOMIC_RELAXED) < s->after)
        return 0;
    if (s->rate < 1 && g_random_double() >= s->rate)
        return 0;
    return bh_error_set(errp, e, "error filter: injected %s on %s at offset "
                        "%" PRIu64 " (%" PRIu64 " bytes)",
                        filter_errno_name(e), filter_op_names[op], offset,
                        len);
}

static int error_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                       uint32_t flags, BhError **errp)
{
    int r = error_inject(bs, FILTER_READ, offset, len, errp);
    return r < 0 ? r : filter_pread(bs, buf, offset, len, flags, errp);
}

static int error_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                        size_t len, uint32_t flags, BhError **errp)
{
    int r = error_inject(bs, FILTER_WRITE, offset, len, errp);
    return r < 0 ? r : filter_pwrite(bs, buf, offset, len, flags, errp);
}

static int error_flush(BhNode *bs, BhError **errp)
{
    int r = error_inject(bs, FILTER_FLUSH, 0, 0, errp);
    return r < 0 ? r : filter_flush(bs, errp);
}

static int error_discard(BhNode *bs, uint64_t offset, uint64_t len,
                         BhError **errp)
{
    int r = error_inject(bs, FILTER_TRIM, offset, len, errp);
    return r < 0 ? r : filter_discard(bs, offset, len, errp);
}

static int error_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                              uint32_t flags, BhError **errp)
{
    int r = error_inject(bs, FILTER_ZERO, offset, len, errp);
    return r < 0 ? r : filter_write_zeroes(bs, offset, len, flags, errp);
}

static int error_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                              uint64_t *pnum, uint32_t *status,
                              BhError **errp)
{
    int r = error_inject(bs, FILTER_EXTENTS, offset, len, errp);
    return r < 0 ? r : filter_block_status(bs, offset, len, pnum, status,
                                           errp);
}

static const BhDriver error_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = error_open,
    .close = error_close,
    .get_length = filter_get_length,
    .pread = error_pread,
    .pwrite = error_pwrite,
    .flush = error_flush,
    .discard = error_discard,
    .write_zeroes = error_write_zeroes,
    .block_status = error_block_status,
    .truncate = filter_truncate,
    .get_allocated_size = filter_get_allocated_size,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "error",
    .version = "1.0",
    .description = "filter injecting errors (error=EIO, op=, rate=, start=, "
                   "end=, after=)",
    .driver = &error_driver,
};

BH_PLUGIN_REGISTER(desc)
