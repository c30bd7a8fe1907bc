/* SPDX-License-Identifier: BSD-3-Clause */
/* BhError: an errno value and a message, owned by the core. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <glib.h>

#include "blkhost/error.h"
#include "blkhost/glib.h"

struct BhError {
    int errnum;
    char *message;
};

static int error_errnum(int errnum)
{
    if (errnum < 0)
        errnum = -errnum;
    return errnum ? errnum : EIO;
}

static BhError *error_newv(int errnum, bool with_strerror, const char *fmt,
                           va_list ap)
{
    BhError *err = g_new(BhError, 1);
    err->errnum = error_errnum(errnum);
    err->message = g_strdup_vprintf(fmt, ap);
    if (with_strerror) {
        char *full = g_strdup_printf("%s: %s", err->message,
                                     g_strerror(err->errnum));
        g_free(err->message);
        err->message = full;
    }
    return err;
}

static int error_setv(BhError **errp, int errnum, bool with_strerror,
                      const char *fmt, va_list ap)
{
    errnum = error_errnum(errnum);
    /* Keep the first error: a caller adding context uses bh_error_prefix. */
    if (errp && *errp == NULL)
        *errp = error_newv(errnum, with_strerror, fmt, ap);
    return -errnum;
}

int bh_error_set(BhError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_setv(errp, errnum, false, fmt, ap);
    va_end(ap);
    return r;
}

int bh_error_set_errno(BhError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_setv(errp, errnum, true, fmt, ap);
    va_end(ap);
    return r;
}

void bh_error_prefix(BhError **errp, const char *fmt, ...)
{
    if (!errp || !*errp)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    char *msg = g_strconcat(prefix, (*errp)->message, NULL);
    g_free(prefix);
    g_free((*errp)->message);
    (*errp)->message = msg;
}

int bh_error_errno(const BhError *err)
{
    return err ? err->errnum : EIO;
}

const char *bh_error_message(const BhError *err)
{
    return err ? err->message : NULL;
}

BhError *bh_error_new(int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    BhError *err = error_newv(errnum, false, fmt, ap);
    va_end(ap);
    return err;
}

BhError *bh_error_copy(const BhError *err)
{
    BhError *copy = g_new(BhError, 1);
    copy->errnum = err->errnum;
    copy->message = g_strdup(err->message);
    return copy;
}

void bh_error_free(BhError *err)
{
    if (!err)
        return;
    g_free(err->message);
    g_free(err);
}

void bh_error_clear(BhError **errp)
{
    if (errp && *errp) {
        bh_error_free(*errp);
        *errp = NULL;
    }
}

void bh_error_propagate(BhError **dst, BhError *src)
{
    if (dst && !*dst)
        *dst = src;
    else
        bh_error_free(src);
}

int bh_error_take_gerror(BhError **errp, GError *gerr, int errnum)
{
    int r = bh_error_set(errp, errnum, "%s", gerr ? gerr->message
                                                  : g_strerror(errnum));
    if (gerr)
        g_error_free(gerr);
    return r;
}
