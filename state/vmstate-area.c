/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A BhStream over a node's vmstate area (bh_node_save_vmstate and
 * bh_node_load_vmstate by position), where savevm keeps its state.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <blkhost/blkhost.h>


typedef struct {
    BhNode *bs;
    uint64_t limit;
} VmStream;

static ssize_t vm_read_at(void *opaque, void *buf, uint64_t pos, size_t len,
                          BhError **errp)
{
    VmStream *v = opaque;
    if (pos >= v->limit)
        return 0;
    len = (size_t)MIN((uint64_t)len, v->limit - pos);
    int r = bh_node_load_vmstate(v->bs, buf, pos, len, errp);
    return r < 0 ? r : (ssize_t)len;
}

static int vm_write_at(void *opaque, const void *buf, uint64_t pos,
                       size_t len, BhError **errp)
{
    VmStream *v = opaque;
    return bh_node_save_vmstate(v->bs, buf, pos, len, errp);
}

static int vm_flush(void *opaque, BhError **errp)
{
    VmStream *v = opaque;
    return bh_node_flush(v->bs, errp);
}

static void vm_close(void *opaque)
{
    VmStream *v = opaque;
    bh_node_unref(v->bs);
    g_free(v);
}

static const BhStreamOps vm_ops = {
    .read_at = vm_read_at,
    .write_at = vm_write_at,
    .flush = vm_flush,
    .close = vm_close,
};

BhStream *bh_node_vmstate_stream(BhNode *bs, bool writable, uint64_t limit)
{
    VmStream *v = g_new0(VmStream, 1);
    v->bs = bh_node_ref(bs);
    v->limit = limit;
    return bh_stream_new_callbacks(&vm_ops, v, writable);
}

