/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* For the core's C tests: a node from an option string, or bail out. */
#ifndef BH_TESTS_CORE_OPEN_SPEC_H
#define BH_TESTS_CORE_OPEN_SPEC_H
#include <stdio.h>
#include <stdlib.h>

#include <blkhost/blkhost.h>

static inline BhNode *open_spec(const char *spec)
{
    g_autoptr(BhOpts) o = bh_opts_parse(spec, NULL, NULL);
    GError *err = NULL;
    BhNode *bs = bh_node_open(NULL, o, &err);
    if (!bs) {
        printf("Bail out! cannot open %s: %s\n", spec, err->message);
        exit(1);
    }
    return bs;
}
#endif
