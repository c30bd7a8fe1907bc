/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The savevm registry: which state goes into a snapshot, and the stream
 * that carries it.
 *
 * Plugins register C structs described by a BhVmsd (vmstate.h); the Lua
 * bindings register script state through BhSavevmHandlers callbacks.  Each
 * entry is named by an idstr (at most 255 bytes) and an instance id, like
 * QEMU's SaveStateEntry.  bh_savevm_write_state() writes every entry as
 * one section of QEMU's savevm stream; bh_savevm_read_state() reads such a
 * stream back, all or nothing.  The snapshot code (savevm/loadvm) points
 * these at a node's vmstate area through a callback BhStream.
 *
 * Stream layout (big-endian):
 *   u32 magic 0x5145564d "QEVM", u32 version 3, then sections:
 *   FULL (4): u8 4, u32 section id, u8 idstr length, idstr, u32 instance
 *             id, u32 version, the entry's state, u8 0x7e (footer), u32
 *             section id again;
 *   EOF  (0): u8 0;
 *   then QEMU's description trailer: u8 6, be32 length, JSON naming each
 *   section's fields and their sizes (the loader skips it).
 * START/PART/END (live migration) and QEMU's CONFIGURATION section are
 * not produced and refused on input (bh_savevm_scan lists them).  Entries absent from a stream keep
 * their state.
 *
 * The registry is thread-safe.  Callbacks run with the registry lock held
 * (a recursive lock: they may register, but must not unregister entries of
 * the stream being processed).
 */
#ifndef BLKHOST_SAVEVM_H
#define BLKHOST_SAVEVM_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include <blkhost/snapshot.h>
#include <blkhost/stream.h>
#include <blkhost/vmstate.h>

G_BEGIN_DECLS

#define BH_SAVEVM_MAGIC    0x5145564du   /* "QEVM" */
#define BH_SAVEVM_VERSION  3u
#define BH_SAVEVM_EOF      0x00
#define BH_SAVEVM_START    0x01
#define BH_SAVEVM_PART     0x02
#define BH_SAVEVM_END      0x03
#define BH_SAVEVM_FULL     0x04
#define BH_SAVEVM_SUBSECTION 0x05
#define BH_SAVEVM_VMDESCRIPTION 0x06  /* after EOF: be32 length, JSON */
#define BH_SAVEVM_CONFIGURATION 0x07
#define BH_SAVEVM_COMMAND  0x08
#define BH_SAVEVM_FOOTER   0x7e

/*
 * State kept outside C structs (Lua tables).  Loading is two-phase so a
 * stream that fails half-way changes nothing:
 *   save:    write the state (any bytes; the reader must consume exactly
 *            what save wrote).  0 or -errno.
 *   load:    parse a state written at version_id (never newer than the
 *            entry's version: that is refused before load is called) into
 *            a new pending object stored in *pending, without applying it.
 *            0 or -errno; on failure nothing is pending.
 *   commit:  apply a pending object and free it; cannot fail.  If NULL,
 *            load must apply the state itself (and loading is then not
 *            atomic for this entry).
 *   discard: free a pending object that will not be applied (a later
 *            section failed).  Optional.
 *   release: called with opaque when the entry is unregistered.  Optional.
 */
typedef struct BhSavevmHandlers {
    int (*save)(void *opaque, BhStream *s, BhError **errp);
    int (*load)(void *opaque, BhStream *s, int version_id, void **pending,
                BhError **errp);
    void (*commit)(void *opaque, void *pending);
    void (*discard)(void *opaque, void *pending);
    void (*release)(void *opaque);
} BhSavevmHandlers;

/*
 * For save handlers: name the bytes just written, so that the stream's
 * JSON description (the trailer after EOF that QEMU's
 * scripts/analyze-migration.py reads) shows the state's fields rather
 * than one opaque "data" buffer.  type is one of QEMU's names ("uint8" ..
 * "uint64", "int8" .. "int64", "bool", "buffer"); index >= 0 marks an
 * array element.  A subsection the handler writes (u8 5, name, be32
 * version, its fields) is announced by describe_subsection just before
 * its header; the fields described after it belong to it.  Both do
 * nothing outside a save handler of bh_savevm_write_state; if what was
 * described does not add up to the bytes the handler wrote, the
 * description falls back to the one buffer.
 */
void bh_savevm_describe_field(BhStream *s, const char *name, int index,
                              const char *type, uint64_t size);
void bh_savevm_describe_subsection(BhStream *s, const char *name,
                                   int version_id);

/* Register a C struct; vmsd->size must be set (loads go through a copy).
 * EEXIST if (idstr, instance_id) is taken, EINVAL for a bad idstr. */
int bh_savevm_register(const char *idstr, uint32_t instance_id,
                       const BhVmsd *vmsd, void *opaque, BhError **errp);

/* Register callbacks that save and load version version_id (>= 0). */
int bh_savevm_register_handlers(const char *idstr, uint32_t instance_id,
                                int version_id, const BhSavevmHandlers *h,
                                void *opaque, BhError **errp);

/* Remove an entry (calling its release handler); false if none. */
bool bh_savevm_unregister(const char *idstr, uint32_t instance_id);

/* Number of registered entries (0: a snapshot would hold no state). */
unsigned bh_savevm_count(void);

/* Write the header, one FULL section per entry (in registration order;
 * entries whose vmsd->needed() says false are left out, as QEMU does) and
 * EOF, then flush.  0 or -errno; on error the stream holds a partial state
 * that the caller must not keep. */
int bh_savevm_write_state(BhStream *s, BhError **errp);

/* Read a whole stream, then commit every section's state.  A wrong magic,
 * another version, an unknown section, a version out of an entry's range,
 * a truncated or malformed section or footer: an error naming it, and no
 * entry changed.  0 or -errno. */
int bh_savevm_read_state(BhStream *s, BhError **errp);

/* bh_savevm_read_state in two halves, for a caller that must do something
 * that can fail between reading the state and applying it (loadvm reverts
 * the disks in between).  load_begin reads and checks the whole stream
 * (the same errors as above) and sets *load to the pending state, or to
 * NULL on error with no entry changed.  load_finish commits it (commit
 * true) or drops it, and frees it; NULL is a no-op.  The registry stays
 * locked in between: call both from the same thread, and do not
 * unregister entries in between. */
typedef struct BhSavevmLoad BhSavevmLoad;
int bh_savevm_load_begin(BhStream *s, BhSavevmLoad **load, BhError **errp);
void bh_savevm_load_finish(BhSavevmLoad *load, bool commit);

/* ---- listing a stream's sections (savevm-scan.c) ---- */
/* One section of a stream: a FULL one, or an iterative one (START, then
 * PARTs, then END: QEMU's RAM and block migration) summed over its
 * records. */
typedef struct BhSavevmSection {
    uint32_t section_id;
    char idstr[256];
    uint32_t instance_id;
    uint32_t version_id;
    uint64_t offset;     /* of its (first) record's type byte */
    uint64_t size;       /* state bytes, record headers and footers excluded */
    unsigned records;    /* 1 for FULL; START + PARTs + END */
    bool iterative;      /* START/PART/END rather than FULL */
    bool ended;          /* FULL, or its END was seen */
} BhSavevmSection;

typedef struct BhSavevmScan {
    uint32_t version;        /* the stream's format version (3) */
    char *machine;           /* CONFIGURATION's machine type, or NULL */
    uint64_t page_size;      /* the RAM page size used to decode RAM */
    GArray *sections;        /* BhSavevmSection, by their first record */
    bool complete;           /* the EOF marker was reached */
    uint64_t eof_offset;     /* where, when complete */
    char *vmdesc;            /* the JSON trailer after EOF, or NULL */
    uint64_t vmdesc_offset;  /* of its 0x06 byte, when there is one */
    uint64_t stop_offset;    /* not complete: where decoding stopped */
    char *error;             /* not complete: why, naming the section */
    bool described;          /* FULL sizes came from BhSavevmSizeHints */
} BhSavevmScan;

/*
 * Walk a savevm stream without loading it (nothing registered is needed
 * or touched) and list its sections: blkhost's own streams and QEMU's
 * (CONFIGURATION, FULL, START/PART/END, COMMAND records, EOF and the JSON
 * trailer).  QEMU's "ram" section is decoded by its page flags
 * (page_size: its target page size, 0 for 4096 or what the stream's
 * configuration says); any other section's end is found by its footer
 * (0x7e and its section id, followed by a well-formed next record), which
 * QEMU writes after every section since 2.4.  Decoding stops at the first
 * record it cannot decode; the scan is then returned with complete false,
 * error saying which record and why, and the sections before it.  NULL
 * (with errp set) only when the header is not a savevm stream's. Free
 * with bh_savevm_scan_free.
 */
BhSavevmScan *bh_savevm_scan(BhStream *s, uint64_t page_size,
                             BhError **errp);

/* The size of a FULL section's state, known from elsewhere: QEMU's JSON
 * description trailer lists every FULL section in stream order with its
 * fields' sizes (the sum, plus 6 + the name length for each subsection
 * marker).  Streams of machine types before QEMU 2.4 (pc-i440fx-2.3) have
 * no section footers; with these sizes they can still be walked. */
typedef struct BhSavevmSizeHint {
    const char *idstr;
    uint32_t instance_id;
    uint64_t size;
} BhSavevmSizeHint;

/* bh_savevm_scan, where the i-th FULL section (i < n) takes its size from
 * hints[i] instead of its footer; a footer after it is still read.  A
 * hint naming another section than the one found, or a size that ends
 * neither at a footer nor before a well-formed record, stops the scan
 * with an error.  scan->described says hints were used. */
BhSavevmScan *bh_savevm_scan_sized(BhStream *s, uint64_t page_size,
                                   const BhSavevmSizeHint *hints, size_t n,
                                   BhError **errp);
void bh_savevm_scan_free(BhSavevmScan *scan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BhSavevmScan, bh_savevm_scan_free)

/* ---- across every open image (savevm-nodes.c) ---- */
/* Snapshot every writable node under name (NULL or "":
 * vm-%Y%m%d%H%M%S), replacing snapshots of that name; the registered
 * state (savevm.h) goes to the first node's vmstate area, none when
 * nothing is registered.  Refused, naming it, when a writable node cannot
 * snapshot; read-only nodes are left out.  All or nothing: the state is
 * collected before anything changes, the new snapshots are made on every
 * node before the old ones of that name are deleted (by id), so at any
 * moment either the old or the new one exists on every node (see
 * snapshot.c for the crash windows).  An error after the new snapshot
 * exists everywhere (an old one could not be deleted) says so. */
int bh_savevm(const char *name, BhError **errp);
/* The same over the n given nodes only (each must be writable and able to
 * snapshot; given == NULL means every open node, as bh_savevm).  tmpl,
 * if not NULL, supplies date_sec/date_nsec (used when date_sec != 0) and
 * vm_clock_nsec for every snapshot made. */
int bh_savevm_nodes(BhNode *const *given, size_t n, const char *name,
                    const BhSnapshotInfo *tmpl, BhError **errp);
/* Find the snapshot called name on every node (by name only; a node
 * without one, or with two, is refused with nothing changed), read and
 * check the state stored in the first node's (a bad stream is refused
 * with nothing changed), revert every node, and only then commit the
 * state; if a node fails to revert, the state is not committed (nodes
 * before it stay reverted: a revert cannot be undone).  *had_state (may
 * be NULL): false for a disk-only snapshot (no state was stored). */
int bh_loadvm(const char *name, bool *had_state, BhError **errp);
/* Delete every snapshot called name (by name only) on every node; the
 * lists are all read first.  ENOENT if no node has one. */
int bh_delvm(const char *name, BhError **errp);
/* Snapshots (of the first snapshot-capable node) that every capable node
 * has by the same name; BhSnapshotInfo*, NULL on error. */
GPtrArray *bh_snapshots_common(BhError **errp);

/* ---- the vmstate area as a stream (vmstate-area.c) ---- */
/* A BhStream over the node's vmstate area (reading stops at limit bytes). */
BhStream *bh_node_vmstate_stream(BhNode *bs, bool writable, uint64_t limit);

G_END_DECLS

#endif
