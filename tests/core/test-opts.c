/* SPDX-License-Identifier: BSD-3-Clause */
/* Option parsing: sizes, booleans, enums, lists and the unused-key check. */
#include <string.h>

#include <blkhost/blkhost.h>

#include "tap.h"

static void size_case(const char *str, bool want_ok, uint64_t want,
                      const char *msg_part)
{
    uint64_t v = 0;
    BhError *err = NULL;
    bool r = bh_parse_size(str, &v, &err);
    if (want_ok)
        ok(r && v == want, "size '%s' parses to %llu", str,
           (unsigned long long)want);
    else
        ok(!r && err && strstr(bh_error_message(err), msg_part),
           "size '%s' refused: %s", str, err ? bh_error_message(err) : "(no error)");
    bh_error_clear(&err);
}

int main(void)
{
    plan(33);
    size_case("4096", true, 4096, NULL);
    size_case("64K", true, 65536, NULL);
    size_case("1G", true, 1ull << 30, NULL);
    size_case("2MiB", true, 2ull << 20, NULL);
    size_case("0x1000", true, 4096, NULL);
    size_case("abc", false, 0, "not a number");
    size_case("-1", false, 0, "negative");
    size_case("12Q", false, 0, "unknown suffix");
    size_case("16E", false, 0, "too large");
    size_case("", false, 0, "not a number");
    /* Fractions scaled by the unit and rounded half up, as qemu-img's
     * "qemu-img create f 1.7M" gives 1782579 bytes. */
    size_case("1.5G", true, 3ull << 29, NULL);
    size_case("1.7M", true, 1782579, NULL);
    size_case("1.K", true, 1024, NULL);
    size_case("0.0005K", true, 1, NULL);
    size_case("1.5", false, 0, "fraction but no unit");
    size_case("1.5B", false, 0, "fraction but no unit");
    size_case("010", true, 10, NULL);

    BhError *err = NULL;
    g_autoptr(BhOpts) o = bh_opts_parse("format=raw,offset=4k,desc=a,,b",
                                        NULL, &err);
    ok(o != NULL, "parse 'format=raw,offset=4k,desc=a,,b'");
    ok(o && g_str_equal(bh_opts_get(o, "desc"), "a,b"),
       "',,' is a literal comma");
    uint64_t off = 0;
    ok(bh_opts_get_size(o, "offset", 0, &off, NULL) && off == 4096,
       "offset=4k is 4096");
    ok(!bh_opts_check_used(o, "test", &err) && err &&
       strstr(bh_error_message(err), "unknown option 'format' for test"),
       "unused key is named: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);

    g_autoptr(BhOpts) bad = bh_opts_parse("a=1,noequals", NULL, &err);
    ok(!bad && err && strstr(bh_error_message(err), "noequals"),
       "item without '=' refused: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    g_autoptr(BhOpts) implied = bh_opts_parse("snap1,x=2", "name", &err);
    ok(implied && g_str_equal(bh_opts_get(implied, "name"), "snap1"),
       "bare word goes to the implied key");

    g_autoptr(BhOpts) b = bh_opts_new();
    bool bv = false;
    bh_opts_set(b, "readonly", "yes");
    ok(bh_opts_get_bool(b, "readonly", false, &bv, NULL) && bv,
       "bool 'yes' is true");
    bh_opts_set(b, "readonly", "maybe");
    ok(!bh_opts_get_bool(b, "readonly", false, &bv, &err) && err &&
       strstr(bh_error_message(err), "not a boolean"), "bool 'maybe' refused: %s",
       err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bh_opts_set(b, "detect_zeroes", "on");
    ok(bh_opts_has(b, "detect-zeroes"), "'_' and '-' are the same in keys");

    static const char *const modes[] = { "a", "bb", NULL };
    int m = -1;
    bh_opts_set(b, "mode", "bb");
    ok(bh_opts_get_enum(b, "mode", modes, 0, &m, NULL) && m == 1,
       "enum value found");
    bh_opts_set(b, "mode", "c");
    ok(!bh_opts_get_enum(b, "mode", modes, 0, &m, &err) && err &&
       strstr(bh_error_message(err), "expected one of: a, bb"),
       "bad enum lists choices: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);

    uint64_t u;
    bh_opts_set(b, "n", "300");
    ok(!bh_opts_get_uint(b, "n", 0, 255, &u, &err) && err,
       "uint above its maximum refused: %s", err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    bh_opts_set(b, "n", "1k");
    ok(!bh_opts_get_uint(b, "n", 0, 4096, &u, &err),
       "uint with a suffix refused");
    bh_error_clear(&err);

    g_autoptr(BhOpts) l = bh_opts_new();
    bh_opts_add(l, "listen", "unix:/a");
    bh_opts_add(l, "listen", "tcp:127.0.0.1:1");
    g_auto(GStrv) all = bh_opts_get_all(l, "listen");
    ok(g_strv_length(all) == 2 && g_str_equal(all[1], "tcp:127.0.0.1:1"),
       "repeated keys keep every value in order");

    g_autoptr(BhOpts) p = bh_opts_parse("file.locking=off,format=raw", NULL,
                                        NULL);
    g_autoptr(BhOpts) child = bh_opts_take_prefix(p, "file.");
    ok(bh_opts_has(child, "locking") && !bh_opts_has(p, "file.locking"),
       "file.* keys move to the child list");
    ok(bh_opts_count(p) == 1, "the rest stays");
    return done();
}
