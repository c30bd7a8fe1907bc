/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 requests across clusters scattered on the host, over the file
 * driver in each aio mode with cache=none: qcow2 sends the data runs of
 * one request to the file in parallel (drivers/qcow2/data.c).  qemu-io
 * lays the clusters out in reverse order (guest cluster 0 last on the
 * host), with holes and a zero cluster between; blkhost's reads must see
 * what qemu-io wrote, qemu-io must see what blkhost wrote (read -P), and
 * qemu-img check must find the image clean.  16 threads then write and
 * read scattered clusters at once.
 */
#include <pthread.h>
#include <stdlib.h>

#include "file-test.h"

#define KiB 1024
#define MiB (1024 * 1024)
#define CS (64 * KiB)
#define NCL 32                 /* guest clusters used */

/* Run argv; its exit status (-1: could not run), output in *out. */
static int run(char **out, const char *first, ...)
{
    GPtrArray *argv = g_ptr_array_new();
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        g_ptr_array_add(argv, (char *)a);
    va_end(ap);
    g_ptr_array_add(argv, NULL);
    g_autofree char *o = NULL, *e = NULL;
    int status = -1;
    GError *err = NULL;
    if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH,
                      NULL, NULL, &o, &e, &status, &err)) {
        diag("%s: %s", first, err->message);
        g_clear_error(&err);
        status = -1;
    } else {
        status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (out)
        *out = g_strconcat(o ? o : "", e ? e : "", NULL);
    g_ptr_array_free(argv, TRUE);
    return status;
}

/* What guest cluster c holds after the qemu-io set-up: every fourth one
 * unallocated (zeros), cluster 5 a zero cluster, the others 0x40 + c. */
static uint8_t setup_byte(int c)
{
    if (c % 4 == 2 || c == 5)
        return 0;
    return 0x40 + c;
}

static bool make_image(const char *img)
{
    g_autofree char *out = NULL;
    if (run(&out, "qemu-img", "create", "-q", "-f", "qcow2", "-o",
            "cluster_size=65536", img, "4M", NULL) != 0) {
        diag("qemu-img create: %s", out);
        return false;
    }
    /* One command per cluster, last cluster first, so each allocates
     * after the previous: guest order is the reverse of host order. */
    GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(argv, g_strdup("qemu-io"));
    g_ptr_array_add(argv, g_strdup("-f"));
    g_ptr_array_add(argv, g_strdup("qcow2"));
    for (int c = NCL - 1; c >= 0; c--) {
        g_ptr_array_add(argv, g_strdup("-c"));
        if (c == 5)
            g_ptr_array_add(argv, g_strdup_printf("write -z %d %d", c * CS,
                                                  CS));
        else if (setup_byte(c))
            g_ptr_array_add(argv, g_strdup_printf("write -P 0x%x %d %d",
                                                  setup_byte(c), c * CS, CS));
        else
            g_ptr_array_add(argv, g_strdup("flush"));
    }
    g_ptr_array_add(argv, g_strdup(img));
    g_ptr_array_add(argv, NULL);
    int status = -1;
    g_autofree char *o = NULL, *e = NULL;
    bool good = g_spawn_sync(NULL, (char **)argv->pdata, NULL,
                             G_SPAWN_SEARCH_PATH, NULL, NULL, &o, &e, &status,
                             NULL) && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0;
    if (!good)
        diag("qemu-io set-up failed: %s%s", o ? o : "", e ? e : "");
    g_ptr_array_free(argv, TRUE);
    return good;
}

/* qemu-io's read -P of [off, off+len) for byte b: true if it matches. */
static bool qemu_io_sees(const char *img, uint64_t off, uint64_t len,
                         uint8_t b)
{
    g_autofree char *cmd = g_strdup_printf("read -P 0x%x %" PRIu64 " %"
                                           PRIu64, b, off, len);
    g_autofree char *out = NULL;
    int st = run(&out, "qemu-io", "-f", "qcow2", "-r", "-c", cmd, img, NULL);
    bool good = st == 0 && !strstr(out, "Pattern verification failed");
    if (!good)
        diag("qemu-io %s: %s", cmd, out);
    return good;
}

typedef struct Worker {
    BhNode *bs;
    int id, bad;
} Worker;

/* Thread id writes every 16th cluster starting at id (in place: all
 * were allocated by the single-threaded part), 3 clusters at a time
 * when they are free, then reads its clusters back. */
static void *worker_run(void *opaque)
{
    Worker *w = opaque;
    uint8_t *b = g_malloc(CS), *r = g_malloc(CS);
    for (int round = 0; round < 8; round++) {
        for (int c = w->id % 16; c < NCL; c += 16) {
            memset(b, 0x80 + w->id * 4 + round % 4, CS);
            if (bh_node_pwrite(w->bs, b, (uint64_t)c * CS, CS, 0, NULL) < 0 ||
                bh_node_pread(w->bs, r, (uint64_t)c * CS, CS, 0, NULL) < 0 ||
                memcmp(b, r, CS))
                w->bad++;
        }
    }
    g_free(b);
    g_free(r);
    return NULL;
}

#define TESTS_PER_MODE 10

static void test_mode(const char *aio)
{
    g_autofree char *name = g_strdup_printf("scatter-%s.qcow2", aio);
    const char *img = scratch(name);
    if (!make_image(img)) {
        skip(TESTS_PER_MODE, "aio=%s: qemu-img/qemu-io set-up failed", aio);
        return;
    }
    g_autofree char *o = g_strdup_printf("format=qcow2,cache=none,"
                                         "file.aio=%s", aio);
    BhError *err = NULL;
    BhNode *bs = open_node(img, o, &err);
    if (!bs) {
        skip(TESTS_PER_MODE, "aio=%s: %s", aio, err ? bh_error_message(err) : "?");
        bh_error_clear(&err);
        return;
    }
    ok(1, "aio=%s: open the scattered qcow2 with cache=none", aio);

    /* The whole span in one request, then an unaligned one across 20
     * clusters. */
    uint8_t *buf = g_malloc(NCL * CS), *want = g_malloc(NCL * CS);
    for (int c = 0; c < NCL; c++)
        memset(want + c * CS, setup_byte(c), CS);
    int ret = bh_node_pread(bs, buf, 0, NCL * CS, 0, NULL);
    ok(ret == 0 && memcmp(buf, want, NCL * CS) == 0,
       "aio=%s: one read of 32 reverse-ordered clusters (with holes and a "
       "zero cluster) equals what qemu-io wrote", aio);
    ret = bh_node_pread(bs, buf, 3 * CS + 1234, 20 * CS, 0, NULL);
    ok(ret == 0 && memcmp(buf, want + 3 * CS + 1234, 20 * CS) == 0,
       "aio=%s: an unaligned read across 21 clusters too", aio);

    /* One write over clusters 1..30 (in place, allocating and zero ones
     * mixed), not cluster-aligned at either end. */
    uint64_t woff = CS + 100, wlen = 30 * CS - 300;
    memset(buf, 0xa5, wlen);
    ret = bh_node_pwrite(bs, buf, woff, wlen, 0, NULL);
    is_int(ret, 0, "aio=%s: one write across 30 scattered clusters", aio);
    is_int(bh_node_flush(bs, NULL), 0, "aio=%s: flush", aio);
    bh_node_unref(bs);

    bool seen = qemu_io_sees(img, 0, CS, setup_byte(0)) &&
                qemu_io_sees(img, CS, 100, setup_byte(1)) &&
                qemu_io_sees(img, woff, wlen, 0xa5) &&
                qemu_io_sees(img, woff + wlen, 200, setup_byte(30)) &&
                qemu_io_sees(img, 31 * CS, CS, setup_byte(31));
    ok(seen, "aio=%s: qemu-io reads the 0xa5 span and the untouched edges "
       "(read -P)", aio);
    g_autofree char *out = NULL;
    int st = run(&out, "qemu-img", "check", "-f", "qcow2", img, NULL);
    ok(st == 0, "aio=%s: qemu-img check finds the image clean", aio);
    if (st != 0)
        diag("%s", out);

    /* Concurrent in-place writers (every cluster is allocated now). */
    bs = open_node(img, o, &err);
    ok(bs != NULL, "aio=%s: reopen", aio);
    if (!bs) {
        bh_error_clear(&err);
        skip(2, "aio=%s: reopen failed", aio);
        goto out;
    }
    pthread_t th[16];
    Worker wk[16];
    int bad = 0;
    for (int i = 0; i < 16; i++) {
        wk[i] = (Worker){ .bs = bs, .id = i };
        pthread_create(&th[i], NULL, worker_run, &wk[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        bad += wk[i].bad;
    }
    is_int(bad, 0, "aio=%s: 16 threads writing and reading scattered "
           "clusters at once each read back their own data", aio);
    bh_node_unref(bs);
    g_free(out);
    out = NULL;
    st = run(&out, "qemu-img", "check", "-f", "qcow2", img, NULL);
    ok(st == 0, "aio=%s: qemu-img check is clean after the threads", aio);
    if (st != 0)
        diag("%s", out);
out:
    g_free(buf);
    g_free(want);
}

int main(void)
{
    static const char *const aios[] = { "io_uring", "native", "threads" };
    plan(3 * TESTS_PER_MODE);
    g_autofree char *qemu_io = g_find_program_in_path("qemu-io");
    for (int a = 0; a < 3; a++) {
        if (!qemu_io)
            skip(TESTS_PER_MODE, "qemu-io is not installed");
        else
            test_mode(aios[a]);
    }
    scratch_cleanup();
    return done();
}
