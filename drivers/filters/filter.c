/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The pass-through half of every filter (filter.h): each callback hands
 * the request to the child unchanged, so a filter writes only the
 * operations it changes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "filter.h"

const char *const filter_op_names[FILTER_N_OPS] = {
    "read", "write", "zero", "trim", "flush", "extents",
};

BhNode *filter_open_child(BhNode *bs, const char *name, BhError **errp)
{
    BhNode *child = filter_child(bs);
    if (!child) {
        bh_error_set(errp, EINVAL, "%s: a filter needs a node under it "
                     "(bh.filter, filters= or file.driver=%s)", name, name);
        return NULL;
    }
    bh_node_inherit_from(bs, child);
    return child;
}

bool filter_parse_ops(BhOpts *opts, const char *prefix, const char *gen,
                      FilterParse parse, void *slots, size_t slot_size,
                      BhError **errp)
{
    const char *gval = gen ? bh_opts_get(opts, gen) : NULL;
    for (int op = 0; op < FILTER_N_OPS; op++) {
        char key[64];
        snprintf(key, sizeof(key), "%s-%s", prefix, filter_op_names[op]);
        const char *v = bh_opts_get(opts, key);
        const char *which = v ? key : gen;
        if (!v)
            v = gval;
        if (!parse(v, (char *)slots + op * slot_size, errp)) {
            bh_error_prefix(errp, "%s: %s=%s: ", prefix, which, v);
            return false;
        }
    }
    return true;
}

const char *filter_errno_name(int err)
{
    const char *n = strerrorname_np(err);
    return n ? n : "?";
}

int filter_errno_parse(const char *name)
{
    for (int e = 1; e < 4096; e++) {
        const char *n = strerrorname_np(e);
        if (n && !strcmp(n, name))
            return e;
    }
    return 0;
}

int filter_probe(const uint8_t *buf, size_t len, const char *filename)
{
    return 0;  /* a filter is only ever asked for by name */
}

int64_t filter_get_length(BhNode *bs)
{
    return bh_node_size(filter_child(bs));
}

int filter_pread(BhNode *bs, void *buf, uint64_t offset, size_t len,
                 uint32_t flags, BhError **errp)
{
    return bh_node_pread(filter_child(bs), buf, offset, len, flags, errp);
}

int filter_pwrite(BhNode *bs, const void *buf, uint64_t offset, size_t len,
                  uint32_t flags, BhError **errp)
{
    return bh_node_pwrite(filter_child(bs), buf, offset, len, flags, errp);
}

int filter_flush(BhNode *bs, BhError **errp)
{
    return bh_node_flush(filter_child(bs), errp);
}

int filter_discard(BhNode *bs, uint64_t offset, uint64_t len,
                   BhError **errp)
{
    return bh_node_discard(filter_child(bs), offset, len, errp);
}

int filter_write_zeroes(BhNode *bs, uint64_t offset, uint64_t len,
                        uint32_t flags, BhError **errp)
{
    return bh_node_write_zeroes(filter_child(bs), offset, len, flags, errp);
}

int filter_block_status(BhNode *bs, uint64_t offset, uint64_t len,
                        uint64_t *pnum, uint32_t *status, BhError **errp)
{
    return bh_node_block_status(filter_child(bs), offset, len, pnum, status,
                                errp);
}

int filter_truncate(BhNode *bs, uint64_t size, BhError **errp)
{
    return bh_node_truncate(filter_child(bs), size, errp);
}

int64_t filter_get_allocated_size(BhNode *bs)
{
    return bh_node_allocated_size(filter_child(bs));
}
