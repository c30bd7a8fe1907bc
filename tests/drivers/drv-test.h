/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the driver tests: open a node from a "k=v,..." string,
 * check that a call failed with a given errno and message, make scratch
 * files and fill buffers with recognisable patterns.
 */
#ifndef BH_TESTS_DRV_TEST_H
#define BH_TESTS_DRV_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkhost/blkhost.h>

#include "tap.h"

static char *scratch_dir;

static inline const char *scratch(const char *name)
{
    static char *last[8];
    static int slot;
    if (!scratch_dir)
        scratch_dir = g_dir_make_tmp("blkhost-drivers-XXXXXX", NULL);
    slot = (slot + 1) % 8;
    g_free(last[slot]);
    last[slot] = g_build_filename(scratch_dir, name, NULL);
    return last[slot];
}

static inline void scratch_cleanup(void)
{
    if (!scratch_dir)
        return;
    GDir *d = g_dir_open(scratch_dir, 0, NULL);
    const char *n;
    while (d && (n = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(scratch_dir, n, NULL);
        chmod(p, 0700);
        if (rmdir(p) < 0)
            unlink(p);
    }
    if (d)
        g_dir_close(d);
    rmdir(scratch_dir);
}

/* Open filename with options "k=v,k2=v2"; NULL with *err set on failure. */
static inline BhNode *open_node(const char *filename, const char *optstr,
                                BhError **err)
{
    g_autoptr(BhOpts) o = bh_opts_parse(optstr ? optstr : "", NULL, err);
    if (!o)
        return NULL;
    return bh_node_open(filename, o, err);
}

/* Like open_node, but a failure is reported as a diagnostic. */
static inline BhNode *open_ok(const char *filename, const char *optstr)
{
    BhError *err = NULL;
    BhNode *bs = open_node(filename, optstr, &err);
    if (!bs) {
        diag("open '%s' {%s} failed: %s", filename, optstr,
             err ? bh_error_message(err) : "?");
        bh_error_clear(&err);
    }
    return bs;
}

/* ok() that ret == -want_errno, err's code is want_errno and its message
 * contains want_msg (if not NULL).  Clears err.  The description is a
 * printf format. */
static inline G_GNUC_PRINTF(5, 6) int check_error(int ret, BhError **err,
                                                  int want_errno,
                                                  const char *want_msg,
                                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    bool good = ret == -want_errno && *err && bh_error_errno(*err) == want_errno &&
                (!want_msg || strstr(bh_error_message((*err)), want_msg));
    ok(good, "%s", desc);
    if (!good)
        diag("got ret %d, error %d '%s'; want %d containing '%s'", ret,
             *err ? bh_error_errno(*err) : 0, *err ? bh_error_message((*err)) : "(none)",
             -want_errno, want_msg ? want_msg : "");
    else if (*err)
        diag("message: %s", bh_error_message((*err)));
    bh_error_clear(err);
    return good;
}

/* The same for an open that should have failed (bs is the result). */
static inline G_GNUC_PRINTF(5, 6) int check_open_fails(BhNode *bs,
                                                       BhError **err,
                                                       int want_errno,
                                                       const char *want_msg,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *desc = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (bs) {
        ok(0, "%s", desc);
        diag("open unexpectedly succeeded");
        bh_node_unref(bs);
        return 0;
    }
    return check_error(-((*err) ? bh_error_errno(*err) : 0), err, want_errno,
                       want_msg, "%s", desc);
}

/* Bytes that depend on position and a seed, so misplaced data shows. */
static inline void fill_pattern(uint8_t *buf, size_t len, uint64_t offset,
                                uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (offset + i) * 2654435761u + seed;
        buf[i] = (uint8_t)(x ^ (x >> 13) ^ (x >> 29)) | 1;
    }
}

static inline bool all_zero(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i])
            return false;
    return true;
}

/* Create filename with size bytes of holes. */
static inline void make_sparse(const char *filename, off_t size)
{
    int fd = open(filename, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, size) < 0)
        diag("cannot create %s: %s", filename, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Write len pattern bytes (seed) at offset of filename, behind the back of
 * any node. */
static inline void poke_pattern(const char *filename, off_t offset,
                                size_t len, uint32_t seed)
{
    uint8_t *buf = g_malloc(len);
    fill_pattern(buf, len, offset, seed);
    int fd = open(filename, O_WRONLY);
    if (fd < 0 || pwrite(fd, buf, len, offset) != (ssize_t)len)
        diag("cannot write %s: %s", filename, strerror(errno));
    if (fd >= 0)
        close(fd);
    g_free(buf);
}

/* Read len bytes at offset of filename directly. */
static inline uint8_t *peek(const char *filename, off_t offset, size_t len)
{
    uint8_t *buf = g_malloc0(len);
    int fd = open(filename, O_RDONLY);
    if (fd < 0 || pread(fd, buf, len, offset) < 0)
        diag("cannot read %s: %s", filename, strerror(errno));
    if (fd >= 0)
        close(fd);
    return buf;
}

static inline off_t file_size(const char *filename)
{
    struct stat st;
    return stat(filename, &st) == 0 ? st.st_size : -1;
}

static inline off_t file_blocks(const char *filename)
{
    struct stat st;
    return stat(filename, &st) == 0 ? st.st_blocks * 512 : -1;
}

/* Extents of [0, size) as "D0+4096 H4096+61440 ..." (D data, H hole with
 * zero, Z zero data), for comparing whole maps in one test line. */
static inline char *extent_map(BhNode *bs, uint64_t offset, uint64_t len)
{
    GString *s = g_string_new(NULL);
    uint64_t end = offset + len;
    while (offset < end) {
        uint64_t pnum = 0;
        uint32_t st = 0;
        BhError *err = NULL;
        if (bh_node_block_status(bs, offset, end - offset, &pnum, &st,
                                 &err) < 0) {
            g_string_append_printf(s, "ERR(%s)", bh_error_message(err));
            bh_error_clear(&err);
            break;
        }
        char c = (st & BH_BLOCK_HOLE) ? 'H' : (st & BH_BLOCK_ZERO) ? 'Z' : 'D';
        g_string_append_printf(s, "%s%c%" PRIu64 "+%" PRIu64, s->len ? " " : "",
                               c, offset, pnum);
        offset += pnum;
    }
    return g_string_free(s, FALSE);
}

#endif
