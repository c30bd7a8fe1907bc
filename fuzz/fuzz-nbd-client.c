/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nbd client driver (drivers/nbd, over libnbd) against a hostile
 * server: the input is what the server says.  A fake server thread
 * listens on a Unix socket in a private directory, and the harness opens
 * the driver on nbd+unix:///?socket=... (read-write, one connection,
 * retry-timeout=0 so a lost server fails requests at once), then reads,
 * asks block status, writes, zeroes, trims, flushes and reads again.
 * The socket is unlinked once the driver is connected, so the driver's
 * reconnection attempts fail at once instead of reaching the next input.
 *
 * The input is a list of records, each [ctl:1][len:2, big-endian][len
 * bytes], sent in order.  ctl bit 0: first read the client's next message
 * (its 4 flag bytes, then an option or a request, whole, a write's
 * payload included); bit 1: patch bytes 8.. of the record with what
 * that message carries, the option number (option replies) or the
 * cookie (simple and structured replies alike), so that mutated replies
 * still match the request they answer.  When the records run out, or the
 * client sends nothing more after reading all it was sent (it waits for
 * more of a reply than it got), the server closes
 * the connection; the driver must then fail cleanly.
 *
 * "Says nothing" is decided by looking at the client, not by a clock
 * alone: the client is stuck when every other thread of the process is
 * asleep and none has run between two looks 0.25 ms apart (their
 * states in /proc/self/task, their CPU time in schedstat), and it has read
 * all it was sent.  Only a client that keeps running without sending is
 * cut off by the clock, after FUZZ_NBD_STALL_MS (1000).  A fixed 10 ms
 * wait used to end almost every input and cost three quarters of the run;
 * the looks also end an exchange at the same point on a loaded machine as
 * on an idle one, so a kept input replays the same way.  Neither decides
 * what a finding is.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "fuzz-util.h"
#include "nbd-proto.h"
#include <blkhost/glib.h>

typedef struct FuzzNbdServer {
    int lfd;                    /* listening; closed once accepted */
    const uint8_t *data;
    size_t len;
    int stall_ms;
    bool verbose;
} FuzzNbdServer;

static char *fuzz_nbd_dir, *fuzz_nbd_path, *fuzz_nbd_uri;

/* What one look saw of the other threads: their ids and CPU times, and
 * whether all of them were asleep. */
#define FUZZ_NBD_MAX_THREADS 64
typedef struct {
    int n;
    bool asleep;
    long tid[FUZZ_NBD_MAX_THREADS];
    unsigned long long ran[FUZZ_NBD_MAX_THREADS];
} FuzzNbdLook;

/* A small file of /proc/self/task/TID into buf; false if it went away. */
static bool fuzz_nbd_proc(long tid, const char *what, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%ld/%s", tid, what);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = 0;
    return n > 0;
}

static void fuzz_nbd_look(FuzzNbdLook *l)
{
    long self = (long)gettid();
    char buf[512];
    l->n = 0;
    l->asleep = true;
    DIR *d = opendir("/proc/self/task");
    if (!d) {
        l->asleep = false;
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        long tid = atol(e->d_name);
        if (tid <= 0 || tid == self)
            continue;
        if (l->n == FUZZ_NBD_MAX_THREADS ||
            !fuzz_nbd_proc(tid, "stat", buf, sizeof(buf))) {
            l->asleep = false;
            break;
        }
        /* "tid (comm) S ...": the name may hold anything but the last ')' */
        const char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ' || p[2] != 'S')
            l->asleep = false;
        l->tid[l->n] = tid;
        l->ran[l->n] = fuzz_nbd_proc(tid, "schedstat", buf, sizeof(buf))
            ? strtoull(buf, NULL, 10) : 0;
        l->n++;
    }
    closedir(d);
}

/* Whether two looks saw the same threads, all asleep, none having run. */
static bool fuzz_nbd_quiet(const FuzzNbdLook *a, const FuzzNbdLook *b)
{
    if (!a->asleep || !b->asleep || a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (a->tid[i] != b->tid[i] || a->ran[i] != b->ran[i])
            return false;
    return true;
}

/* Read exactly n bytes (n may be 0 to only wait for the next message).
 * 0 on success, -1 when the client closed, failed or stalled. */
static int fuzz_nbd_read(FuzzNbdServer *sv, int fd, void *buf, size_t n)
{
    size_t done = 0;
    FuzzNbdLook looks[2];
    int nlooks = 0, waited = 0;
    while (done < n) {
        struct pollfd p = { fd, POLLIN, 0 };
        /* A quarter of a millisecond between looks. */
        struct timespec slice = { 0, 250000 };
        int r = ppoll(&p, 1, &slice, NULL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            /* Still reading what it was sent: not stuck. */
            int outq = 0;
            if (ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0) {
                nlooks = 0;
                continue;
            }
            if (++waited >= 4 * sv->stall_ms)
                return -1;
            FuzzNbdLook *l = &looks[nlooks & 1];
            fuzz_nbd_look(l);
            if (nlooks++ && fuzz_nbd_quiet(l, &looks[nlooks & 1])) {
                if (sv->verbose)
                    fprintf(stderr, "fuzz-nbd-client: the client is stuck "
                            "(%d looks, %.2f ms)\n", nlooks, waited / 4.0);
                return -1;
            }
            continue;
        }
        nlooks = 0;
        waited = 0;
        ssize_t k = recv(fd, (char *)buf + done, n - done, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        done += (size_t)k;
    }
    return 0;
}

/* Discard n bytes (a write's payload, an option's data). */
static int fuzz_nbd_skip(FuzzNbdServer *sv, int fd, uint64_t n)
{
    char sink[65536];
    while (n) {
        size_t k = n < sizeof(sink) ? (size_t)n : sizeof(sink);
        if (fuzz_nbd_read(sv, fd, sink, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

typedef struct {
    bool got_flags;
    bool is_option;
    uint32_t option;
    uint8_t cookie[8];
} FuzzNbdLast;

/* The client's next message, whole. */
static int fuzz_nbd_next_message(FuzzNbdServer *sv, int fd, FuzzNbdLast *m)
{
    uint8_t hdr[28];
    /* The client's flags are never answered: they come with its first
     * option. */
    if (!m->got_flags) {
        m->got_flags = true;
        if (fuzz_nbd_read(sv, fd, hdr, 4) < 0)
            return -1;
    }
    if (fuzz_nbd_read(sv, fd, hdr, 4) < 0)
        return -1;
    uint32_t magic = (uint32_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 |
                     hdr[3];
    if (magic == (uint32_t)(NBD_IHAVEOPT >> 32)) {
        if (fuzz_nbd_read(sv, fd, hdr + 4, 12) < 0)
            return -1;
        m->is_option = true;
        memcpy(&m->option, hdr + 8, 4);
        uint32_t len;
        memcpy(&len, hdr + 12, 4);
        len = GUINT32_FROM_BE(len);
        if (sv->verbose)
            fprintf(stderr, "fuzz-nbd-client: option %u, %u bytes\n",
                    GUINT32_FROM_BE(m->option), len);
        return fuzz_nbd_skip(sv, fd, len);
    }
    if (fuzz_nbd_read(sv, fd, hdr + 4, 24) < 0)
        return -1;
    m->is_option = false;
    memcpy(m->cookie, hdr + 8, 8);
    uint16_t type = (uint16_t)(hdr[6] << 8 | hdr[7]);
    uint32_t len = (uint32_t)hdr[24] << 24 | hdr[25] << 16 | hdr[26] << 8 |
                   hdr[27];
    if (sv->verbose)
        fprintf(stderr, "fuzz-nbd-client: request type %u, %u bytes\n",
                type, len);
    return type == NBD_CMD_WRITE ? fuzz_nbd_skip(sv, fd, len) : 0;
}

static gpointer fuzz_nbd_server(gpointer opaque)
{
    FuzzNbdServer *sv = opaque;
    int fd = accept4(sv->lfd, NULL, NULL, SOCK_CLOEXEC);
    /* One connection per input: a reconnection finds no socket. */
    close(sv->lfd);
    unlink(fuzz_nbd_path);
    if (fd < 0)
        return NULL;
    FuzzNbdLast last = { 0 };
    size_t pos = 0;
    while (pos + 3 <= sv->len) {
        uint8_t ctl = sv->data[pos];
        size_t n = (size_t)sv->data[pos + 1] << 8 | sv->data[pos + 2];
        pos += 3;
        n = MIN(n, sv->len - pos);
        if ((ctl & 1) && fuzz_nbd_next_message(sv, fd, &last) < 0)
            break;
        g_autofree uint8_t *rec = g_memdup2(sv->data + pos, n);
        pos += n;
        if (ctl & 2) {
            if (last.is_option && n >= 12)
                memcpy(rec + 8, &last.option, 4);
            else if (!last.is_option && n >= 16)
                memcpy(rec + 8, last.cookie, 8);
        }
        size_t done = 0;
        while (done < n) {
            ssize_t k = send(fd, rec + done, n - done, MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                break;
            done += (size_t)k;
        }
        if (done < n)
            break;
    }
    close(fd);
    return NULL;
}

static void fuzz_nbd_setup(void)
{
    fuzz_nbd_dir = g_dir_make_tmp("fuzz-nbd-client-XXXXXX", NULL);
    if (!fuzz_nbd_dir)
        abort();
    fuzz_nbd_path = g_build_filename(fuzz_nbd_dir, "sock", NULL);
    fuzz_nbd_uri = g_strdup_printf("nbd+unix:///?socket=%s", fuzz_nbd_path);
}

static void fuzz_nbd_cleanup(void)
{
    unlink(fuzz_nbd_path);
    rmdir(fuzz_nbd_dir);
}

static int fuzz_nbd_listen(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    g_strlcpy(sa.sun_path, fuzz_nbd_path, sizeof(sa.sun_path));
    unlink(fuzz_nbd_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 4) < 0)
        abort();
    return fd;
}

/* What a block layer asks of an export, each step allowed to fail. */
static void fuzz_nbd_io(BhNode *node, bool verbose)
{
    int64_t ssize = bh_node_size(node);
    uint64_t size = ssize > 0 ? (uint64_t)ssize : 0;
    uint8_t buf[4096];
    BhError *err = NULL;
    size_t n = (size_t)MIN(size, (uint64_t)sizeof(buf));
    int steps[7];

    steps[0] = n ? bh_node_pread(node, buf, 0, n, 0, &err) : 0;
    if (err && verbose)
        fprintf(stderr, "fuzz-nbd-client: read: %s\n", bh_error_message(err));
    g_clear_pointer(&err, bh_error_free);
    uint64_t pnum = 0;
    uint32_t status = 0;
    steps[1] = size ? bh_node_block_status(node, 0, size, &pnum, &status,
                                           NULL) : 0;
    memset(buf, 0x5a, sizeof(buf));
    steps[2] = n ? bh_node_pwrite(node, buf, 0, n, BH_IO_FUA, NULL) : 0;
    steps[3] = size >= 2 * sizeof(buf)
        ? bh_node_write_zeroes(node, sizeof(buf), sizeof(buf), 0, NULL) : 0;
    steps[4] = size >= 2 * sizeof(buf)
        ? bh_node_discard(node, 0, sizeof(buf), NULL) : 0;
    steps[5] = bh_node_flush(node, NULL);
    steps[6] = size >= 512
        ? bh_node_pread(node, buf, size - 512, 512, 0, NULL) : 0;
    if (verbose)
        fprintf(stderr, "fuzz-nbd-client: size %" G_GUINT64_FORMAT ", read %d, "
                "status %d (%" G_GUINT64_FORMAT " bytes, flags %u), write %d, "
                "zero %d, trim %d, flush %d, read %d\n", size, steps[0],
                steps[1], pnum, status, steps[2], steps[3], steps[4],
                steps[5], steps[6]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    if (!fuzz_nbd_uri) {
        fuzz_nbd_setup();
        atexit(fuzz_nbd_cleanup);
    }
    const char *ms = g_getenv("FUZZ_NBD_STALL_MS");
    const char *v = g_getenv("FUZZ_VERBOSE");
    FuzzNbdServer sv = { fuzz_nbd_listen(), data, len,
                         ms ? atoi(ms) : 1000, v && *v && strcmp(v, "0") };
    gint64 t0 = g_get_monotonic_time();
    GThread *t = g_thread_new("fuzz-server", fuzz_nbd_server, &sv);

    g_autoptr(BhOpts) opts = bh_opts_new();
    bh_opts_set(opts, "format", "nbd");
    bh_opts_set(opts, "connections", "1");
    bh_opts_set(opts, "retry-timeout", "0");
    bh_opts_set(opts, "connect-timeout", "20");
    BhError *err = NULL;
    BhNode *node = bh_node_open(fuzz_nbd_uri, opts, &err);
    if (node) {
        fuzz_nbd_io(node, sv.verbose);
        bh_node_unref(node);
    } else {
        if (sv.verbose)
            fprintf(stderr, "fuzz-nbd-client: open: %s\n",
                    bh_error_message(err));
        bh_error_free(err);
        /* The open gave up before connecting: end the accept. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_strlcpy(sa.sun_path, fuzz_nbd_path, sizeof(sa.sun_path));
        if (fd >= 0) {
            connect(fd, (struct sockaddr *)&sa, sizeof(sa));
            close(fd);
        }
    }
    g_thread_join(t);
    if (sv.verbose)
        fprintf(stderr, "fuzz-nbd-client: input done in %.1f ms\n",
                (g_get_monotonic_time() - t0) / 1000.0);
    return 0;
}
