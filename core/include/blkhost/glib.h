/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * GLib conveniences for programs and in-tree code that use GLib: the
 * g_autoptr() cleanups of blkhost's types, and turning a GError from a
 * GLib call into a BhError.  Part of the library API; the plugin ABI
 * headers never include it, so a plugin needs no GLib.
 */
#ifndef BLKHOST_GLIB_H
#define BLKHOST_GLIB_H

#include <glib.h>

#include <blkhost/error.h>
#include <blkhost/info.h>
#include <blkhost/node.h>
#include <blkhost/opts.h>
#include <blkhost/snapshot-info.h>

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhError, bh_error_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhNode, bh_node_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhOpts, bh_opts_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhInfo, bh_info_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhSnapshotInfo, bh_snapshot_info_free)

/* Set *errp from gerr (its message; errnum as the errno, since GLib's
 * codes are not errno values), free gerr, return -errnum. */
int bh_error_take_gerror(BhError **errp, GError *gerr, int errnum);

G_END_DECLS

#endif
