/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the filters in drivers/filters/ share: the pass-through callbacks
 * (a filter names them for each operation it leaves alone), the opening
 * of the child, and the operation kinds the per-operation options
 * (delay-read=, error-pwrite=, read-rate=, ...) are keyed by.  Linked
 * into each filter module; not a plugin of its own.
 */
#ifndef BH_FILTER_H
#define BH_FILTER_H

#include <blkhost/driver.h>

/* BhDriver.flags of every filter: opened only by name, over a child. */
#define FILTER_FLAGS (BH_DRIVER_NO_PROBE | BH_DRIVER_FILTER)
/* BhDriver.request_flags of every filter: the flags pass through to the
 * child, whose core emulates what the child lacks. */
#define FILTER_REQUEST_FLAGS (BH_IO_FUA | BH_IO_MAY_UNMAP | BH_IO_FAST_ZERO)

typedef enum {
    FILTER_READ, FILTER_WRITE, FILTER_ZERO, FILTER_TRIM, FILTER_FLUSH,
    FILTER_EXTENTS, FILTER_N_OPS
} FilterOp;

/* "read", "write", "zero", "trim", "flush", "extents". */
extern const char *const filter_op_names[FILTER_N_OPS];

/* The child every request goes to (borrowed). */
static inline BhNode *filter_child(BhNode *bs)
{
    return bh_node_child(bs, "file");
}

/* In a filter's open: the child, with bs taking over its capabilities and
 * block limits; NULL with *errp set when bs has none. */
BhNode *filter_open_child(BhNode *bs, const char *name, BhError **errp);

/* Parse "TEXT" with parse for each op: the op's own key
 * (PREFIX-OPNAME, e.g. delay-read) wins over the general key gen (NULL:
 * none).  parse gets the value (NULL when neither is set) and the op's
 * slot.  False with *errp set naming the filter (prefix) and the key
 * on a bad value. */
typedef bool (*FilterParse)(const char *value, void *slot, BhError **errp);
bool filter_parse_ops(BhOpts *opts, const char *prefix, const char *gen,
                      FilterParse parse, void *slots, size_t slot_size,
                      BhError **errp);

/* Errno names as in C ("EIO", "ENOSPC"): the name of err ("?" if it
 * has none), and the number of name (0 if it names none). */
const char *filter_errno_name(int err);
int filter_errno_parse(const char *name);

/* The pass-through callbacks. */
int filter_probe(const uint8_t *buf, size_t len, const char *filename);
int64_t filter_get_length(BhNode *bs);
int filter_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                 uint32_t flags, BhError **errp);
int filter_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                  uint32_t flags, BhError **errp);
int filter_flush(BhNode *bs, BhError **errp);
int filter_discard(BhNode *bs, uint64_t offset, uint64_t len,
                   BhError **errp);
int filter_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                        uint32_t flags, BhError **errp);
int filter_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                        uint64_t *pnum, uint32_t *status, BhError **errp);
int filter_truncate(BhNode *bs, uint64_t size, BhError **errp);
int64_t filter_get_allocated_size(BhNode *bs);

#endif
