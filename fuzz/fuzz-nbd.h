/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the two NBD server targets (nbd-server, nbd-tls) share: the one
 * export they serve, the worker pool, and the canned options that take
 * a client stream to the transmission phase.
 */
#ifndef FUZZ_NBD_H
#define FUZZ_NBD_H

#include <stdbool.h>
#include <stdint.h>

#include "nbd-common.h"
#include <blkhost/glib.h>

/* The export "disk" (also reached by the name ""), "fuzz" described:
 * handshake callbacks serving fuzz_nbd_export, which the target sets for
 * each input (a 1 MiB memory node). */
extern BhNode *fuzz_nbd_export;
extern const NbdHandshakeOps fuzz_nbd_ops;

/* One worker pool (two workers) for the whole process. */
NbdPool *fuzz_nbd_pool(void);

/* After the server side is done with an input: clear its session, close
 * its end (which ends the client thread's reads), join that thread, close
 * the client's end and drop the export. */
void fuzz_nbd_finish(NbdSession *s, int sv[2], GThread *client);

/* Append option opt with len bytes of data, framed as a client sends it. */
void fuzz_nbd_option(GByteArray *b, uint32_t opt, const void *data,
                     uint32_t len);
/* Append a GO for the default export; when structured, first
 * STRUCTURED_REPLY and SET_META_CONTEXT base:allocation. */
void fuzz_nbd_canned_go(GByteArray *b, bool structured);

#endif
