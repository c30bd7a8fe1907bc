/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhError: why something failed, as an errno value and a message.
 *
 * Part of the plugin ABI, so it needs only libc: the type is opaque and
 * owned by the core.  Every call that can fail takes a BhError **errp
 * last; errp may be NULL (the NBD hot path passes NULL so that nothing is
 * allocated), and I/O calls also return -errno.  The errno follows NBD's
 * choices (EINVAL, ENOSPC, EPERM, ...), so frontends turn it straight into
 * their wire error; Lua turns the message into a Lua error.
 */
#ifndef BLKHOST_ERROR_H
#define BLKHOST_ERROR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BhError BhError;

#define BH_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Set *errp (if errp is not NULL and *errp is still NULL: the first error
 * is the one kept) and return -errnum, so callers can write
 * "return bh_error_set(errp, EINVAL, "...", ...);".  errnum may be given
 * negative; 0 becomes EIO. */
int bh_error_set(BhError **errp, int errnum, const char *fmt, ...)
    BH_PRINTF(3, 4);
/* Like bh_error_set, appending ": strerror(errnum)". */
int bh_error_set_errno(BhError **errp, int errnum, const char *fmt, ...)
    BH_PRINTF(3, 4);
/* Put "prefix" in front of *errp's message (nothing if there is none). */
void bh_error_prefix(BhError **errp, const char *fmt, ...) BH_PRINTF(2, 3);

/* The errno err stands for (EIO for NULL), and its message. */
int bh_error_errno(const BhError *err);
const char *bh_error_message(const BhError *err);

BhError *bh_error_new(int errnum, const char *fmt, ...) BH_PRINTF(2, 3);
BhError *bh_error_copy(const BhError *err);
void bh_error_free(BhError *err);
/* Free *errp and set it to NULL (errp may be NULL). */
void bh_error_clear(BhError **errp);
/* Move src into *dst; when dst is NULL or already holds an error, src is
 * freed (the first error is kept). */
void bh_error_propagate(BhError **dst, BhError *src);

#ifdef __cplusplus
}
#endif

#endif
