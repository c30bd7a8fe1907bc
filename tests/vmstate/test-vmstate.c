/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhVmsd unit test: a round trip for every field kind, the exact bytes of
 * a small state (worked out by hand from QEMU's vmstate rules), versions
 * (older streams keep newer fields' values, newer ones are refused),
 * subsections needed and not needed, unknown subsections, hooks, bad
 * counts and bools, and truncation at every byte — each failure leaving
 * the target struct exactly as it was.
 */
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>
#include "tap.h"

typedef struct Inner {
    uint16_t a;
    int32_t b;
    uint8_t extra;       /* in subsection inner/extra when a == 0xBEEF */
} Inner;

static bool inner_extra_needed(void *opaque)
{
    return ((Inner *)opaque)->a == 0xBEEF;
}

static const BhVmsd inner_extra_vmsd = {
    .name = "inner/extra", .version_id = 1, .needed = inner_extra_needed,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U8(extra, Inner),
        BH_VMSTATE_END_OF_LIST(),
    },
};

static const BhVmsd inner_vmsd = {
    .name = "inner", .version_id = 1, .size = sizeof(Inner),
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U16(a, Inner),
        BH_VMSTATE_I32(b, Inner),
        BH_VMSTATE_END_OF_LIST(),
    },
    .subsections = (const BhVmsd *const[]) { &inner_extra_vmsd, NULL },
};

typedef struct State {
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
    int8_t i8; int16_t i16; int32_t i32; int64_t i64;
    bool flag;
    uint8_t buf[5];
    uint32_t vlen; uint8_t vbuf[16];
    uint16_t arr[3];
    uint8_t n8; uint32_t va8[4];
    uint16_t n16; int16_t va16[4];
    uint32_t n32; uint64_t va32[4];
    int32_t ni32; bool vai32[4];
    Inner inner;
    Inner inner_arr[2];
    uint8_t ninner; Inner inner_var[3];
    uint32_t v2field;       /* exists from version 2 */
    uint32_t sub_val;       /* in subsection state/sub */
    bool sub_needed;        /* not saved */
    int hook_calls[4];      /* pre_save, pre_load, post_load, post version */
} State;

static int fail_post_load;

static int st_pre_save(void *opaque, BhError **errp)
{
    State *s = opaque;
    s->hook_calls[0]++;
    if (s->u8 == 0xEE)
        return bh_error_set(errp, EPERM, "pre_save refuses u8 0xEE");
    return 0;
}

static int st_pre_load(void *opaque, BhError **errp)
{
    ((State *)opaque)->hook_calls[1]++;
    return 0;
}

static int st_post_load(void *opaque, int version_id, BhError **errp)
{
    State *s = opaque;
    s->hook_calls[2]++;
    s->hook_calls[3] = version_id;
    if (fail_post_load)
        return -EIO;   /* no message: the interpreter makes one */
    return 0;
}

static bool sub_needed(void *opaque)
{
    return ((State *)opaque)->sub_needed;
}

static const BhVmsd state_sub_vmsd = {
    .name = "state/sub", .version_id = 1, .needed = sub_needed,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U32(sub_val, State),
        BH_VMSTATE_END_OF_LIST(),
    },
};

static const BhVmsd state_extra_vmsd = {   /* known only to the "newer" */
    .name = "state/extra", .version_id = 1,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U8(u8, State),
        BH_VMSTATE_END_OF_LIST(),
    },
};

#define STATE_FIELDS                                                  \
    BH_VMSTATE_U8(u8, State), BH_VMSTATE_U16(u16, State),             \
    BH_VMSTATE_U32(u32, State), BH_VMSTATE_U64(u64, State),           \
    BH_VMSTATE_I8(i8, State), BH_VMSTATE_I16(i16, State),             \
    BH_VMSTATE_I32(i32, State), BH_VMSTATE_I64(i64, State),           \
    BH_VMSTATE_BOOL(flag, State),                                     \
    BH_VMSTATE_BUFFER(buf, State),                                    \
    BH_VMSTATE_U32(vlen, State),                                      \
    BH_VMSTATE_VBUFFER(vbuf, State, vlen, U32),                       \
    BH_VMSTATE_ARRAY(arr, State, U16),                                \
    BH_VMSTATE_U8(n8, State),                                         \
    BH_VMSTATE_VARRAY(va8, State, n8, U8, U32),                       \
    BH_VMSTATE_U16(n16, State),                                       \
    BH_VMSTATE_VARRAY(va16, State, n16, U16, I16),                    \
    BH_VMSTATE_U32(n32, State),                                       \
    BH_VMSTATE_VARRAY(va32, State, n32, U32, U64),                    \
    BH_VMSTATE_I32(ni32, State),                                      \
    BH_VMSTATE_VARRAY(vai32, State, ni32, I32, BOOL),                 \
    BH_VMSTATE_STRUCT(inner, State, &inner_vmsd, Inner),              \
    BH_VMSTATE_STRUCT_ARRAY(inner_arr, State, &inner_vmsd, Inner),    \
    BH_VMSTATE_U8(ninner, State),                                     \
    BH_VMSTATE_STRUCT_VARRAY(inner_var, State, ninner, U8, &inner_vmsd, Inner), \
    BH_VMSTATE_U32_V(v2field, State, 2),                              \
    BH_VMSTATE_END_OF_LIST()

static const BhVmsd state_vmsd = {
    .name = "state", .version_id = 2, .minimum_version_id = 1,
    .size = sizeof(State),
    .pre_save = st_pre_save, .pre_load = st_pre_load,
    .post_load = st_post_load,
    .fields = (const BhVmField[]) { STATE_FIELDS },
    .subsections = (const BhVmsd *const[]) { &state_sub_vmsd, NULL },
};

/* The same state as written by a build that knows one more subsection
 * and version 3. */
static const BhVmsd state_newer_vmsd = {
    .name = "state", .version_id = 3, .minimum_version_id = 1,
    .size = sizeof(State),
    .fields = (const BhVmField[]) { STATE_FIELDS },
    .subsections = (const BhVmsd *const[]) {
        &state_sub_vmsd, &state_extra_vmsd, NULL },
};

static void fill(State *s)
{
    memset(s, 0, sizeof(*s));
    s->u8 = 0xA5; s->u16 = 0xBEEF; s->u32 = 0xCAFEF00D;
    s->u64 = 0x0123456789ABCDEFull;
    s->i8 = -5; s->i16 = -1234; s->i32 = -123456789; s->i64 = INT64_MIN + 3;
    s->flag = true;
    memcpy(s->buf, "hello", 5);
    s->vlen = 11; memcpy(s->vbuf, "variable!!!", 11);
    s->arr[0] = 1; s->arr[1] = 0xFFFF; s->arr[2] = 3;
    s->n8 = 3; s->va8[0] = 10; s->va8[1] = 20; s->va8[2] = 0xFFFFFFFF;
    s->va8[3] = 999;   /* beyond the count: not saved */
    s->n16 = 2; s->va16[0] = -1; s->va16[1] = 32767;
    s->n32 = 4; for (int i = 0; i < 4; i++) s->va32[i] = (uint64_t)i << 40;
    s->ni32 = 3; s->vai32[0] = true; s->vai32[2] = true;
    s->inner.a = 7; s->inner.b = -7;
    s->inner_arr[0].a = 1; s->inner_arr[0].b = 2;
    s->inner_arr[1].a = 0xBEEF; s->inner_arr[1].b = 3; s->inner_arr[1].extra = 0x42;
    s->ninner = 2; s->inner_var[0].a = 0xBEEF; s->inner_var[0].extra = 9;
    s->inner_var[1].b = INT32_MIN;
    s->v2field = 0x22222222;
    s->sub_val = 0x5B5B5B5B; s->sub_needed = true;
}

static uint8_t *save_state(const BhVmsd *vmsd, State *s, int version,
                           size_t *len)
{
    BhStream *w = bh_stream_new_mem_writer();
    BhError *err = NULL;
    int r = version ? bh_vmstate_save_v(w, vmsd, s, version, &err)
                    : bh_vmstate_save(w, vmsd, s, &err);
    if (r < 0) {
        diag("save failed: %s", err ? bh_error_message(err) : "?");
        bh_error_clear(&err);
    }
    const uint8_t *d = bh_stream_mem_data(w, len);
    uint8_t *copy = g_memdup2(d, *len);
    bh_stream_close(w, NULL);
    return copy;
}

static int load_state(const BhVmsd *vmsd, State *s, const uint8_t *d,
                      size_t len, int version, BhError **errp)
{
    BhStream *r = bh_stream_new_mem_reader(d, len);
    int rc = bh_vmstate_load(r, vmsd, s, version, errp);
    if (rc == 0 && bh_stream_tell(r) != len)
        rc = bh_error_set(errp, EINVAL, "%zu bytes left over",
                          len - (size_t)bh_stream_tell(r));
    bh_stream_close(r, NULL);
    return rc;
}

static void test_roundtrip(void)
{
    State a, b;
    fill(&a);
    size_t len;
    uint8_t *d = save_state(&state_vmsd, &a, 0, &len);
    is_int(a.hook_calls[0], 1, "hooks: pre_save called once");
    memset(&b, 0, sizeof(b));
    BhError *err = NULL;
    int rc = load_state(&state_vmsd, &b, d, len, 2, &err);
    ok(rc == 0, "roundtrip: load %zu bytes%s%s", len, err ? ": " : "",
       err ? bh_error_message(err) : "");
    bh_error_clear(&err);
    ok(b.u8 == a.u8 && b.u16 == a.u16 && b.u32 == a.u32 && b.u64 == a.u64,
       "roundtrip: u8 u16 u32 u64");
    ok(b.i8 == a.i8 && b.i16 == a.i16 && b.i32 == a.i32 && b.i64 == a.i64,
       "roundtrip: i8 i16 i32 i64 (negative values)");
    ok(b.flag == true, "roundtrip: bool");
    ok(memcmp(b.buf, a.buf, 5) == 0, "roundtrip: fixed buffer");
    ok(b.vlen == 11 && memcmp(b.vbuf, a.vbuf, 11) == 0 && b.vbuf[11] == 0,
       "roundtrip: VBUFFER sized by a u32 field (only 11 bytes)");
    ok(memcmp(b.arr, a.arr, sizeof(a.arr)) == 0, "roundtrip: fixed array");
    ok(b.n8 == 3 && memcmp(b.va8, a.va8, 3 * 4) == 0 && b.va8[3] == 0,
       "roundtrip: VARRAY counted by u8 (element beyond count not sent)");
    ok(b.n16 == 2 && b.va16[0] == -1 && b.va16[1] == 32767,
       "roundtrip: VARRAY counted by u16");
    ok(b.n32 == 4 && memcmp(b.va32, a.va32, sizeof(a.va32)) == 0,
       "roundtrip: VARRAY counted by u32");
    ok(b.ni32 == 3 && b.vai32[0] && !b.vai32[1] && b.vai32[2],
       "roundtrip: VARRAY of bool counted by i32");
    ok(b.inner.a == 7 && b.inner.b == -7, "roundtrip: nested struct");
    ok(b.inner_arr[0].b == 2 && b.inner_arr[1].a == 0xBEEF &&
       b.inner_arr[1].extra == 0x42 && b.inner_arr[0].extra == 0,
       "roundtrip: struct array, nested subsection only where needed");
    ok(b.ninner == 2 && b.inner_var[0].extra == 9 &&
       b.inner_var[1].b == INT32_MIN, "roundtrip: struct VARRAY");
    ok(b.v2field == a.v2field && b.sub_val == a.sub_val,
       "roundtrip: versioned field and needed subsection");
    ok(b.hook_calls[1] == 1 && b.hook_calls[2] == 1 && b.hook_calls[3] == 2,
       "hooks: pre_load and post_load(version 2) called once");

    /* By hand: scalars up to vai32 take 119 bytes; inner 6; inner_arr 6 +
     * (6 + subsection inner/extra: 1+1+11+4+1); ninner 1; inner_var (6 +
     * 18) + 6; v2field 4; subsection state/sub 1+1+9+4+4. */
    is_int(len, 119 + 6 + 30 + 1 + 30 + 4 + 19, "roundtrip: stream length "
           "matches the hand count");
    g_free(d);
}

typedef struct { uint8_t a; uint16_t b; bool c; int32_t d; uint8_t e[2];
                 uint8_t n; uint16_t v[4]; uint32_t s; } Small;
static const BhVmsd small_sub_vmsd = {
    .name = "small/s", .version_id = 5,
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U32(s, Small), BH_VMSTATE_END_OF_LIST() },
};
static const BhVmsd small_vmsd = {
    .name = "small", .version_id = 1, .size = sizeof(Small),
    .fields = (const BhVmField[]) {
        BH_VMSTATE_U8(a, Small), BH_VMSTATE_U16(b, Small),
        BH_VMSTATE_BOOL(c, Small), BH_VMSTATE_I32(d, Small),
        BH_VMSTATE_BUFFER(e, Small), BH_VMSTATE_U8(n, Small),
        BH_VMSTATE_VARRAY(v, Small, n, U8, U16),
        BH_VMSTATE_END_OF_LIST() },
    .subsections = (const BhVmsd *const[]) { &small_sub_vmsd, NULL },
};

static void test_exact_bytes(void)
{
    Small x = { 0x11, 0x2233, true, -1, { 0xAA, 0xBB }, 2,
                { 0x0102, 0x0304, 0xFFFF, 0xFFFF }, 0xDEADBEEF };
    static const uint8_t want[] = {
        0x11, 0x22, 0x33, 0x01, 0xff, 0xff, 0xff, 0xff, 0xaa, 0xbb,
        0x02, 0x01, 0x02, 0x03, 0x04,
        0x05, 7, 's', 'm', 'a', 'l', 'l', '/', 's', 0, 0, 0, 5,
        0xde, 0xad, 0xbe, 0xef,
    };
    BhStream *w = bh_stream_new_mem_writer();
    bh_vmstate_save(w, &small_vmsd, &x, NULL);
    size_t len;
    const uint8_t *d = bh_stream_mem_data(w, &len);
    ok(len == sizeof(want) && memcmp(d, want, len) == 0,
       "exact bytes: fields, VARRAY and subsection (u8 5, name, u32 version) "
       "as QEMU writes them");
    Small y;
    memset(&y, 0, sizeof(y));
    BhStream *r = bh_stream_new_mem_reader(want, sizeof(want));
    ok(bh_vmstate_load(r, &small_vmsd, &y, 1, NULL) == 0 &&
       y.a == 0x11 && y.b == 0x2233 && y.c && y.d == -1 &&
       y.v[1] == 0x0304 && y.s == 0xDEADBEEF
       && y.v[2] == 0, "exact bytes: hand-made stream loads");
    bh_stream_close(r, NULL);
    bh_stream_close(w, NULL);
}

static void test_versions(void)
{
    State a, b, before;
    fill(&a);
    size_t len;
    uint8_t *d = save_state(&state_vmsd, &a, 1, &len);
    fill(&b);
    memset(&b, 0, offsetof(State, v2field));
    b.v2field = 777;
    BhError *err = NULL;
    int rc = load_state(&state_vmsd, &b, d, len, 1, &err);
    ok(rc == 0 && b.v2field == 777
       && b.u64 == a.u64 && b.inner_var[1].b == INT32_MIN,
       "versions: a version-1 stream loads; the version-2 field keeps its "
       "value%s%s", err ? ": " : "", err ? bh_error_message(err) : "");
    ok(b.hook_calls[3] == 1, "versions: post_load sees version 1");
    bh_error_clear(&err);

    before = b;
    rc = load_state(&state_vmsd, &b, d, len, 3, &err);
    ok(rc == -EINVAL && err && strstr(bh_error_message(err), "version 3, newer") &&
       memcmp(&b, &before, sizeof(b)) == 0,
       "versions: version 3 refused, target untouched: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    rc = load_state(&state_vmsd, &b, d, len, 0, &err);
    ok(rc == -EINVAL && err && strstr(bh_error_message(err), "older than the oldest") &&
       memcmp(&b, &before, sizeof(b)) == 0,
       "versions: version 0 (< minimum 1) refused: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    BhStream *w = bh_stream_new_mem_writer();
    ok(bh_vmstate_save_v(w, &state_vmsd, &a, 3, &err) == -EINVAL && err,
       "versions: saving at a version that does not exist is refused");
    bh_error_clear(&err);
    bh_stream_close(w, NULL);
    g_free(d);
}

static void test_subsections(void)
{
    State a, b;
    size_t len_on, len_off;
    fill(&a);
    uint8_t *on = save_state(&state_vmsd, &a, 0, &len_on);
    a.sub_needed = false;
    uint8_t *off = save_state(&state_vmsd, &a, 0, &len_off);
    is_int(len_on - len_off, 1 + 1 + 9 + 4 + 4, "subsections: not needed "
           "means not written (19 bytes less)");
    fill(&b);
    b.sub_val = 1;
    ok(load_state(&state_vmsd, &b, off, len_off, 2, NULL) == 0 &&
       b.sub_val == 1, "subsections: absent subsection leaves its field");
    ok(load_state(&state_vmsd, &b, on, len_on, 2, NULL) == 0 &&
       b.sub_val == 0x5B5B5B5B, "subsections: present subsection loads");

    /* a stream from a build with the subsection state/extra */
    size_t len_new;
    fill(&a);
    uint8_t *newer = save_state(&state_newer_vmsd, &a, 2, &len_new);
    State before;
    fill(&b);
    b.u32 = 1;
    before = b;
    BhError *err = NULL;
    int rc = load_state(&state_vmsd, &b, newer, len_new, 2, &err);
    ok(rc == -ENOENT && err && strstr(bh_error_message(err), "'state/extra'") &&
       memcmp(&b, &before, sizeof(b)) == 0,
       "subsections: unknown subsection refused, target untouched: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    g_free(on);
    g_free(off);
    g_free(newer);
}

static void test_hooks_fail(void)
{
    State a, b, before;
    fill(&a);
    size_t len;
    uint8_t *d = save_state(&state_vmsd, &a, 0, &len);
    fill(&b);
    b.u8 = 1;
    before = b;
    fail_post_load = 1;
    BhError *err = NULL;
    int rc = load_state(&state_vmsd, &b, d, len, 2, &err);
    fail_post_load = 0;
    ok(rc == -EIO && err && strstr(bh_error_message(err), "post_load") &&
       memcmp(&b, &before, sizeof(b)) == 0,
       "hooks: failing post_load aborts the load, target untouched: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    a.u8 = 0xEE;
    BhStream *w = bh_stream_new_mem_writer();
    rc = bh_vmstate_save(w, &state_vmsd, &a, &err);
    ok(rc == -EPERM && err && strstr(bh_error_message(err), "refuses") &&
       bh_stream_error(w) == -EPERM,
       "hooks: failing pre_save fails the save and the stream: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    bh_stream_close(w, NULL);
    g_free(d);
}

/* Patch one byte of a saved state and expect a refusal naming `what`. */
static void expect_bad(const char *desc, size_t at, uint8_t value,
                       const char *what, int want_errno)
{
    State a, b, before;
    fill(&a);
    size_t len;
    uint8_t *d = save_state(&state_vmsd, &a, 0, &len);
    d[at] = value;
    fill(&b);
    b.u16 = 2;
    before = b;
    BhError *err = NULL;
    int rc = load_state(&state_vmsd, &b, d, len, 2, &err);
    ok(rc == -want_errno && err && strstr(bh_error_message(err), what) &&
       memcmp(&b, &before, sizeof(b)) == 0,
       "bad input: %s refused, target untouched: %s", desc,
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    g_free(d);
}

static void test_bad_values(void)
{
    /* offsets in the state stream: flag at 30, vlen at 36..39, n8 at 57,
     * ni32 at 112..115 */
    expect_bad("bool value 2", 30, 2, "bool value 2", EINVAL);
    expect_bad("VBUFFER size 17 > 16", 39, 17, "state.vbuf: size 17 exceeds",
               EINVAL);
    expect_bad("VARRAY u8 count 5 > 4", 57, 5, "state.va8: count 5 exceeds",
               EINVAL);
    expect_bad("VARRAY i32 count negative", 112, 0x80, "is negative", EINVAL);

    State a;
    fill(&a);
    a.n16 = 9;
    BhStream *w = bh_stream_new_mem_writer();
    BhError *err = NULL;
    int rc = bh_vmstate_save(w, &state_vmsd, &a, &err);
    ok(rc == -EINVAL && bh_stream_error(w) == -EINVAL,
       "bad state: saving a count beyond capacity fails: %s",
       err ? bh_error_message(err) : "(none)");
    bh_error_clear(&err);
    bh_stream_close(w, NULL);

    static const BhVmField no_fields[] = { BH_VMSTATE_END_OF_LIST() };
    static const BhVmsd nosize = { .name = "nosize", .version_id = 1,
        .fields = no_fields };
    BhStream *r = bh_stream_new_mem_reader("", 0);
    ok(bh_vmstate_load(r, &nosize, &a, 1, &err) == -EINVAL && err,
       "bad description: load without a struct size refused");
    bh_error_clear(&err);
    bh_stream_close(r, NULL);
}

static void test_truncation(void)
{
    State a, b, before;
    fill(&a);
    /* Without subsections no prefix of the stream is a valid state.  With
     * them, a cut inside a subsection header can read as the parent's next
     * fields (QEMU's format has no length there); the savevm section footer
     * is what catches that, and test-savevm cuts such streams everywhere. */
    a.sub_needed = false;
    a.inner_arr[1].a = 1;
    a.inner_var[0].a = 1;
    size_t len;
    uint8_t *d = save_state(&state_vmsd, &a, 0, &len);
    unsigned refused = 0, untouched = 0, msg = 0;
    for (size_t cut = 0; cut < len; cut++) {
        fill(&b);
        b.i64 = 99;
        before = b;
        BhError *err = NULL;
        BhStream *r = bh_stream_new_mem_reader(d, cut);
        if (bh_vmstate_load(r, &state_vmsd, &b, 2, &err) < 0)
            refused++;
        if (memcmp(&b, &before, sizeof(b)) == 0)
            untouched++;
        if (err && strstr(bh_error_message(err), "unexpected end of stream at offset"))
            msg++;
        if (cut == len / 2)
            diag("cut at %zu: %s", cut, err ? bh_error_message(err) : "(none)");
        bh_error_clear(&err);
        bh_stream_close(r, NULL);
    }
    is_int(refused, len, "truncation: all %zu cut points refused", len);
    is_int(untouched, len, "truncation: target untouched at every cut");
    is_int(msg, len, "truncation: every error says 'unexpected end of stream "
           "at offset N'");
    g_free(d);
}

int main(void)
{
    plan(40);
    test_roundtrip();
    test_exact_bytes();
    test_versions();
    test_subsections();
    test_hooks_fail();
    test_bad_values();
    test_truncation();
    return done();
}
