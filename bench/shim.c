/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the core's path for synchronous driver callbacks costs: 4 KiB
 * random reads from N threads on the memory driver (synchronous
 * callbacks) against memory-submit (the same storage behind a native
 * submit that completes inline), each from a synchronous caller
 * (bh_node_pread) and from an asynchronous one (bh_node_submit, QD
 * requests per thread in flight).  The rows take turns, REPEAT rounds,
 * each keeping its best (a busy machine slows some turns).  Prints ops/s
 * per row and the ratios.  Run by bench/shim.sh.
 *
 *   shim MEMORY_SUBMIT_SO THREADS SECONDS QD [REPEAT]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blkhost/blkhost-plugin.h>
#include <blkhost/glib.h>
#include <blkhost/loader.h>

#define SIZE (256ull << 20)
#define BS 4096

typedef struct {
    BhNode *bs;
    bool async;
    int qd;
    gint64 deadline;
    guint64 ops;
    unsigned seed;
    GMutex lock;
    GCond cond;
    int pending;
} Worker;

static void worker_done(void *opaque, int ret, const BhError *err)
{
    Worker *w = opaque;
    if (ret < 0) {
        fprintf(stderr, "shim: read failed: %s\n",
                err ? bh_error_message(err) : "?");
        exit(1);
    }
    g_mutex_lock(&w->lock);
    if (--w->pending == 0)
        g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

static uint64_t worker_offset(Worker *w)
{
    w->seed = w->seed * 1103515245u + 12345u;
    return ((uint64_t)w->seed * 2654435761u) % (SIZE / BS) * BS;
}

static gpointer worker_main(gpointer opaque)
{
    Worker *w = opaque;
    uint8_t *buf = g_malloc((size_t)BS * w->qd);

    while (g_get_monotonic_time() < w->deadline) {
        if (!w->async) {
            for (int i = 0; i < 256; i++)
                if (bh_node_pread(w->bs, buf, worker_offset(w), BS, 0,
                                  NULL) < 0) {
                    fprintf(stderr, "shim: read failed\n");
                    exit(1);
                }
            w->ops += 256;
            continue;
        }
        w->pending = w->qd;
        for (int i = 0; i < w->qd; i++) {
            struct iovec v = { buf + (size_t)i * BS, BS };
            bh_node_submit(bh_request_new(w->bs, BH_OP_READ, worker_offset(w),
                                          BS, &v, 1, 0, worker_done, w));
        }
        g_mutex_lock(&w->lock);
        while (w->pending)
            g_cond_wait(&w->cond, &w->lock);
        g_mutex_unlock(&w->lock);
        w->ops += (guint64)w->qd;
    }
    g_free(buf);
    return NULL;
}

static double run(BhNode *bs, bool async, int nthreads, double secs, int qd)
{
    Worker *w = g_new0(Worker, nthreads);
    GThread **t = g_new(GThread *, nthreads);
    gint64 start = g_get_monotonic_time();
    guint64 ops = 0;

    for (int i = 0; i < nthreads; i++) {
        w[i] = (Worker){ .bs = bs, .async = async, .qd = qd,
                         .deadline = start + (gint64)(secs * 1e6),
                         .seed = 77u + (unsigned)i };
        g_mutex_init(&w[i].lock);
        g_cond_init(&w[i].cond);
        t[i] = g_thread_new("shim", worker_main, &w[i]);
    }
    for (int i = 0; i < nthreads; i++) {
        g_thread_join(t[i]);
        ops += w[i].ops;
        g_mutex_clear(&w[i].lock);
        g_cond_clear(&w[i].cond);
    }
    double elapsed = (double)(g_get_monotonic_time() - start) / 1e6;
    g_free(t);
    g_free(w);
    return (double)ops / elapsed;
}

static BhNode *open_filled(const char *format)
{
    g_autofree char *spec = g_strdup_printf("format=%s,size=%llu", format,
                                            SIZE);
    g_autoptr(BhOpts) o = bh_opts_parse(spec, NULL, NULL);
    BhError *err = NULL;
    BhNode *bs = bh_node_open(NULL, o, &err);
    if (!bs) {
        fprintf(stderr, "shim: %s: %s\n", format, bh_error_message(err));
        exit(1);
    }
    /* Written once, so reads copy data rather than zeros of a hole. */
    uint8_t *chunk = g_malloc(1 << 20);
    memset(chunk, 0x5a, 1 << 20);
    for (uint64_t off = 0; off < SIZE; off += 1 << 20)
        bh_node_pwrite(bs, chunk, off, 1 << 20, 0, NULL);
    g_free(chunk);
    return bs;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: shim MEMORY_SUBMIT_SO THREADS SECONDS QD "
                "[REPEAT]\n");
        return 2;
    }
    BhError *err = NULL;
    const BhPluginRecord *rec = bh_plugin_load(argv[1], &err);
    if (!rec || rec->error) {
        fprintf(stderr, "shim: cannot load %s: %s\n", argv[1],
                err ? bh_error_message(err) : rec->error);
        return 1;
    }
    int nthreads = atoi(argv[2]), qd = atoi(argv[4]);
    double secs = atof(argv[3]);
    BhNode *shim = open_filled("memory");
    BhNode *native = open_filled("memory-submit");

    int repeat = argc > 5 ? MAX(1, atoi(argv[5])) : 3;
    double ss = 0, ns = 0, sa = 0, na = 0;
    for (int i = 0; i < repeat; i++) {
        ss = MAX(ss, run(shim, false, nthreads, secs, qd));
        ns = MAX(ns, run(native, false, nthreads, secs, qd));
        sa = MAX(sa, run(shim, true, nthreads, secs, qd));
        na = MAX(na, run(native, true, nthreads, secs, qd));
    }
    printf("4k random reads, %d threads, %.1f s per turn, best of %d, "
           "async QD %d per thread\n", nthreads, secs, repeat, qd);
    printf("%-44s %12.0f ops/s\n", "memory, sync caller (inline callback)",
           ss);
    printf("%-44s %12.0f ops/s\n", "memory-submit, sync caller (submit+wait)",
           ns);
    printf("%-44s %12.0f ops/s\n", "memory, async caller (pool shim)", sa);
    printf("%-44s %12.0f ops/s\n", "memory-submit, async caller (native)",
           na);
    printf("ratio sync callers   shim/native: %.2f\n", ss / ns);
    printf("ratio async callers  shim/native: %.2f\n", sa / na);
    bh_node_unref(shim);
    bh_node_unref(native);
    return 0;
}
