/* SPDX-License-Identifier: BSD-3-Clause */
/* What the tests of tests/file share beyond tests/drivers/drv-test.h. */
#ifndef BH_TESTS_FILE_TEST_H
#define BH_TESTS_FILE_TEST_H

#include "../drivers/drv-test.h"

/* n TAP skips with one reason (a mode the kernel refuses, a missing
 * tool). */
static inline G_GNUC_PRINTF(2, 3) void skip(int n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    for (int i = 0; i < n; i++)
        printf("ok %d # SKIP %s\n", ++tap_count, why);
    fflush(stdout);
}

#endif
