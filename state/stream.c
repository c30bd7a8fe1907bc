/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhStream: the buffered big-endian byte stream under savevm (stream.h).
 *
 * Every kind of stream is a positioned backend (BhStreamOps) behind one
 * buffer: fd and memory streams are just built-in backends.  A writer
 * collects bytes in buf[0..tail) and hands them to write_at when the buffer
 * fills or on flush; a reader holds unread bytes in buf[head..tail) and
 * refills from read_at, which also serves peeks ahead of the read point.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "blkhost/error.h"
#include "blkhost/stream.h"
#include <blkhost/glib.h>

#define STREAM_BUF_SIZE (64 * 1024)

G_STATIC_ASSERT(BH_STREAM_PEEK_MAX <= STREAM_BUF_SIZE);

struct BhStream {
    const BhStreamOps *ops;
    void *opaque;
    bool writable;
    bool eof;            /* reader: the backend returned 0 */
    uint8_t *buf;
    size_t head, tail;
    uint64_t buf_pos;    /* backend position of buf[0] */
    BhError *err;
    int err_no;
    /* built-in backends */
    int fd;
    GByteArray *mem;     /* memory writer target / memory reader source */
};

/* ---- errors ---- */

static int stream_set_errorv(BhStream *s, int errnum, const char *fmt,
                             va_list ap)
{
    if (errnum < 0)
        errnum = -errnum;
    if (errnum == 0)
        errnum = EIO;
    if (!s->err) {
        g_autofree char *msg = g_strdup_vprintf(fmt, ap);
        s->err = bh_error_new(errnum, "%s", msg);
        s->err_no = errnum;
    }
    return -s->err_no;
}

int bh_stream_set_error(BhStream *s, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = stream_set_errorv(s, errnum, fmt, ap);
    va_end(ap);
    return r;
}

/* Keep a backend's error (or make one up if it gave a bare -errno). */
static void stream_take_backend_error(BhStream *s, int r, BhError *e,
                                      const char *what, uint64_t pos)
{
    if (e) {
        if (!s->err) {
            s->err = e;
            s->err_no = bh_error_errno(e);
        } else {
            bh_error_free(e);
        }
        return;
    }
    bh_stream_set_error(s, r, "stream %s failed at offset %" PRIu64 ": %s",
                        what, pos, g_strerror(r < 0 ? -r : EIO));
}

int bh_stream_error(const BhStream *s)
{
    return s->err ? -s->err_no : 0;
}

const BhError *bh_stream_get_error(const BhStream *s)
{
    return s->err;
}

int bh_stream_take_error(const BhStream *s, BhError **errp)
{
    if (!s->err)
        return 0;
    if (errp && !*errp)
        *errp = bh_error_copy(s->err);
    return -s->err_no;
}

/* ---- built-in backends ---- */

static ssize_t fd_read_at(void *opaque, void *buf, uint64_t pos, size_t len,
                          BhError **errp)
{
    BhStream *s = opaque;
    for (;;) {
        ssize_t n = read(s->fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return bh_error_set_errno(errp, errno,
                                      "stream: read from fd %d at offset %"
                                      PRIu64, s->fd, pos);
    }
}

static int fd_write_at(void *opaque, const void *buf, uint64_t pos,
                       size_t len, BhError **errp)
{
    BhStream *s = opaque;
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(s->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return bh_error_set_errno(errp, n < 0 ? errno : EIO,
                                      "stream: write to fd %d at offset %"
                                      PRIu64, s->fd, pos);
        p += n;
        len -= (size_t)n;
        pos += (uint64_t)n;
    }
    return 0;
}

static const BhStreamOps fd_ops = {
    .read_at = fd_read_at,
    .write_at = fd_write_at,
};

static ssize_t mem_read_at(void *opaque, void *buf, uint64_t pos, size_t len,
                           BhError **errp)
{
    BhStream *s = opaque;
    if (pos >= s->mem->len)
        return 0;
    size_t n = MIN(len, s->mem->len - (size_t)pos);
    memcpy(buf, s->mem->data + pos, n);
    return (ssize_t)n;
}

static int mem_write_at(void *opaque, const void *buf, uint64_t pos,
                        size_t len, BhError **errp)
{
    BhStream *s = opaque;
    if (pos > G_MAXUINT - len)
        return bh_error_set(errp, EFBIG, "stream: memory buffer would pass "
                            "%u bytes", G_MAXUINT);
    if (pos + len > s->mem->len)
        g_byte_array_set_size(s->mem, (guint)(pos + len));
    memcpy(s->mem->data + pos, buf, len);
    return 0;
}

static const BhStreamOps mem_ops = {
    .read_at = mem_read_at,
    .write_at = mem_write_at,
};

/* ---- construction ---- */

BhStream *bh_stream_new_callbacks(const BhStreamOps *ops, void *opaque,
                                  bool writable)
{
    BhStream *s = g_new0(BhStream, 1);
    s->ops = ops;
    s->opaque = opaque;
    s->writable = writable;
    s->buf = g_malloc(STREAM_BUF_SIZE);
    s->fd = -1;
    if (writable ? !ops->write_at : !ops->read_at)
        bh_stream_set_error(s, EINVAL, "stream: backend has no %s callback",
                            writable ? "write_at" : "read_at");
    return s;
}

BhStream *bh_stream_new_fd(int fd, bool writable)
{
    BhStream *s = bh_stream_new_callbacks(&fd_ops, NULL, writable);
    s->opaque = s;
    s->fd = fd;
    return s;
}

BhStream *bh_stream_new_mem_writer(void)
{
    BhStream *s = bh_stream_new_callbacks(&mem_ops, NULL, true);
    s->opaque = s;
    s->mem = g_byte_array_new();
    return s;
}

BhStream *bh_stream_new_mem_reader(const void *data, size_t len)
{
    BhStream *s = bh_stream_new_callbacks(&mem_ops, NULL, false);
    s->opaque = s;
    s->mem = g_byte_array_sized_new((guint)len);
    if (len > G_MAXUINT)
        bh_stream_set_error(s, EFBIG, "stream: memory reader of %zu bytes "
                            "is too large", len);
    else
        g_byte_array_append(s->mem, data, (guint)len);
    return s;
}

const uint8_t *bh_stream_mem_data(BhStream *s, size_t *len)
{
    if (!s->mem || !s->writable) {
        if (len)
            *len = 0;
        return NULL;
    }
    bh_stream_flush(s);
    if (len)
        *len = s->mem->len;
    return s->mem->data;
}

bool bh_stream_is_writable(const BhStream *s)
{
    return s->writable;
}

uint64_t bh_stream_tell(const BhStream *s)
{
    return s->buf_pos + (s->writable ? s->tail : s->head);
}

/* ---- writing ---- */

/* Hand buffered bytes to the backend; on error they are dropped (the
 * stream is dead anyway). */
static void stream_drain(BhStream *s)
{
    if (s->tail == 0 || s->err) {
        s->buf_pos += s->tail;
        s->tail = 0;
        return;
    }
    BhError *e = NULL;
    int r = s->ops->write_at(s->opaque, s->buf, s->buf_pos, s->tail, &e);
    if (r < 0)
        stream_take_backend_error(s, r, e, "write", s->buf_pos);
    else if (e)
        bh_error_free(e);
    s->buf_pos += s->tail;
    s->tail = 0;
}

static bool stream_check_mode(BhStream *s, bool want_write)
{
    if (s->err)
        return false;
    if (s->writable != want_write) {
        bh_stream_set_error(s, EBADF, "stream is %s",
                            s->writable ? "write-only" : "read-only");
        return false;
    }
    return true;
}

void bh_stream_put_buffer(BhStream *s, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (!stream_check_mode(s, true))
        return;
    while (len && !s->err) {
        size_t n = MIN(len, STREAM_BUF_SIZE - s->tail);
        memcpy(s->buf + s->tail, p, n);
        s->tail += n;
        p += n;
        len -= n;
        if (s->tail == STREAM_BUF_SIZE)
            stream_drain(s);
    }
}

void bh_stream_put_u8(BhStream *s, uint8_t v)
{
    bh_stream_put_buffer(s, &v, 1);
}

void bh_stream_put_be16(BhStream *s, uint16_t v)
{
    uint8_t b[2] = { v >> 8, v };
    bh_stream_put_buffer(s, b, sizeof(b));
}

void bh_stream_put_be32(BhStream *s, uint32_t v)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };
    bh_stream_put_buffer(s, b, sizeof(b));
}

void bh_stream_put_be64(BhStream *s, uint64_t v)
{
    bh_stream_put_be32(s, (uint32_t)(v >> 32));
    bh_stream_put_be32(s, (uint32_t)v);
}

void bh_stream_put_counted_string(BhStream *s, const char *str)
{
    size_t len = strlen(str);
    if (len > 255) {
        bh_stream_set_error(s, EINVAL, "stream: string '%.32s...' is %zu "
                            "bytes, at most 255 fit a counted string",
                            str, len);
        return;
    }
    bh_stream_put_u8(s, (uint8_t)len);
    bh_stream_put_buffer(s, str, len);
}

int bh_stream_flush(BhStream *s)
{
    if (s->writable && !s->err) {
        stream_drain(s);
        if (!s->err && s->ops->flush) {
            BhError *e = NULL;
            int r = s->ops->flush(s->opaque, &e);
            if (r < 0)
                stream_take_backend_error(s, r, e, "flush", s->buf_pos);
            else if (e)
                bh_error_free(e);
        }
    }
    return bh_stream_error(s);
}

int bh_stream_close(BhStream *s, BhError **errp)
{
    if (!s)
        return 0;
    bh_stream_flush(s);
    if (s->ops->close)
        s->ops->close(s->opaque);
    int r = bh_stream_take_error(s, errp);
    if (s->err)
        bh_error_free(s->err);
    if (s->mem)
        g_byte_array_unref(s->mem);
    g_free(s->buf);
    g_free(s);
    return r;
}

/* ---- reading ---- */

/* Make at least `need` (<= STREAM_BUF_SIZE) unread bytes available if the
 * backend has them; returns how many are available. */
static size_t stream_fill(BhStream *s, size_t need)
{
    while (s->tail - s->head < need && !s->eof && !s->err) {
        if (s->head > 0 && STREAM_BUF_SIZE - s->head < need) {
            memmove(s->buf, s->buf + s->head, s->tail - s->head);
            s->buf_pos += s->head;
            s->tail -= s->head;
            s->head = 0;
        } else if (s->head == s->tail) {
            s->buf_pos += s->head;
            s->head = s->tail = 0;
        }
        BhError *e = NULL;
        uint64_t pos = s->buf_pos + s->tail;
        ssize_t n = s->ops->read_at(s->opaque, s->buf + s->tail, pos,
                                    STREAM_BUF_SIZE - s->tail, &e);
        if (n < 0) {
            stream_take_backend_error(s, (int)n, e, "read", pos);
            break;
        }
        if (e)
            bh_error_free(e);
        if (n == 0)
            s->eof = true;
        s->tail += (size_t)n;
    }
    return s->tail - s->head;
}

bool bh_stream_get_buffer(BhStream *s, void *buf, size_t len)
{
    uint8_t *p = buf;
    uint64_t start = bh_stream_tell(s);
    if (!stream_check_mode(s, false))
        return false;
    while (len) {
        size_t avail = stream_fill(s, MIN(len, (size_t)STREAM_BUF_SIZE));
        if (s->err)
            return false;
        if (avail == 0) {
            bh_stream_set_error(s, EINVAL, "unexpected end of stream at "
                                "offset %" PRIu64 " (reading %zu bytes at "
                                "offset %" PRIu64 ")", bh_stream_tell(s),
                                (size_t)(bh_stream_tell(s) - start) + len,
                                start);
            return false;
        }
        size_t n = MIN(avail, len);
        if (p) {
            memcpy(p, s->buf + s->head, n);
            p += n;
        }
        s->head += n;
        len -= n;
    }
    return true;
}

bool bh_stream_skip(BhStream *s, size_t len)
{
    return bh_stream_get_buffer(s, NULL, len);
}

uint8_t bh_stream_get_u8(BhStream *s)
{
    uint8_t b = 0;
    return bh_stream_get_buffer(s, &b, 1) ? b : 0;
}

uint16_t bh_stream_get_be16(BhStream *s)
{
    uint8_t b[2];
    if (!bh_stream_get_buffer(s, b, sizeof(b)))
        return 0;
    return (uint16_t)(b[0] << 8 | b[1]);
}

uint32_t bh_stream_get_be32(BhStream *s)
{
    uint8_t b[4];
    if (!bh_stream_get_buffer(s, b, sizeof(b)))
        return 0;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
           (uint32_t)b[2] << 8 | b[3];
}

uint64_t bh_stream_get_be64(BhStream *s)
{
    uint8_t b[8];
    if (!bh_stream_get_buffer(s, b, sizeof(b)))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

bool bh_stream_get_counted_string(BhStream *s, char str[256])
{
    uint8_t len = bh_stream_get_u8(s);
    str[0] = '\0';
    if (s->err || !bh_stream_get_buffer(s, str, len)) {
        str[0] = '\0';
        return false;
    }
    str[len] = '\0';
    return true;
}

size_t bh_stream_peek(BhStream *s, void *buf, size_t len, size_t offset)
{
    if (!stream_check_mode(s, false))
        return 0;
    if (offset > BH_STREAM_PEEK_MAX || len > BH_STREAM_PEEK_MAX - offset) {
        bh_stream_set_error(s, EINVAL, "stream: peek of %zu bytes at %zu "
                            "ahead is past the %d-byte window", len, offset,
                            BH_STREAM_PEEK_MAX);
        return 0;
    }
    size_t avail = stream_fill(s, offset + len);
    if (s->err || avail <= offset)
        return 0;
    size_t n = MIN(len, avail - offset);
    memcpy(buf, s->buf + s->head + offset, n);
    return n;
}
