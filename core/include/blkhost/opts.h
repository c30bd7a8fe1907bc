/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Option lists: ordered key=value strings with "used" tracking.
 *
 * Lua tables, command lines and "k=v,k2=v2" strings all become a BhOpts.
 * The core and each driver take the keys they understand with the getters
 * below, which mark them used; after open the core refuses any key nobody
 * took, naming it.  '_' and '-' in keys are the same ("detect_zeroes" ==
 * "detect-zeroes").  A key may repeat (bh_opts_add); bh_opts_get returns the
 * last value, bh_opts_get_all every value.
 */
#ifndef BLKHOST_OPTS_H
#define BLKHOST_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <blkhost/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct BhOpts BhOpts;

BhOpts *bh_opts_new(void);
void bh_opts_free(BhOpts *opts);
BhOpts *bh_opts_copy(const BhOpts *opts);

/* Replace every value of key with value. */
void bh_opts_set(BhOpts *opts, const char *key, const char *value);
/* Append one more value for key. */
void bh_opts_add(BhOpts *opts, const char *key, const char *value);
void bh_opts_remove(BhOpts *opts, const char *key);
bool bh_opts_has(const BhOpts *opts, const char *key);

/* Parse "key=value,key2=value2" (",," is a literal comma).  A bare word
 * with no '=' is stored under implied_key if that is not NULL. */
BhOpts *bh_opts_parse(const char *str, const char *implied_key, BhError **errp);

/* Getters mark the key used.  They return false with *errp set only when
 * the value is present and malformed; absent keys give the default. */
const char *bh_opts_get(BhOpts *opts, const char *key);
char **bh_opts_get_all(BhOpts *opts, const char *key); /* bh_strv_free */
/* Free a NULL-terminated array of strings the core returned. */
void bh_strv_free(char **strv);
bool bh_opts_get_bool(BhOpts *opts, const char *key, bool def, bool *out,
                      BhError **errp);
/* Non-negative integer with optional K/M/G/T/P/E suffix (powers of 1024);
 * with a suffix it may have a decimal fraction ("1.5G"). */
bool bh_opts_get_size(BhOpts *opts, const char *key, uint64_t def,
                      uint64_t *out, BhError **errp);
/* Plain non-negative integer, decimal or 0x hex, at most max. */
bool bh_opts_get_uint(BhOpts *opts, const char *key, uint64_t def,
                      uint64_t max, uint64_t *out, BhError **errp);
/* One of names[] (NULL terminated); *out is its index. */
bool bh_opts_get_enum(BhOpts *opts, const char *key,
                      const char *const *names, int def, int *out,
                      BhError **errp);

/* Move every key starting with prefix into a new list, without the prefix
 * ("file.locking" -> "locking"). */
BhOpts *bh_opts_take_prefix(BhOpts *opts, const char *prefix);

/* Refuse keys nobody used: "unknown option 'foo' for driver raw". */
bool bh_opts_check_used(const BhOpts *opts, const char *who, BhError **errp);

/* Iteration, for bindings that print or convert lists. */
size_t bh_opts_count(const BhOpts *opts);
const char *bh_opts_key(const BhOpts *opts, size_t i);
const char *bh_opts_value(const BhOpts *opts, size_t i);

/* Parse a size string alone ("64M", "4096"); same rules as get_size. */
bool bh_parse_size(const char *str, uint64_t *out, BhError **errp);

#ifdef __cplusplus
}
#endif

#endif
