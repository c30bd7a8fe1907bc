/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhStream unit test: big-endian encoding checked byte by byte, memory, fd
 * and callback backends (with short reads and buffer-crossing sizes), peek,
 * and the sticky error (truncation, backend failures, wrong direction).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <blkhost/blkhost.h>
#include "tap.h"

static int has_msg(const BhError *e, const char *needle)
{
    return e && strstr(bh_error_message(e), needle) != NULL;
}

static void test_encoding(void)
{
    BhStream *w = bh_stream_new_mem_writer();
    bh_stream_put_u8(w, 0xab);
    bh_stream_put_be16(w, 0x1234);
    bh_stream_put_be32(w, 0xdeadbeef);
    bh_stream_put_be64(w, 0x0102030405060708ull);
    bh_stream_put_sbe32(w, -2);
    bh_stream_put_buffer(w, "xyz", 3);
    bh_stream_put_counted_string(w, "QEVM");
    static const uint8_t want[] = {
        0xab, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
        0xff, 0xff, 0xff, 0xfe, 'x', 'y', 'z', 4, 'Q', 'E', 'V', 'M',
    };
    size_t len;
    const uint8_t *data = bh_stream_mem_data(w, &len);
    ok(len == sizeof(want) && memcmp(data, want, len) == 0,
       "stream: big-endian encoding of u8/be16/be32/be64/s32/buffer/string "
       "is byte-exact");
    is_int(bh_stream_tell(w), sizeof(want), "stream: writer position counts "
           "bytes put");

    BhStream *r = bh_stream_new_mem_reader(data, len);
    ok(bh_stream_get_u8(r) == 0xab && bh_stream_get_be16(r) == 0x1234 &&
       bh_stream_get_be32(r) == 0xdeadbeef &&
       bh_stream_get_be64(r) == 0x0102030405060708ull &&
       bh_stream_get_sbe32(r) == -2, "stream: numbers read back");
    char buf[4] = { 0 }, str[256];
    ok(bh_stream_get_buffer(r, buf, 3) && strcmp(buf, "xyz") == 0 &&
       bh_stream_get_counted_string(r, str) && strcmp(str, "QEVM") == 0,
       "stream: buffer and counted string read back");
    is_int(bh_stream_tell(r), sizeof(want), "stream: reader position");
    is_int(bh_stream_error(r), 0, "stream: no error after exact read");
    uint8_t x = bh_stream_get_u8(r);
    ok(x == 0 && bh_stream_error(r) == -EINVAL &&
       has_msg(bh_stream_get_error(r), "unexpected end of stream at offset 27"),
       "stream: reading past the end: %s",
       bh_stream_get_error(r) ? bh_error_message(bh_stream_get_error(r)) : "no error");
    bh_stream_close(r, NULL);
    is_int(bh_stream_close(w, NULL), 0, "stream: close of a good writer");
}

static void test_truncated(void)
{
    static const uint8_t three[] = { 1, 2, 3 };
    BhStream *r = bh_stream_new_mem_reader(three, 3);
    ok(bh_stream_get_be32(r) == 0, "truncated: be32 from 3 bytes returns 0");
    BhError *err = NULL;
    int rc = bh_stream_take_error(r, &err);
    ok(rc == -EINVAL && has_msg(err, "unexpected end of stream at offset 3"),
       "truncated: error is '%s'", err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    ok(bh_stream_get_u8(r) == 0 && bh_stream_error(r) == -EINVAL,
       "truncated: error is sticky, later gets return 0");
    bh_stream_set_error(r, ENOSPC, "second error");
    ok(has_msg(bh_stream_get_error(r), "unexpected end"),
       "truncated: the first error is kept");
    rc = bh_stream_close(r, &err);
    ok(rc == -EINVAL && err, "truncated: close reports the error");
    bh_error_clear(&err);

    /* peek at the end is not an error */
    r = bh_stream_new_mem_reader(three, 3);
    uint8_t p[8];
    is_int(bh_stream_peek(r, p, 8, 1), 2, "peek: returns what is there");
    ok(bh_stream_error(r) == 0 && bh_stream_get_u8(r) == 1,
       "peek: consumes nothing and sets no error");
    ok(bh_stream_skip(r, 2) && !bh_stream_skip(r, 1) && bh_stream_error(r),
       "skip: past the end is an error");
    bh_stream_close(r, NULL);
}

static void test_direction(void)
{
    BhStream *w = bh_stream_new_mem_writer();
    ok(bh_stream_get_u8(w) == 0 && bh_stream_error(w) == -EBADF,
       "direction: get on a writer fails with EBADF");
    bh_stream_close(w, NULL);
    BhStream *r = bh_stream_new_mem_reader("a", 1);
    bh_stream_put_u8(r, 1);
    ok(bh_stream_error(r) == -EBADF &&
       has_msg(bh_stream_get_error(r), "read-only"),
       "direction: put on a reader fails with EBADF");
    bh_stream_close(r, NULL);
    w = bh_stream_new_mem_writer();
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    bh_stream_put_counted_string(w, longname);
    ok(bh_stream_error(w) == -EINVAL, "counted string of 299 bytes refused");
    bh_stream_close(w, NULL);
}

static void fill_pattern(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
}

static void test_fd(void)
{
    int rc;
    char *path = NULL;
    int fd = g_file_open_tmp("bh-stream-XXXXXX", &path, NULL);
    if (!ok(fd >= 0, "fd: temp file")) {
        return;
    }
    size_t n = 300 * 1000;  /* crosses the 64 KiB buffer several times */
    uint8_t *data = g_malloc(n), *back = g_malloc(n);
    fill_pattern(data, n, 7);
    BhStream *w = bh_stream_new_fd(fd, true);
    bh_stream_put_be32(w, 0x5145564d);
    bh_stream_put_buffer(w, data, n);
    bh_stream_put_be64(w, 42);
    is_int(bh_stream_close(w, NULL), 0, "fd: write %zu bytes", n + 12);
    ok(lseek(fd, 0, SEEK_END) == (off_t)(n + 12), "fd: file has every byte");
    lseek(fd, 0, SEEK_SET);
    BhStream *r = bh_stream_new_fd(fd, false);
    ok(bh_stream_get_be32(r) == 0x5145564d &&
       bh_stream_get_buffer(r, back, n) && memcmp(back, data, n) == 0 &&
       bh_stream_get_be64(r) == 42 && bh_stream_error(r) == 0,
       "fd: read back");
    bh_stream_get_u8(r);
    ok(has_msg(bh_stream_get_error(r), "unexpected end of stream"),
       "fd: end of file is 'unexpected end of stream'");
    bh_stream_close(r, NULL);
    close(fd);

    /* a closed fd: the write error surfaces at flush */
    w = bh_stream_new_fd(fd, true);
    bh_stream_put_u8(w, 1);
    BhError *err = NULL;
    rc = bh_stream_close(w, &err);
    ok(rc == -EBADF && err,
       "fd: write to a closed fd: %s", err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    unlink(path);
    g_free(path);
    g_free(data);
    g_free(back);
}

/* A callback backend over a GByteArray that reads at most 7 bytes at a
 * time and checks that positions are contiguous. */
typedef struct {
    GByteArray *bytes;
    uint64_t next_pos;
    bool pos_ok;
    int fail_write;   /* -errno to fail writes with */
    bool fail_silently;
    int closed;
    int flushed;
} CbState;

static ssize_t cb_read(void *opaque, void *buf, uint64_t pos, size_t len,
                       BhError **errp)
{
    CbState *c = opaque;
    if (pos != c->next_pos)
        c->pos_ok = false;
    if (pos >= c->bytes->len)
        return 0;
    size_t n = MIN(MIN(len, (size_t)7), c->bytes->len - (size_t)pos);
    memcpy(buf, c->bytes->data + pos, n);
    c->next_pos = pos + n;
    return (ssize_t)n;
}

static int cb_write(void *opaque, const void *buf, uint64_t pos, size_t len,
                    BhError **errp)
{
    CbState *c = opaque;
    if (c->fail_write) {
        if (c->fail_silently)
            return c->fail_write;
        return bh_error_set(errp, -c->fail_write, "vmstate area full at %"
                            PRIu64, pos);
    }
    if (pos != c->next_pos)
        c->pos_ok = false;
    g_byte_array_append(c->bytes, buf, (guint)len);
    c->next_pos = pos + len;
    return 0;
}

static int cb_flush(void *opaque, BhError **errp)
{
    ((CbState *)opaque)->flushed++;
    return 0;
}

static void cb_close(void *opaque)
{
    ((CbState *)opaque)->closed++;
}

static const BhStreamOps cb_ops = {
    .read_at = cb_read, .write_at = cb_write,
    .flush = cb_flush, .close = cb_close,
};

static void test_callbacks(void)
{
    int rc;
    CbState c = { .bytes = g_byte_array_new(), .pos_ok = true };
    size_t n = 200 * 1000;
    uint8_t *data = g_malloc(n), *back = g_malloc(n);
    fill_pattern(data, n, 3);
    BhStream *w = bh_stream_new_callbacks(&cb_ops, &c, true);
    for (int i = 0; i < 1000; i++)
        bh_stream_put_be64(w, (uint64_t)i * 0x100000001ull);
    bh_stream_put_buffer(w, data, n);
    is_int(bh_stream_flush(w), 0, "callbacks: flush");
    ok(c.flushed == 1, "callbacks: flush reaches ops->flush");
    is_int(bh_stream_close(w, NULL), 0, "callbacks: close");
    ok(c.closed == 1 && c.pos_ok && c.bytes->len == n + 8000,
       "callbacks: written at contiguous positions, close called once");

    c.next_pos = 0;
    BhStream *r = bh_stream_new_callbacks(&cb_ops, &c, false);
    bool good = true;
    for (int i = 0; i < 1000; i++)
        good &= bh_stream_get_be64(r) == (uint64_t)i * 0x100000001ull;
    uint8_t pk[3];
    good &= bh_stream_peek(r, pk, 3, 10) == 3 && pk[0] == data[10];
    good &= bh_stream_get_buffer(r, back, n) && memcmp(back, data, n) == 0;
    ok(good && c.pos_ok, "callbacks: read back through 7-byte short reads");
    is_int(bh_stream_tell(r), n + 8000, "callbacks: reader position");
    bh_stream_close(r, NULL);
    ok(c.closed == 2, "callbacks: reader close calls ops->close");

    /* a failing backend: first error kept with its message and errno */
    c.fail_write = -ENOSPC;
    w = bh_stream_new_callbacks(&cb_ops, &c, true);
    bh_stream_put_buffer(w, data, n);   /* fails at the first drain */
    ok(bh_stream_error(w) == -ENOSPC &&
       has_msg(bh_stream_get_error(w), "vmstate area full at 0"),
       "callbacks: write_at error is sticky with its message");
    bh_stream_put_u8(w, 1);
    BhError *err = NULL;
    rc = bh_stream_close(w, &err);
    ok(rc == -ENOSPC && has_msg(err, "area full"),
       "callbacks: close returns the first error");
    bh_error_clear(&err);
    c.fail_silently = true;
    c.fail_write = -EIO;
    w = bh_stream_new_callbacks(&cb_ops, &c, true);
    bh_stream_put_u8(w, 1);
    rc = bh_stream_close(w, &err);
    ok(rc == -EIO && has_msg(err, "write failed"),
       "callbacks: bare -EIO gets a message: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);

    static const BhStreamOps no_read = { .write_at = cb_write };
    r = bh_stream_new_callbacks(&no_read, &c, false);
    ok(bh_stream_error(r) == -EINVAL, "callbacks: reader without read_at "
       "refused");
    bh_stream_close(r, NULL);
    g_byte_array_unref(c.bytes);
    g_free(data);
    g_free(back);
}

int main(void)
{
    plan(36);
    test_encoding();
    test_truncated();
    test_direction();
    test_fd();
    test_callbacks();
    return done();
}
