/* The BH_ERROR domain: GError codes are errno values. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "blkhost/error.h"

G_DEFINE_QUARK(blkhost-error-quark, bh_error)

static int error_setv(GError **errp, int errnum, bool with_strerror,
                      const char *fmt, va_list ap)
{
    if (errnum < 0)
        errnum = -errnum;
    if (errnum == 0)
        errnum = EIO;
    if (errp) {
        char *msg = g_strdup_vprintf(fmt, ap);
        if (with_strerror) {
            char *full = g_strdup_printf("%s: %s", msg, g_strerror(errnum));
            g_free(msg);
            msg = full;
        }
        /* Keep the first error: a caller adding context uses g_prefix_error. */
        if (*errp == NULL)
            g_set_error_literal(errp, BH_ERROR, errnum, msg);
        g_free(msg);
    }
    return -errnum;
}

int bh_error_set(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_setv(errp, errnum, false, fmt, ap);
    va_end(ap);
    return r;
}

int bh_error_set_errno(GError **errp, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = error_setv(errp, errnum, true, fmt, ap);
    va_end(ap);
    return r;
}

int bh_error_errno(const GError *err)
{
    if (err && err->domain == BH_ERROR && err->code > 0)
        return err->code;
    return EIO;
}
