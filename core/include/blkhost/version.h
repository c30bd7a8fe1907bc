/* SPDX-License-Identifier: BSD-3-Clause */
/* The version of the headers a plugin was built with.  meson.build checks
 * that BLKHOST_VERSION equals the project version. */
#ifndef BLKHOST_VERSION_H
#define BLKHOST_VERSION_H
#define BLKHOST_VERSION "0.1.0"
#define BLKHOST_VERSION_MAJOR 0
#define BLKHOST_VERSION_MINOR 1
#define BLKHOST_VERSION_MICRO 0

#ifdef __cplusplus
extern "C" {
#endif
/* Library version string, e.g. "0.1.0". */
const char *bh_version(void);
#ifdef __cplusplus
}
#endif
#endif
