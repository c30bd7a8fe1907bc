/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "log" filter: one line per request to file=PATH (appended), as
 * nbdkit's log filter does, but one line per request rather than two, so
 * that a line is never split from its result:
 *
 *   2026-11-28T08:40:01.123456Z id=7 Write offset=0x1000 count=0x200 \
 *       flags=fua elapsed=0.000012 return=0
 *
 * Fields: UTC time the request completed, a request number, the
 * operation (Read, Write, Zero, Trim, Flush, Extents), offset and count
 * in hex (absent for Flush), flags (fua, may_trim, fast_zero joined by
 * '|', or 0), seconds spent in the child, and 0 or the negative errno
 * with its name and message.  Each line is one write(2) on an O_APPEND
 * descriptor, so lines from parallel requests never interleave.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <blkhost/glib.h>

#include "../filter.h"

typedef struct LogState {
    int fd;
    char *path;
    uint64_t next_id;
} LogState;

static const char *const log_op_names[FILTER_N_OPS] = {
    "Read", "Write", "Zero", "Trim", "Flush", "Extents",
};

static uint64_t log_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* flags= of each combination of FUA (1), MAY_UNMAP (2), FAST_ZERO (4). */
static const char *const log_flag_names[8] = {
    "0", "fua", "may_trim", "fua|may_trim", "fast_zero", "fua|fast_zero",
    "may_trim|fast_zero", "fua|may_trim|fast_zero",
};

/* Write the line for one finished request; ret is its result.  One
 * snprintf and one write(2): the log sits on every request's path. */
static int log_line(BhNode *bs, FilterOp op, uint64_t offset, uint64_t count,
                    uint32_t flags, uint64_t start, int ret, BhError **errp)
{
    LogState *s = bh_node_get_opaque(bs);
    struct timespec ts;
    uint64_t elapsed = log_now() - start;

    clock_gettime(CLOCK_REALTIME, &ts);
    /* Formatted for every line.  A per-thread cache of the second would
     * need __thread, which in a dlopen'd plugin is dynamic TLS: clang 14's
     * LeakSanitizer crashes walking it at exit (plugins/fuse says the
     * same), as soon as a request completes on another thread. */
    char when[24];
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    char range[64] = "";
    if (op != FILTER_FLUSH)
        snprintf(range, sizeof(range), " offset=0x%" PRIx64 " count=0x%"
                 PRIx64, offset, count);
    char line[512];
    int n = snprintf(line, sizeof(line), "%s.%06ldZ id=%" PRIu64 " %s%s "
                     "flags=%s elapsed=%" PRIu64 ".%06" PRIu64 " return=%d%s%s"
                     "%s%s%s\n", when, ts.tv_nsec / 1000,
                     __atomic_fetch_add(&s->next_id, 1, __ATOMIC_RELAXED),
                     log_op_names[op], range,
                     log_flag_names[flags & 7], elapsed / 1000000000u,
                     elapsed / 1000 % 1000000, ret,
                     ret < 0 ? " (" : "", ret < 0 ? filter_errno_name(-ret) : "",
                     ret < 0 ? ": " : "",
                     ret >= 0 ? "" : errp && *errp ? bh_error_message(*errp)
                                                  : strerror(-ret),
                     ret < 0 ? ")" : "");
    if (n >= (int)sizeof(line)) {
        n = sizeof(line);
        line[n - 2] = ')';
        line[n - 1] = '\n';
    }
    /* A log that cannot be written is lost information, not a reason to
     * fail the request (unlike log-writes, whose log is the product). */
    if (write(s->fd, line, (size_t)n) < 0)
        g_warning("log: cannot write to '%s': %s", s->path,
                  g_strerror(errno));
    return ret;
}

static int log_open(BhNode *bs, const char *filename, BhOpts *opts,
                    uint32_t open_flags, BhError **errp)
{
    if (!filter_open_child(bs, "log", errp))
        return -EINVAL;
    const char *path = bh_opts_get(opts, "file");
    if (!path || !*path)
        return bh_error_set(errp, EINVAL, "log: option file=PATH (where the "
                            "lines go) is required");
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return bh_error_set(errp, errno, "log: cannot open '%s': %s", path,
                            g_strerror(errno));
    LogState *s = g_new0(LogState, 1);
    s->fd = fd;
    s->path = g_strdup(path);
    s->next_id = 1;
    bh_node_set_opaque(bs, s);
    return 0;
}

static void log_close(BhNode *bs)
{
    LogState *s = bh_node_get_opaque(bs);
    close(s->fd);
    g_free(s->path);
    g_free(s);
}

static int log_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                     uint32_t flags, BhError **errp)
{
    uint64_t t = log_now();
    return log_line(bs, FILTER_READ, offset, len, flags, t,
                    filter_pread(bs, buf, offset, len, flags, errp), errp);
}

static int log_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                      size_t len, uint32_t flags, BhError **errp)
{
    uint64_t t = log_now();
    return log_line(bs, FILTER_WRITE, offset, len, flags, t,
                    filter_pwrite(bs, buf, offset, len, flags, errp), errp);
}

static int log_flush(BhNode *bs, BhError **errp)
{
    uint64_t t = log_now();
    return log_line(bs, FILTER_FLUSH, 0, 0, 0, t, filter_flush(bs, errp),
                    errp);
}

static int log_discard(BhNode *bs, uint64_t offset, uint64_t len,
                       BhError **errp)
{
    uint64_t t = log_now();
    return log_line(bs, FILTER_TRIM, offset, len, 0, t,
                    filter_discard(bs, offset, len, errp), errp);
}

static int log_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                            uint32_t flags, BhError **errp)
{
    uint64_t t = log_now();
    return log_line(bs, FILTER_ZERO, offset, len, flags, t,
                    filter_write_zeroes(bs, offset, len, flags, errp), errp);
}

static int log_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                            uint64_t *pnum, uint32_t *status, BhError **errp)
{
    uint64_t t = log_now();
    return log_line(bs, FILTER_EXTENTS, offset, len, 0, t,
                    filter_block_status(bs, offset, len, pnum, status, errp),
                    errp);
}

static void log_info(BhNode *bs, BhInfo *info)
{
    LogState *s = bh_node_get_opaque(bs);
    bh_info_add_str(info, "log-file", s->path);
}

static const BhDriver log_driver = {
    .flags = FILTER_FLAGS,
    .request_flags = FILTER_REQUEST_FLAGS,
    .probe = filter_probe,
    .open = log_open,
    .close = log_close,
    .get_length = filter_get_length,
    .pread = log_pread,
    .pwrite = log_pwrite,
    .flush = log_flush,
    .discard = log_discard,
    .write_zeroes = log_write_zeroes,
    .block_status = log_block_status,
    .truncate = filter_truncate,
    .info = log_info,
    .get_allocated_size = filter_get_allocated_size,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "log",
    .version = "1.0",
    .description = "filter writing one line per request (time, op, offset, "
                   "count, flags, result) to file=PATH",
    .driver = &log_driver,
};

BH_PLUGIN_REGISTER(desc)
