/* SPDX-License-Identifier: BSD-3-Clause */
/* Minimal TAP for C tests: plan(), ok(), is_int(), diag(), done(). */
#ifndef BH_TESTS_TAP_H
#define BH_TESTS_TAP_H
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_count, tap_fails;

static inline void plan(int n) { printf("1..%d\n", n); fflush(stdout); }
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}
static inline int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++tap_count);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (!cond)
        tap_fails++;
    return cond;
}
#define is_int(got, want, ...)                                              \
    do {                                                                    \
        int64_t g_ = (int64_t)(got), w_ = (int64_t)(want);                  \
        if (!ok(g_ == w_, __VA_ARGS__))                                     \
            diag("got %" PRId64 ", want %" PRId64, g_, w_);                 \
    } while (0)
static inline int done(void)
{
    return tap_fails ? 1 : 0;
}
#endif
