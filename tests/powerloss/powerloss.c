/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Power-loss replay (docs/powerloss.md).  Each workload runs on a qcow2
 * image whose file is under the log-writes filter, so the log holds every
 * write, zero, discard, truncate and flush qcow2 sent, in order.  The
 * workload keeps a model of what the guest must read (a hash per 512-byte
 * sector after every operation) and notes the log's length whenever a
 * guest flush or a snapshot operation returned.
 *
 * The replayer then rebuilds, from the image as it was before the
 * workload, the states a power cut could leave (the CrashMonkey model):
 * everything up to a flush, plus any subset of the writes that followed
 * it, persisted in any order, up to the next flush.  For each state:
 *   - qemu-img check must not find corruption (exit 2) nor fail (exit 1);
 *     leaks (exit 3) are what an interrupted allocation may leave;
 *   - every sector reads what the guest last wrote before the last flush
 *     the state holds, or something a later operation wrote there;
 *   - the snapshot table lists only snapshots the workload created, all
 *     those whose creation was flushed (unless a later delete may have
 *     run), none whose deletion was flushed, and each listed snapshot
 *     reads exactly what the guest saw when it was taken.
 *
 * The check of every state is the qcow2 driver's own (bh_node_check, the
 * same checks as qemu-img's); qemu-img check itself runs on every Nth
 * state (POWERLOSS_QEMU_IMG_EVERY: 10, or 100 with --long) and on every
 * state the built-in check finds anything in, and the two must agree.
 *
 * The savevm workload snapshots two images at once (bh_savevm_nodes) with
 * VM state in the first; a listed snapshot's state must load and be the
 * state saved with that disk content.  The rotation workload runs
 * blkhost.policy's rotate (what examples/nightly-rotate.lua runs) night
 * after night; from every state, the next night's rotation must succeed
 * and leave the snapshots an uninterrupted run left.
 *
 * POWERLOSS_STATES sets how many states to aim for over all workloads
 * (default 1000; --long or POWERLOSS_LONG=1 means 100000).
 * POWERLOSS_SEED fixes the random choices (default 1), so a failure
 * replays.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <lauxlib.h>
#include <lua.h>

#include <blkhost/blkhost.h>
#include <blkhost/savevm.h>

#include "lua-config.h"
#include "tap.h"

lua_State *bh_lua_state_new(const char *dir);
void bh_lua_pushnode(lua_State *L, BhNode *bs);

#define SECTOR 512

/* ---- the log (format in drivers/log-writes/log-writes.c) ---- */
enum { LW_WRITE = 1, LW_ZERO, LW_DISCARD, LW_FLUSH, LW_TRUNCATE };

typedef struct Entry {
    uint32_t type;       /* LW_*, FUA bit masked off */
    uint64_t offset, len;
    const uint8_t *data; /* into the log buffer, writes only */
    uint64_t end;        /* log offset just past this entry */
} Entry;

static uint64_t le64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

static uint32_t le32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_LE(v);
}

static GArray *powerloss_parse_log(const uint8_t *buf, size_t size)
{
    GArray *entries = g_array_new(FALSE, TRUE, sizeof(Entry));
    if (size < 32 || memcmp(buf, "BHLOGWR1", 8) || le32_at(buf + 8) != 1) {
        diag("log: bad header");
        g_array_free(entries, TRUE);
        return NULL;
    }
    size_t pos = le32_at(buf + 12);
    uint64_t seq = 0;
    while (pos + 32 <= size) {
        Entry e = { 0 };
        if (le32_at(buf + pos) != 0x6c6f6745u || le64_at(buf + pos + 8) != seq) {
            diag("log: bad entry at %zu", pos);
            g_array_free(entries, TRUE);
            return NULL;
        }
        e.type = le32_at(buf + pos + 4) & 0xff;
        e.offset = le64_at(buf + pos + 16);
        e.len = le64_at(buf + pos + 24);
        pos += 32;
        if (e.type == LW_WRITE) {
            if (e.len > size - pos) {
                diag("log: truncated write at %zu", pos);
                g_array_free(entries, TRUE);
                return NULL;
            }
            e.data = buf + pos;
            pos += e.len;
        }
        e.end = pos;
        g_array_append_val(entries, e);
        seq++;
    }
    return entries;
}

/* ---- the workload's record ---- */
typedef struct Record {
    uint64_t start;      /* log length when the operation began */
    uint64_t end;        /* ... and when it returned */
    bool durable;        /* a flush: everything before is on disk */
    uint64_t *hashes;    /* the guest's sectors after it */
} Record;

typedef struct SnapEvent {
    char *name;
    bool create;         /* else delete */
    uint64_t start, end;
    uint64_t *hashes;    /* create: the guest when taken */
    uint32_t vm_seq;     /* create by savevm with VM state: its number */
} SnapEvent;

typedef struct Replay Replay;
typedef struct Workload Workload;
/* A workload's own check of a state: bs is the state opened read-only, p
 * and next as in replay_check_state.  false with *why set on a failure. */
typedef bool (*WorkloadCheckFn)(Replay *r, BhNode *bs, uint64_t p,
                                uint64_t next, char **why);

struct Workload {
    const char *title;
    char *dir, *image, *log;
    uint64_t size;           /* virtual size */
    size_t nsect;
    uint8_t *model;          /* the guest's bytes as it must read them */
    GArray *records;         /* Record */
    GArray *snaps;           /* SnapEvent */
    GHashTable *snap_models; /* name -> copy of model (for apply) */
    BhNode *bs;
    GRand *rand;
    uint64_t op_start;
    bool failed;
    WorkloadCheckFn check_state;
    GArray *runs;            /* rotation: RotateRun */
    uint64_t extra_checked;  /* states check_state looked at */
};

/* FNV-1a over 64-bit words, with a shift to mix the high bits down:
 * byte-wise FNV over every sector of every state was a third of the
 * quick mode's time (a 6 MiB image, 351 states). */
static uint64_t powerloss_hash(const uint8_t *p)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < SECTOR; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

static uint64_t *powerloss_hash_all(const uint8_t *buf, size_t nsect)
{
    uint64_t *h = g_new(uint64_t, nsect);
    for (size_t i = 0; i < nsect; i++)
        h[i] = powerloss_hash(buf + i * SECTOR);
    return h;
}

static uint64_t powerloss_log_len(Workload *w)
{
    GStatBuf st;
    return g_stat(w->log, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void wl_begin(Workload *w)
{
    w->op_start = powerloss_log_len(w);
}

static void wl_record(Workload *w, bool durable)
{
    Record r = { w->op_start, powerloss_log_len(w), durable,
                 powerloss_hash_all(w->model, w->nsect) };
    g_array_append_val(w->records, r);
}

static void wl_check(Workload *w, int ret, BhError *err, const char *what)
{
    if (ret < 0 && !w->failed) {
        diag("%s: %s failed: %s", w->title, what,
             err ? bh_error_message(err) : g_strerror(-ret));
        w->failed = true;
    }
    bh_error_clear(&err);
}

static void wl_write(Workload *w, uint64_t off, size_t len)
{
    BhError *err = NULL;
    g_autofree uint8_t *buf = g_malloc(len);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)g_rand_int(w->rand);
    wl_begin(w);
    wl_check(w, bh_node_pwrite(w->bs, buf, off, len, 0, &err), err, "write");
    memcpy(w->model + off, buf, len);
    wl_record(w, false);
}

static void wl_flush(Workload *w)
{
    BhError *err = NULL;
    wl_begin(w);
    wl_check(w, bh_node_flush(w->bs, &err), err, "flush");
    wl_record(w, true);
}

static void wl_snap(Workload *w, const char *name, bool create)
{
    BhError *err = NULL;
    wl_begin(w);
    if (create) {
        g_autoptr(BhSnapshotInfo) info = bh_snapshot_info_new();
        info->name = g_strdup(name);
        wl_check(w, bh_node_snapshot_create(w->bs, info, &err), err,
                 "snapshot create");
        g_hash_table_insert(w->snap_models, g_strdup(name),
                            g_memdup2(w->model, w->size));
    } else {
        wl_check(w, bh_node_snapshot_delete(w->bs, name, &err), err,
                 "snapshot delete");
    }
    SnapEvent e = { g_strdup(name), create, w->op_start,
                    powerloss_log_len(w),
                    create ? powerloss_hash_all(w->model, w->nsect) : NULL };
    g_array_append_val(w->snaps, e);
    wl_record(w, false);
}

static void wl_apply(Workload *w, const char *name)
{
    BhError *err = NULL;
    wl_begin(w);
    wl_check(w, bh_node_snapshot_apply(w->bs, name, &err), err,
             "snapshot apply");
    memcpy(w->model, g_hash_table_lookup(w->snap_models, name), w->size);
    wl_record(w, false);
}

/* ---- workloads ---- */
static void wl_allocating(Workload *w)
{
    /* Random writes of 1-16 KiB over 4 KiB clusters: most allocate, some
     * overwrite, some straddle clusters; a flush every few. */
    for (int i = 0; i < 96; i++) {
        uint64_t len = (uint64_t)g_rand_int_range(w->rand, 1, 33) * SECTOR;
        uint64_t off = (uint64_t)g_rand_int_range(w->rand, 0,
                            (gint32)((w->size - len) / SECTOR + 1)) * SECTOR;
        wl_write(w, off, len);
        if (i % 6 == 5)
            wl_flush(w);
    }
}

static void wl_snapshots(Workload *w)
{
    for (int i = 0; i < 6; i++)
        wl_write(w, (uint64_t)i * 20480, 6144);
    wl_flush(w);
    wl_snap(w, "one", true);
    wl_flush(w);
    for (int i = 0; i < 6; i++)
        wl_write(w, (uint64_t)i * 20480 + 2048, 4096);
    wl_snap(w, "two", true);
    wl_flush(w);
    wl_write(w, 0, 8192);
    wl_snap(w, "one", false);
    wl_flush(w);
    wl_apply(w, "two");
    wl_flush(w);
    wl_write(w, 4096, 4096);
    wl_snap(w, "three", true);
    wl_apply(w, "three");
    wl_write(w, 65536, 4096);
    wl_flush(w);
    wl_snap(w, "two", false);
    wl_flush(w);
}

static void wl_refcount_growth(Workload *w)
{
    /* 512-byte clusters with 32-bit refcounts: a refcount block covers
     * 128 clusters and one cluster of refcount table 8192 clusters
     * (4 MiB), so writing 5 MiB makes the refcount table grow (and
     * move). */
    for (uint64_t off = 0; off < 5 * 1024 * 1024; off += 64 * 1024) {
        wl_write(w, off, 64 * 1024);
        if ((off / (64 * 1024)) % 6 == 5)
            wl_flush(w);
    }
    wl_flush(w);
}

static void wl_backing(Workload *w)
{
    /* Partial-cluster writes over a backing file: each allocation copies
     * the rest of the cluster from the backing file. */
    for (int i = 0; i < 48; i++) {
        uint64_t off = (uint64_t)g_rand_int_range(w->rand, 0,
                            (gint32)(w->size / SECTOR - 8)) * SECTOR;
        wl_write(w, off, (uint64_t)g_rand_int_range(w->rand, 1, 9) * SECTOR);
        if (i % 4 == 3)
            wl_flush(w);
    }
}

/* ---- amend (drivers/qcow2/amend.c): refcount width changes ---- */
static void wl_amend(Workload *w, const char *opts)
{
    BhError *err = NULL;
    g_autoptr(BhOpts) o = bh_opts_parse(opts, NULL, NULL);
    wl_begin(w);
    wl_check(w, bh_node_amend(w->bs, o, 0, NULL, NULL, &err), err, opts);
    wl_record(w, false);
}

static void wl_refcount_width(Workload *w)
{
    /* The refcount structure rewritten in another width (new blocks and
     * table, flushed, then one header write) between allocating writes
     * and zero writes, and the image downgraded (zero clusters expanded)
     * and upgraded again at the end. */
    static const char *const widths[] = {
        "refcount_bits=1", "refcount_bits=64", "refcount_bits=8",
        "refcount_bits=16", "compat=0.10", "compat=1.1,refcount_bits=2",
    };
    for (size_t k = 0; k < G_N_ELEMENTS(widths); k++) {
        for (int i = 0; i < 8; i++) {
            uint64_t off = (uint64_t)g_rand_int_range(w->rand, 0,
                               (gint32)(w->size / 4096)) * 4096;
            BhError *err = NULL;
            if (i != 7) {
                wl_write(w, off, 4096);
                continue;
            }
            /* A zero cluster, for the downgrade to expand. */
            wl_begin(w);
            wl_check(w, bh_node_write_zeroes(w->bs, off, 4096, 0, &err),
                     err, "write zeroes");
            memset(w->model + off, 0, 4096);
            wl_record(w, false);
        }
        wl_flush(w);
        wl_amend(w, widths[k]);
    }
    wl_flush(w);
}

/* ---- replay ---- */
struct Replay {
    Workload *w;
    GArray *entries;
    uint8_t *img;        /* the file as of the current flush point */
    size_t img_len;
    int fd;              /* the state file */
    char *state;
    uint64_t checked, data_bad, snap_bad;
    /* Exit codes: qemu-img check's where it ran, and the built-in
     * check's in the same terms (0 clean, 1 failed, 2 corrupt, 3 leaks). */
    uint64_t check_exit[4], builtin_exit[4], qemu_runs, disagree;
    int reported;
};

/* qemu-img check runs on every Nth state (and where the built-in check
 * finds anything). */
static uint64_t powerloss_qemu_every = 10;

static void replay_apply(uint8_t **img, size_t *len, const Entry *e)
{
    uint64_t end = e->offset + e->len;
    switch (e->type) {
    case LW_TRUNCATE:
        if (e->offset > *len)
            *img = g_realloc(*img, e->offset);
        if (e->offset > *len)
            memset(*img + *len, 0, e->offset - *len);
        *len = e->offset;
        return;
    case LW_WRITE: case LW_ZERO: case LW_DISCARD:
        if (end > *len) {
            *img = g_realloc(*img, end);
            memset(*img + *len, 0, end - *len);
            *len = end;
        }
        if (e->type == LW_WRITE)
            memcpy(*img + e->offset, e->data, e->len);
        else
            memset(*img + e->offset, 0, e->len);
        return;
    }
}

static bool replay_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(fd, buf, len, (off_t)off);
        if (n <= 0)
            return false;
        buf = (const uint8_t *)buf + n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return true;
}

/* Apply e to the state file (zeros for zeroes and discards: the file
 * driver punches holes). */
static void replay_apply_file(int fd, const Entry *e)
{
    static const uint8_t zeros[65536];
    if (e->type == LW_TRUNCATE) {
        if (ftruncate(fd, (off_t)e->offset) < 0)
            diag("ftruncate: %s", g_strerror(errno));
    } else if (e->type == LW_WRITE) {
        replay_pwrite(fd, e->data, e->len, e->offset);
    } else if (e->type == LW_ZERO || e->type == LW_DISCARD) {
        for (uint64_t o = 0; o < e->len; o += sizeof(zeros))
            replay_pwrite(fd, zeros, MIN(sizeof(zeros), e->len - o),
                          e->offset + o);
    }
}

/* Put the state file back to img after entries were applied to it. */
static void replay_restore(Replay *r, const Entry *const *applied, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const Entry *e = applied[i];
        uint64_t from = e->offset, to = e->offset + e->len;
        if (e->type == LW_TRUNCATE)
            to = r->img_len;
        if (from < r->img_len)
            replay_pwrite(r->fd, r->img + from, MIN(to, r->img_len) - from,
                          from);
    }
    if (ftruncate(r->fd, (off_t)r->img_len) < 0)
        diag("ftruncate: %s", g_strerror(errno));
}

static int replay_qemu_img_check(Replay *r, char **out)
{
    const char *argv[] = { "qemu-img", "check", "-f", "qcow2", "-U",
                           r->state, NULL };
    int status = 0;
    g_autoptr(GError) err = NULL;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                      NULL, out, NULL, &status, &err)) {
        diag("qemu-img: %s", err->message);
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* The qcow2 driver's own check of the state (bs may be NULL: it did not
 * open), in qemu-img check's exit codes: 0 clean, 1 the check failed, 2
 * corruption, 3 leaks only.  Sets *why for 1 and 2. */
static int replay_builtin_check(BhNode *bs, char **why)
{
    if (!bs)
        return 1;
    BhCheckResult res;
    g_autoptr(BhError) err = NULL;
    bh_check_result_init(&res);
    int code = 0;
    if (bh_node_check(bs, 0, &res, &err) < 0 || res.check_errors) {
        code = 1;
        *why = g_strdup_printf("the built-in check failed: %s",
                               err ? bh_error_message(err) : "check errors");
    } else if (res.corruptions) {
        code = 2;
        *why = g_strdup_printf("the built-in check finds %" PRIu64
                               " corruption(s): %s", res.corruptions,
                               bh_check_result_message(&res, 0) ?
                               bh_check_result_message(&res, 0) : "");
    } else if (res.leaks) {
        code = 3;
    }
    bh_check_result_clear(&res);
    return code;
}

/* Does every sector read something the guest may see here? */
static bool replay_check_data(Replay *r, BhNode *bs, size_t g, size_t last,
                              char **why)
{
    Workload *w = r->w;
    g_autofree uint8_t *buf = g_malloc(w->size);
    g_autoptr(BhError) err = NULL;
    if (bh_node_pread(bs, buf, 0, w->size, 0, &err) < 0) {
        *why = g_strdup_printf("read failed: %s", bh_error_message(err));
        return false;
    }
    for (size_t s = 0; s < w->nsect; s++) {
        uint64_t h = powerloss_hash(buf + s * SECTOR);
        bool found = false;
        for (size_t i = g; i <= last && !found; i++)
            found = g_array_index(w->records, Record, i).hashes[s] == h;
        if (!found) {
            *why = g_strdup_printf("sector %zu (offset %zu) reads data the "
                                   "guest never wrote there since its last "
                                   "flush (operation %zu)", s, s * SECTOR, g);
            return false;
        }
    }
    return true;
}

/* ---- VM state: what savevm stores, and the check that it loads ---- */
#define VM_BLOB (12 * 1024)     /* three 4 KiB clusters and more */

static uint32_t powerloss_vm_seq;      /* the number of the last savevm */
static uint32_t powerloss_vm_loaded;   /* what the last load read */

static void powerloss_vm_blob(uint32_t seq, uint8_t *buf)
{
    g_autoptr(GRand) r = g_rand_new_with_seed(seq * 2654435761u);
    for (size_t i = 0; i < VM_BLOB; i++)
        buf[i] = (uint8_t)g_rand_int(r);
}

static int powerloss_vm_save(void *opaque, BhStream *s, BhError **errp)
{
    g_autofree uint8_t *buf = g_malloc(VM_BLOB);
    powerloss_vm_blob(powerloss_vm_seq, buf);
    bh_stream_put_be32(s, powerloss_vm_seq);
    bh_stream_put_buffer(s, buf, VM_BLOB);
    return 0;
}

/* Reads the number and the blob, and refuses a blob that is not the one
 * that number saved. */
static int powerloss_vm_load(void *opaque, BhStream *s, int version_id,
                             void **pending, BhError **errp)
{
    g_autofree uint8_t *buf = g_malloc(VM_BLOB);
    g_autofree uint8_t *want = g_malloc(VM_BLOB);
    uint32_t seq = bh_stream_get_be32(s);
    if (!bh_stream_get_buffer(s, buf, VM_BLOB))
        return bh_error_set(errp, EIO, "the state of savevm %u is cut "
                            "short", seq);
    powerloss_vm_blob(seq, want);
    if (memcmp(buf, want, VM_BLOB) != 0)
        return bh_error_set(errp, EINVAL, "the state of savevm %u is not "
                            "what it saved", seq);
    powerloss_vm_loaded = seq;
    *pending = NULL;
    return 0;
}

static void powerloss_vm_commit(void *opaque, void *pending)
{
}

static const BhSavevmHandlers powerloss_vm_handlers = {
    .save = powerloss_vm_save,
    .load = powerloss_vm_load,
    .commit = powerloss_vm_commit,
};

/* A listed snapshot's VM state: none, unless a savevm with state made
 * it; then it loads, and is the state saved with that disk (one of made,
 * the creations of its name whose disk it holds). */
static bool replay_check_vmstate(BhNode *bs, const BhSnapshotInfo *sn,
                                 GArray *made, char **why)
{
    bool want = false;
    for (guint i = 0; i < made->len; i++)
        want |= g_array_index(made, SnapEvent *, i)->vm_seq != 0;
    if (sn->vm_state_size == 0) {
        if (want)
            *why = g_strdup_printf("snapshot '%s' (id %s) lost its VM state",
                                   sn->name, sn->id);
        return !want;
    }
    if (!want) {
        *why = g_strdup_printf("snapshot '%s' (id %s) has VM state no savevm "
                               "stored", sn->name, sn->id);
        return false;
    }
    g_autoptr(BhError) err = NULL;
    BhNode *view = bh_node_snapshot_open(bs, sn->id, NULL, &err);
    BhSavevmLoad *load = NULL;
    int r = -EIO;
    powerloss_vm_loaded = 0;
    if (view) {
        BhStream *st = bh_node_vmstate_stream(view, false, sn->vm_state_size);
        bh_node_unref(view);
        r = bh_savevm_load_begin(st, &load, &err);
        bh_stream_close(st, NULL);
        bh_savevm_load_finish(load, false);
    }
    if (r < 0) {
        *why = g_strdup_printf("snapshot '%s' (id %s): its VM state does not "
                               "load: %s", sn->name, sn->id,
                               err ? bh_error_message(err) : "?");
        return false;
    }
    for (guint i = 0; i < made->len; i++)
        if (g_array_index(made, SnapEvent *, i)->vm_seq == powerloss_vm_loaded)
            return true;
    *why = g_strdup_printf("snapshot '%s' (id %s) holds the VM state of "
                           "savevm %u, not the one saved with its disk",
                           sn->name, sn->id, powerloss_vm_loaded);
    return false;
}

static bool replay_check_snapshots(Replay *r, BhNode *bs, uint64_t p,
                                   uint64_t next, char **why)
{
    Workload *w = r->w;
    g_autoptr(BhError) err = NULL;
    g_autoptr(GPtrArray) list = bh_node_snapshot_list(bs, &err);
    if (!list) {
        *why = g_strdup_printf("snapshot list failed: %s", bh_error_message(err));
        return false;
    }
    /* A snapshot operation is durable once a flush after it is in. */
    uint64_t durable = 0;
    for (guint i = 0; i < w->records->len; i++) {
        Record *rec = &g_array_index(w->records, Record, i);
        if (rec->durable && rec->end <= p)
            durable = rec->end;
    }
    for (guint i = 0; i < w->snaps->len; i++) {
        SnapEvent *e = &g_array_index(w->snaps, SnapEvent, i);
        bool listed = false;
        for (guint j = 0; j < list->len; j++)
            listed |= g_str_equal(((BhSnapshotInfo *)list->pdata[j])->name,
                                  e->name);
        if (!e->create && e->end <= durable && listed) {
            *why = g_strdup_printf("snapshot '%s' is listed though its "
                                   "deletion was flushed", e->name);
            return false;
        }
        if (e->create && e->end <= durable && !listed) {
            bool may_be_deleted = false;
            for (guint k = i + 1; k < w->snaps->len; k++) {
                SnapEvent *d = &g_array_index(w->snaps, SnapEvent, k);
                may_be_deleted |= !d->create && g_str_equal(d->name, e->name)
                                  && d->start < next;
            }
            if (!may_be_deleted) {
                *why = g_strdup_printf("snapshot '%s' is missing though its "
                                       "creation was flushed", e->name);
                return false;
            }
        }
    }
    for (guint j = 0; j < list->len; j++) {
        const BhSnapshotInfo *sn = list->pdata[j];
        bool named = false;
        /* By id: savevm replacing a name may leave two of it. */
        g_autoptr(BhNode) snap = bh_node_snapshot_open(bs, sn->id, NULL, &err);
        g_autofree uint8_t *buf = g_malloc(w->size);
        if (!snap || bh_node_pread(snap, buf, 0, w->size, 0, &err) < 0) {
            *why = g_strdup_printf("snapshot '%s' cannot be read: %s",
                                   sn->name, err ? bh_error_message(err) : "?");
            return false;
        }
        g_autofree uint64_t *h = powerloss_hash_all(buf, w->nsect);
        /* The creations of that name whose disk it holds. */
        g_autoptr(GArray) made = g_array_new(FALSE, FALSE, sizeof(SnapEvent *));
        for (guint i = 0; i < w->snaps->len; i++) {
            SnapEvent *e = &g_array_index(w->snaps, SnapEvent, i);
            if (!e->create || !g_str_equal(e->name, sn->name))
                continue;
            named = true;
            if (memcmp(e->hashes, h, w->nsect * sizeof(*h)) == 0)
                g_array_append_val(made, e);
        }
        if (!named) {
            *why = g_strdup_printf("snapshot '%s' was never created", sn->name);
            return false;
        }
        if (!made->len) {
            *why = g_strdup_printf("snapshot '%s' (id %s) is listed but its "
                                   "disk is not what the guest had when it "
                                   "was taken", sn->name, sn->id);
            return false;
        }
        if (!replay_check_vmstate(bs, sn, made, why))
            return false;
    }
    return true;
}

/*
 * One state: the file is img plus applied[].  p is the log offset of the
 * flush point (everything before it is in), next that of the next flush
 * (nothing after it can be in).
 */
static void replay_check_state(Replay *r, uint64_t p, uint64_t next,
                               const char *what)
{
    Workload *w = r->w;
    r->checked++;
    g_autofree char *why = NULL;

    /* The guest's view: from the last durable record at or before p, any
     * later record whose operation may have begun before next. */
    size_t g = 0, last = 0;
    for (guint i = 0; i < w->records->len; i++) {
        Record *rec = &g_array_index(w->records, Record, i);
        if (rec->durable && rec->end <= p)
            g = i;
        if (rec->start < next)
            last = i;
    }
    g_autoptr(BhError) err = NULL;
    g_autoptr(BhOpts) o = bh_opts_parse("format=qcow2,readonly=on,"
                                        "locking=off", NULL, NULL);
    g_autoptr(BhNode) bs = bh_node_open(r->state, o, &err);
    int builtin = replay_builtin_check(bs, &why);
    r->builtin_exit[builtin]++;
    /* Leaks (3) are what an interrupted allocation leaves: common, and
     * no reason to ask qemu-img beyond the sample. */
    if (builtin == 1 || builtin == 2 ||
        r->checked % powerloss_qemu_every == 1 ||
        powerloss_qemu_every == 1) {
        g_autofree char *out = NULL;
        int code = MIN(replay_qemu_img_check(r, &out), 3);
        r->qemu_runs++;
        r->check_exit[code]++;
        /* Corrupt or not is what both must agree on (leaks may be
         * counted differently). */
        if ((code == 2) != (builtin == 2) || (code == 1) != (builtin == 1)) {
            r->disagree++;
            diag("%s: state %" PRIu64 ": qemu-img check exits %d, the "
                 "built-in check says %d", w->title, r->checked, code,
                 builtin);
        }
        if (code == 1 || code == 2) {
            g_free(why);
            why = g_strdup_printf("qemu-img check exited %d:\n%s", code,
                                  out ? out : "");
        }
    }
    if (!why && !bs)
        why = g_strdup_printf("cannot open: %s", bh_error_message(err));
    if (!why && bs) {
        if (!replay_check_data(r, bs, g, MAX(g, last), &why) ||
            !replay_check_snapshots(r, bs, p, next, &why) ||
            (w->check_state && !w->check_state(r, bs, p, next, &why)))
            r->data_bad++;
    }
    if (why && r->reported < 3) {
        r->reported++;
        diag("%s: state %" PRIu64 " (%s): %s", w->title, r->checked, what,
             why);
        g_autofree char *keep = g_strdup_printf("%s.bad%d", r->state,
                                                r->reported);
        g_autofree char *cmd = g_strdup_printf("cp '%s' '%s'", r->state, keep);
        if (system(cmd) == 0)
            diag("kept as %s", keep);
    }
}

static uint64_t replay_workload(Workload *w, const uint8_t *base,
                                size_t base_len, uint64_t target,
                                Replay *r)
{
    g_autofree char *logbuf = NULL;
    gsize log_len = 0;
    if (!g_file_get_contents(w->log, &logbuf, &log_len, NULL))
        return 0;
    g_autoptr(GArray) entries = powerloss_parse_log((uint8_t *)logbuf,
                                                    log_len);
    if (!entries)
        return 0;
    r->w = w;
    r->entries = entries;
    r->img = g_memdup2(base, base_len);
    r->img_len = base_len;
    r->state = g_build_filename(w->dir, "state.qcow2", NULL);
    r->fd = open(r->state, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    replay_pwrite(r->fd, r->img, r->img_len, 0);

    /* Intervals: the entries between one flush and the next. */
    g_autoptr(GArray) starts = g_array_new(FALSE, FALSE, sizeof(guint));
    guint zero = 0;
    g_array_append_val(starts, zero);
    for (guint i = 0; i < entries->len; i++)
        if (g_array_index(entries, Entry, i).type == LW_FLUSH) {
            guint s = i + 1;
            g_array_append_val(starts, s);
        }
    guint nint = starts->len;
    diag("%s: %u log entries, %u flush points, %u records", w->title,
         entries->len, nint - 1, w->records->len);

    for (guint k = 0; k < nint; k++) {
        guint from = g_array_index(starts, guint, k);
        guint to = from;          /* the interval is [from, to) */
        while (to < entries->len &&
               g_array_index(entries, Entry, to).type != LW_FLUSH)
            to++;
        uint64_t p = from ? g_array_index(entries, Entry, from - 1).end : 32;
        uint64_t next = to < entries->len ?
                        g_array_index(entries, Entry, to).end : UINT64_MAX;
        size_t n = to - from;
        /* What is left of the aim, shared by the intervals left: an
         * interval too short for its share leaves the rest to later ones. */
        guint busy = 0;     /* intervals from here on with writes */
        for (guint j = k; j < nint; j++) {
            guint a = g_array_index(starts, guint, j);
            busy += a < entries->len &&
                    g_array_index(entries, Entry, a).type != LW_FLUSH;
        }
        uint64_t left = target > r->checked ? target - r->checked : 0;
        uint64_t per = MAX(1, (left + MAX(busy, 1) - 1) / MAX(busy, 1));
        /* The flush point itself. */
        replay_check_state(r, p, next, "at a flush point");
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash,
                                        g_str_equal, g_free, NULL);
        g_autofree const Entry **pick = g_new(const Entry *, n + 1);
        g_autofree guint *idx = g_new(guint, n + 1);
        uint64_t done_here = 1;
        for (uint64_t tries = 0; n && done_here < per && tries < per * 8;
             tries++) {
            /* A random subset in a random order; the first try is all of
             * them in order (the run as it happened). */
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (!tries || g_rand_boolean(r->w->rand))
                    idx[m++] = from + (guint)i;
            for (size_t i = m; tries && i > 1; i--) {
                size_t j = (size_t)g_rand_int_range(r->w->rand, 0, (gint32)i);
                guint t = idx[i - 1];
                idx[i - 1] = idx[j];
                idx[j] = t;
            }
            GString *key = g_string_new(NULL);
            for (size_t i = 0; i < m; i++)
                g_string_append_printf(key, "%u,", idx[i]);
            if (!m || g_hash_table_contains(seen, key->str)) {
                g_string_free(key, TRUE);
                continue;
            }
            g_hash_table_add(seen, g_string_free(key, FALSE));
            for (size_t i = 0; i < m; i++) {
                pick[i] = &g_array_index(entries, Entry, idx[i]);
                replay_apply_file(r->fd, pick[i]);
            }
            g_autofree char *what = g_strdup_printf(
                "flush point %u + %zu of its %zu later writes", k, m, n);
            replay_check_state(r, p, next, what);
            replay_restore(r, pick, m);
            done_here++;
        }
        /* On to the next flush point. */
        for (guint i = from; i < to; i++)
            replay_apply(&r->img, &r->img_len,
                         &g_array_index(entries, Entry, i));
        if (ftruncate(r->fd, 0) < 0 ||
            !replay_pwrite(r->fd, r->img, r->img_len, 0))
            diag("rewriting the state: %s", g_strerror(errno));
    }
    close(r->fd);
    g_free(r->img);
    return r->checked;
}

/* ---- savevm over two images ---- */
static void wl_savevm(Workload **w, const char *name)
{
    BhError *err = NULL;
    BhNode *nodes[2] = { w[0]->bs, w[1]->bs };
    for (int i = 0; i < 2; i++)
        wl_begin(w[i]);
    powerloss_vm_seq++;
    wl_check(w[0], bh_savevm_nodes(nodes, 2, name, NULL, &err), err,
             "savevm");
    /* A savevm that replaces a name leaves no delete event: the name
     * stays, and the snapshots it lists are told apart by their disks. */
    for (int i = 0; i < 2; i++) {
        SnapEvent e = { g_strdup(name), true, w[i]->op_start,
                        powerloss_log_len(w[i]),
                        powerloss_hash_all(w[i]->model, w[i]->nsect),
                        i == 0 ? powerloss_vm_seq : 0 };
        g_array_append_val(w[i]->snaps, e);
        wl_record(w[i], false);
    }
}

static void wl_delvm(Workload **w, const char *name)
{
    BhError *err = NULL;
    for (int i = 0; i < 2; i++)
        wl_begin(w[i]);
    wl_check(w[0], bh_delvm(name, &err), err, "delvm");
    for (int i = 0; i < 2; i++) {
        SnapEvent e = { g_strdup(name), false, w[i]->op_start,
                        powerloss_log_len(w[i]), NULL, 0 };
        g_array_append_val(w[i]->snaps, e);
        wl_record(w[i], false);
    }
}

/* Guest writes on both images, savevm of both (with VM state in the
 * first), a savevm that replaces a name, delvm; flushes between some. */
static void wl_savevm_pair(Workload **w)
{
    static const char *const names[] = { "vm-a", "vm-b", "vm-a", "vm-c" };
    for (int round = 0; round < 4; round++) {
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 2; i++) {
                uint64_t len = (uint64_t)g_rand_int_range(w[i]->rand, 1, 17) *
                               SECTOR;
                uint64_t off = (uint64_t)g_rand_int_range(w[i]->rand, 0,
                    (gint32)((w[i]->size - len) / SECTOR + 1)) * SECTOR;
                wl_write(w[i], off, len);
            }
        if (round != 1)
            for (int i = 0; i < 2; i++)
                wl_flush(w[i]);
        wl_savevm(w, names[round]);
        if (round == 2)
            wl_delvm(w, "vm-b");
        wl_write(w[0], 4096 * (uint64_t)round, 4096);
        for (int i = 0; i < 2; i++)
            wl_flush(w[i]);
    }
}

/* ---- the nightly rotation (blkhost.policy, as nightly-rotate.lua) ---- */
typedef struct RotateRun {
    int64_t now;             /* the night */
    uint64_t start, end;     /* its log offsets */
    GPtrArray *names;        /* the snapshots it left, sorted */
} RotateRun;

/* 2026-11-29 03:30 UTC */
#define ROTATE_NIGHT0 INT64_C(1795836600)

static const char powerloss_rotate_lua[] =
    "local policy = require 'blkhost.policy'\n"
    "return function(node, now, lock_dir)\n"
    "  local ok, err = pcall(policy.rotate, { node }, {\n"
    "    prefix = 'nightly-', keep = { daily = 3, weekly = 2 },\n"
    "    timezone = 'UTC', now = now, print = false, lock_dir = lock_dir })\n"
    "  node:close()\n"
    "  if not ok then return tostring(err) end\n"
    "end\n";

static lua_State *powerloss_L;
static int powerloss_rotate_ref;

/* One night's rotation of bs (a reference is taken and dropped): NULL,
 * or why it failed. */
static char *powerloss_rotate(BhNode *bs, int64_t now, const char *lock_dir)
{
    lua_State *L = powerloss_L;
    if (!L) {
        L = powerloss_L = bh_lua_state_new(BH_LUA_SRC_DIR);
        if (!L)
            return g_strdup("cannot create a Lua state");
        if (luaL_dostring(L, powerloss_rotate_lua) != LUA_OK)
            return g_strdup(lua_tostring(L, -1));
        powerloss_rotate_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, powerloss_rotate_ref);
    bh_lua_pushnode(L, bh_node_ref(bs));
    lua_pushinteger(L, now);
    lua_pushstring(L, lock_dir);
    char *why = NULL;
    if (lua_pcall(L, 3, 1, 0) != LUA_OK || !lua_isnil(L, -1))
        why = g_strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    return why;
}

static gint powerloss_strcmp(gconstpointer a, gconstpointer b)
{
    return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

/* The names of bs's snapshots, sorted (NULL if they cannot be listed). */
static GPtrArray *powerloss_snapshot_names(BhNode *bs)
{
    g_autoptr(GPtrArray) list = bh_node_snapshot_list(bs, NULL);
    if (!list)
        return NULL;
    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < list->len; i++)
        g_ptr_array_add(names, g_strdup(((BhSnapshotInfo *)list->pdata[i])->name));
    g_ptr_array_sort(names, powerloss_strcmp);
    return names;
}

static bool powerloss_names_has(GPtrArray *names, const char *name)
{
    for (guint i = 0; names && i < names->len; i++)
        if (g_str_equal(names->pdata[i], name))
            return true;
    return false;
}

static char *powerloss_names_join(GPtrArray *names)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; names && i < names->len; i++)
        g_string_append_printf(s, "%s%s", i ? " " : "",
                               (char *)names->pdata[i]);
    return g_string_free(s, FALSE);
}

/* Ten nights: the guest writes and flushes during the day, the rotation
 * takes that night's snapshot and deletes what keep no longer keeps, and
 * the job's end flushes the image (as closing it does). */
static void wl_rotation(Workload *w)
{
    w->runs = g_array_new(FALSE, TRUE, sizeof(RotateRun));
    for (int night = 0; night < 10; night++) {
        for (int i = 0; i < 4; i++) {
            uint64_t len = (uint64_t)g_rand_int_range(w->rand, 1, 17) * SECTOR;
            uint64_t off = (uint64_t)g_rand_int_range(w->rand, 0,
                                (gint32)((w->size - len) / SECTOR + 1)) * SECTOR;
            wl_write(w, off, len);
        }
        wl_flush(w);
        RotateRun run = { ROTATE_NIGHT0 + night * INT64_C(86400) };
        g_autoptr(GPtrArray) before = powerloss_snapshot_names(w->bs);
        wl_begin(w);
        g_autofree char *why = powerloss_rotate(w->bs, run.now, w->dir);
        if (why && !w->failed) {
            diag("%s: night %d: %s", w->title, night, why);
            w->failed = true;
        }
        run.names = powerloss_snapshot_names(w->bs);
        run.start = w->op_start;
        run.end = powerloss_log_len(w);
        for (guint i = 0; run.names && i < run.names->len; i++)
            if (!powerloss_names_has(before, run.names->pdata[i])) {
                SnapEvent e = { g_strdup(run.names->pdata[i]), true,
                                run.start, run.end,
                                powerloss_hash_all(w->model, w->nsect), 0 };
                g_array_append_val(w->snaps, e);
            }
        for (guint i = 0; before && i < before->len; i++)
            if (!powerloss_names_has(run.names, before->pdata[i])) {
                SnapEvent e = { g_strdup(before->pdata[i]), false,
                                run.start, run.end, NULL, 0 };
                g_array_append_val(w->snaps, e);
            }
        wl_record(w, false);
        g_array_append_val(w->runs, run);
        wl_flush(w);
    }
}

/* From this state, the next night's rotation (the night the state is
 * in, or the first after it) runs cleanly on a copy and leaves what the
 * uninterrupted run left. */
static bool rotation_check(Replay *r, BhNode *bs, uint64_t p, uint64_t next,
                           char **why)
{
    Workload *w = r->w;
    RotateRun *run = NULL;
    int night = 0;
    for (guint i = 0; i < w->runs->len && !run; i++)
        if (g_array_index(w->runs, RotateRun, i).end > p) {
            run = &g_array_index(w->runs, RotateRun, i);
            night = (int)i;
        }
    if (!run)
        return true;
    w->extra_checked++;
    g_autofree char *copy = g_build_filename(w->dir, "converge.qcow2", NULL);
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(BhError) err = NULL;
    if (!g_file_get_contents(r->state, &data, &len, NULL) ||
        !g_file_set_contents(copy, data, (gssize)len, NULL)) {
        *why = g_strdup("cannot copy the state");
        return false;
    }
    g_autoptr(BhOpts) o = bh_opts_parse("format=qcow2,locking=off", NULL, NULL);
    g_autoptr(BhNode) node = bh_node_open(copy, o, &err);
    if (!node) {
        *why = g_strdup_printf("the next rotation cannot open the state: %s",
                               bh_error_message(err));
        return false;
    }
    g_autofree char *fail = powerloss_rotate(node, run->now, w->dir);
    g_autoptr(GPtrArray) names = powerloss_snapshot_names(node);
    g_autofree char *got = powerloss_names_join(names);
    g_autofree char *want = powerloss_names_join(run->names);
    g_autofree char *bad = NULL;
    int code = replay_builtin_check(node, &bad);
    g_clear_pointer(&node, bh_node_unref);
    g_unlink(copy);
    if (fail)
        *why = g_strdup_printf("night %d's rotation from this state fails: "
                               "%s", night, fail);
    else if (!g_str_equal(got, want))
        *why = g_strdup_printf("night %d's rotation from this state leaves "
                               "'%s', not '%s'", night, got, want);
    else if (code == 1 || code == 2)
        *why = g_strdup_printf("after night %d's rotation from this state: "
                               "%s", night, bad);
    return *why == NULL;
}

/* ---- driving it ---- */
typedef void (*WorkloadFn)(Workload *w);

/* A workload's image (with a backing file full of random data if
 * backing), open through the log-writes filter, its pre-workload bytes
 * in *base.  NULL (with a failed test) when that cannot be set up. */
static Workload *workload_new(const char *title, const char *create_opts,
                              uint64_t size, bool backing, guint32 seed,
                              char **base, gsize *base_len)
{
    Workload *w = g_new0(Workload, 1);
    w->title = title;
    w->size = size;
    w->dir = g_dir_make_tmp("blkhost-powerloss-XXXXXX", NULL);
    w->image = g_build_filename(w->dir, "image.qcow2", NULL);
    w->log = g_build_filename(w->dir, "image.log", NULL);
    w->nsect = size / SECTOR;
    w->model = g_malloc0(size);
    w->records = g_array_new(FALSE, TRUE, sizeof(Record));
    w->snaps = g_array_new(FALSE, TRUE, sizeof(SnapEvent));
    w->snap_models = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           g_free);
    w->rand = g_rand_new_with_seed(seed);
    g_autoptr(BhError) err = NULL;
    g_autofree char *copts = g_strdup(create_opts);

    if (backing) {
        /* A backing file full of data the overlay's COW must copy. */
        g_autofree char *bpath = g_build_filename(w->dir, "backing.qcow2",
                                                  NULL);
        g_autoptr(BhOpts) bo = bh_opts_parse(create_opts, NULL, NULL);
        g_autofree char *sz = g_strdup_printf("%" PRIu64, size);
        bh_opts_set(bo, "size", sz);
        g_autoptr(BhOpts) none = bh_opts_new();
        BhNode *b = NULL;
        if (bh_create(bpath, "qcow2", bo, &err) &&
            (b = bh_node_open(bpath, none, &err))) {
            for (size_t i = 0; i < size; i++)
                w->model[i] = (uint8_t)g_rand_int(w->rand);
            bh_node_pwrite(b, w->model, 0, size, 0, &err);
            bh_node_unref(b);
        }
        g_free(copts);
        copts = g_strdup_printf("%s,backing_file=backing.qcow2,"
                                "backing_fmt=qcow2", create_opts);
    }
    g_autoptr(BhOpts) co = bh_opts_parse(copts, NULL, NULL);
    g_autofree char *sz = g_strdup_printf("%" PRIu64, size);
    bh_opts_set(co, "size", sz);
    if (!err && bh_create(w->image, "qcow2", co, &err) &&
        g_file_get_contents(w->image, base, base_len, NULL)) {
        g_autofree char *oo = g_strdup_printf("format=qcow2,file.driver="
                                              "log-writes,file.log=%s", w->log);
        g_autoptr(BhOpts) o = bh_opts_parse(oo, NULL, NULL);
        w->bs = bh_node_open(w->image, o, &err);
    }
    if (!w->bs) {
        ok(0, "powerloss: %s: set up (%s)", title, err ? bh_error_message(err) : "?");
        return NULL;
    }
    /* The image before the workload is durable: record 0. */
    wl_begin(w);
    wl_record(w, true);
    return w;
}

/* After the workload closed the image: replay its states, say how they
 * fared, and clean up (its files stay when a state failed). */
static void workload_finish(Workload *w, const char *base, gsize base_len,
                            uint64_t target, uint64_t *total, Replay *sum)
{
    const char *title = w->title;
    if (g_str_equal(title, "refcount table growth")) {
        /* The header's refcount_table_clusters (offset 56) grew. */
        g_autofree char *img = NULL;
        gsize len = 0;
        g_file_get_contents(w->image, &img, &len, NULL);
        uint32_t before = len >= 60 && base_len >= 60 ?
            GUINT32_FROM_BE(*(uint32_t *)(base + 56)) : 0;
        uint32_t after = len >= 60 ?
            GUINT32_FROM_BE(*(uint32_t *)(img + 56)) : 0;
        ok(after > before, "powerloss: %s: the refcount table grew from %u "
           "to %u clusters", title, before, after);
    }

    Replay r = { 0 };
    uint64_t n = replay_workload(w, (const uint8_t *)base, base_len, target,
                                 &r);
    *total += n;
    diag("%s: built-in check: 0: %" PRIu64 ", 1: %" PRIu64 ", 2: %" PRIu64
         ", 3 (leaks): %" PRIu64 "; qemu-img check on %" PRIu64 " of them: "
         "0: %" PRIu64 ", 1: %" PRIu64 ", 2: %" PRIu64 ", 3: %" PRIu64,
         title, r.builtin_exit[0], r.builtin_exit[1], r.builtin_exit[2],
         r.builtin_exit[3], r.qemu_runs, r.check_exit[0], r.check_exit[1],
         r.check_exit[2], r.check_exit[3]);
    ok(n && r.check_exit[1] == 0 && r.check_exit[2] == 0 &&
       r.builtin_exit[1] == 0 && r.builtin_exit[2] == 0,
       "powerloss: %s: %" PRIu64 " crash states, the built-in check finds no "
       "corruption in any, nor qemu-img check in the %" PRIu64 " it ran on",
       title, n, r.qemu_runs);
    ok(n && r.data_bad == 0 && r.reported == 0, "powerloss: %s: in every "
       "state, flushed writes read back and the snapshot table lists only "
       "complete snapshots", title);
    if (w->check_state)
        ok(n && r.reported == 0 && w->extra_checked > 0,
           "powerloss: %s: from each of %" PRIu64 " states, the next "
           "rotation runs cleanly and leaves the snapshots an uninterrupted "
           "run left", title, w->extra_checked);
    sum->qemu_runs += r.qemu_runs;
    sum->disagree += r.disagree;

    if (!r.reported) {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", w->dir);
        if (system(cmd) != 0)
            diag("could not remove %s", w->dir);
    } else {
        diag("%s: files kept in %s", title, w->dir);
    }
    g_free(r.state);
}

static void powerloss_run(const char *title, const char *create_opts,
                          uint64_t size, bool backing, WorkloadFn fn,
                          uint64_t target, guint32 seed, uint64_t *total,
                          Replay *sum)
{
    g_autofree char *base = NULL;
    gsize base_len = 0;
    Workload *w = workload_new(title, create_opts, size, backing, seed,
                               &base, &base_len);
    if (!w)
        return;
    if (fn == wl_rotation)
        w->check_state = rotation_check;
    fn(w);
    bh_node_unref(w->bs);
    w->bs = NULL;
    ok(!w->failed, "powerloss: %s: the workload runs through the log-writes "
       "filter", title);
    workload_finish(w, base, base_len, target, total, sum);
}

/* bh.savevm over two images: each has its own log and is replayed on its
 * own (a power cut may leave one image's disk further on than the
 * other's; loadvm refuses a name the two do not both have). */
static void powerloss_run_savevm(uint64_t target, guint32 seed,
                                 uint64_t *total, Replay *sum)
{
    g_autofree char *base[2] = { NULL, NULL };
    gsize base_len[2] = { 0, 0 };
    Workload *w[2] = {
        workload_new("savevm over two images: the first (VM state)",
                     "cluster_size=4096", 256 << 10, false, seed, &base[0],
                     &base_len[0]),
        workload_new("savevm over two images: the second",
                     "cluster_size=4096", 256 << 10, false, seed + 1,
                     &base[1], &base_len[1]),
    };
    if (!w[0] || !w[1])
        return;
    BhError *err = NULL;
    if (bh_savevm_register_handlers("powerloss", 0, 1, &powerloss_vm_handlers,
                                    NULL, &err) < 0) {
        ok(0, "powerloss: savevm: register the VM state (%s)",
           bh_error_message(err));
        bh_error_free(err);
        return;
    }
    wl_savevm_pair(w);
    bool failed = w[0]->failed || w[1]->failed;
    for (int i = 0; i < 2; i++) {
        bh_node_unref(w[i]->bs);
        w[i]->bs = NULL;
    }
    ok(!failed, "powerloss: savevm over two images: the workload runs "
       "through the log-writes filter");
    /* The replay loads the states saved: the entry stays registered. */
    for (int i = 0; i < 2; i++)
        workload_finish(w[i], base[i], base_len[i], target, total, sum);
    bh_savevm_unregister("powerloss", 0);
}

/* A workload's aim: what is left of target, shared by the n workloads
 * (images) left, a quarter more (intervals with one or two writes have
 * fewer distinct states than their share), and never under a tenth of
 * target, however far the others went past theirs. */
static uint64_t powerloss_share(uint64_t target, uint64_t total, uint64_t n)
{
    uint64_t left = target > total ? target - total : 0;
    return MAX(MAX(1, target / 10), (left + n - 1) / n * 5 / 4);
}

int main(int argc, char **argv)
{
    bool is_long = g_getenv("POWERLOSS_LONG") != NULL;
    for (int i = 1; i < argc; i++)
        is_long |= g_str_equal(argv[i], "--long");
    const char *env = g_getenv("POWERLOSS_STATES");
    uint64_t target = env ? g_ascii_strtoull(env, NULL, 10) :
                      is_long ? 100000 : 1000;
    env = g_getenv("POWERLOSS_QEMU_IMG_EVERY");
    powerloss_qemu_every = env ? MAX(1, g_ascii_strtoull(env, NULL, 10)) :
                           is_long ? 100 : 10;
    env = g_getenv("POWERLOSS_SEED");
    guint32 seed = env ? (guint32)g_ascii_strtoull(env, NULL, 10) : 1;
    uint64_t total = 0;
    Replay sum = { 0 };
#define SHARE(n) powerloss_share(target, total, (n))

    /* Workloads with few writes between flushes have few distinct states
     * (a snapshot operation's interval may hold two writes): they come
     * first, and what they fall short of goes to the later ones; the
     * allocating writes, with ten or more log entries between flushes,
     * have states to spare and come last. */
    powerloss_run("snapshot create, delete, apply", "cluster_size=4096",
                  256 << 10, false, wl_snapshots, SHARE(8), seed, &total,
                  &sum);
    powerloss_run("backing chain write", "cluster_size=4096", 256 << 10,
                  true, wl_backing, SHARE(7), seed, &total, &sum);
    powerloss_run_savevm(SHARE(6), seed, &total, &sum);
    powerloss_run("nightly rotation", "cluster_size=4096", 256 << 10, false,
                  wl_rotation, SHARE(4), seed, &total, &sum);
    powerloss_run("amend refcount_bits and compat", "cluster_size=4096",
                  256 << 10, false, wl_refcount_width, SHARE(3), seed, &total,
                  &sum);
    /* 64-bit refcounts with 512-byte clusters: a refcount block covers
     * 64 clusters, so runs cross ranges whose blocks the allocator places
     * after them (drivers/qcow2/refcount.c), and the table grows often. */
    powerloss_run("refcount table growth",
                  "cluster_size=512,refcount_bits=64", 6 << 20, false,
                  wl_refcount_growth, SHARE(2), seed, &total, &sum);
    powerloss_run("allocating writes", "cluster_size=4096", 1 << 20, false,
                  wl_allocating, SHARE(1), seed, &total, &sum);
    ok(sum.disagree == 0, "powerloss: the built-in check and qemu-img check "
       "agree on corruption in all %" PRIu64 " states both ran on",
       sum.qemu_runs);
    ok(total >= target, "powerloss: %" PRIu64 " crash states checked in all "
       "(aimed at %" PRIu64 ", seed %u)", total, target, seed);
    plan(tap_count);
    return done();
}
