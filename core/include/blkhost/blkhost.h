/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * blkhost: the one header a program using the library API includes.
 *
 * It is the plugin ABI (blkhost-plugin.h) plus the library API: the
 * loader, the main loop, streams, vmstate, savevm, partitions and
 * snapshots across nodes, and GLib conveniences (glib.h).  Build with
 * `pkg-config --cflags --libs blkhost`.  Plugins need only
 * blkhost-plugin.h.
 */
#ifndef BLKHOST_H
#define BLKHOST_H

#include <blkhost/blkhost-plugin.h>
#include <blkhost/version.h>
#include <blkhost/glib.h>
#include <blkhost/loader.h>
#include <blkhost/loop.h>
#include <blkhost/map.h>
#include <blkhost/stream.h>
#include <blkhost/vmstate.h>
#include <blkhost/savevm.h>
#include <blkhost/snapshot.h>
#include <blkhost/partition.h>

#endif
