/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * blkhost-plugin: the one header a driver or frontend plugin includes.
 *
 * The plugin ABI needs only libc: no GLib type crosses it.  Build with
 *     cc -shared -fPIC $(pkg-config --cflags --libs blkhost-plugin)
 * Programs that use the library API (streams, vmstate, savevm,
 * partitions, snapshots across nodes, the loader) include blkhost.h and
 * use the blkhost pkg-config module instead.
 */
#ifndef BLKHOST_PLUGIN_ALL_H
#define BLKHOST_PLUGIN_ALL_H

#include <blkhost/error.h>
#include <blkhost/opts.h>
#include <blkhost/info.h>
#include <blkhost/check.h>
#include <blkhost/snapshot-info.h>
#include <blkhost/request.h>
#include <blkhost/node.h>
#include <blkhost/driver.h>
#include <blkhost/frontend.h>
#include <blkhost/plugin.h>

#endif
