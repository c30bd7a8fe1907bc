/*
 * Image consistency checks, as `qemu-img check` runs them: what a format
 * driver's check callback reports and may repair.
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef BLKHOST_CHECK_H
#define BLKHOST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blkhost/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What to repair (qemu-img check -r leaks / -r all). */
#define BH_CHECK_FIX_LEAKS  (1u << 0)
#define BH_CHECK_FIX_ERRORS (1u << 1)

typedef struct BhCheckResult {
    uint32_t struct_size;  /* set by bh_check_result_init */
    /* Found (before any repair) and repaired. */
    uint64_t corruptions, leaks, check_errors;
    uint64_t corruptions_fixed, leaks_fixed;
    /* One past the last byte in use; 0 when unknown. */
    uint64_t image_end_offset;
    /* Cluster statistics of the active image (has_clusters when set). */
    bool has_clusters;
    uint64_t total_clusters, allocated_clusters;
    uint64_t fragmented_clusters, compressed_clusters;
    /* One line (char *) per problem found, in the order found, worded as
     * QEMU words them: "Leaked cluster 9 refcount=1 reference=0". */
    void *messages;  /* the core's: read with bh_check_result_message() */
} BhCheckResult;

void bh_check_result_init(BhCheckResult *res);
void bh_check_result_clear(BhCheckResult *res);
size_t bh_check_result_message_count(const BhCheckResult *res);
const char *bh_check_result_message(const BhCheckResult *res, size_t i);
/* Add one line to res->messages. */
void bh_check_result_say(BhCheckResult *res, const char *fmt, ...)
    BH_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif

#endif
