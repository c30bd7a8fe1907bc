/*
 * blkhost: the one header a program or plugin includes.
 * Link with `pkg-config --cflags --libs blkhost-plugin`.
 */
#ifndef BLKHOST_H
#define BLKHOST_H

#include <blkhost/version.h>
#include <blkhost/glib.h>
#include <blkhost/error.h>
#include <blkhost/check.h>
#include <blkhost/opts.h>
#include <blkhost/info.h>
#include <blkhost/plugin.h>
#include <blkhost/node.h>
#include <blkhost/driver.h>
#include <blkhost/frontend.h>
#include <blkhost/loop.h>
#include <blkhost/stream.h>
#include <blkhost/vmstate.h>
#include <blkhost/savevm.h>
#include <blkhost/snapshot.h>
#include <blkhost/partition.h>

G_BEGIN_DECLS
/* Library version string, e.g. "0.1.0". */
const char *bh_version(void);
G_END_DECLS

#endif
