/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The savevm registry and the QEMU savevm stream over all its entries
 * (savevm.h).
 *
 * Reading is all or nothing: every section is parsed into a pending object
 * (a scratch copy for vmsd entries, whatever the handlers return for
 * others), and only when the EOF marker has been reached are they
 * committed, in stream order.  Any error discards them all.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blkhost/error.h"
#include "blkhost/savevm.h"
#include <blkhost/glib.h>

#include "vmdesc.h"

#define QEMU_VM_FILE_VERSION_COMPAT 2

typedef struct SavevmEntry {
    char *idstr;
    uint32_t instance_id;
    int version_id;
    const BhVmsd *vmsd;           /* either this ... */
    BhSavevmHandlers handlers;    /* ... or these */
    void *opaque;
} SavevmEntry;

/* A section read from a stream and not yet committed. */
typedef struct SavevmPending {
    SavevmEntry *entry;
    void *state;
} SavevmPending;

static GRecMutex savevm_lock;
static GPtrArray *savevm_entries;   /* SavevmEntry *, registration order */

static SavevmEntry *savevm_find(const char *idstr, uint32_t instance_id)
{
    if (!savevm_entries)
        return NULL;
    for (guint i = 0; i < savevm_entries->len; i++) {
        SavevmEntry *e = g_ptr_array_index(savevm_entries, i);
        if (e->instance_id == instance_id && strcmp(e->idstr, idstr) == 0)
            return e;
    }
    return NULL;
}

static void savevm_entry_free(gpointer p)
{
    SavevmEntry *e = p;
    if (!e->vmsd && e->handlers.release)
        e->handlers.release(e->opaque);
    g_free(e->idstr);
    g_free(e);
}

static int savevm_add(SavevmEntry *e, BhError **errp)
{
    size_t len = e->idstr ? strlen(e->idstr) : 0;
    int r = 0;
    if (len == 0 || len > 255)
        r = bh_error_set(errp, EINVAL, "savevm: state name '%.40s%s' must "
                         "be 1 to 255 bytes long", e->idstr ? e->idstr : "",
                         len > 40 ? "..." : "");
    else if (e->version_id < 0)
        r = bh_error_set(errp, EINVAL, "savevm: state '%s' has negative "
                         "version %d", e->idstr, e->version_id);
    if (r < 0) {
        g_free(e->idstr);
        g_free(e);
        return r;
    }
    g_rec_mutex_lock(&savevm_lock);
    if (savevm_find(e->idstr, e->instance_id)) {
        r = bh_error_set(errp, EEXIST, "savevm: state '%s' instance %" PRIu32
                         " is already registered", e->idstr, e->instance_id);
        g_free(e->idstr);
        g_free(e);
    } else {
        if (!savevm_entries)
            savevm_entries = g_ptr_array_new_with_free_func(savevm_entry_free);
        g_ptr_array_add(savevm_entries, e);
    }
    g_rec_mutex_unlock(&savevm_lock);
    return r;
}

int bh_savevm_register(const char *idstr, uint32_t instance_id,
                       const BhVmsd *vmsd, void *opaque, BhError **errp)
{
    if (!vmsd || vmsd->size == 0)
        return bh_error_set(errp, EINVAL, "savevm: state '%s' needs a "
                            "description with its struct size",
                            idstr ? idstr : "");
    SavevmEntry *e = g_new0(SavevmEntry, 1);
    e->idstr = g_strdup(idstr);
    e->instance_id = instance_id;
    e->version_id = vmsd->version_id;
    e->vmsd = vmsd;
    e->opaque = opaque;
    return savevm_add(e, errp);
}

int bh_savevm_register_handlers(const char *idstr, uint32_t instance_id,
                                int version_id, const BhSavevmHandlers *h,
                                void *opaque, BhError **errp)
{
    if (!h || !h->save || !h->load)
        return bh_error_set(errp, EINVAL, "savevm: state '%s' needs save "
                            "and load handlers", idstr ? idstr : "");
    SavevmEntry *e = g_new0(SavevmEntry, 1);
    e->idstr = g_strdup(idstr);
    e->instance_id = instance_id;
    e->version_id = version_id;
    e->handlers = *h;
    e->opaque = opaque;
    return savevm_add(e, errp);
}

bool bh_savevm_unregister(const char *idstr, uint32_t instance_id)
{
    g_rec_mutex_lock(&savevm_lock);
    SavevmEntry *e = savevm_find(idstr, instance_id);
    if (e)
        g_ptr_array_remove(savevm_entries, e);
    g_rec_mutex_unlock(&savevm_lock);
    return e != NULL;
}

unsigned bh_savevm_count(void)
{
    g_rec_mutex_lock(&savevm_lock);
    unsigned n = savevm_entries ? savevm_entries->len : 0;
    g_rec_mutex_unlock(&savevm_lock);
    return n;
}

/* ---- writing ---- */

/* QEMU's target page size for x86, which is what the vmdesc's page_size
 * means to readers (analyze-migration.py requires the key); blkhost
 * streams carry no RAM section it would apply to. */
#define VMDESC_PAGE_SIZE 4096

/* What a save handler running on this thread described of its bytes
 * (bh_savevm_describe_field/subsection). */
typedef struct HandlerDesc {
    BhStream *s;
    GString *fields;      /* the entry's own fields list, no brackets */
    GString *subs;        /* the subsections list, the last one open */
    bool in_sub;
    uint64_t covered;     /* bytes described, subsection headers included */
} HandlerDesc;

static _Thread_local HandlerDesc *handler_desc;

void bh_savevm_describe_field(BhStream *s, const char *name, int index,
                              const char *type, uint64_t size)
{
    HandlerDesc *h = handler_desc;
    if (!h || h->s != s || !name || !type)
        return;
    GString *d = h->in_sub ? h->subs : h->fields;
    bh_vmdesc_sep(d);
    g_string_append_c(d, '{');
    bh_vmdesc_key(d, "name");
    bh_vmdesc_str(d, name);
    if (index >= 0) {
        bh_vmdesc_key(d, "index");
        g_string_append_printf(d, "%d", index);
    }
    bh_vmdesc_key(d, "type");
    bh_vmdesc_str(d, type);
    bh_vmdesc_key(d, "size");
    g_string_append_printf(d, "%" PRIu64 "}", size);
    h->covered += size;
}

void bh_savevm_describe_subsection(BhStream *s, const char *name,
                                   int version_id)
{
    HandlerDesc *h = handler_desc;
    if (!h || h->s != s || !name)
        return;
    if (h->in_sub)
        g_string_append(h->subs, "]}");
    bh_vmdesc_sep(h->subs);
    g_string_append_c(h->subs, '{');
    bh_vmdesc_key(h->subs, "vmsd_name");
    bh_vmdesc_str(h->subs, name);
    bh_vmdesc_key(h->subs, "version");
    g_string_append_printf(h->subs, "%d", version_id);
    bh_vmdesc_key(h->subs, "fields");
    g_string_append_c(h->subs, '[');
    h->in_sub = true;
    h->covered += 1 + 1 + strlen(name) + 4;
}

/* A handler entry's "fields" (and "subsections"): what it described when
 * that covers exactly the size bytes it wrote, else one opaque buffer. */
static void savevm_handler_fields(GString *desc, HandlerDesc *h,
                                  uint64_t size)
{
    bh_vmdesc_key(desc, "fields");
    if (h->covered != size) {
        g_string_append_printf(desc, "[{\"name\": \"data\", \"type\": "
                               "\"buffer\", \"size\": %" PRIu64 "}]", size);
        return;
    }
    g_string_append_printf(desc, "[%s]", h->fields->str);
    if (h->in_sub) {
        bh_vmdesc_key(desc, "subsections");
        g_string_append_printf(desc, "[%s]}]", h->subs->str);
    }
}

/* One FULL section, and its entry in the "devices" list of desc.  A vmsd
 * entry is described field by field; a handler entry by what its save
 * handler described, or as one "buffer" field of the size it took. */
static int savevm_write_entry(BhStream *s, SavevmEntry *e, uint32_t id,
                              GString *desc, BhError **errp)
{
    bh_stream_put_u8(s, BH_SAVEVM_FULL);
    bh_stream_put_be32(s, id);
    bh_stream_put_counted_string(s, e->idstr);
    bh_stream_put_be32(s, e->instance_id);
    bh_stream_put_be32(s, (uint32_t)e->version_id);
    bh_vmdesc_sep(desc);
    g_string_append_c(desc, '{');
    bh_vmdesc_key(desc, "name");
    bh_vmdesc_str(desc, e->idstr);
    bh_vmdesc_key(desc, "instance_id");
    g_string_append_printf(desc, "%" PRIu32, e->instance_id);
    int r = bh_stream_take_error(s, errp);
    if (r == 0) {
        if (e->vmsd) {
            r = bh_vmstate_save_described(s, e->vmsd, e->opaque, desc, errp);
        } else {
            uint64_t start = bh_stream_tell(s);
            HandlerDesc h = { .s = s, .fields = g_string_new(NULL),
                              .subs = g_string_new(NULL) };
            HandlerDesc *outer = handler_desc;
            handler_desc = &h;
            r = e->handlers.save(e->opaque, s, errp);
            handler_desc = outer;
            if (r >= 0)
                r = bh_stream_take_error(s, errp);
            else if (errp && !*errp)
                bh_error_set(errp, -r, "save handler failed: %s",
                             g_strerror(-r));
            bh_vmdesc_key(desc, "vmsd_name");
            bh_vmdesc_str(desc, e->idstr);
            bh_vmdesc_key(desc, "version");
            g_string_append_printf(desc, "%d", e->version_id);
            savevm_handler_fields(desc, &h, bh_stream_tell(s) - start);
            g_string_free(h.fields, TRUE);
            g_string_free(h.subs, TRUE);
        }
    }
    g_string_append_c(desc, '}');
    if (r < 0) {
        bh_error_prefix(errp, "savevm: section '%s' instance %" PRIu32 ": ",
                       e->idstr, e->instance_id);
        return r;
    }
    bh_stream_put_u8(s, BH_SAVEVM_FOOTER);
    bh_stream_put_be32(s, id);
    return 0;
}

int bh_savevm_write_state(BhStream *s, BhError **errp)
{
    int r = 0;
    uint32_t id = 0;
    g_autoptr(GString) desc = g_string_new(NULL);
    g_string_append_printf(desc, "{\"page_size\": %d, \"devices\": [",
                           VMDESC_PAGE_SIZE);
    g_rec_mutex_lock(&savevm_lock);
    bh_stream_put_be32(s, BH_SAVEVM_MAGIC);
    bh_stream_put_be32(s, BH_SAVEVM_VERSION);
    for (guint i = 0; savevm_entries && i < savevm_entries->len; i++) {
        SavevmEntry *e = g_ptr_array_index(savevm_entries, i);
        if (e->vmsd && e->vmsd->needed && !e->vmsd->needed(e->opaque))
            continue;
        if ((r = savevm_write_entry(s, e, id++, desc, errp)) < 0)
            break;
    }
    g_rec_mutex_unlock(&savevm_lock);
    if (r < 0)
        return r;
    g_string_append(desc, "]}");
    bh_stream_put_u8(s, BH_SAVEVM_EOF);
    /* QEMU's trailer: its loader skips it, tools read the stream by it. */
    bh_stream_put_u8(s, BH_SAVEVM_VMDESCRIPTION);
    bh_stream_put_be32(s, (uint32_t)desc->len);
    bh_stream_put_buffer(s, desc->str, desc->len);
    bh_stream_flush(s);
    r = bh_stream_take_error(s, errp);
    if (r < 0)
        bh_error_prefix(errp, "savevm: ");
    return r;
}

/* ---- reading ---- */

static void savevm_pending_drop(GArray *pending, bool commit)
{
    for (guint i = 0; i < pending->len; i++) {
        SavevmPending *p = &g_array_index(pending, SavevmPending, i);
        SavevmEntry *e = p->entry;
        if (e->vmsd) {
            if (commit)
                bh_vmstate_commit(e->vmsd, e->opaque, p->state);
            else
                g_free(p->state);
        } else if (commit && e->handlers.commit) {
            e->handlers.commit(e->opaque, p->state);
        } else if (!commit && e->handlers.discard) {
            e->handlers.discard(e->opaque, p->state);
        }
    }
    g_array_set_size(pending, 0);
}

static bool savevm_already_read(GArray *pending, SavevmEntry *e)
{
    for (guint i = 0; i < pending->len; i++)
        if (g_array_index(pending, SavevmPending, i).entry == e)
            return true;
    return false;
}

/* The footer after a section's state; a subsection marker there means the
 * state carried a subsection that the description does not know. */
static int savevm_read_footer(BhStream *s, SavevmEntry *e, uint32_t id,
                              BhError **errp)
{
    /* The footer cannot be a subsection marker, so one here is either a
     * subsection the description does not know or a cut-off header. */
    uint64_t off = bh_stream_tell(s);
    uint8_t hdr[2 + 256];
    size_t avail = bh_stream_peek(s, hdr, sizeof(hdr) - 1, 0);
    if (avail >= 1 && hdr[0] == BH_SAVEVM_SUBSECTION) {
        if (avail < 2 || avail < 2 + (size_t)hdr[1])
            return bh_error_set(errp, EINVAL, "unexpected end of stream at "
                                "offset %" PRIu64 " (in a subsection header "
                                "at offset %" PRIu64 ")", off + avail, off);
        hdr[2 + hdr[1]] = '\0';
        return bh_error_set(errp, ENOENT, "unknown subsection '%s' at "
                            "offset %" PRIu64, (char *)hdr + 2, off);
    }
    uint8_t mark = bh_stream_get_u8(s);
    uint32_t read_id = bh_stream_get_be32(s);
    int r = bh_stream_take_error(s, errp);
    if (r < 0)
        return r;
    if (mark != BH_SAVEVM_FOOTER)
        return bh_error_set(errp, EINVAL, "expected the section footer "
                            "0x7e at offset %" PRIu64 ", found 0x%02x "
                            "(the state is longer than its description)",
                            off, mark);
    if (read_id != id)
        return bh_error_set(errp, EINVAL, "section footer at offset %"
                            PRIu64 " has section id %" PRIu32 ", expected %"
                            PRIu32, off, read_id, id);
    return 0;
}

static int savevm_read_full(BhStream *s, GArray *pending, BhError **errp)
{
    uint64_t off = bh_stream_tell(s) - 1;
    char idstr[256];
    uint32_t id = bh_stream_get_be32(s);
    bh_stream_get_counted_string(s, idstr);
    uint32_t instance_id = bh_stream_get_be32(s);
    uint32_t version = bh_stream_get_be32(s);
    int r = bh_stream_take_error(s, errp);
    if (r < 0) {
        bh_error_prefix(errp, "section header at offset %" PRIu64 ": ", off);
        return r;
    }
    SavevmEntry *e = savevm_find(idstr, instance_id);
    if (!e)
        return bh_error_set(errp, ENOENT, "unknown section '%s' instance %"
                            PRIu32 " at offset %" PRIu64 ": no such state is "
                            "registered", idstr, instance_id, off);
    if (savevm_already_read(pending, e))
        return bh_error_set(errp, EINVAL, "section '%s' instance %" PRIu32
                            " appears twice (again at offset %" PRIu64 ")",
                            idstr, instance_id, off);
    SavevmPending p = { .entry = e };
    if (version > (uint32_t)e->version_id) {
        r = bh_error_set(errp, EINVAL, "stream has version %" PRIu32
                         ", newer than the version %d this build knows",
                         version, e->version_id);
    } else if (e->vmsd) {
        p.state = bh_vmstate_load_copy(s, e->vmsd, e->opaque, (int)version,
                                       errp);
        /* vmstate records every failure in the stream, errno included */
        r = p.state ? 0 : (bh_stream_error(s) ? bh_stream_error(s) : -EINVAL);
    } else {
        r = e->handlers.load(e->opaque, s, (int)version, &p.state, errp);
        if (r >= 0 && (r = bh_stream_take_error(s, errp)) < 0 &&
            e->handlers.discard)
            e->handlers.discard(e->opaque, p.state);
        if (r < 0 && errp && !*errp)
            bh_error_set(errp, -r, "load handler failed: %s", g_strerror(-r));
    }
    if (r >= 0) {
        g_array_append_val(pending, p);
        r = savevm_read_footer(s, e, id, errp);
    }
    if (r < 0)
        bh_error_prefix(errp, "section '%s' instance %" PRIu32 " (offset %"
                       PRIu64 "): ", idstr, instance_id, off);
    return r < 0 ? r : 0;
}

static const char *savevm_type_name(uint8_t type)
{
    switch (type) {
    case BH_SAVEVM_START: return "START";
    case BH_SAVEVM_PART: return "PART";
    case BH_SAVEVM_END: return "END";
    case BH_SAVEVM_SUBSECTION: return "SUBSECTION";
    case BH_SAVEVM_CONFIGURATION: return "CONFIGURATION";
    default: return NULL;
    }
}

static int savevm_read_sections(BhStream *s, GArray *pending, BhError **errp)
{
    uint32_t magic = bh_stream_get_be32(s);
    uint32_t version = bh_stream_get_be32(s);
    int r = bh_stream_take_error(s, errp);
    if (r < 0)
        return r;
    if (magic != BH_SAVEVM_MAGIC)
        return bh_error_set(errp, EINVAL, "not a savevm stream: magic is "
                            "0x%08" PRIx32 ", expected 0x%08x ('QEVM')",
                            magic, BH_SAVEVM_MAGIC);
    if (version == QEMU_VM_FILE_VERSION_COMPAT)
        return bh_error_set(errp, ENOTSUP, "savevm stream version 2 is "
                            "obsolete and not supported; expected version %u",
                            BH_SAVEVM_VERSION);
    if (version != BH_SAVEVM_VERSION)
        return bh_error_set(errp, ENOTSUP, "unsupported savevm stream "
                            "version %" PRIu32 "; expected version %u",
                            version, BH_SAVEVM_VERSION);
    for (;;) {
        uint64_t off = bh_stream_tell(s);
        uint8_t type = bh_stream_get_u8(s);
        if ((r = bh_stream_take_error(s, errp)) < 0)
            return r;
        if (type == BH_SAVEVM_EOF)
            return 0;
        if (type == BH_SAVEVM_FULL) {
            if ((r = savevm_read_full(s, pending, errp)) < 0)
                return r;
            continue;
        }
        const char *name = savevm_type_name(type);
        if (name)
            return bh_error_set(errp, ENOTSUP, "section type %u (%s) at "
                                "offset %" PRIu64 " is not supported; only "
                                "FULL sections are", type, name, off);
        return bh_error_set(errp, EINVAL, "unknown section type 0x%02x at "
                            "offset %" PRIu64, type, off);
    }
}

/* A stream read and checked but not yet committed; the registry lock is
 * held from bh_savevm_load_begin to bh_savevm_load_finish so that the
 * entries the pending states point to stay registered. */
struct BhSavevmLoad {
    GArray *pending;   /* SavevmPending */
};

int bh_savevm_load_begin(BhStream *s, BhSavevmLoad **loadp, BhError **errp)
{
    BhSavevmLoad *load = g_new0(BhSavevmLoad, 1);
    load->pending = g_array_new(FALSE, FALSE, sizeof(SavevmPending));
    g_rec_mutex_lock(&savevm_lock);
    int r = savevm_read_sections(s, load->pending, errp);
    if (r < 0) {
        bh_savevm_load_finish(load, false);
        bh_error_prefix(errp, "loadvm: ");
        load = NULL;
    }
    *loadp = load;
    return r < 0 ? r : 0;
}

void bh_savevm_load_finish(BhSavevmLoad *load, bool commit)
{
    if (!load)
        return;
    savevm_pending_drop(load->pending, commit);
    g_rec_mutex_unlock(&savevm_lock);
    g_array_free(load->pending, TRUE);
    g_free(load);
}

int bh_savevm_read_state(BhStream *s, BhError **errp)
{
    BhSavevmLoad *load;
    int r = bh_savevm_load_begin(s, &load, errp);
    bh_savevm_load_finish(load, true);
    return r;
}
