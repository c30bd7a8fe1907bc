/*
 * What the core's files share and no plugin sees: the BhNode struct and a
 * few loader helpers.
 */
#ifndef BLKHOST_CORE_PRIV_H
#define BLKHOST_CORE_PRIV_H

#include "blkhost/blkhost.h"

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
};

bool bh_running_uninstalled(void);
char *bh_plugin_names(BhPluginKind kind);

/* Flush every child (used when a driver has no flush callback). */
int bh_node_flush_children(BhNode *bs, GError **errp);

#endif
