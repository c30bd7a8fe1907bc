/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Microbenchmark of the file driver without NBD: 4k random O_DIRECT reads
 * (or writes) of a file, either submitted by one thread that keeps QD
 * requests in flight through bh_node_submit, or issued by QD threads that
 * each call bh_node_pread/bh_node_pwrite and wait (the synchronous path a
 * worker pool takes).  Prints "IOPS".  Built and run by bench/submit.sh.
 *
 *   submit-bench FILE aio=io_uring submit|sync read|write QD SECONDS [BS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <blkhost/blkhost.h>

static BhNode *bs;
static uint64_t blocks, bsize;
static int qd;
static bool writes;
static volatile int stop;
static GMutex lock;
static GCond cond;
static uint64_t done_count;
static int in_flight;

static uint64_t rnd(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench_done(void *opaque, int ret, const BhError *err)
{
    if (ret < 0) {
        fprintf(stderr, "submit-bench: %s\n", err ? bh_error_message(err) : "?");
        exit(1);
    }
    g_mutex_lock(&lock);
    done_count++;
    in_flight--;
    g_cond_signal(&cond);
    g_mutex_unlock(&lock);
}

/* One thread, qd requests in flight through bh_node_submit. */
static uint64_t run_submit(double secs)
{
    uint8_t *bufs;
    uint64_t seed = 88172645463325252ull;
    if (posix_memalign((void **)&bufs, 4096, (size_t)qd * bsize))
        abort();
    memset(bufs, 0x5a, (size_t)qd * bsize);
    double end = now() + secs;
    int slot = 0;
    g_mutex_lock(&lock);
    while (now() < end) {
        while (in_flight >= qd)
            g_cond_wait(&cond, &lock);
        in_flight++;
        g_mutex_unlock(&lock);
        struct iovec iov = { bufs + (size_t)slot * bsize, bsize };
        slot = (slot + 1) % qd;
        uint64_t off = (rnd(&seed) % blocks) * bsize;
        bh_node_submit(bh_request_new(bs, writes ? BH_OP_WRITE : BH_OP_READ,
                                      off, bsize, &iov, 1, 0, bench_done,
                                      NULL));
        g_mutex_lock(&lock);
    }
    while (in_flight)
        g_cond_wait(&cond, &lock);
    uint64_t n = done_count;
    g_mutex_unlock(&lock);
    free(bufs);
    return n;
}

static gpointer sync_thread(gpointer opaque)
{
    uint64_t seed = 88172645463325252ull + (uintptr_t)opaque * 7919, n = 0;
    uint8_t *buf;
    if (posix_memalign((void **)&buf, 4096, bsize))
        abort();
    memset(buf, 0x5a, bsize);
    while (!stop) {
        uint64_t off = (rnd(&seed) % blocks) * bsize;
        BhError *err = NULL;
        int r = writes ? bh_node_pwrite(bs, buf, off, bsize, 0, &err)
                       : bh_node_pread(bs, buf, off, bsize, 0, &err);
        if (r < 0) {
            fprintf(stderr, "submit-bench: %s\n", bh_error_message(err));
            exit(1);
        }
        n++;
    }
    free(buf);
    g_mutex_lock(&lock);
    done_count += n;
    g_mutex_unlock(&lock);
    return NULL;
}

/* qd threads, each one synchronous request at a time. */
static uint64_t run_sync(double secs)
{
    GThread **th = g_new(GThread *, qd);
    for (int i = 0; i < qd; i++)
        th[i] = g_thread_new("sync", sync_thread, GINT_TO_POINTER(i));
    g_usleep((gulong)(secs * 1e6));
    stop = 1;
    for (int i = 0; i < qd; i++)
        g_thread_join(th[i]);
    g_free(th);
    return done_count;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: submit-bench FILE OPTS submit|sync "
                "read|write QD SECONDS [BS]\n");
        return 2;
    }
    bsize = argc > 7 ? strtoull(argv[7], NULL, 0) : 4096;
    g_autofree char *optstr = g_strdup_printf("format=file,cache=none,%s",
                                              argv[2]);
    BhError *err = NULL;
    g_autoptr(BhOpts) o = bh_opts_parse(optstr, NULL, &err);
    if (o)
        bs = bh_node_open(argv[1], o, &err);
    if (!bs) {
        fprintf(stderr, "submit-bench: %s\n", err ? bh_error_message(err) : "?");
        return 1;
    }
    blocks = (uint64_t)bh_node_size(bs) / bsize;
    writes = strcmp(argv[4], "write") == 0;
    qd = atoi(argv[5]);
    double secs = atof(argv[6]);
    double t0 = now();
    uint64_t n = strcmp(argv[3], "submit") == 0 ? run_submit(secs)
                                                : run_sync(secs);
    double t = now() - t0;
    printf("%.0f\n", n / t);
    bh_node_unref(bs);
    return 0;
}
