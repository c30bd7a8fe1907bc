/* SPDX-License-Identifier: BSD-3-Clause */
/* The library's version, for bindings and `blkhost --version`. */
#include "blkhost/version.h"

const char *bh_version(void)
{
    return BLKHOST_VERSION;
}
