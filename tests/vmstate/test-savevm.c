/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * savevm registry unit test: a C struct (BhVmsd) entry and a callback
 * entry (the shape the Lua bindings use) saved into one QEMU savevm
 * stream and read back through memory, fd and callback streams; the exact
 * bytes of a small stream; and bad streams — wrong magic, version 2,
 * unknown section, unknown subsection, newer section version, bad footer,
 * duplicate section, live-migration section types, a failing entry, and a
 * cut at every byte — each refused with a clear message and no entry
 * changed.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <blkhost/blkhost.h>
#include "tap.h"

/* ---- a C device ---- */

typedef struct Dev {
    uint32_t regs[4];
    uint8_t nlog;
    uint16_t log[8];
    bool irq;
    uint64_t extra;     /* in subsection dev/extra when irq is set */
} Dev;

static bool dev_extra_needed(void *opaque)
{
    return ((Dev *)opaque)->irq;
}

static const BhVmsd dev_extra_vmsd = {
    .name = "dev/extra", .version_id = 1, .needed = dev_extra_needed,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U64(extra, Dev), BH_VMSTATE_END_OF_LIST() },
};

static const BhVmsd dev_more_vmsd = {   /* known only to "newer" builds */
    .name = "dev/more", .version_id = 1,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U8(nlog, Dev), BH_VMSTATE_END_OF_LIST() },
};

#define DEV_FIELDS                                         \
    BH_VMSTATE_ARRAY(regs, Dev, U32),                      \
    BH_VMSTATE_U8(nlog, Dev),                              \
    BH_VMSTATE_VARRAY(log, Dev, nlog, U8, U16),            \
    BH_VMSTATE_BOOL_V(irq, Dev, 2),                        \
    BH_VMSTATE_END_OF_LIST()

static const BhVmsd dev_vmsd = {
    .name = "dev", .version_id = 2, .minimum_version_id = 1,
    .size = sizeof(Dev),
    .fields = (const BhVmField[]) { DEV_FIELDS },
    .subsections = (const BhVmsd *const[]) { &dev_extra_vmsd, NULL },
};

static const BhVmsd dev_newer_vmsd = {
    .name = "dev", .version_id = 2, .minimum_version_id = 1,
    .size = sizeof(Dev),
    .fields = (const BhVmField[]) { DEV_FIELDS },
    .subsections = (const BhVmsd *const[]) {
        &dev_extra_vmsd, &dev_more_vmsd, NULL },
};

static const BhVmsd dev_v3_vmsd = {
    .name = "dev", .version_id = 3, .size = sizeof(Dev),
    .fields = (const BhVmField[]) { DEV_FIELDS },
};

/* ---- a script-side state behind callbacks: a name and a counter ---- */

typedef struct Script {
    char name[64];
    uint32_t counter;
    int commits, discards, releases;
} Script;

typedef struct ScriptPending {
    char name[64];
    uint32_t counter;
} ScriptPending;

static int script_save(void *opaque, BhStream *s, BhError **errp)
{
    Script *sc = opaque;
    if (strcmp(sc->name, "unsaveable") == 0)
        return bh_error_set(errp, EINVAL, "cannot save this script state");
    bh_stream_put_counted_string(s, sc->name);
    bh_stream_put_be32(s, sc->counter);
    return 0;
}

static int script_load(void *opaque, BhStream *s, int version_id,
                       void **pending, BhError **errp)
{
    char name[256];
    bh_stream_get_counted_string(s, name);
    uint32_t counter = bh_stream_get_be32(s);
    int r = bh_stream_take_error(s, errp);
    if (r < 0)
        return r;
    if (strlen(name) >= 64)
        return bh_error_set(errp, EINVAL, "script name too long");
    if (counter == 0xBAD)
        return bh_error_set(errp, EINVAL, "counter 0xBAD is not allowed");
    ScriptPending *p = g_new0(ScriptPending, 1);
    strcpy(p->name, name);
    p->counter = counter;
    *pending = p;
    return 0;
}

static void script_commit(void *opaque, void *pending)
{
    Script *sc = opaque;
    ScriptPending *p = pending;
    strcpy(sc->name, p->name);
    sc->counter = p->counter;
    sc->commits++;
    g_free(p);
}

static void script_discard(void *opaque, void *pending)
{
    ((Script *)opaque)->discards++;
    g_free(pending);
}

static void script_release(void *opaque)
{
    ((Script *)opaque)->releases++;
}

static const BhSavevmHandlers script_handlers = {
    .save = script_save, .load = script_load, .commit = script_commit,
    .discard = script_discard, .release = script_release,
};

static Dev dev;
static Script script;

static void set_states(uint32_t seed)
{
    memset(&dev, 0, sizeof(dev));
    for (int i = 0; i < 4; i++)
        dev.regs[i] = seed * 0x01010101u + (uint32_t)i;
    dev.nlog = 3;
    dev.log[0] = 0x100; dev.log[1] = (uint16_t)seed; dev.log[2] = 0xFFFF;
    dev.irq = true;
    dev.extra = (uint64_t)seed << 33 | 5;
    g_snprintf(script.name, sizeof(script.name), "script-%u", seed);
    script.counter = seed * 7;
}

static uint8_t *write_state(size_t *len)
{
    BhStream *w = bh_stream_new_mem_writer();
    BhError *err = NULL;
    if (bh_savevm_write_state(w, &err) < 0)
        diag("write_state: %s", bh_error_message(err));
    bh_error_clear(&err);
    const uint8_t *d = bh_stream_mem_data(w, len);
    uint8_t *copy = g_memdup2(d, *len);
    bh_stream_close(w, NULL);
    return copy;
}

/* Where the stream proper ends: after the EOF byte, before the JSON
 * trailer (found with bh_savevm_scan, which test-scan checks). */
static size_t stream_end(const uint8_t *d, size_t len)
{
    BhStream *r = bh_stream_new_mem_reader(d, len);
    BhSavevmScan *sc = bh_savevm_scan(r, 0, NULL);
    size_t end = sc && sc->complete ? (size_t)sc->eof_offset + 1 : len;
    bh_savevm_scan_free(sc);
    bh_stream_close(r, NULL);
    return end;
}

static int read_state(const uint8_t *d, size_t len, BhError **errp)
{
    BhStream *r = bh_stream_new_mem_reader(d, len);
    int rc = bh_savevm_read_state(r, errp);
    bh_stream_close(r, NULL);
    return rc;
}

static void test_registry(void)
{
    BhError *err = NULL;
    is_int(bh_savevm_register("dev", 0, &dev_vmsd, &dev, &err), 0,
           "registry: register a vmsd entry");
    is_int(bh_savevm_register_handlers("script", 0, 1, &script_handlers,
                                       &script, &err), 0,
           "registry: register a callback entry");
    int rc = bh_savevm_register("dev", 0, &dev_vmsd, &dev, &err);
    ok(rc == -EEXIST && err && strstr(bh_error_message(err), "already registered"),
       "registry: duplicate 'dev' instance 0 refused: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    is_int(bh_savevm_register("dev", 1, &dev_vmsd, &dev, NULL), 0,
           "registry: 'dev' instance 1 is another entry");
    ok(bh_savevm_unregister("dev", 1) && !bh_savevm_unregister("dev", 1),
       "registry: unregister once, then it is gone");
    rc = bh_savevm_register("", 0, &dev_vmsd, &dev, &err);
    ok(rc == -EINVAL && err, "registry: empty name refused: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    char longname[257];
    memset(longname, 'x', 256);
    longname[256] = '\0';
    rc = bh_savevm_register(longname, 0, &dev_vmsd, &dev, &err);
    ok(rc == -EINVAL,
       "registry: 256-byte name refused");
    bh_error_clear(&err);
    static const BhVmsd nosize = { .name = "nosize", .version_id = 1 };
    rc = bh_savevm_register("nosize", 0, &nosize, &dev, &err);
    ok(rc == -EINVAL,
       "registry: vmsd without struct size refused");
    bh_error_clear(&err);
    is_int(bh_savevm_count(), 2, "registry: two entries");
}

static void test_roundtrip(void)
{
    set_states(1);
    size_t len;
    uint8_t *d = write_state(&len);
    size_t end = stream_end(d, len);
    ok(len > 8 && memcmp(d, "QEVM\0\0\0\3", 8) == 0 && d[end - 1] == 0 &&
       end + 5 < len && d[end] == BH_SAVEVM_VMDESCRIPTION &&
       d[len - 1] == '}',
       "roundtrip: stream starts with QEVM 00000003, has EOF, then QEMU's "
       "JSON description trailer (0x06, length, JSON)");
    set_states(2);
    BhError *err = NULL;
    int rc = read_state(d, len, &err);
    ok(rc == 0 && dev.regs[3] == 0x01010101u + 3 && dev.log[1] == 1 &&
       dev.extra == ((uint64_t)1 << 33 | 5) &&
       strcmp(script.name, "script-1") == 0 && script.counter == 7 &&
       script.commits == 1, "roundtrip: both entries restored%s%s",
       err ? ": " : "", err ? bh_error_message(err) : "");
    bh_error_clear(&err);

    /* fd */
    char *path = NULL;
    int fd = g_file_open_tmp("bh-savevm-XXXXXX", &path, NULL);
    set_states(3);
    BhStream *w = bh_stream_new_fd(fd, true);
    rc = bh_savevm_write_state(w, NULL);
    bh_stream_close(w, NULL);
    lseek(fd, 0, SEEK_SET);
    set_states(4);
    BhStream *r = bh_stream_new_fd(fd, false);
    rc |= bh_savevm_read_state(r, NULL);
    bh_stream_close(r, NULL);
    ok(rc == 0 && dev.regs[0] == 3 * 0x01010101u && script.counter == 21,
       "roundtrip: through a file descriptor");
    close(fd);
    unlink(path);
    g_free(path);
    g_free(d);
}

/* The header and one FULL section, computed by hand from QEMU's
 * savevm.c rules.  QEMU's own `migrate` output starts with the same
 * 8 bytes: 51 45 56 4d 00 00 00 03. */
static void test_exact_bytes(void)
{
    typedef struct { uint16_t a; } Tiny;
    static const BhVmField tiny_fields[] = {
        BH_VMSTATE_U16(a, Tiny), BH_VMSTATE_END_OF_LIST() };
    static const BhVmsd tiny_vmsd = {
        .name = "tiny", .version_id = 7, .size = sizeof(Tiny),
        .fields = tiny_fields,
    };
    static const uint8_t want[] = {
        0x51, 0x45, 0x56, 0x4d, 0x00, 0x00, 0x00, 0x03,  /* QEVM, 3 */
        0x04, 0x00, 0x00, 0x00, 0x00,                    /* FULL, id 0 */
        0x04, 't', 'i', 'n', 'y',                        /* idstr */
        0x00, 0x00, 0x00, 0x09,                          /* instance 9 */
        0x00, 0x00, 0x00, 0x07,                          /* version 7 */
        0xbe, 0xef,                                      /* a */
        0x7e, 0x00, 0x00, 0x00, 0x00,                    /* footer, id 0 */
        0x00,                                            /* EOF */
        0x06, 0x00, 0x00, 0x00, 0x9f,                    /* vmdesc, 159 */
        /* then the JSON below (QEMU's keys; sizes as written) */
    };
    static const char want_json[] = "{\"page_size\": 4096, \"devices\": "
        "[{\"name\": \"tiny\", \"instance_id\": 9, \"vmsd_name\": "
        "\"tiny\", \"version\": 7, \"fields\": [{\"name\": \"a\", "
        "\"type\": \"uint16\", \"size\": 2}]}]}";
    static const char empty_json[] = "{\"page_size\": 4096, \"devices\": []}";
    Tiny t = { 0xbeef };
    /* only this entry registered */
    bh_savevm_unregister("dev", 0);
    bh_savevm_unregister("script", 0);
    ok(script.releases == 1, "registry: unregistering calls release");
    bh_savevm_register("tiny", 9, &tiny_vmsd, &t, NULL);
    size_t len, jlen = sizeof(want_json) - 1;
    uint8_t *d = write_state(&len);
    bool same = jlen == 0x9f && len == sizeof(want) + jlen &&
                memcmp(d, want, sizeof(want)) == 0 &&
                memcmp(d + sizeof(want), want_json, jlen) == 0;
    ok(same, "exact bytes: header, FULL section, footer, EOF and the JSON "
       "description trailer as QEMU writes them (%zu bytes)", len);
    if (!same && len > sizeof(want))
        diag("trailer: %.*s", (int)(len - sizeof(want)), d + sizeof(want));
    t.a = 0;
    ok(read_state(want, sizeof(want), NULL) == 0 && t.a == 0xbeef,
       "exact bytes: the hand-made stream loads");
    bh_savevm_unregister("tiny", 9);
    g_free(d);

    d = write_state(&len);
    jlen = sizeof(empty_json) - 1;
    ok(len == 14 + jlen && memcmp(d, "QEVM\0\0\0\3\0\6\0\0\0", 13) == 0 &&
       d[13] == jlen && memcmp(d + 14, empty_json, jlen) == 0,
       "exact bytes: empty registry writes header + EOF + a trailer with no "
       "devices");
    ok(read_state(d, len, NULL) == 0, "exact bytes: empty stream loads");
    g_free(d);
    bh_savevm_register("dev", 0, &dev_vmsd, &dev, NULL);
    bh_savevm_register_handlers("script", 0, 1, &script_handlers, &script,
                                NULL);
}

/* Load a bad stream: it must fail with errno `want` and a message
 * containing `what`, and leave both entries as they were. */
static void expect_refused(const char *desc, const uint8_t *d, size_t len,
                           int want, const char *what)
{
    set_states(50);
    Dev dev_before = dev;
    Script sc_before = script;
    BhError *err = NULL;
    int rc = read_state(d, len, &err);
    bool same = memcmp(&dev, &dev_before, sizeof(dev)) == 0 &&
                strcmp(script.name, sc_before.name) == 0 &&
                script.counter == sc_before.counter &&
                script.commits == sc_before.commits;
    ok(rc == -want && err && strstr(bh_error_message(err), what) && same,
       "bad stream: %s refused, nothing changed: %s", desc,
       err ? bh_error_message(err) : "(no error)");
    if (rc != -want)
        diag("got %d want %d", rc, -want);
    bh_error_clear(&err);
}

static void test_bad_streams(void)
{
    set_states(9);
    size_t len;
    uint8_t *good = write_state(&len);
    uint8_t *d = g_memdup2(good, len);

    d[3] = 'N';
    expect_refused("wrong magic QEVN", d, len, EINVAL,
                   "magic is 0x5145564e, expected 0x5145564d");
    memcpy(d, good, len);
    d[7] = 2;
    expect_refused("version 2", d, len, ENOTSUP, "version 2 is obsolete");
    d[7] = 4;
    expect_refused("version 4", d, len, ENOTSUP, "unsupported savevm stream "
                   "version 4");
    expect_refused("empty stream", d, 0, EINVAL, "unexpected end of stream");

    /* the script section comes second: its failure must also undo the
     * already parsed dev section */
    script.counter = 0xBAD;
    uint8_t *badscript = write_state(&len);
    expect_refused("second section's load fails", badscript, len, EINVAL,
                   "counter 0xBAD");
    g_free(badscript);

    /* an entry the reader does not have */
    Dev ghost = { 0 };
    bh_savevm_register("ghost", 3, &dev_vmsd, &ghost, NULL);
    uint8_t *with_ghost = write_state(&len);
    bh_savevm_unregister("ghost", 3);
    expect_refused("unknown section 'ghost'", with_ghost, len, ENOENT,
                   "unknown section 'ghost' instance 3");
    g_free(with_ghost);

    /* streams from builds with other descriptions of "dev" */
    bh_savevm_unregister("dev", 0);
    bh_savevm_register("dev", 0, &dev_newer_vmsd, &dev, NULL);
    set_states(9);
    size_t newlen, v3len;
    uint8_t *newer = write_state(&newlen);
    bh_savevm_unregister("dev", 0);
    bh_savevm_register("dev", 0, &dev_v3_vmsd, &dev, NULL);
    uint8_t *v3 = write_state(&v3len);
    bh_savevm_unregister("dev", 0);
    bh_savevm_register("dev", 0, &dev_vmsd, &dev, NULL);
    int discards = script.discards;
    expect_refused("unknown subsection 'dev/more'", newer, newlen, ENOENT,
                   "unknown subsection 'dev/more'");
    ok(script.discards == discards + 1, "bad stream: the script state parsed "
       "before the failing section was discarded");
    expect_refused("section version 3 > 2", v3, v3len, EINVAL,
                   "version 3, newer than the version 2");
    g_free(newer);
    g_free(v3);

    /* now the registry order is script, dev */
    set_states(9);
    g_free(good);
    good = write_state(&len);
    g_free(d);
    d = g_memdup2(good, len);
    /* the script section: 1+4+1+6+4+4 header, 1+8+4 body ("script-9"),
     * footer at 13+... find the first 0x7e after the first header */
    size_t foot = 8 + 1 + 4 + 1 + 6 + 4 + 4 + 1 + 8 + 4;
    ok(d[foot] == 0x7e, "bad stream: footer located at offset %zu", foot);
    d[foot] = 0x7f;
    expect_refused("footer byte 0x7f", d, len, EINVAL,
                   "expected the section footer 0x7e");
    memcpy(d, good, len);
    d[foot + 4] = 9;
    expect_refused("footer section id 9", d, len, EINVAL,
                   "has section id 9, expected 0");
    memcpy(d, good, len);
    d[8] = BH_SAVEVM_START;
    expect_refused("START section type", d, len, ENOTSUP,
                   "section type 1 (START)");
    d[8] = 0x33;
    expect_refused("section type 0x33", d, len, EINVAL,
                   "unknown section type 0x33");
    d[8] = 0x07;
    expect_refused("CONFIGURATION section", d, len, ENOTSUP,
                   "(CONFIGURATION)");

    /* the first section twice */
    size_t sec = foot + 5 - 8;
    uint8_t *dup = g_malloc(len + sec);
    memcpy(dup, good, 8 + sec);
    memcpy(dup + 8 + sec, good + 8, len - 8);
    expect_refused("duplicate section 'script'", dup, len + sec, EINVAL,
                   "appears twice");
    g_free(dup);

    /* cut at every byte: subsections included, every prefix refused up to
     * the EOF marker; the trailer after it is only a description, which
     * the reader (as QEMU's) does not need */
    size_t end = stream_end(good, len);
    unsigned refused = 0, eos = 0, loaded = 0;
    for (size_t cut = end; cut < len; cut++)
        loaded += read_state(good, cut, NULL) == 0;
    is_int(loaded, len - end, "truncation: cuts inside the %zu-byte JSON "
           "trailer still load (it is not state)", len - end);
    len = end;
    for (size_t cut = 0; cut < len; cut++) {
        set_states(50);
        Dev before = dev;
        uint32_t counter = script.counter;
        BhError *err = NULL;
        if (read_state(good, cut, &err) < 0 &&
            memcmp(&dev, &before, sizeof(dev)) == 0 &&
            script.counter == counter)
            refused++;
        if (err && strstr(bh_error_message(err), "unexpected end of stream at offset"))
            eos++;
        else
            diag("cut %zu: %s", cut, err ? bh_error_message(err) : "(accepted)");
        bh_error_clear(&err);
    }
    is_int(refused, len, "truncation: all %zu cut points refused, nothing "
           "changed", len);
    ok(eos == len, "truncation: %u of %zu errors say 'unexpected end of "
       "stream at offset N'", eos, len);
    g_free(good);
    g_free(d);
}

/* Random byte changes: every result is either a clean load or a refusal
 * that changed nothing; never a crash (valgrind-clean). */
static void test_mutations(void)
{
    set_states(11);
    size_t len;
    uint8_t *good = write_state(&len);
    uint8_t *d = g_malloc(len);
    GRand *rnd = g_rand_new_with_seed(20261121);
    unsigned refused = 0, loaded = 0, bad = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(d, good, len);
        int nflip = 1 + g_rand_int_range(rnd, 0, 3);
        for (int k = 0; k < nflip; k++)
            d[g_rand_int_range(rnd, 0, (gint32)len)] =
                (uint8_t)g_rand_int_range(rnd, 0, 256);
        size_t cut = g_rand_boolean(rnd) ? len :
                     (size_t)g_rand_int_range(rnd, 0, (gint32)len);
        set_states(50);
        Dev before = dev;
        uint32_t counter = script.counter;
        BhError *err = NULL;
        if (read_state(d, cut, &err) < 0) {
            refused++;
            if (!err || memcmp(&dev, &before, sizeof(dev)) != 0 ||
                script.counter != counter)
                bad++;
        } else {
            loaded++;
        }
        bh_error_clear(&err);
    }
    ok(bad == 0 && refused > 0, "mutations: 3000 damaged streams: %u refused "
       "with nothing changed, %u loaded (changed values only)", refused,
       loaded);
    g_rand_free(rnd);
    g_free(d);
    g_free(good);
}

/* A callback stream that fails writes after `budget` bytes. */
typedef struct { GByteArray *b; size_t budget; } Sink;

static int sink_write(void *opaque, const void *buf, uint64_t pos,
                      size_t len, BhError **errp)
{
    Sink *k = opaque;
    if (pos + len > k->budget)
        return bh_error_set(errp, ENOSPC, "vmstate area full (%zu bytes)",
                            k->budget);
    g_byte_array_append(k->b, buf, (guint)len);
    return 0;
}

static ssize_t sink_read(void *opaque, void *buf, uint64_t pos, size_t len,
                         BhError **errp)
{
    Sink *k = opaque;
    if (pos >= k->b->len)
        return 0;
    size_t n = MIN(len, k->b->len - (size_t)pos);
    memcpy(buf, k->b->data + pos, n);
    return (ssize_t)n;
}

static const BhStreamOps sink_ops = {
    .read_at = sink_read, .write_at = sink_write,
};

static void test_write_errors(void)
{
    Sink k = { g_byte_array_new(), 1 << 20 };
    set_states(5);
    BhStream *w = bh_stream_new_callbacks(&sink_ops, &k, true);
    int rc = bh_savevm_write_state(w, NULL);
    bh_stream_close(w, NULL);
    set_states(6);
    BhStream *r = bh_stream_new_callbacks(&sink_ops, &k, false);
    rc |= bh_savevm_read_state(r, NULL);
    bh_stream_close(r, NULL);
    ok(rc == 0 && script.counter == 35 && dev.log[1] == 5,
       "callbacks: round trip through read_at/write_at");

    g_byte_array_set_size(k.b, 0);
    k.budget = 10;
    w = bh_stream_new_callbacks(&sink_ops, &k, true);
    BhError *err = NULL;
    rc = bh_savevm_write_state(w, &err);
    ok(rc == -ENOSPC && err && strstr(bh_error_message(err), "area full"),
       "write error: a full vmstate area fails the save: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    bh_stream_close(w, NULL);

    strcpy(script.name, "unsaveable");
    w = bh_stream_new_mem_writer();
    rc = bh_savevm_write_state(w, &err);
    ok(rc == -EINVAL && err && strstr(bh_error_message(err), "section 'script'") &&
       strstr(bh_error_message(err), "cannot save"),
       "write error: a failing save handler names its section: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    bh_stream_close(w, NULL);
    g_byte_array_unref(k.b);
}

/* The two halves of reading (loadvm reverts the disks in between): a
 * checked stream changes nothing until finish, and finish(false) drops
 * it; finish(true) commits it. */
static void test_load_halves(void)
{
    set_states(5);
    size_t len;
    uint8_t *d = write_state(&len);
    set_states(6);
    uint32_t reg0 = dev.regs[0];
    int commits = script.commits, discards = script.discards;
    BhSavevmLoad *load = NULL;
    BhStream *r = bh_stream_new_mem_reader(d, len);
    int rc = bh_savevm_load_begin(r, &load, NULL);
    bh_stream_close(r, NULL);
    ok(rc == 0 && load && dev.regs[0] == reg0 && script.commits == commits,
       "load halves: a read and checked stream changes no entry before "
       "finish");
    bh_savevm_load_finish(load, false);
    ok(dev.regs[0] == reg0 && script.commits == commits &&
       script.discards == discards + 1,
       "load halves: finish(false) drops it (discard called, nothing set)");
    r = bh_stream_new_mem_reader(d, len);
    rc = bh_savevm_load_begin(r, &load, NULL);
    bh_stream_close(r, NULL);
    bh_savevm_load_finish(load, true);
    ok(rc == 0 && dev.regs[0] == 5 * 0x01010101u &&
       script.commits == commits + 1,
       "load halves: finish(true) commits every entry");
    load = (BhSavevmLoad *)1;
    r = bh_stream_new_mem_reader(d, stream_end(d, len) - 1);
    rc = bh_savevm_load_begin(r, &load, NULL);
    bh_stream_close(r, NULL);
    ok(rc < 0 && load == NULL,
       "load halves: a cut stream fails in begin with no pending load");
    g_free(d);
}

int main(void)
{
    plan(44);
    test_registry();
    test_roundtrip();
    test_exact_bytes();
    test_bad_streams();
    test_mutations();
    test_write_errors();
    test_load_halves();
    return done();
}
