/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh_savevm_scan unit test: a hand-made stream in QEMU's shape (the
 * CONFIGURATION section with subsections, RAM in START/PART/END records
 * using every page encoding migration/ram.c writes, a command, FULL
 * sections whose state contains footer-like bytes, EOF and the JSON
 * trailer) is listed exactly; a cut at every byte stops with an error and
 * never reads past the cut; records it cannot decode are named; and
 * blkhost's own streams list what is registered.
 */
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>
#include "tap.h"

#define F_ZERO 0x02
#define F_MEM_SIZE 0x04
#define F_PAGE 0x08
#define F_EOS 0x10
#define F_CONTINUE 0x20
#define F_XBZRLE 0x40
#define F_COMPRESS 0x100
#define F_MULTIFD_FLUSH 0x200

static void put_str(BhStream *w, const char *s)
{
    bh_stream_put_counted_string(w, s);
}

static void put_header(BhStream *w, uint8_t type, uint32_t id,
                       const char *idstr, uint32_t inst, uint32_t ver)
{
    bh_stream_put_u8(w, type);
    bh_stream_put_be32(w, id);
    put_str(w, idstr);
    bh_stream_put_be32(w, inst);
    bh_stream_put_be32(w, ver);
}

static void put_footer(BhStream *w, uint32_t id)
{
    bh_stream_put_u8(w, BH_SAVEVM_FOOTER);
    bh_stream_put_be32(w, id);
}

static const char JSON[] = "{\"page_size\": 4096, \"devices\": []}";

/* The offsets and sizes the scan must report. */
typedef struct Want {
    uint64_t ram_off, ram_size, dev0_off, dev0_size, dev1_off, dev1_size;
    uint64_t eof;
} Want;

static uint8_t *qemu_like(size_t *len, Want *want)
{
    BhStream *w = bh_stream_new_mem_writer();
    uint8_t page[4096], junk[10];
    uint64_t a;

    bh_stream_put_be32(w, BH_SAVEVM_MAGIC);
    bh_stream_put_be32(w, BH_SAVEVM_VERSION);
    bh_stream_put_u8(w, BH_SAVEVM_CONFIGURATION);
    bh_stream_put_be32(w, 13);
    bh_stream_put_buffer(w, "pc-i440fx-7.2", 13);
    bh_stream_put_u8(w, BH_SAVEVM_SUBSECTION);
    put_str(w, "configuration/target-page-bits");
    bh_stream_put_be32(w, 1);
    bh_stream_put_be32(w, 12);
    bh_stream_put_u8(w, BH_SAVEVM_SUBSECTION);
    put_str(w, "configuration/capabilities");
    bh_stream_put_be32(w, 1);
    bh_stream_put_be32(w, 2);
    put_str(w, "x-ignore-nothing");
    put_str(w, "validate-uuid");

    /* RAM: START announces two blocks */
    want->ram_off = bh_stream_tell(w);
    put_header(w, BH_SAVEVM_START, 2, "ram", 0, 4);
    a = bh_stream_tell(w);
    bh_stream_put_be64(w, 0x3000 | F_MEM_SIZE);
    put_str(w, "pc.ram");
    bh_stream_put_be64(w, 0x2000);
    put_str(w, "pc.rom");
    bh_stream_put_be64(w, 0x1000);
    bh_stream_put_be64(w, F_EOS);
    want->ram_size = bh_stream_tell(w) - a;
    put_footer(w, 2);

    /* a FULL section whose state holds its own footer's bytes, followed by
     * something that is not a record */
    want->dev0_off = bh_stream_tell(w);
    put_header(w, BH_SAVEVM_FULL, 0, "dev", 0, 1);
    a = bh_stream_tell(w);
    static const uint8_t fake[] = { 0x7e, 0, 0, 0, 0, 0x99, 1, 2, 3 };
    bh_stream_put_buffer(w, fake, sizeof(fake));
    static const uint8_t fake2[] = { 0x7e, 0, 0, 0, 0, 0x04, 0, 0, 0, 0 };
    bh_stream_put_buffer(w, fake2, sizeof(fake2));   /* id 0 is taken */
    want->dev0_size = bh_stream_tell(w) - a;
    put_footer(w, 0);

    /* RAM: a PART with every page encoding */
    bh_stream_put_u8(w, BH_SAVEVM_PART);
    bh_stream_put_be32(w, 2);
    a = bh_stream_tell(w);
    memset(page, 0x7e, sizeof(page));
    bh_stream_put_be64(w, 0 | F_PAGE);
    put_str(w, "pc.ram");
    bh_stream_put_buffer(w, page, sizeof(page));
    bh_stream_put_be64(w, 0x1000 | F_ZERO | F_CONTINUE);
    bh_stream_put_u8(w, 0);
    bh_stream_put_be64(w, 0 | F_COMPRESS);
    put_str(w, "pc.rom");
    bh_stream_put_be32(w, sizeof(junk));
    memset(junk, 0x7e, sizeof(junk));
    bh_stream_put_buffer(w, junk, sizeof(junk));
    bh_stream_put_be64(w, 0 | F_XBZRLE | F_CONTINUE);
    bh_stream_put_u8(w, 1);
    bh_stream_put_be16(w, 5);
    bh_stream_put_buffer(w, junk, 5);
    bh_stream_put_be64(w, F_MULTIFD_FLUSH);
    bh_stream_put_be64(w, F_EOS);
    want->ram_size += bh_stream_tell(w) - a;
    put_footer(w, 2);

    /* a command (QEMU_MIG_CMD_SWITCHOVER_START, no data) */
    bh_stream_put_u8(w, BH_SAVEVM_COMMAND);
    bh_stream_put_be16(w, 0x0b);
    bh_stream_put_be16(w, 0);

    /* RAM END: nothing left to send */
    bh_stream_put_u8(w, BH_SAVEVM_END);
    bh_stream_put_be32(w, 2);
    bh_stream_put_be64(w, F_EOS);
    want->ram_size += 8;
    put_footer(w, 2);

    want->dev1_off = bh_stream_tell(w);
    put_header(w, BH_SAVEVM_FULL, 7, "dev", 1, 2);
    bh_stream_put_u8(w, 5);
    bh_stream_put_be16(w, 0x7e00);
    want->dev1_size = 3;
    put_footer(w, 7);

    want->eof = bh_stream_tell(w);
    bh_stream_put_u8(w, BH_SAVEVM_EOF);
    bh_stream_put_u8(w, BH_SAVEVM_VMDESCRIPTION);
    bh_stream_put_be32(w, sizeof(JSON) - 1);
    bh_stream_put_buffer(w, JSON, sizeof(JSON) - 1);

    const uint8_t *d = bh_stream_mem_data(w, len);
    uint8_t *copy = g_memdup2(d, *len);
    bh_stream_close(w, NULL);
    return copy;
}

static BhSavevmScan *scan(const uint8_t *d, size_t len, uint64_t page_size,
                          BhError **errp)
{
    BhStream *r = bh_stream_new_mem_reader(d, len);
    BhSavevmScan *sc = bh_savevm_scan(r, page_size, errp);
    bh_stream_close(r, NULL);
    return sc;
}

static const BhSavevmSection *sec(const BhSavevmScan *sc, guint i)
{
    return i < sc->sections->len ?
           &g_array_index(sc->sections, BhSavevmSection, i) : NULL;
}

static void test_qemu_like(void)
{
    Want want;
    size_t len;
    uint8_t *d = qemu_like(&len, &want);
    BhSavevmScan *sc = scan(d, len, 0, NULL);
    const BhSavevmSection *ram = sec(sc, 0), *d0 = sec(sc, 1), *d1 = sec(sc, 2);

    ok(sc && sc->complete && !sc->error && sc->sections->len == 3,
       "qemu-like: complete, three sections%s%s", sc && sc->error ? ": " : "",
       sc && sc->error ? sc->error : "");
    ok(sc && g_strcmp0(sc->machine, "pc-i440fx-7.2") == 0 &&
       sc->page_size == 4096, "qemu-like: the configuration's machine type "
       "and page size (its target-page-bits and capabilities subsections "
       "passed over)");
    ok(ram && strcmp(ram->idstr, "ram") == 0 && ram->section_id == 2 &&
       ram->version_id == 4 && ram->iterative && ram->ended &&
       ram->records == 3 && ram->offset == want.ram_off,
       "qemu-like: ram is one iterative section of 3 records (START, "
       "PART, END), at its START's offset");
    is_int(ram ? ram->size : 0, want.ram_size, "qemu-like: ram's size sums "
           "its records' words and pages (PAGE, ZERO, COMPRESS, XBZRLE, "
           "CONTINUE, MULTIFD_FLUSH, EOS)");
    ok(d0 && strcmp(d0->idstr, "dev") == 0 && d0->instance_id == 0 &&
       d0->version_id == 1 && !d0->iterative && d0->records == 1 &&
       d0->offset == want.dev0_off && d0->size == want.dev0_size,
       "qemu-like: a FULL section whose state holds its footer's bytes, "
       "twice, ends at its real footer (%" PRIu64 " bytes)",
       d0 ? d0->size : 0);
    ok(d1 && d1->instance_id == 1 && d1->version_id == 2 &&
       d1->section_id == 7 && d1->offset == want.dev1_off &&
       d1->size == want.dev1_size,
       "qemu-like: the second FULL section, after a command record");
    ok(sc && sc->eof_offset == want.eof && sc->vmdesc &&
       strcmp(sc->vmdesc, JSON) == 0 && sc->vmdesc_offset == want.eof + 1,
       "qemu-like: EOF offset and the JSON trailer");
    bh_savevm_scan_free(sc);

    /* Cut at every byte before the end of the JSON: never a crash, and
     * before EOF always an error; the sections listed are whole ones. */
    unsigned stopped = 0, listed_ok = 0;
    for (size_t cut = 0; cut <= want.eof; cut++) {
        BhError *err = NULL;
        sc = scan(d, cut, 0, &err);
        if (!sc) {
            stopped += cut < 8 && err != NULL;
            listed_ok += cut < 8;
        } else {
            stopped += !sc->complete && sc->error != NULL &&
                       sc->stop_offset <= cut;
            bool whole = true;
            for (guint i = 0; i < sc->sections->len; i++) {
                const BhSavevmSection *x = sec(sc, i);
                whole &= x->offset < cut && x->records >= 1;
            }
            listed_ok += whole;
        }
        bh_error_free(err);
        bh_savevm_scan_free(sc);
    }
    is_int(stopped, want.eof + 1, "truncation: each of the %" PRIu64 " cuts "
           "before or at EOF stops with an error (the header: no scan)",
           want.eof + 1);
    is_int(listed_ok, want.eof + 1, "truncation: only records read whole "
           "are listed");

    /* RAM flags nothing decodes: the RDMA hook, and the obsolete FULL */
    size_t at = want.ram_off + 17 + 7;   /* low byte of the first word */
    uint8_t save = d[at];
    d[at] = F_MEM_SIZE | 0x80;
    sc = scan(d, len, 0, NULL);
    ok(sc && !sc->complete && sc->sections->len == 0 && sc->error &&
       strstr(sc->error, "section 'ram' (id 2): RAM flags 0x84 at offset") &&
       strstr(sc->error, "(an RDMA hook)"),
       "ram: an RDMA hook flag stops the scan, naming ram: %s",
       sc && sc->error ? sc->error : "");
    bh_savevm_scan_free(sc);
    d[at] = F_MEM_SIZE | 0x01;
    sc = scan(d, len, 0, NULL);
    ok(sc && sc->error && strstr(sc->error, "RAM flags 0x5 at offset"),
       "ram: the obsolete RAM_SAVE_FLAG_FULL stops it too");
    bh_savevm_scan_free(sc);
    d[at] = save;

    /* A footer replaced: dev has no end before the stream's end. */
    size_t foot = want.dev0_off + 17 + want.dev0_size;
    d[foot] = 0x7f;
    sc = scan(d, len, 0, NULL);
    ok(sc && !sc->complete && sc->sections->len == 1 && sc->error &&
       strstr(sc->error, "section 'dev' instance 0 (id 0) at offset") &&
       strstr(sc->error, "no section footer"),
       "footer: a broken one stops at its section, the ones before listed: "
       "%s", sc && sc->error ? sc->error : "");
    bh_savevm_scan_free(sc);
    d[foot] = BH_SAVEVM_FOOTER;

    /* An unknown configuration subsection, and an unknown record type. */
    uint8_t *c = g_memdup2(d, len);
    memcpy(c + 8 + 1 + 4 + 13 + 2, "configuration/target-page-bitz", 30);
    sc = scan(c, len, 0, NULL);
    ok(sc && sc->error && strstr(sc->error, "configuration: subsection "
       "'configuration/target-page-bitz' at offset 26 cannot be decoded"),
       "configuration: an unknown subsection is named");
    bh_savevm_scan_free(sc);
    memcpy(c, d, len);
    c[want.ram_off] = 0x33;
    sc = scan(c, len, 0, NULL);
    ok(sc && sc->error && strstr(sc->error, "unknown record type 0x33"),
       "an unknown record type is named with its offset");
    bh_savevm_scan_free(sc);
    memcpy(c, d, len);
    c[want.ram_off] = BH_SAVEVM_PART;
    sc = scan(c, len, 0, NULL);
    ok(sc && sc->error && strstr(sc->error, "PART record at offset") &&
       strstr(sc->error, "no START record opened"),
       "a PART record before its START is refused");
    bh_savevm_scan_free(sc);
    g_free(c);

    /* x-ignore-shared: every RAM block also carries its address */
    BhStream *w = bh_stream_new_mem_writer();
    bh_stream_put_buffer(w, d, 8);
    bh_stream_put_u8(w, BH_SAVEVM_CONFIGURATION);
    bh_stream_put_be32(w, 2);
    bh_stream_put_buffer(w, "pc", 2);
    bh_stream_put_u8(w, BH_SAVEVM_SUBSECTION);
    put_str(w, "configuration/capabilities");
    bh_stream_put_be32(w, 1);
    bh_stream_put_be32(w, 1);
    put_str(w, "x-ignore-shared");
    put_header(w, BH_SAVEVM_START, 0, "ram", 0, 4);
    bh_stream_put_be64(w, 0x1000 | F_MEM_SIZE);
    put_str(w, "pc.ram");
    bh_stream_put_be64(w, 0x1000);
    bh_stream_put_be64(w, 0x7e00000000000000ull);   /* its address */
    bh_stream_put_be64(w, F_EOS);
    put_footer(w, 0);
    bh_stream_put_u8(w, BH_SAVEVM_EOF);
    size_t slen;
    const uint8_t *sd = bh_stream_mem_data(w, &slen);
    sc = scan(sd, slen, 0, NULL);
    ok(sc && sc->complete && sc->sections->len == 1 &&
       sec(sc, 0)->size == 8 + 1 + 6 + 8 + 8 + 8,
       "ram: with the x-ignore-shared capability each block's address is "
       "passed over");
    bh_savevm_scan_free(sc);
    bh_stream_close(w, NULL);

    BhError *err = NULL;
    sc = scan((const uint8_t *)"QEVN\0\0\0\3\0", 9, 0, &err);
    ok(!sc && err && strstr(bh_error_message(err), "not a savevm stream: "
       "magic is 0x5145564e"), "not a savevm stream: NULL and why");
    bh_error_clear(&err);
    sc = scan(d, len, 3000, &err);
    ok(!sc && err && strstr(bh_error_message(err), "not a power of two"),
       "a page size that is not a power of two is refused");
    bh_error_clear(&err);
    g_free(d);
}

/* A stream without footers (QEMU machine types before 2.4): walked with
 * the sizes its description gives, refused without them. */
static void test_no_footers(void)
{
    BhStream *w = bh_stream_new_mem_writer();
    bh_stream_put_be32(w, BH_SAVEVM_MAGIC);
    bh_stream_put_be32(w, BH_SAVEVM_VERSION);
    put_header(w, BH_SAVEVM_FULL, 0, "dev", 0, 1);
    bh_stream_put_buffer(w, "\x7e\0\0", 3);
    put_header(w, BH_SAVEVM_FULL, 1, "other", 4, 1);
    bh_stream_put_buffer(w, "\0\0", 2);
    bh_stream_put_u8(w, BH_SAVEVM_EOF);
    size_t len;
    const uint8_t *d = bh_stream_mem_data(w, &len);
    BhSavevmSizeHint hints[] = { { "dev", 0, 3 }, { "other", 4, 2 } };
    BhStream *r;
    BhSavevmScan *sc;

    sc = scan(d, len, 0, NULL);
    ok(sc && !sc->complete && sc->error &&
       strstr(sc->error, "section 'dev' instance 0 (id 0) at offset 8: no "
              "section footer"), "no footers: without sizes the scan stops "
       "at the first FULL section");
    bh_savevm_scan_free(sc);

    r = bh_stream_new_mem_reader(d, len);
    sc = bh_savevm_scan_sized(r, 0, hints, 2, NULL);
    bh_stream_close(r, NULL);
    ok(sc && sc->complete && sc->described && sc->sections->len == 2 &&
       sec(sc, 0)->size == 3 && sec(sc, 1)->size == 2 &&
       sec(sc, 1)->instance_id == 4 && sc->eof_offset == len - 1,
       "no footers: with the described sizes every section is listed");
    bh_savevm_scan_free(sc);

    hints[1].size = 1;
    r = bh_stream_new_mem_reader(d, len);
    sc = bh_savevm_scan_sized(r, 0, hints, 2, NULL);
    bh_stream_close(r, NULL);
    ok(sc && !sc->complete && sc->error &&
       strstr(sc->error, "its described size 1 ends at offset"),
       "no footers: a described size that ends inside the state is refused");
    bh_savevm_scan_free(sc);

    hints[1].size = 2;
    hints[1].instance_id = 5;
    r = bh_stream_new_mem_reader(d, len);
    sc = bh_savevm_scan_sized(r, 0, hints, 2, NULL);
    bh_stream_close(r, NULL);
    ok(sc && !sc->complete && sc->error &&
       strstr(sc->error, "the description lists 'other' instance 5 here"),
       "no footers: a description of another section is refused");
    bh_savevm_scan_free(sc);
    bh_stream_close(w, NULL);
}

/* blkhost's own stream: what is registered, and its trailer. */
typedef struct { uint32_t a; uint8_t n; uint16_t v[4]; } Small;

static const BhVmsd small_vmsd = {
    .name = "small", .version_id = 3, .size = sizeof(Small),
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U32(a, Small), BH_VMSTATE_U8(n, Small),
        BH_VMSTATE_VARRAY(v, Small, n, U8, U16),
        BH_VMSTATE_END_OF_LIST() },
};

static void test_own_stream(void)
{
    Small s0 = { 0x7e000000, 3, { 1, 2, 3 } }, s1 = { 5, 0, { 0 } };
    bh_savevm_register("small", 0, &small_vmsd, &s0, NULL);
    bh_savevm_register("small", 1, &small_vmsd, &s1, NULL);
    BhStream *w = bh_stream_new_mem_writer();
    bh_savevm_write_state(w, NULL);
    size_t len;
    const uint8_t *d = bh_stream_mem_data(w, &len);
    BhSavevmScan *sc = scan(d, len, 0, NULL);
    ok(sc && sc->complete && sc->sections->len == 2 && !sc->machine &&
       sec(sc, 0)->size == 4 + 1 + 6 && sec(sc, 0)->version_id == 3 &&
       sec(sc, 1)->size == 5 && sec(sc, 1)->instance_id == 1,
       "own stream: both registered sections, their sizes and versions");
    ok(sc && sc->vmdesc && strstr(sc->vmdesc, "{\"name\": \"v\", \"index\": "
       "2, \"type\": \"uint16\", \"size\": 2}") &&
       sc->vmdesc_offset + 5 + strlen(sc->vmdesc) == len,
       "own stream: the trailer describes array elements with their index, "
       "and ends the stream");
    bh_savevm_scan_free(sc);
    bh_stream_close(w, NULL);
    bh_savevm_unregister("small", 0);
    bh_savevm_unregister("small", 1);
}

/* Handler entries: what their save handler describes, when it adds up. */
static int described_save(void *opaque, BhStream *s, BhError **errp)
{
    int *mode = opaque;
    bh_stream_put_be16(s, 0xbeef);
    bh_savevm_describe_field(s, "w", -1, "uint16", *mode == 2 ? 3 : 2);
    bh_savevm_describe_subsection(s, "h/sub", 4);
    bh_stream_put_u8(s, BH_SAVEVM_SUBSECTION);
    bh_stream_put_counted_string(s, "h/sub");
    bh_stream_put_be32(s, 4);
    for (int i = 0; i < 2; i++) {
        bh_stream_put_u8(s, (uint8_t)i);
        bh_savevm_describe_field(s, "b", i, "uint8", 1);
    }
    return 0;
}

static int described_load(void *opaque, BhStream *s, int version_id,
                          void **pending, BhError **errp)
{
    return -ENOTSUP;
}

static const char *own_trailer(void)
{
    static char json[1024];
    BhStream *w = bh_stream_new_mem_writer();
    bh_savevm_write_state(w, NULL);
    size_t len;
    const uint8_t *d = bh_stream_mem_data(w, &len);
    BhSavevmScan *sc = scan(d, len, 0, NULL);
    g_strlcpy(json, sc && sc->vmdesc ? sc->vmdesc : "", sizeof(json));
    bh_savevm_scan_free(sc);
    bh_stream_close(w, NULL);
    return json;
}

static void test_handler_description(void)
{
    static const BhSavevmHandlers h = { .save = described_save,
                                        .load = described_load };
    int mode = 1;
    bh_savevm_register_handlers("h", 0, 1, &h, &mode, NULL);
    ok(strcmp(own_trailer(), "{\"page_size\": 4096, \"devices\": [{\"name\": "
              "\"h\", \"instance_id\": 0, \"vmsd_name\": \"h\", \"version\": "
              "1, \"fields\": [{\"name\": \"w\", \"type\": \"uint16\", "
              "\"size\": 2}], \"subsections\": [{\"vmsd_name\": \"h/sub\", "
              "\"version\": 4, \"fields\": [{\"name\": \"b\", \"index\": 0, "
              "\"type\": \"uint8\", \"size\": 1}, {\"name\": \"b\", "
              "\"index\": 1, \"type\": \"uint8\", \"size\": 1}]}]}]}") == 0,
       "handler: the fields and subsection its save handler describes make "
       "its entry in the trailer");
    mode = 2;
    ok(strstr(own_trailer(), "\"fields\": [{\"name\": \"data\", \"type\": "
              "\"buffer\", \"size\": 15}]}]}") != NULL,
       "handler: a description that does not add up falls back to one "
       "buffer of its size");
    bh_savevm_describe_field(NULL, "x", -1, "uint8", 1);
    bh_savevm_describe_subsection(NULL, "x/y", 1);
    ok(true, "handler: describing outside a save does nothing");
    bh_savevm_unregister("h", 0);
}

int main(void)
{
    plan(27);
    test_qemu_like();
    test_no_footers();
    test_own_stream();
    test_handler_description();
    return done();
}
