/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Listing the sections of a savevm stream without loading it
 * (bh_savevm_scan, savevm.h): what `blkhost vmstate -l` shows.
 *
 * A FULL section's state has no length on the wire: only the device that
 * wrote it knows where it ends.  Two things make the walk possible anyway:
 *   - QEMU's "ram" section (migration/ram.c) is a sequence of be64 words
 *     holding a page address and RAM_SAVE_FLAG_* bits below the page size,
 *     each followed by a payload the flags determine, up to a word with
 *     RAM_SAVE_FLAG_EOS; it is decoded exactly.
 *   - Every other section ends with a footer (0x7e, the section id), which
 *     QEMU writes since 2.4 and blkhost always.  The state may contain the
 *     same five bytes, so a footer only counts when a well-formed record
 *     follows it: a new section's header (an id not seen yet, a printable
 *     idstr), a PART/END of an open iterative section, a command, or EOF
 *     followed by the end or by the JSON trailer (or the stream ends
 *     there: a cut stream is then reported as cut before EOF).
 *   - Streams without footers (QEMU machine types before 2.4) can be
 *     walked when the caller knows the FULL sections' sizes from the
 *     stream's JSON description (bh_savevm_scan_sized); QEMU writes it
 *     after EOF, so the caller reads it from the end of the stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "blkhost/error.h"
#include "blkhost/savevm.h"
#include <blkhost/glib.h>

/* migration/ram.c's flags in the low bits of each be64 word */
#define RAM_SAVE_FLAG_FULL          0x001  /* obsolete, never written */
#define RAM_SAVE_FLAG_ZERO          0x002
#define RAM_SAVE_FLAG_MEM_SIZE      0x004
#define RAM_SAVE_FLAG_PAGE          0x008
#define RAM_SAVE_FLAG_EOS           0x010
#define RAM_SAVE_FLAG_CONTINUE      0x020
#define RAM_SAVE_FLAG_XBZRLE        0x040
#define RAM_SAVE_FLAG_HOOK          0x080  /* RDMA only */
#define RAM_SAVE_FLAG_COMPRESS_PAGE 0x100
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200

#define DEFAULT_PAGE_SIZE 4096
#define MAX_VMDESC (64u << 20)

typedef struct Scan {
    BhStream *s;
    BhSavevmScan *out;
    /* capabilities the configuration names that change RAM's layout */
    bool ignore_shared;   /* x-ignore-shared: each block has a be64 addr */
    bool mapped_ram;      /* mapped-ram: pages live outside the stream */
    const BhSavevmSizeHint *hints;   /* FULL sections' sizes, in order */
    size_t n_hints, next_hint;
} Scan;

static G_GNUC_PRINTF(3, 4) void scan_stop(Scan *sc, uint64_t off,
                                          const char *fmt, ...)
{
    va_list ap;
    if (sc->out->error)
        return;
    va_start(ap, fmt);
    sc->out->error = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    sc->out->stop_offset = off;
}

/* The stream's own error (a cut, a failed read) as the reason to stop. */
static bool scan_stream_failed(Scan *sc, uint64_t off, const char *what)
{
    const BhError *e = bh_stream_get_error(sc->s);
    if (!e)
        return false;
    scan_stop(sc, off, "%s: %s", what, bh_error_message(e));
    return true;
}

static BhSavevmSection *scan_find(Scan *sc, uint32_t id)
{
    GArray *a = sc->out->sections;
    for (guint i = 0; i < a->len; i++)
        if (g_array_index(a, BhSavevmSection, i).section_id == id)
            return &g_array_index(a, BhSavevmSection, i);
    return NULL;
}

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* Does a well-formed record start at the next unread byte? */
static bool scan_plausible_next(Scan *sc)
{
    uint8_t b[1 + 4 + 1 + 255 + 8];
    size_t n = bh_stream_peek(sc->s, b, sizeof(b), 0);
    BhSavevmSection *sec;

    if (n == 0)
        return true;   /* the stream ends here: the next read says so */
    switch (b[0]) {
    case BH_SAVEVM_EOF:
        return n == 1 || b[1] == BH_SAVEVM_VMDESCRIPTION;
    case BH_SAVEVM_START:
    case BH_SAVEVM_FULL:
        if (n < 6 || b[5] == 0 || n < 6 + (size_t)b[5] + 8 ||
            scan_find(sc, be32_at(b + 1)))
            return false;
        for (unsigned i = 0; i < b[5]; i++)
            if (b[6 + i] < 0x20 || b[6 + i] > 0x7e)
                return false;
        return true;
    case BH_SAVEVM_PART:
    case BH_SAVEVM_END:
        sec = n >= 5 ? scan_find(sc, be32_at(b + 1)) : NULL;
        return sec && sec->iterative && !sec->ended;
    case BH_SAVEVM_COMMAND:
        return n >= 5;
    default:
        return false;
    }
}

/* Read a section's state up to its footer; *size: the state's bytes. */
static bool scan_to_footer(Scan *sc, BhSavevmSection *sec, uint64_t rec_off,
                           uint64_t *size)
{
    uint8_t want[5] = { BH_SAVEVM_FOOTER, sec->section_id >> 24,
                        sec->section_id >> 16, sec->section_id >> 8,
                        sec->section_id };
    uint8_t last[5] = { 0 };
    uint64_t n = 0;

    for (;;) {
        uint8_t c = bh_stream_get_u8(sc->s);
        if (bh_stream_error(sc->s)) {
            scan_stop(sc, rec_off, "section '%s' instance %" PRIu32
                      " (id %" PRIu32 ") at offset %" PRIu64 ": no section "
                      "footer before the end of the stream, so its end "
                      "cannot be found (a stream without footers, or a "
                      "cut one)", sec->idstr, sec->instance_id,
                      sec->section_id, rec_off);
            return false;
        }
        memmove(last, last + 1, 4);
        last[4] = c;
        n++;
        if (n >= 5 && memcmp(last, want, 5) == 0 && scan_plausible_next(sc)) {
            *size = n - 5;
            return true;
        }
    }
}

/* The optional footer after a decoded RAM record list. */
static bool scan_ram_footer(Scan *sc, BhSavevmSection *sec)
{
    uint8_t b[5];
    uint64_t off = bh_stream_tell(sc->s);
    if (bh_stream_peek(sc->s, b, 5, 0) == 5 && b[0] == BH_SAVEVM_FOOTER &&
        be32_at(b + 1) == sec->section_id) {
        bh_stream_skip(sc->s, 5);
        return true;
    }
    if (scan_plausible_next(sc))
        return true;   /* a stream without footers */
    scan_stop(sc, off, "section 'ram' (id %" PRIu32 "): expected its footer "
              "or the next record after RAM_SAVE_FLAG_EOS at offset %"
              PRIu64, sec->section_id, off);
    return false;
}

/* A block name unless RAM_SAVE_FLAG_CONTINUE says it is the last one. */
static void scan_ram_block_name(Scan *sc, uint64_t flags)
{
    char name[256];
    if (!(flags & RAM_SAVE_FLAG_CONTINUE))
        bh_stream_get_counted_string(sc->s, name);
}

/* One START/PART/END record's RAM words, up to RAM_SAVE_FLAG_EOS. */
static bool scan_ram(Scan *sc, BhSavevmSection *sec, uint64_t *size)
{
    BhStream *s = sc->s;
    uint64_t mask = sc->out->page_size - 1;
    uint64_t start = bh_stream_tell(s);

    for (;;) {
        uint64_t off = bh_stream_tell(s);
        uint64_t word = bh_stream_get_be64(s);
        uint64_t flags = word & mask, addr = word & ~mask, all = flags;
        if (scan_stream_failed(sc, off, "section 'ram'"))
            return false;
        if (flags & RAM_SAVE_FLAG_MEM_SIZE) {
            /* the RAM blocks: name, used length, until they add up */
            uint64_t left = addr;
            while (left > 0) {
                char name[256];
                bh_stream_get_counted_string(s, name);
                uint64_t len = bh_stream_get_be64(s);
                if (sc->ignore_shared)
                    bh_stream_get_be64(s);   /* the block's address */
                if (sc->mapped_ram) {
                    scan_stop(sc, off, "section 'ram' (id %" PRIu32 "): a "
                              "mapped-ram stream (its pages are at fixed "
                              "file offsets) cannot be decoded",
                              sec->section_id);
                    return false;
                }
                if (scan_stream_failed(sc, off, "section 'ram'"))
                    return false;
                if (len > left) {
                    scan_stop(sc, off, "section 'ram' (id %" PRIu32 "): RAM "
                              "block '%s' of %" PRIu64 " bytes exceeds the "
                              "total announced at offset %" PRIu64,
                              sec->section_id, name, len, off);
                    return false;
                }
                left -= len;
            }
            flags &= ~(uint64_t)RAM_SAVE_FLAG_MEM_SIZE;
        }
        uint64_t kind = flags & ~(uint64_t)(RAM_SAVE_FLAG_CONTINUE |
                                            RAM_SAVE_FLAG_MULTIFD_FLUSH);
        switch (kind) {
        case 0:
            break;
        case RAM_SAVE_FLAG_ZERO:
            scan_ram_block_name(sc, flags);
            bh_stream_skip(s, 1);   /* the fill byte */
            break;
        case RAM_SAVE_FLAG_PAGE:
            scan_ram_block_name(sc, flags);
            bh_stream_skip(s, sc->out->page_size);
            break;
        case RAM_SAVE_FLAG_COMPRESS_PAGE:
            scan_ram_block_name(sc, flags);
            bh_stream_skip(s, bh_stream_get_be32(s));
            break;
        case RAM_SAVE_FLAG_XBZRLE:
            scan_ram_block_name(sc, flags);
            bh_stream_get_u8(s);    /* ENCODING_FLAG_XBZRLE */
            bh_stream_skip(s, bh_stream_get_be16(s));
            break;
        case RAM_SAVE_FLAG_EOS:
            break;
        default:
            scan_stop(sc, off, "section 'ram' (id %" PRIu32 "): RAM flags "
                      "0x%" PRIx64 " at offset %" PRIu64 " cannot be decoded"
                      "%s", sec->section_id, all, off,
                      flags & RAM_SAVE_FLAG_HOOK ? " (an RDMA hook)" : "");
            return false;
        }
        if (scan_stream_failed(sc, off, "section 'ram'"))
            return false;
        if (kind == RAM_SAVE_FLAG_EOS) {
            *size = bh_stream_tell(s) - start;
            return scan_ram_footer(sc, sec);
        }
    }
}

/* A FULL section whose size a hint gives: skip it, then its footer if
 * the stream has one; something well-formed must follow. */
static bool scan_hinted(Scan *sc, BhSavevmSection *sec, uint64_t rec_off,
                        const BhSavevmSizeHint *h, uint64_t *size)
{
    uint8_t b[5];
    if (strcmp(h->idstr, sec->idstr) != 0 ||
        h->instance_id != sec->instance_id) {
        scan_stop(sc, rec_off, "section '%s' instance %" PRIu32 " at offset "
                  "%" PRIu64 ": the description lists '%s' instance %"
                  PRIu32 " here", sec->idstr, sec->instance_id, rec_off,
                  h->idstr, h->instance_id);
        return false;
    }
    uint64_t at = bh_stream_tell(sc->s) + h->size;
    for (uint64_t left = h->size; left > 0;) {
        size_t chunk = (size_t)MIN(left, (uint64_t)1 << 20);
        bh_stream_skip(sc->s, chunk);
        left -= chunk;
    }
    if (scan_stream_failed(sc, rec_off, "section state"))
        return false;
    if (bh_stream_peek(sc->s, b, 5, 0) == 5 && b[0] == BH_SAVEVM_FOOTER &&
        be32_at(b + 1) == sec->section_id)
        bh_stream_skip(sc->s, 5);
    else if (!scan_plausible_next(sc)) {
        scan_stop(sc, rec_off, "section '%s' instance %" PRIu32 " at offset "
                  "%" PRIu64 ": its described size %" PRIu64 " ends at offset "
                  "%" PRIu64 ", where neither a footer nor a record follows",
                  sec->idstr, sec->instance_id, rec_off, h->size, at);
        return false;
    }
    *size = h->size;
    return true;
}

/* A record's state, by RAM decoding, a size hint or up to its footer. */
static bool scan_state(Scan *sc, BhSavevmSection *sec, uint64_t rec_off)
{
    uint64_t size = 0;
    bool ok;
    if (sec->iterative && strcmp(sec->idstr, "ram") == 0) {
        ok = scan_ram(sc, sec, &size);
    } else if (!sec->iterative && sc->next_hint < sc->n_hints) {
        ok = scan_hinted(sc, sec, rec_off, &sc->hints[sc->next_hint++],
                         &size);
        sc->out->described = true;
    } else {
        ok = scan_to_footer(sc, sec, rec_off, &size);
    }
    if (ok) {
        sec->size += size;
        sec->records++;
    }
    return ok;
}

static bool scan_new_section(Scan *sc, uint8_t type, uint64_t off)
{
    BhSavevmSection sec = { .offset = off, .iterative =
                            type == BH_SAVEVM_START };
    sec.section_id = bh_stream_get_be32(sc->s);
    bh_stream_get_counted_string(sc->s, sec.idstr);
    sec.instance_id = bh_stream_get_be32(sc->s);
    sec.version_id = bh_stream_get_be32(sc->s);
    if (scan_stream_failed(sc, off, "section header"))
        return false;
    if (scan_find(sc, sec.section_id)) {
        scan_stop(sc, off, "section '%s' at offset %" PRIu64 " reuses "
                  "section id %" PRIu32, sec.idstr, off, sec.section_id);
        return false;
    }
    sec.ended = !sec.iterative;
    GArray *a = sc->out->sections;
    g_array_append_val(a, sec);
    /* a section whose state cannot be decoded is named by the error,
     * not listed */
    if (!scan_state(sc, &g_array_index(a, BhSavevmSection, a->len - 1),
                    off)) {
        g_array_set_size(a, a->len - 1);
        return false;
    }
    return true;
}

static bool scan_part(Scan *sc, uint8_t type, uint64_t off)
{
    uint32_t id = bh_stream_get_be32(sc->s);
    if (scan_stream_failed(sc, off, "section header"))
        return false;
    BhSavevmSection *sec = scan_find(sc, id);
    if (!sec || !sec->iterative || sec->ended) {
        scan_stop(sc, off, "%s record at offset %" PRIu64 " for section id %"
                  PRIu32 ", which %s", type == BH_SAVEVM_PART ? "PART" :
                  "END", off, id, !sec ? "no START record opened" :
                  sec->iterative ? "has ended" : "is a FULL section");
        return false;
    }
    if (type == BH_SAVEVM_END)
        sec->ended = true;
    return scan_state(sc, sec, off);
}

/* QEMU's configuration (migration/savevm.c vmstate_configuration): a
 * be32 length and the machine type, then subsections of known shapes. */
static bool scan_configuration(Scan *sc, uint64_t off)
{
    BhStream *s = sc->s;
    uint32_t len = bh_stream_get_be32(s);
    if (scan_stream_failed(sc, off, "configuration"))
        return false;
    if (len > 255 || sc->out->machine) {
        scan_stop(sc, off, "configuration at offset %" PRIu64 ": %s", off,
                  sc->out->machine ? "a second one" :
                  "machine type longer than 255 bytes");
        return false;
    }
    char *name = g_malloc0(len + 1);
    bh_stream_get_buffer(s, name, len);
    sc->out->machine = name;
    for (;;) {
        uint8_t b[2];
        char sub[256];
        uint64_t soff = bh_stream_tell(s);
        if (bh_stream_peek(s, b, 2, 0) < 2 || b[0] != BH_SAVEVM_SUBSECTION)
            break;
        bh_stream_skip(s, 1);
        bh_stream_get_counted_string(s, sub);
        bh_stream_get_be32(s);   /* its version: every one so far is 1 */
        if (scan_stream_failed(sc, off, "configuration"))
            return false;
        if (strcmp(sub, "configuration/target-page-bits") == 0) {
            uint32_t bits = bh_stream_get_be32(s);
            if (bits >= 10 && bits <= 30)
                sc->out->page_size = (uint64_t)1 << bits;
        } else if (strcmp(sub, "configuration/capabilities") == 0) {
            uint32_t n = bh_stream_get_be32(s);
            for (uint32_t i = 0; i < n && !bh_stream_error(s); i++) {
                bh_stream_get_counted_string(s, sub);
                sc->ignore_shared |= strcmp(sub, "x-ignore-shared") == 0;
                sc->mapped_ram |= strcmp(sub, "mapped-ram") == 0;
            }
        } else if (strcmp(sub, "configuration/uuid") == 0) {
            bh_stream_skip(s, 16);
        } else {
            scan_stop(sc, soff, "configuration: subsection '%s' at offset %"
                      PRIu64 " cannot be decoded", sub, soff);
            return false;
        }
    }
    return !scan_stream_failed(sc, off, "configuration");
}

/* After EOF: QEMU's JSON description, when there is one. */
static void scan_vmdesc(Scan *sc)
{
    BhStream *s = sc->s;
    uint8_t b;
    uint64_t off = bh_stream_tell(s);
    if (bh_stream_peek(s, &b, 1, 0) < 1 || b != BH_SAVEVM_VMDESCRIPTION)
        return;
    bh_stream_skip(s, 1);
    uint32_t len = bh_stream_get_be32(s);
    if (bh_stream_error(s) || len > MAX_VMDESC)
        return;
    char *json = g_malloc(len + 1);
    if (!bh_stream_get_buffer(s, json, len)) {
        g_free(json);
        return;
    }
    json[len] = '\0';
    sc->out->vmdesc = json;
    sc->out->vmdesc_offset = off;
}

static void scan_records(Scan *sc)
{
    for (;;) {
        uint64_t off = bh_stream_tell(sc->s);
        uint8_t type = bh_stream_get_u8(sc->s);
        bool ok;
        if (scan_stream_failed(sc, off, "before the EOF marker"))
            return;
        switch (type) {
        case BH_SAVEVM_EOF:
            sc->out->complete = true;
            sc->out->eof_offset = off;
            scan_vmdesc(sc);
            return;
        case BH_SAVEVM_START:
        case BH_SAVEVM_FULL:
            ok = scan_new_section(sc, type, off);
            break;
        case BH_SAVEVM_PART:
        case BH_SAVEVM_END:
            ok = scan_part(sc, type, off);
            break;
        case BH_SAVEVM_CONFIGURATION:
            ok = scan_configuration(sc, off);
            break;
        case BH_SAVEVM_COMMAND: {
            bh_stream_get_be16(sc->s);
            bh_stream_skip(sc->s, bh_stream_get_be16(sc->s));
            ok = !scan_stream_failed(sc, off, "command");
            break;
        }
        default:
            scan_stop(sc, off, "unknown record type 0x%02x at offset %"
                      PRIu64, type, off);
            ok = false;
        }
        if (!ok)
            return;
    }
}

BhSavevmScan *bh_savevm_scan(BhStream *s, uint64_t page_size, BhError **errp)
{
    return bh_savevm_scan_sized(s, page_size, NULL, 0, errp);
}

BhSavevmScan *bh_savevm_scan_sized(BhStream *s, uint64_t page_size,
                                   const BhSavevmSizeHint *hints, size_t n,
                                   BhError **errp)
{
    uint32_t magic = bh_stream_get_be32(s);
    uint32_t version = bh_stream_get_be32(s);
    if (bh_stream_take_error(s, errp) < 0) {
        bh_error_prefix(errp, "not a savevm stream: ");
        return NULL;
    }
    if (magic != BH_SAVEVM_MAGIC) {
        bh_error_set(errp, EINVAL, "not a savevm stream: magic is 0x%08"
                     PRIx32 ", expected 0x%08x ('QEVM')", magic,
                     BH_SAVEVM_MAGIC);
        return NULL;
    }
    if (version != BH_SAVEVM_VERSION) {
        bh_error_set(errp, ENOTSUP, "savevm stream version %" PRIu32 " is "
                     "not supported; expected version %u", version,
                     BH_SAVEVM_VERSION);
        return NULL;
    }
    if (page_size && (page_size & (page_size - 1))) {
        bh_error_set(errp, EINVAL, "page size %" PRIu64 " is not a power of "
                     "two", page_size);
        return NULL;
    }
    BhSavevmScan *out = g_new0(BhSavevmScan, 1);
    out->version = version;
    out->page_size = page_size ? page_size : DEFAULT_PAGE_SIZE;
    out->sections = g_array_new(FALSE, TRUE, sizeof(BhSavevmSection));
    Scan sc = { .s = s, .out = out, .hints = hints, .n_hints = n };
    scan_records(&sc);
    return out;
}

void bh_savevm_scan_free(BhSavevmScan *scan)
{
    if (!scan)
        return;
    g_free(scan->machine);
    g_array_free(scan->sections, TRUE);
    g_free(scan->vmdesc);
    g_free(scan->error);
    g_free(scan);
}
