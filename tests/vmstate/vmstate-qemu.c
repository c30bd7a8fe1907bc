/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helper for qemu-interop.sh: speaks QEMU's savevm stream with two of
 * QEMU's own sections, "timer" and "globalstate", described here with
 * BhVmsd tables that mirror QEMU's VMStateDescriptions (cpus.c timers:
 * version 2, i64 cpu_ticks_offset, 8 unused bytes, i64 cpu_clock_offset;
 * migration/global_state.c: version 1, u32 size, 100-byte runstate).
 *
 *   vmstate-qemu write FILE RUNSTATE [break-footer]
 *       bh_savevm_write_state() of both sections, with QEMU's machine
 *       CONFIGURATION section ("none") spliced in after the header, since
 *       an incoming QEMU insists on it.  break-footer corrupts the first
 *       section footer (to show that QEMU checks what we write).
 *   vmstate-qemu read FILE
 *       FILE is the output of QEMU's `migrate` on `-machine none`: header,
 *       CONFIGURATION, RAM START/END, then FULL sections.  The header and
 *       everything from the first FULL section on (timer, globalstate,
 *       EOF) go through bh_savevm_read_state(); prints what was loaded.
 *   vmstate-qemu read-raw FILE
 *       The whole file, which blkhost must refuse at the CONFIGURATION
 *       section with a clear message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <blkhost/blkhost.h>

typedef struct Timers {
    int64_t cpu_ticks_offset;
    uint8_t unused[8];
    int64_t cpu_clock_offset;
} Timers;

static const BhVmsd timers_vmsd = {
    .name = "timer", .version_id = 2, .minimum_version_id = 1,
    .size = sizeof(Timers),
    .fields = (const BhVmField[]) {
        BH_VMSTATE_I64(cpu_ticks_offset, Timers),
        BH_VMSTATE_BUFFER(unused, Timers),
        BH_VMSTATE_I64_V(cpu_clock_offset, Timers, 2),
        BH_VMSTATE_END_OF_LIST(),
    },
};

typedef struct GlobalState {
    uint32_t size;
    uint8_t runstate[100];
} GlobalState;

static const BhVmsd globalstate_vmsd = {
    .name = "globalstate", .version_id = 1, .minimum_version_id = 1,
    .size = sizeof(GlobalState),
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U32(size, GlobalState),
        BH_VMSTATE_BUFFER(runstate, GlobalState),
        BH_VMSTATE_END_OF_LIST(),
    },
};

static Timers timers;
static GlobalState gstate;

static int do_write(const char *path, const char *runstate, bool brk)
{
    BhError *err = NULL;
    timers.cpu_ticks_offset = 1234567;
    timers.cpu_clock_offset = -42;
    g_strlcpy((char *)gstate.runstate, runstate, sizeof(gstate.runstate));
    gstate.size = (uint32_t)strlen(runstate) + 1;
    BhStream *w = bh_stream_new_mem_writer();
    if (bh_savevm_write_state(w, &err) < 0) {
        fprintf(stderr, "write: %s\n", bh_error_message(err));
        return 1;
    }
    size_t len;
    const uint8_t *d = bh_stream_mem_data(w, &len);
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, d, 8);
    /* CONFIGURATION: u8 7, then QEMU's "configuration" vmstate: u32 length
     * and the machine type name. */
    static const uint8_t config[] = { 7, 0, 0, 0, 4, 'n', 'o', 'n', 'e' };
    g_byte_array_append(out, config, sizeof(config));
    g_byte_array_append(out, d + 8, (guint)(len - 8));
    if (brk) {
        /* the first footer: header 8 + config 9 + section header
         * 1+4+1+5+4+4 + body 24 */
        size_t foot = 8 + 9 + 19 + 24;
        if (out->data[foot] != 0x7e) {
            fprintf(stderr, "footer not where expected\n");
            return 1;
        }
        out->data[foot] = 0x7f;
    }
    bh_stream_close(w, NULL);
    GError *gerr = NULL;
    if (!g_file_set_contents(path, (char *)out->data, out->len, &gerr)) {
        fprintf(stderr, "%s\n", gerr->message);
        return 1;
    }
    g_byte_array_unref(out);
    return 0;
}

static int do_read(const char *path, bool raw)
{
    GError *err = NULL;
    g_autofree char *data = NULL;
    gsize len;
    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "%s\n", err->message);
        return 1;
    }
    /* the first FULL section header: u8 4, u32 id, u8 5, "timer" */
    size_t start = raw ? 8 : 0;
    for (size_t i = 8; !raw && i + 11 <= len; i++) {
        if (data[i] == 4 && data[i + 5] == 5 &&
            memcmp(data + i + 6, "timer", 5) == 0) {
            start = i;
            break;
        }
    }
    if (!start) {
        fprintf(stderr, "no FULL 'timer' section in %s\n", path);
        return 1;
    }
    g_autoptr(GByteArray) in = g_byte_array_new();
    g_byte_array_append(in, (guint8 *)data, 8);
    g_byte_array_append(in, (guint8 *)data + start, (guint)(len - start));
    memset(&timers, 0x55, sizeof(timers));
    BhStream *r = bh_stream_new_mem_reader(in->data, in->len);
    BhError *rerr = NULL;
    int rc = bh_savevm_read_state(r, &rerr);
    uint64_t used = bh_stream_tell(r);
    bh_stream_close(r, NULL);
    if (rc < 0) {
        fprintf(stderr, "read: %s\n", bh_error_message(rerr));
        bh_error_free(rerr);
        return 1;
    }
    printf("runstate=%.*s size=%u ticks=%" PRId64 " clock=%" PRId64
           " unused=%02x consumed=%" PRIu64 " of %u after=%02x\n",
           (int)MIN(gstate.size, 100), (char *)gstate.runstate, gstate.size,
           timers.cpu_ticks_offset, timers.cpu_clock_offset,
           timers.unused[0], used, in->len,
           used < in->len ? in->data[used] : 0xff);
    return 0;
}

int main(int argc, char **argv)
{
    BhError *err = NULL;
    if (bh_savevm_register("timer", 0, &timers_vmsd, &timers, &err) < 0 ||
        bh_savevm_register("globalstate", 0, &globalstate_vmsd, &gstate,
                           &err) < 0) {
        fprintf(stderr, "%s\n", bh_error_message(err));
        return 1;
    }
    if (argc >= 4 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], argv[3],
                        argc > 4 && strcmp(argv[4], "break-footer") == 0);
    if (argc == 3 && strcmp(argv[1], "read") == 0)
        return do_read(argv[2], false);
    if (argc == 3 && strcmp(argv[1], "read-raw") == 0)
        return do_read(argv[2], true);
    fprintf(stderr, "usage: vmstate-qemu write FILE RUNSTATE [break-footer]"
            " | read FILE | read-raw FILE\n");
    return 2;
}
