/*
 * What the core's files share and no plugin sees: the BhNode struct and a
 * few loader helpers.
 */
#ifndef BLKHOST_CORE_PRIV_H
#define BLKHOST_CORE_PRIV_H

#include "blkhost/blkhost-plugin.h"
#include "blkhost/glib.h"
#include "blkhost/loader.h"
#include "blkhost/loop.h"
#include "blkhost/snapshot.h"
#include "blkhost/version.h"

typedef struct {
    char *role;
    BhNode *node;
} BhChild;

struct BhNode {
    gint refcnt;
    const BhPluginRecord *plugin;
    const BhDriver *drv;
    void *opaque;
    char *filename;
    uint32_t open_flags;      /* BH_OPEN_* as given to the driver */
    bool readonly;
    bool growable;            /* under a format: may be written past its end */
    bool serialize;           /* driver asked for BH_THREAD_SERIALIZE */
    bool opened;              /* drv->open succeeded: close is due */
    BhCacheMode cache;
    BhDiscardMode discard;
    BhDetectZeroes detect_zeroes;
    bool locking;
    uint32_t caps;            /* BH_CAP_* */
    uint32_t bl_min, bl_pref, bl_max;
    gint64 size;              /* cached virtual size (non-growable) */
    GMutex serial_lock;
    GPtrArray *children;      /* BhChild* */
    /* The format this file was probed as when none was named (raw):
     * writes into its first BH_PROBE_BYTES must keep it probing so, and
     * run one at a time under probe_lock (probe.c). */
    const BhPluginRecord *probe_guard;
    GMutex probe_lock;
};

/* What a driver's snapshot_list appends to (snapshot-info.h). */
struct BhSnapshotList {
    GPtrArray *items;          /* BhSnapshotInfo* */
};

bool bh_running_uninstalled(void);
char *bh_plugin_names(BhPluginKind kind);

/* ---- probe.c ---- */
/* How much of a file probing looks at: QEMU's 512, one sector. */
#define BH_PROBE_BYTES 512

/* The driver most confident that buf is its format, or NULL. */
const BhPluginRecord *bh_probe_buffer(const uint8_t *buf, size_t len,
                                      const char *filename);
/* The protocol driver whose uri_schemes claim filename's "SCHEME://"
 * prefix, or NULL (then the file driver opens it). */
const BhPluginRecord *bh_probe_protocol(const char *filename);
/* The format of the data at the start of file; raw when nobody claims it. */
const BhPluginRecord *bh_probe_node(BhNode *file, const char *filename,
                                    BhError **errp);
/* Guard file's head so it keeps probing as probed; warn if writable. */
void bh_probe_guard(BhNode *file, const BhPluginRecord *probed,
                    bool writable);
/* With file->probe_lock held: -EPERM unless writing len bytes of data
 * (NULL: zeros) at offset (< BH_PROBE_BYTES) leaves a head that probes
 * as before.  head gets that head, for the caller to write from. */
int bh_probe_guard_check(BhNode *file, const char *what, uint64_t offset,
                         uint64_t len, const void *data,
                         uint8_t head[BH_PROBE_BYTES], BhError **errp);

/* Flush every child (used when a driver has no flush callback). */
int bh_node_flush_children(BhNode *bs, BhError **errp);

#endif
