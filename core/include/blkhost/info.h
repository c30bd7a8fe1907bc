/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhInfo: an ordered list of typed key/value facts about a node or a
 * frontend ("format"="qcow2", "cluster-size"=65536, ...).  Drivers and
 * frontends fill it in their info/status callbacks; the CLI prints it as
 * text or JSON and Lua gets a table.
 */
#ifndef BLKHOST_INFO_H
#define BLKHOST_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BH_INFO_STR = 0,
    BH_INFO_INT = 1,
    BH_INFO_BOOL = 2,
} BhInfoType;

/* Items are the core's (bh_info_item, bh_info_find): struct_size is the
 * core's size, so a reader built against a newer header can tell which
 * fields exist. */
typedef struct BhInfoItem {
    uint32_t struct_size;
    char *key;
    BhInfoType type;
    char *s;
    int64_t i;
    bool b;
} BhInfoItem;

typedef struct BhInfo BhInfo;

BhInfo *bh_info_new(void);
void bh_info_free(BhInfo *info);

/* Adding a key that exists replaces its value in place. */
void bh_info_add_str(BhInfo *info, const char *key, const char *value);
void bh_info_add_int(BhInfo *info, const char *key, int64_t value);
void bh_info_add_bool(BhInfo *info, const char *key, bool value);

/* An ordered list of BhInfo records: what a frontend's control command
 * answers with (frontend.h). */
typedef struct BhInfoList BhInfoList;
BhInfoList *bh_info_list_new(void);
void bh_info_list_free(BhInfoList *list);
/* Append info; the list owns it from now on. */
void bh_info_list_append(BhInfoList *list, BhInfo *info);
size_t bh_info_list_count(const BhInfoList *list);
const BhInfo *bh_info_list_get(const BhInfoList *list, size_t i);

size_t bh_info_count(const BhInfo *info);
const BhInfoItem *bh_info_item(const BhInfo *info, size_t i);
const BhInfoItem *bh_info_find(const BhInfo *info, const char *key);

#ifdef __cplusplus
}
#endif

#endif
