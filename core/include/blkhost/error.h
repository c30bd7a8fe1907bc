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

G_END_DECLS

#endif
