/* SPDX-License-Identifier: BSD-3-Clause */
/* For the core's C tests: a node from an option string, or bail out. */
#ifndef BH_TESTS_CORE_OPEN_SPEC_H
#define BH_TESTS_CORE_OPEN_SPEC_H
#include <stdio.h>
#include <stdlib.h>

#include <blkhost/blkhost.h>

static inline BhNode *open_spec(const char *spec)
{
    g_autoptr(BhOpts) o = bh_opts_parse(spec, NULL, NULL);
    BhError *err = NULL;
    BhNode *bs = bh_node_open(NULL, o, &err);
    if (!bs) {
        printf("Bail out! cannot open %s: %s\n", spec, bh_error_message(err));
        exit(1);
    }
    return bs;
}
#endif
