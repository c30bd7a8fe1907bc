/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz-nbd.h"

BhNode *fuzz_nbd_export;

static bool fuzz_nbd_lookup(void *data, const char *name, NbdExportView *v)
{
    if (strcmp(name, "") != 0 && strcmp(name, "disk") != 0)
        return false;
    v->name = "disk";
    v->description = "fuzz";
    v->node = fuzz_nbd_export;
    return true;
}

static void fuzz_nbd_list(void *data, NbdListFn fn, void *ctx)
{
    fn(ctx, "disk", "fuzz");
}

const NbdHandshakeOps fuzz_nbd_ops = { fuzz_nbd_lookup, fuzz_nbd_list };

NbdPool *fuzz_nbd_pool(void)
{
    static NbdPool *pool;
    if (!pool) {
        BhError *err = NULL;
        pool = nbd_pool_new(2, &err);
        if (!pool)
            abort();
    }
    return pool;
}

static void fuzz_nbd_put32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    g_byte_array_append(b, (const guint8 *)&v, 4);
}

void fuzz_nbd_option(GByteArray *b, uint32_t opt, const void *data,
                     uint32_t len)
{
    uint64_t magic = GUINT64_TO_BE(NBD_IHAVEOPT);
    g_byte_array_append(b, (const guint8 *)&magic, 8);
    fuzz_nbd_put32(b, opt);
    fuzz_nbd_put32(b, len);
    g_byte_array_append(b, data, len);
}

void fuzz_nbd_canned_go(GByteArray *b, bool structured)
{
    static const uint8_t go[6] = { 0 };     /* name "", no info requests */
    if (structured) {
        g_autoptr(GByteArray) meta = g_byte_array_new();
        static const char q[] = "base:allocation";
        fuzz_nbd_option(b, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
        fuzz_nbd_put32(meta, 0);                 /* export name "" */
        fuzz_nbd_put32(meta, 1);                 /* one query */
        fuzz_nbd_put32(meta, sizeof(q) - 1);
        g_byte_array_append(meta, (const guint8 *)q, sizeof(q) - 1);
        fuzz_nbd_option(b, NBD_OPT_SET_META_CONTEXT, meta->data, meta->len);
    }
    fuzz_nbd_option(b, NBD_OPT_GO, go, sizeof(go));
}

void fuzz_nbd_finish(NbdSession *s, int sv[2], GThread *client)
{
    nbd_session_clear(s);
    close(sv[0]);
    g_thread_join(client);
    close(sv[1]);
    bh_node_unref(fuzz_nbd_export);
}
