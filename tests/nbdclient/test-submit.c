/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nbd driver's asynchronous path: requests built with
 * bh_request_new() and started with bh_node_submit(), many in flight at
 * once, with buffers in several pieces.  Run by submit.sh against an
 * nbdkit memory export:  test-nbdclient-submit URI
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <blkhost/blkhost.h>

#include "tap.h"

#define N 32
#define LEN (96 * 1024)
#define MiB (1024 * 1024)

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left, failed, first_err;
} Batch;

static void submit_done(void *opaque, int ret, const BhError *err)
{
    Batch *b = opaque;
    pthread_mutex_lock(&b->lock);
    if (ret < 0 && !b->failed++) {
        b->first_err = ret;
        diag("request failed: %s", err ? bh_error_message(err) : "(no message)");
    }
    if (--b->left == 0)
        pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void batch_wait(Batch *b)
{
    pthread_mutex_lock(&b->lock);
    while (b->left > 0)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

static void batch_init(Batch *b, int n)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->left = n;
}

/* One request alone, waited for. */
static int submit_one(BhNode *bs, BhOp op, uint64_t off, uint64_t len,
                      uint32_t flags)
{
    Batch b;
    batch_init(&b, 1);
    bh_node_submit(bh_request_new(bs, op, off, len, NULL, 0, flags,
                                  submit_done, &b));
    batch_wait(&b);
    return b.failed ? b.first_err : 0;
}

static void fill(uint8_t *p, size_t n, int seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

int main(int argc, char **argv)
{
    BhError *err = NULL;
    if (argc != 2) {
        fprintf(stderr, "usage: %s URI\n", argv[0]);
        return 2;
    }
    plan(7);
    BhOpts *opts = bh_opts_parse("format=nbd,discard=unmap,connections=2",
                                 NULL, &err);
    BhNode *bs = opts ? bh_node_open(argv[1], opts, &err) : NULL;
    bh_opts_free(opts);
    if (!ok(bs != NULL, "the export opens as an nbd node (2 connections)")) {
        diag("%s", err ? bh_error_message(err) : "?");
        return done();
    }

    /* 32 writes in flight, each from three pieces of uneven length. */
    static uint8_t wbuf[N][LEN], rbuf[N][LEN];
    Batch b;
    batch_init(&b, N);
    for (int i = 0; i < N; i++) {
        fill(wbuf[i], LEN, i + 1);
        struct iovec iov[3] = {
            { wbuf[i], 1000 }, { wbuf[i] + 1000, 40000 },
            { wbuf[i] + 41000, LEN - 41000 },
        };
        bh_node_submit(bh_request_new(bs, BH_OP_WRITE, (uint64_t)i * MiB + 512,
                                      LEN, iov, 3, i % 4 ? 0 : BH_IO_FUA,
                                      submit_done, &b));
    }
    batch_wait(&b);
    is_int(b.failed, 0, "32 writes of 3 pieces each, in flight together, "
           "all succeed (every 4th FUA)");

    /* Read them back, two pieces each, all at once. */
    batch_init(&b, N);
    for (int i = 0; i < N; i++) {
        struct iovec iov[2] = { { rbuf[i], 4096 },
                                { rbuf[i] + 4096, LEN - 4096 } };
        bh_node_submit(bh_request_new(bs, BH_OP_READ, (uint64_t)i * MiB + 512,
                                      LEN, iov, 2, 0, submit_done, &b));
    }
    batch_wait(&b);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += memcmp(rbuf[i], wbuf[i], LEN) == 0;
    ok(b.failed == 0 && same == N, "32 reads of 2 pieces each return what "
       "was written (%d of %d equal)", same, N);

    is_int(submit_one(bs, BH_OP_FLUSH, 0, 0, 0), 0, "a flush request");
    is_int(submit_one(bs, BH_OP_WRITE_ZEROES, 512, 4096,
                      BH_IO_FAST_ZERO | BH_IO_MAY_UNMAP), 0,
           "a fast write-zeroes request (nbdkit memory offers it)");
    is_int(submit_one(bs, BH_OP_DISCARD, 2 * MiB, MiB, 0), 0,
           "a discard request");
    uint8_t back[4096];
    memset(back, 0xff, sizeof back);
    int r = bh_node_pread(bs, back, 512, sizeof back, 0, NULL);
    int zero = 1;
    for (size_t i = 0; i < sizeof back; i++)
        zero &= back[i] == 0;
    ok(r == 0 && zero, "the zeroed range reads back as zeros");
    bh_node_unref(bs);
    return done();
}
