/* SPDX-License-Identifier: BSD-3-Clause */
/* BhInfo: an ordered list of typed facts. */
#include "blkhost/glib.h"

struct BhInfo {
    GArray *items; /* BhInfoItem */
};

static void info_item_clear(gpointer p)
{
    BhInfoItem *it = p;
    g_free(it->key);
    g_free(it->s);
}

BhInfo *bh_info_new(void)
{
    BhInfo *info = g_new0(BhInfo, 1);
    info->items = g_array_new(FALSE, TRUE, sizeof(BhInfoItem));
    g_array_set_clear_func(info->items, info_item_clear);
    return info;
}

void bh_info_free(BhInfo *info)
{
    if (!info)
        return;
    g_array_free(info->items, TRUE);
    g_free(info);
}

/* The slot for key: the existing one (cleared) or a new one at the end. */
static BhInfoItem *info_slot(BhInfo *info, const char *key)
{
    for (guint i = 0; i < info->items->len; i++) {
        BhInfoItem *it = &g_array_index(info->items, BhInfoItem, i);
        if (g_str_equal(it->key, key)) {
            g_clear_pointer(&it->s, g_free);
            return it;
        }
    }
    BhInfoItem blank = { .struct_size = sizeof(BhInfoItem),
                         .key = g_strdup(key) };
    g_array_append_val(info->items, blank);
    return &g_array_index(info->items, BhInfoItem, info->items->len - 1);
}

void bh_info_add_str(BhInfo *info, const char *key, const char *value)
{
    BhInfoItem *it = info_slot(info, key);
    it->type = BH_INFO_STR;
    it->s = g_strdup(value ? value : "");
}

void bh_info_add_int(BhInfo *info, const char *key, int64_t value)
{
    BhInfoItem *it = info_slot(info, key);
    it->type = BH_INFO_INT;
    it->i = value;
}

void bh_info_add_bool(BhInfo *info, const char *key, bool value)
{
    BhInfoItem *it = info_slot(info, key);
    it->type = BH_INFO_BOOL;
    it->b = value;
}

size_t bh_info_count(const BhInfo *info)
{
    return info->items->len;
}

const BhInfoItem *bh_info_item(const BhInfo *info, size_t i)
{
    return i < info->items->len ? &g_array_index(info->items, BhInfoItem, i)
                                : NULL;
}

const BhInfoItem *bh_info_find(const BhInfo *info, const char *key)
{
    for (guint i = 0; i < info->items->len; i++) {
        const BhInfoItem *it = &g_array_index(info->items, BhInfoItem, i);
        if (g_str_equal(it->key, key))
            return it;
    }
    return NULL;
}

struct BhInfoList {
    GPtrArray *items;    /* BhInfo* */
};

BhInfoList *bh_info_list_new(void)
{
    BhInfoList *l = g_new0(BhInfoList, 1);
    l->items = g_ptr_array_new_with_free_func((GDestroyNotify)bh_info_free);
    return l;
}

void bh_info_list_free(BhInfoList *list)
{
    if (!list)
        return;
    g_ptr_array_unref(list->items);
    g_free(list);
}

void bh_info_list_append(BhInfoList *list, BhInfo *info)
{
    g_ptr_array_add(list->items, info);
}

size_t bh_info_list_count(const BhInfoList *list)
{
    return list->items->len;
}

const BhInfo *bh_info_list_get(const BhInfoList *list, size_t i)
{
    return i < list->items->len ? list->items->pdata[i] : NULL;
}
