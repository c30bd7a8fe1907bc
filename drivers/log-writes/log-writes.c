/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The "log-writes" filter: passes every request to its "file" child and,
 * once the child has acknowledged it, appends it to a log file (option
 * log=PATH): writes with their data, zeroes, discards, truncates and
 * flushes, in the order they completed.  It is Linux's dm-log-writes for
 * a blkhost node: a replayer rebuilds from the log every state a power cut
 * could have left the child in (tests/powerloss, docs/powerloss.md).
 *
 * Stack it under a format with file.driver=log-writes,file.log=PATH
 * (qcow2 then writes its file through it), or over any node as a filter
 * (bh.filter("log-writes", node, {log=PATH}), docs/filters.md).
 *
 * The log (all integers little-endian):
 *   header, 32 bytes: "BHLOGWR1", u32 version (1), u32 header size (32),
 *                     16 bytes zero;
 *   entries, each:    u32 magic 0x6c6f6745 ("Egol"), u32 type,
 *                     u64 sequence number (0, 1, ...), u64 offset,
 *                     u64 length, then length bytes of data for a write.
 * type: 1 write, 2 zeroes, 3 discard, 4 flush, 5 truncate (offset = the
 * new size), and 0x100 added to a write or zeroes sent with FUA.
 * Requests that fail are not logged: the child may hold any part of them,
 * which a replayer cannot know, and the caller saw the failure anyway.
 * Each entry is one write(2) on an unbuffered descriptor, so after a
 * request returns its entry is in the log file (in the page cache: the log
 * records a run, it does not survive one's power cut).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include <blkhost/driver.h>
#include <blkhost/glib.h>

#define LOG_WRITES_MAGIC       0x6c6f6745u
#define LOG_WRITES_T_WRITE     1u
#define LOG_WRITES_T_ZERO      2u
#define LOG_WRITES_T_DISCARD   3u
#define LOG_WRITES_T_FLUSH     4u
#define LOG_WRITES_T_TRUNCATE  5u
#define LOG_WRITES_F_FUA       0x100u

typedef struct LogWritesState {
    BhNode *file;      /* borrowed: the core owns the child */
    int fd;            /* the log; -1 when read-only (nothing to log) */
    GMutex lock;       /* one entry at a time, numbered in log order */
    uint64_t seq;
    char *log_path;
} LogWritesState;

static int log_writes_probe(const uint8_t *buf, size_t len,
                            const char *filename)
{
    return 0;  /* a filter is only ever asked for by name */
}

static bool log_writes_full_write(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Append one entry.  The request already succeeded on the child; a log
 * that cannot be written fails the request, since a silent gap would make
 * every replay after it wrong. */
static int log_writes_append(BhNode *bs, uint32_t type, uint64_t offset,
                             uint64_t len, const void *data, BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    if (s->fd < 0)
        return 0;
    g_mutex_lock(&s->lock);
    uint8_t head[32];
    uint32_t magic = GUINT32_TO_LE(LOG_WRITES_MAGIC);
    uint32_t t = GUINT32_TO_LE(type);
    uint64_t seq = GUINT64_TO_LE(s->seq);
    uint64_t off = GUINT64_TO_LE(offset);
    uint64_t l = GUINT64_TO_LE(len);
    memcpy(head, &magic, 4);
    memcpy(head + 4, &t, 4);
    memcpy(head + 8, &seq, 8);
    memcpy(head + 16, &off, 8);
    memcpy(head + 24, &l, 8);
    g_autofree uint8_t *entry = NULL;
    const void *out = head;
    size_t out_len = sizeof(head);
    if (data) {
        /* One write(2) for header and data: a reader never sees a header
         * without its data. */
        entry = g_malloc(sizeof(head) + len);
        memcpy(entry, head, sizeof(head));
        memcpy(entry + sizeof(head), data, len);
        out = entry;
        out_len += len;
    }
    bool ok = log_writes_full_write(s->fd, out, out_len);
    if (ok)
        s->seq++;
    g_mutex_unlock(&s->lock);
    if (!ok)
        return bh_error_set(errp, EIO, "log-writes: cannot append to the "
                            "log '%s': %s", s->log_path, g_strerror(errno));
    return 0;
}

static int log_writes_open(BhNode *bs, const char *filename, BhOpts *opts,
                           uint32_t open_flags, BhError **errp)
{
    BhNode *file = bh_node_child(bs, "file");
    if (!file)
        return bh_error_set(errp, EINVAL, "log-writes: no file child to open "
                            "'%s' over", filename);
    const char *log = bh_opts_get(opts, "log");
    if (!log || !*log)
        return bh_error_set(errp, EINVAL, "log-writes: option log=PATH (the "
                            "log file to write) is required");
    int fd = -1;
    if (open_flags & BH_OPEN_RDWR) {
        /* A new log for each open: entries only make sense from the state
         * the child was in when the log began. */
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return bh_error_set(errp, errno, "log-writes: cannot create the "
                                "log '%s': %s", log, g_strerror(errno));
        uint8_t header[32] = "BHLOGWR1";
        uint32_t version = GUINT32_TO_LE(1), hsize = GUINT32_TO_LE(32);
        memcpy(header + 8, &version, 4);
        memcpy(header + 12, &hsize, 4);
        if (!log_writes_full_write(fd, header, sizeof(header))) {
            int err = errno;
            close(fd);
            return bh_error_set(errp, err, "log-writes: cannot write the "
                                "log '%s': %s", log, g_strerror(err));
        }
    }
    LogWritesState *s = g_new0(LogWritesState, 1);
    s->file = file;
    s->fd = fd;
    s->log_path = g_strdup(log);
    g_mutex_init(&s->lock);
    bh_node_set_opaque(bs, s);

    /* FUA goes down as FUA (and is logged so); zeroes and discards are
     * whatever the child does with them. */
    bh_node_inherit_from(bs, file);
    return 0;
}

static void log_writes_close(BhNode *bs)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    if (s->fd >= 0)
        close(s->fd);
    g_mutex_clear(&s->lock);
    g_free(s->log_path);
    g_free(s);
    bh_node_set_opaque(bs, NULL);
}

static int64_t log_writes_get_length(BhNode *bs)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    return bh_node_size(s->file);
}

static int log_writes_pread(BhNode *bs, void *buf, uint64_t offset,
                            size_t len, uint32_t flags, BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    return bh_node_pread(s->file, buf, offset, len, flags, errp);
}

static uint32_t log_writes_fua(uint32_t type, uint32_t flags)
{
    return (flags & BH_IO_FUA) ? type | LOG_WRITES_F_FUA : type;
}

static int log_writes_pwrite(BhNode *bs, const void *buf, uint64_t offset,
                             size_t len, uint32_t flags, BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    int ret = bh_node_pwrite(s->file, buf, offset, len, flags, errp);
    if (ret < 0)
        return ret;
    return log_writes_append(bs, log_writes_fua(LOG_WRITES_T_WRITE, flags),
                             offset, len, buf, errp);
}

static int log_writes_flush(BhNode *bs, BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    int ret = bh_node_flush(s->file, errp);
    if (ret < 0)
        return ret;
    return log_writes_append(bs, LOG_WRITES_T_FLUSH, 0, 0, NULL, errp);
}

static int log_writes_discard(BhNode *bs, uint64_t offset, uint64_t len,
                              BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    int ret = bh_node_discard(s->file, offset, len, errp);
    if (ret < 0)
        return ret;
    return log_writes_append(bs, LOG_WRITES_T_DISCARD, offset, len, NULL,
                             errp);
}

static int log_writes_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                                   uint32_t flags, BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    int ret = bh_node_write_zeroes(s->file, offset, len, flags, errp);
    if (ret < 0)
        return ret;
    return log_writes_append(bs, log_writes_fua(LOG_WRITES_T_ZERO, flags),
                             offset, len, NULL, errp);
}

static int log_writes_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    int ret = bh_node_truncate(s->file, size, errp);
    if (ret < 0)
        return ret;
    return log_writes_append(bs, LOG_WRITES_T_TRUNCATE, size, 0, NULL, errp);
}

static int log_writes_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                                   uint64_t *pnum, uint32_t *status,
                                   BhError **errp)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    return bh_node_block_status(s->file, offset, len, pnum, status, errp);
}

static int64_t log_writes_get_allocated_size(BhNode *bs)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    return bh_node_allocated_size(s->file);
}

static void log_writes_info(BhNode *bs, BhInfo *info)
{
    LogWritesState *s = bh_node_get_opaque(bs);
    bh_info_add_str(info, "log", s->log_path);
}

static const BhDriver log_writes_driver = {
    .flags = BH_DRIVER_NO_PROBE | BH_DRIVER_FILTER,
    .probe = log_writes_probe,
    .open = log_writes_open,
    .close = log_writes_close,
    .get_length = log_writes_get_length,
    .pread = log_writes_pread,
    .pwrite = log_writes_pwrite,
    .flush = log_writes_flush,
    .discard = log_writes_discard,
    .write_zeroes = log_writes_write_zeroes,
    .block_status = log_writes_block_status,
    .truncate = log_writes_truncate,
    .info = log_writes_info,
    .get_allocated_size = log_writes_get_allocated_size,
    .request_flags = BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_DRIVER,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "log-writes",
    .version = "1.0",
    .description = "filter logging every write, zero, discard, truncate and "
                   "flush of its child to log=PATH (dm-log-writes' idea)",
    .driver = &log_writes_driver,
};

BH_PLUGIN_REGISTER(desc)
