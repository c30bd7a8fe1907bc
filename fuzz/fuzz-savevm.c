/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * savevm streams: the input is a whole stream ('QEVM', version 3, FULL
 * sections, EOF, and in QEMU's streams a VMDESCRIPTION after it) read by
 * bh_savevm_read_state() against a registry holding what a real host
 * has: a C device described by a BhVmsd (arrays, a variable array, a
 * versioned field, a nested struct and a subsection) at two instances,
 * and a callback entry shaped like the Lua bindings' (a counted string
 * and a counter).  A stream that loads is written back and must load
 * again: what we accept we must also be able to save.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include <blkhost/glib.h>

typedef struct FuzzTimer {
    int64_t expire;
    uint16_t flags;
} FuzzTimer;

typedef struct FuzzDev {
    uint32_t regs[4];
    uint8_t nlog;
    uint16_t log[8];
    bool irq;
    FuzzTimer timer;
    uint8_t nname;
    uint8_t name[16];
    uint64_t extra;     /* in subsection "fdev/extra" when irq is set */
} FuzzDev;

static const BhVmsd fuzz_timer_vmsd = {
    .name = "timer", .version_id = 1,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_I64(expire, FuzzTimer), BH_VMSTATE_U16(flags, FuzzTimer),
        BH_VMSTATE_END_OF_LIST() },
};

static bool fuzz_savevm_extra_needed(void *opaque)
{
    return ((FuzzDev *)opaque)->irq;
}

static const BhVmsd fuzz_extra_vmsd = {
    .name = "fdev/extra", .version_id = 1,
    .needed = fuzz_savevm_extra_needed,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U64(extra, FuzzDev), BH_VMSTATE_END_OF_LIST() },
};

static const BhVmsd fuzz_dev_vmsd = {
    .name = "fdev", .version_id = 3, .minimum_version_id = 1,
    .size = sizeof(FuzzDev),
    .fields = (const BhVmField[]) {
        BH_VMSTATE_ARRAY(regs, FuzzDev, U32),
        BH_VMSTATE_U8(nlog, FuzzDev),
        BH_VMSTATE_VARRAY(log, FuzzDev, nlog, U8, U16),
        BH_VMSTATE_BOOL_V(irq, FuzzDev, 2),
        BH_VMSTATE_STRUCT_V(timer, FuzzDev, &fuzz_timer_vmsd, FuzzTimer, 3),
        BH_VMSTATE_U8(nname, FuzzDev),
        BH_VMSTATE_VBUFFER(name, FuzzDev, nname, U8),
        BH_VMSTATE_END_OF_LIST() },
    .subsections = (const BhVmsd *const[]) { &fuzz_extra_vmsd, NULL },
};

/* The callback entry: a counted string and a counter, loaded two-phase. */
typedef struct FuzzScript {
    char name[256];
    uint32_t counter;
} FuzzScript;

static int fuzz_savevm_script_save(void *opaque, BhStream *s, BhError **errp)
{
    FuzzScript *sc = opaque;
    bh_stream_put_counted_string(s, sc->name);
    bh_stream_put_be32(s, sc->counter);
    return 0;
}

static int fuzz_savevm_script_load(void *opaque, BhStream *s, int version_id,
                                   void **pending, BhError **errp)
{
    FuzzScript *p = g_new0(FuzzScript, 1);
    bh_stream_get_counted_string(s, p->name);
    p->counter = bh_stream_get_be32(s);
    int r = bh_stream_take_error(s, errp);
    if (r < 0) {
        g_free(p);
        return r;
    }
    *pending = p;
    return 0;
}

static void fuzz_savevm_script_commit(void *opaque, void *pending)
{
    memcpy(opaque, pending, sizeof(FuzzScript));
    g_free(pending);
}

static void fuzz_savevm_script_discard(void *opaque, void *pending)
{
    g_free(pending);
}

static const BhSavevmHandlers fuzz_script_handlers = {
    .save = fuzz_savevm_script_save, .load = fuzz_savevm_script_load,
    .commit = fuzz_savevm_script_commit,
    .discard = fuzz_savevm_script_discard,
};

static FuzzDev devs[2];
static FuzzScript script;

static void fuzz_savevm_register(void)
{
    static gsize once;
    if (!g_once_init_enter(&once))
        return;
    if (bh_savevm_register("fdev", 0, &fuzz_dev_vmsd, &devs[0], NULL) < 0 ||
        bh_savevm_register("fdev", 1, &fuzz_dev_vmsd, &devs[1], NULL) < 0 ||
        bh_savevm_register_handlers("script", 0, 1, &fuzz_script_handlers,
                                    &script, NULL) < 0)
        abort();
    g_once_init_leave(&once, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    fuzz_savevm_register();
    BhError *err = NULL;
    BhStream *r = bh_stream_new_mem_reader(data, len);
    int rc = bh_savevm_read_state(r, &err);
    bh_stream_close(r, NULL);
    if (rc < 0) {
        /* A refusal must say why. */
        if (!err)
            g_error("savevm: refused with %d and no message", rc);
        bh_error_free(err);
        return 0;
    }
    bh_error_clear(&err);

    /* Round trip: what loaded is saved, and the saved stream loads. */
    BhStream *w = bh_stream_new_mem_writer();
    if (bh_savevm_write_state(w, &err) < 0)
        g_error("savevm: a loaded state cannot be saved: %s", bh_error_message(err));
    size_t wlen;
    const uint8_t *wd = bh_stream_mem_data(w, &wlen);
    g_autofree uint8_t *copy = g_memdup2(wd, wlen);
    bh_stream_close(w, NULL);
    r = bh_stream_new_mem_reader(copy, wlen);
    if (bh_savevm_read_state(r, &err) < 0)
        g_error("savevm: the saved state does not load: %s", bh_error_message(err));
    bh_stream_close(r, NULL);
    return 0;
}
