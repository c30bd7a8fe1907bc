/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Private to the state library: the JSON "vmdesc" that QEMU appends to a
 * savevm stream after its EOF marker (QEMU_VM_VMDESCRIPTION, u8 0x06, then
 * a be32 length and the JSON text).  It describes every FULL section's
 * fields with their types and the byte sizes they took in this stream, so
 * tools such as QEMU's scripts/analyze-migration.py can walk the stream
 * without knowing the devices.  QEMU's loader skips it.
 *
 * Shape (QEMU's): {"page_size": N, "devices": [{"name": idstr,
 * "instance_id": N, "vmsd_name": ..., "version": N, "fields": [{"name":
 * ..., "index": i (array elements), "type": "uint32", "size": 4}, ...,
 * {"name": ..., "type": "struct", "struct": {"vmsd_name": ..., "version":
 * ..., "fields": [...]}, "size": N}], "subsections": [{"vmsd_name": ...,
 * "version": ..., "fields": [...]}]}, ...]}
 */
#ifndef BLKHOST_STATE_VMDESC_H
#define BLKHOST_STATE_VMDESC_H

#include <glib.h>

#include "blkhost/error.h"
#include <blkhost/vmstate.h>

/* Append ", " unless d is empty or ends an opening bracket or brace. */
void bh_vmdesc_sep(GString *d);
/* Append "key": (after a separator when needed). */
void bh_vmdesc_key(GString *d, const char *key);
/* Append a JSON string literal. */
void bh_vmdesc_str(GString *d, const char *s);

/* bh_vmstate_save at vmsd->version_id that also appends the body of the
 * description object (no braces): "vmsd_name": ..., "version": ...,
 * "fields": [...], "subsections": [...] (the latter only when one was
 * written).  desc may be NULL. */
int bh_vmstate_save_described(BhStream *s, const BhVmsd *vmsd, void *opaque,
                              GString *desc, BhError **errp);

#endif
