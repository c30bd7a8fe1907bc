/*
 * blkhost error domain.
 *
 * Every GError the core or a plugin raises is in BH_ERROR, and its code is
 * a positive errno value (EINVAL, ENOSPC, EPERM, ...).  Frontends turn the
 * code straight into their wire error (NBD uses errno numbers too); Lua turns
 * the message into a Lua error.  I/O functions also return -errno so the hot
 * path can pass errp == NULL and never allocate.
 */
#ifndef BLKHOST_ERROR_H
#define BLKHOST_ERROR_H

#include <stdbool.h>
#include <glib.h>

G_BEGIN_DECLS

#define BH_ERROR (bh_error_quark())
GQuark bh_error_quark(void);

/* Set *errp (if errp is not NULL) and return -errnum, so callers can write
 * "return bh_error_set(errp, EINVAL, "...", ...);". */
int bh_error_set(GError **errp, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Like bh_error_set, appending ": strerror(errnum)". */
int bh_error_set_errno(GError **errp, int errnum, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* The errno a GError stands for: its code in BH_ERROR, EIO otherwise. */
int bh_error_errno(const GError *err);

/* Transition to the libc-only plugin ABI (v2): BhError is the name new code
 * uses; these wrappers keep their meaning when it becomes an opaque type. */
typedef GError BhError;
static inline const char *bh_error_message(const BhError *err)
{
    return err ? err->message : NULL;
}
static inline void bh_error_free(BhError *err) { if (err) g_error_free(err); }
static inline void bh_error_clear(BhError **errp) { g_clear_error(errp); }
static inline void bh_error_propagate(BhError **dst, BhError *src)
{
    g_propagate_error(dst, src);
}
#define bh_error_prefix(errp, ...) g_prefix_error((errp), __VA_ARGS__)

G_END_DECLS

#endif
