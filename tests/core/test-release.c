/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A node closes on the thread that drops its last owner's reference, even
 * when the request it waited for completed on another thread a moment
 * before (request_release_node and node_wait_requests in the core).  The
 * caller here submits a write, waits for its callback, unrefs the node
 * and at once opens the same file again: that open must find the image
 * lock released, and a qcow2 image must have been closed (flushed, clean)
 * by then.  Before the fix the request still held the node after its
 * callback, so the close ran later on the core's pool: the reopen found
 * the file locked, or a process exiting at once never flushed qcow2
 * metadata.  The images go in a fresh temporary folder of this run's
 * own (the ASan build runs the same test at the same time).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib/gstdio.h>

#include <blkhost/blkhost.h>

#include "tap.h"

#define ROUNDS 200

typedef struct {
    GMutex lock;
    GCond cond;
    bool done;
    int ret;
} Waiter;

static void waiter_done(void *opaque, int ret, const BhError *err)
{
    Waiter *w = opaque;
    (void)err;
    g_mutex_lock(&w->lock);
    w->ret = ret;
    w->done = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

static BhNode *open_image(const char *path, const char *format, char **msg)
{
    g_autoptr(BhOpts) o = bh_opts_new();
    BhError *err = NULL;

    bh_opts_set(o, "format", format);
    BhNode *bs = bh_node_open(path, o, &err);
    if (!bs) {
        *msg = g_strdup(bh_error_message(err));
        bh_error_free(err);
    }
    return bs;
}

/* ROUNDS of submit, wait, unref, reopen; returns the failed reopens. */
static int rounds(const char *path, const char *format, char **first_msg)
{
    static uint8_t buf[65536];
    int failed = 0;

    for (int i = 0; i < ROUNDS; i++) {
        char *msg = NULL;
        BhNode *bs = open_image(path, format, &msg);
        if (!bs) {
            failed++;
            if (!*first_msg)
                *first_msg = msg;
            else
                g_free(msg);
            /* Let the late close happen before the next round. */
            g_usleep(20000);
            continue;
        }
        Waiter w = { .done = false };
        g_mutex_init(&w.lock);
        g_cond_init(&w.cond);
        memset(buf, i, sizeof(buf));
        struct iovec iov = { buf, sizeof(buf) };
        bh_node_submit(bh_request_new(bs, BH_OP_WRITE,
                                      (uint64_t)(i % 64) * sizeof(buf),
                                      sizeof(buf), &iov, 1, 0,
                                      waiter_done, &w));
        g_mutex_lock(&w.lock);
        while (!w.done)
            g_cond_wait(&w.cond, &w.lock);
        g_mutex_unlock(&w.lock);
        g_mutex_clear(&w.lock);
        g_cond_clear(&w.cond);
        bh_node_unref(bs);
    }
    return failed;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    g_autofree char *dir = g_dir_make_tmp("blkhost-release-XXXXXX", NULL);
    if (!dir) {
        printf("Bail out! cannot make a temporary folder\n");
        return 1;
    }
    plan(4);
    const char *formats[] = { "raw", "qcow2" };
    for (int f = 0; f < 2; f++) {
        g_autofree char *path = g_strdup_printf("%s/release.%s", dir,
                                                formats[f]);
        g_autoptr(BhOpts) co = bh_opts_new();
        BhError *err = NULL;
        bh_opts_set(co, "size", "4M");
        if (!bh_create(path, formats[f], co, &err)) {
            printf("Bail out! cannot create %s: %s\n", path,
                   bh_error_message(err));
            return 1;
        }
        char *msg = NULL;
        int failed = rounds(path, formats[f], &msg);
        ok(failed == 0, "%s: %d rounds of submit, callback, unref, reopen: "
           "the reopen always finds the lock released (%d failed)",
           formats[f], ROUNDS, failed);
        if (msg)
            diag("first failure: %s", msg);
        g_free(msg);
        /* The last round's node is closed by now: the image reads back
         * the last write and (qcow2) its metadata is on disk. */
        BhNode *bs = open_image(path, formats[f], &msg);
        uint8_t got[4096];
        int r = bs ? bh_node_pread(bs, got, (uint64_t)((ROUNDS - 1) % 64) *
                                   65536, sizeof(got), 0, NULL) : -EIO;
        ok(r == 0 && got[0] == (uint8_t)(ROUNDS - 1) &&
           got[4095] == (uint8_t)(ROUNDS - 1),
           "%s: the last write reads back after the close", formats[f]);
        if (bs)
            bh_node_unref(bs);
        g_free(msg);
    }
    for (int f = 0; f < 2; f++) {
        g_autofree char *path = g_strdup_printf("%s/release.%s", dir,
                                                formats[f]);
        g_unlink(path);
    }
    g_rmdir(dir);
    return done();
}
