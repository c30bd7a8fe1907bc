/*
 * bh_node_check: the driver's consistency check, for `blkhost check`.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "core-priv.h"

void bh_check_result_init(BhCheckResult *res)
{
    memset(res, 0, sizeof(*res));
    res->struct_size = sizeof(*res);
    res->messages = g_ptr_array_new_with_free_func(g_free);
}

void bh_check_result_clear(BhCheckResult *res)
{
    if (res->messages)
        g_ptr_array_unref(res->messages);
    memset(res, 0, sizeof(*res));
}

size_t bh_check_result_message_count(const BhCheckResult *res)
{
    const GPtrArray *msgs = res->messages;
    return msgs ? msgs->len : 0;
}

const char *bh_check_result_message(const BhCheckResult *res, size_t i)
{
    const GPtrArray *msgs = res->messages;
    return msgs && i < msgs->len ? msgs->pdata[i] : NULL;
}

void bh_check_result_say(BhCheckResult *res, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_ptr_array_add(res->messages, g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

int bh_node_check(BhNode *bs, uint32_t fix, BhCheckResult *res,
                  BhError **errp)
{
    bh_check_result_init(res);
    if (!bs->drv->check)
        return bh_error_set(errp, ENOTSUP, "This image format does not "
                            "support checks");
    /* Repairs write: a read-only node cannot take them. */
    if (fix && bh_node_is_readonly(bs))
        return bh_error_set(errp, EROFS, "cannot repair a read-only image");
    return bs->drv->check(bs, fix, res, errp);
}
