/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * JSON pieces of the savevm description trailer (vmdesc.h).
 */
#include "vmdesc.h"

void bh_vmdesc_sep(GString *d)
{
    if (d->len && d->str[d->len - 1] != '{' && d->str[d->len - 1] != '[')
        g_string_append(d, ", ");
}

void bh_vmdesc_key(GString *d, const char *key)
{
    bh_vmdesc_sep(d);
    bh_vmdesc_str(d, key);
    g_string_append(d, ": ");
}

void bh_vmdesc_str(GString *d, const char *s)
{
    g_string_append_c(d, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_printf(d, "\\%c", *p);
        else if (*p < 0x20)
            g_string_append_printf(d, "\\u%04x", *p);
        else
            g_string_append_c(d, (char)*p);
    }
    g_string_append_c(d, '"');
}
