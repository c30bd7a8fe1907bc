/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhOpts: ordered key=value lists with "used" marks, so that the core can
 * refuse the keys no layer took and name them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "blkhost/error.h"
#include "blkhost/glib.h"

typedef struct {
    char *key;
    char *value;
    bool used;
} Opt;

struct BhOpts {
    GArray *list; /* Opt */
};

static void opt_clear(gpointer p)
{
    Opt *o = p;
    g_free(o->key);
    g_free(o->value);
}

BhOpts *bh_opts_new(void)
{
    BhOpts *opts = g_new0(BhOpts, 1);
    opts->list = g_array_new(FALSE, TRUE, sizeof(Opt));
    g_array_set_clear_func(opts->list, opt_clear);
    return opts;
}

void bh_opts_free(BhOpts *opts)
{
    if (!opts)
        return;
    g_array_free(opts->list, TRUE);
    g_free(opts);
}

/* '_' and '-' are the same in keys, so Lua can say detect_zeroes. */
static char *opts_norm_key(const char *key)
{
    char *k = g_strdup(key);
    for (char *p = k; *p; p++)
        if (*p == '_')
            *p = '-';
    return k;
}

static bool opts_key_eq(const char *stored, const char *key)
{
    for (; *stored && *key; stored++, key++) {
        char a = *stored, b = *key == '_' ? '-' : *key;
        if (a != b)
            return false;
    }
    return *stored == *key;
}

BhOpts *bh_opts_copy(const BhOpts *src)
{
    BhOpts *opts = bh_opts_new();
    for (guint i = 0; src && i < src->list->len; i++) {
        const Opt *o = &g_array_index(src->list, Opt, i);
        Opt c = { g_strdup(o->key), g_strdup(o->value), o->used };
        g_array_append_val(opts->list, c);
    }
    return opts;
}

void bh_opts_remove(BhOpts *opts, const char *key)
{
    for (guint i = opts->list->len; i-- > 0;)
        if (opts_key_eq(g_array_index(opts->list, Opt, i).key, key))
            g_array_remove_index(opts->list, i);
}

void bh_opts_add(BhOpts *opts, const char *key, const char *value)
{
    Opt o = { opts_norm_key(key), g_strdup(value ? value : ""), false };
    g_array_append_val(opts->list, o);
}

void bh_opts_set(BhOpts *opts, const char *key, const char *value)
{
    bh_opts_remove(opts, key);
    bh_opts_add(opts, key, value);
}

bool bh_opts_has(const BhOpts *opts, const char *key)
{
    for (guint i = 0; opts && i < opts->list->len; i++)
        if (opts_key_eq(g_array_index(opts->list, Opt, i).key, key))
            return true;
    return false;
}

BhOpts *bh_opts_parse(const char *str, const char *implied_key, BhError **errp)
{
    g_autoptr(BhOpts) opts = bh_opts_new();
    const char *p = str;

    while (p && *p) {
        GString *item = g_string_new(NULL);
        /* ",," is a literal comma, a single ',' ends the item. */
        while (*p) {
            if (*p == ',') {
                if (p[1] == ',') {
                    g_string_append_c(item, ',');
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            g_string_append_c(item, *p++);
        }
        char *eq = strchr(item->str, '=');
        if (eq) {
            *eq = '\0';
            if (item->str[0] == '\0') {
                bh_error_set(errp, EINVAL, "option list '%s': empty key", str);
                g_string_free(item, TRUE);
                return NULL;
            }
            bh_opts_add(opts, item->str, eq + 1);
        } else if (implied_key && !bh_opts_has(opts, implied_key) &&
                   item->len > 0) {
            bh_opts_add(opts, implied_key, item->str);
        } else if (item->len > 0) {
            bh_error_set(errp, EINVAL,
                         "option list '%s': '%s' is not of the form key=value",
                         str, item->str);
            g_string_free(item, TRUE);
            return NULL;
        }
        g_string_free(item, TRUE);
    }
    return g_steal_pointer(&opts);
}

static Opt *opts_find_last(BhOpts *opts, const char *key)
{
    Opt *found = NULL;
    for (guint i = 0; opts && i < opts->list->len; i++) {
        Opt *o = &g_array_index(opts->list, Opt, i);
        if (opts_key_eq(o->key, key)) {
            o->used = true;
            found = o;
        }
    }
    return found;
}

const char *bh_opts_get(BhOpts *opts, const char *key)
{
    Opt *o = opts_find_last(opts, key);
    return o ? o->value : NULL;
}

char **bh_opts_get_all(BhOpts *opts, const char *key)
{
    GPtrArray *a = g_ptr_array_new();
    for (guint i = 0; opts && i < opts->list->len; i++) {
        Opt *o = &g_array_index(opts->list, Opt, i);
        if (opts_key_eq(o->key, key)) {
            o->used = true;
            g_ptr_array_add(a, g_strdup(o->value));
        }
    }
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

bool bh_opts_get_bool(BhOpts *opts, const char *key, bool def, bool *out,
                      BhError **errp)
{
    const char *v = bh_opts_get(opts, key);
    if (!v) {
        *out = def;
        return true;
    }
    static const char *const yes[] = { "on", "true", "yes", "1", NULL };
    static const char *const no[] = { "off", "false", "no", "0", NULL };
    for (int i = 0; yes[i]; i++) {
        if (g_ascii_strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (g_ascii_strcasecmp(v, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    bh_error_set(errp, EINVAL,
                 "option '%s': '%s' is not a boolean (expected on/off, "
                 "true/false, yes/no or 1/0)", key, v);
    return false;
}

/* The digits after a size's decimal point, scaled by 2^shift and rounded
 * half up, as qemu-img reads "1.5G".  Digits past the 18th cannot change a
 * byte count and are ignored; 18 digits times 2^60 fits in 128 bits. */
static uint64_t parse_fraction(const char *digits, size_t n, int shift)
{
    unsigned __int128 num = 0, den = 1;
    for (size_t i = 0; i < n && i < 18; i++) {
        num = num * 10 + (unsigned)(digits[i] - '0');
        den *= 10;
    }
    return (uint64_t)(((num << shift) + den / 2) / den);
}

/* Decimal, or hex with 0x; sizes take a K/M/G/T/P/E suffix (powers of
 * 1024, also as "KiB" or "KB"), and before it a decimal fraction ("1.5G")
 * that, without a unit to scale it, is refused as qemu-img refuses it.
 * Never octal: "010" is ten, as qemu-img reads it. */
static bool parse_unsigned(const char *str, bool suffixes, uint64_t *out,
                           const char **why)
{
    const char *p = str;
    while (g_ascii_isspace(*p))
        p++;
    if (*p == '-') {
        *why = "is negative";
        return false;
    }
    if (!g_ascii_isdigit(*p)) {
        *why = "is not a number";
        return false;
    }
    bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    char *end;
    errno = 0;
    uint64_t v = g_ascii_strtoull(p, &end, hex ? 16 : 10);
    if (errno == ERANGE) {
        *why = "is too large";
        return false;
    }
    const char *frac = NULL;
    size_t nfrac = 0;
    if (suffixes && !hex && *end == '.') {
        frac = ++end;
        while (g_ascii_isdigit(*end))
            end++;
        nfrac = (size_t)(end - frac);
    }
    int shift = 0;
    if (suffixes && *end) {
        shift = -1;
        switch (g_ascii_toupper(*end)) {
        case 'B': shift = 0; break;
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        case 'P': shift = 50; break;
        case 'E': shift = 60; break;
        }
        if (shift < 0) {
            *why = "has an unknown suffix";
            return false;
        }
        end++;
        /* accept "K", "KB", "KiB" */
        if (shift > 0 && (*end == 'i' || *end == 'I'))
            end++;
        if (shift > 0 && (*end == 'b' || *end == 'B'))
            end++;
        if (shift && v > (UINT64_MAX >> shift)) {
            *why = "is too large";
            return false;
        }
        v <<= shift;
    }
    if (*end) {
        *why = "is not a number";
        return false;
    }
    if (frac) {
        if (!shift) {
            *why = "has a fraction but no unit (K, M, G, T, P, E) to scale it";
            return false;
        }
        uint64_t f = parse_fraction(frac, nfrac, shift);
        if (v + f < v) {
            *why = "is too large";
            return false;
        }
        v += f;
    }
    *out = v;
    return true;
}

bool bh_parse_size(const char *str, uint64_t *out, BhError **errp)
{
    const char *why = NULL;
    if (!parse_unsigned(str, true, out, &why)) {
        bh_error_set(errp, EINVAL, "'%s' %s (expected a size such as 4096, "
                     "64K, 1G or 1.5G; suffixes K, M, G, T, P, E)", str, why);
        return false;
    }
    return true;
}

bool bh_opts_get_size(BhOpts *opts, const char *key, uint64_t def,
                      uint64_t *out, BhError **errp)
{
    const char *v = bh_opts_get(opts, key);
    const char *why = NULL;
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_unsigned(v, true, out, &why)) {
        bh_error_set(errp, EINVAL, "option '%s': '%s' %s (expected a size "
                     "such as 4096, 64K, 1G or 1.5G; suffixes K, M, G, T, P, E)",
                     key, v, why);
        return false;
    }
    return true;
}

bool bh_opts_get_uint(BhOpts *opts, const char *key, uint64_t def,
                      uint64_t max, uint64_t *out, BhError **errp)
{
    const char *v = bh_opts_get(opts, key);
    const char *why = NULL;
    if (!v) {
        *out = def;
        return true;
    }
    if (!parse_unsigned(v, false, out, &why)) {
        bh_error_set(errp, EINVAL, "option '%s': '%s' %s", key, v, why);
        return false;
    }
    if (*out > max) {
        bh_error_set(errp, EINVAL, "option '%s': %s is larger than %" PRIu64,
                     key, v, max);
        return false;
    }
    return true;
}

bool bh_opts_get_enum(BhOpts *opts, const char *key,
                      const char *const *names, int def, int *out,
                      BhError **errp)
{
    const char *v = bh_opts_get(opts, key);
    if (!v) {
        *out = def;
        return true;
    }
    for (int i = 0; names[i]; i++) {
        if (g_str_equal(v, names[i])) {
            *out = i;
            return true;
        }
    }
    g_autofree char *list = g_strjoinv(", ", (char **)names);
    bh_error_set(errp, EINVAL, "option '%s': invalid value '%s' (expected "
                 "one of: %s)", key, v, list);
    return false;
}

BhOpts *bh_opts_take_prefix(BhOpts *opts, const char *prefix)
{
    BhOpts *out = bh_opts_new();
    size_t n = strlen(prefix);
    for (guint i = 0; i < opts->list->len;) {
        Opt *o = &g_array_index(opts->list, Opt, i);
        if (strncmp(o->key, prefix, n) == 0) {
            bh_opts_add(out, o->key + n, o->value);
            g_array_remove_index(opts->list, i);
        } else {
            i++;
        }
    }
    return out;
}

bool bh_opts_check_used(const BhOpts *opts, const char *who, BhError **errp)
{
    for (guint i = 0; opts && i < opts->list->len; i++) {
        const Opt *o = &g_array_index(opts->list, Opt, i);
        if (!o->used) {
            bh_error_set(errp, EINVAL, "unknown option '%s' for %s",
                         o->key, who);
            return false;
        }
    }
    return true;
}

size_t bh_opts_count(const BhOpts *opts)
{
    return opts ? opts->list->len : 0;
}

const char *bh_opts_key(const BhOpts *opts, size_t i)
{
    return g_array_index(opts->list, Opt, i).key;
}

const char *bh_opts_value(const BhOpts *opts, size_t i)
{
    return g_array_index(opts->list, Opt, i).value;
}

void bh_strv_free(char **strv)
{
    g_strfreev(strv);
}
