/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2-tool: the C side of the qcow2 tests.  It drives the qcow2 driver
 * through libblkhost (bh_node_open, bh_node_pwrite, ...) so that the tests
 * do not depend on the Lua CLI, and leaves the judging to qemu-img.
 *
 *   open IMG [OPTS]              open (read-write unless OPTS say
 *                                readonly=on) and close; prints errors
 *   read IMG OFF LEN [OPTS]      read a range, print "ok" or the error
 *   write IMG OFF LEN BYTE       write LEN bytes of BYTE at OFF
 *   dump IMG OUT                 copy the guest view to a raw file
 *   map IMG                      print "offset length status" runs
 *   random IMG MIRROR SEED N [OPTS]  N random writes / zero writes /
 *                                discards, mirrored with the same semantics
 *                                in MIRROR (OPTS default: discard=unmap)
 *   parallel IMG MIRROR SEED T N [OPTS]  T threads, N writes each, into
 *                                interleaved 4 KiB pieces of shared clusters
 *   stress IMG MIRROR SEED T N [OPTS]  T threads, N mixed ops each (writes,
 *                                zeroes, discards, flushes, checked reads)
 *                                on clusters each thread owns (OPTS
 *                                default: discard=unmap)
 *   csubmit IMG OFF LEN BYTE [OPTS]  a compressed write of LEN bytes of
 *                                BYTE at OFF, submitted with bh_node_submit
 *                                (asynchronous) and waited for
 *   cstress IMG MIRROR SEED T N [OPTS]  the same, some reads replaced by
 *                                a discard then a compressed write of the
 *                                whole cluster (BH_IO_COMPRESSED)
 *   crash-writer IMG LOG SEED BASE [OPTS]  write until killed; log the
 *                                writes that are durable
 *   crash-verify IMG LOG SEED    check every logged durable write
 */
#include <blkhost/blkhost.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: fast and reproducible from a seed. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static void fill_pattern(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t st = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            st ^= st >> 12; st ^= st << 25; st ^= st >> 27;
        }
        buf[i] = (uint8_t)((st * 2685821657736338717ull) >> ((i % 8) * 8));
    }
}

static BhNode *open_img(const char *path, const char *optstr)
{
    g_autoptr(BhError) err = NULL;
    g_autoptr(BhOpts) opts = NULL;
    BhNode *bs;

    opts = optstr ? bh_opts_parse(optstr, NULL, &err) : bh_opts_new();
    if (!opts) {
        fprintf(stderr, "%s\n", bh_error_message(err));
        exit(2);
    }
    bs = bh_node_open(path, opts, &err);
    if (!bs) {
        fprintf(stderr, "open failed: %s\n", bh_error_message(err));
        exit(1);
    }
    return bs;
}

static void die_err(const char *what, BhError *err, int ret)
{
    fprintf(stderr, "%s failed: %s\n", what,
            err ? bh_error_message(err) : g_strerror(-ret));
    exit(1);
}

static int64_t info_int(BhNode *bs, const char *key)
{
    g_autoptr(BhInfo) info = bh_info_new();
    const BhInfoItem *it;
    bh_node_info(bs, info);
    it = bh_info_find(info, key);
    return it ? it->i : -1;
}

static bool info_has(BhNode *bs, const char *key, const char *val)
{
    g_autoptr(BhInfo) info = bh_info_new();
    const BhInfoItem *it;
    bh_node_info(bs, info);
    it = bh_info_find(info, key);
    return it && (!val || (it->s && strcmp(it->s, val) == 0));
}

static int cmd_dump(BhNode *bs, const char *out)
{
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int64_t size = bh_node_size(bs);
    size_t chunk = 1 << 20;
    g_autofree uint8_t *buf = g_malloc(chunk);
    g_autoptr(BhError) err = NULL;

    if (fd < 0) {
        perror(out);
        return 1;
    }
    for (int64_t off = 0; off < size; off += chunk) {
        size_t n = MIN((int64_t)chunk, size - off);
        int ret = bh_node_pread(bs, buf, off, n, 0, &err);
        if (ret < 0)
            die_err("read", err, ret);
        if (pwrite(fd, buf, n, off) != (ssize_t)n) {
            perror("pwrite");
            return 1;
        }
    }
    if (ftruncate(fd, size) < 0)
        return 1;
    close(fd);
    return 0;
}

static int cmd_map(BhNode *bs)
{
    int64_t size = bh_node_size(bs);
    g_autoptr(BhError) err = NULL;

    for (uint64_t off = 0; off < (uint64_t)size;) {
        uint64_t pnum;
        uint32_t st;
        int ret = bh_node_block_status(bs, off, size - off, &pnum, &st, &err);
        if (ret < 0)
            die_err("block_status", err, ret);
        printf("%" PRIu64 " %" PRIu64 " %s%s\n", off, pnum,
               st & BH_BLOCK_ZERO ? "zero" : "data",
               st & BH_BLOCK_HOLE ? ",hole" : "");
        off += pnum;
    }
    return 0;
}

/* Random writes, zero writes and discards, mirrored in a raw file with
 * exactly the semantics the qcow2 driver promises. */
static int cmd_random(BhNode *bs, const char *mirror, uint64_t seed,
                      uint64_t nops)
{
    uint64_t cs = info_int(bs, "cluster-size");
    uint64_t size = bh_node_size(bs);
    bool backing = info_has(bs, "backing-filename", NULL);
    bool v3 = info_has(bs, "compat", "1.1");
    int fd = open(mirror, O_RDWR);
    g_autofree uint8_t *buf = g_malloc(3 * cs + 1);
    g_autofree uint8_t *got = g_malloc(3 * cs + 1);
    g_autoptr(BhError) err = NULL;
    int ret;

    if (fd < 0) {
        perror(mirror);
        return 1;
    }
    rng_state = seed * 7919 + 1;
    for (uint64_t i = 0; i < nops; i++) {
        uint64_t kind = rnd_below(100);
        uint64_t len = 1 + rnd_below(3 * cs);
        uint64_t off;

        if (rnd_below(4) == 0)   /* often cluster aligned */
            len = (1 + rnd_below(3)) * cs;
        len = MIN(len, size);
        off = rnd_below(size - len + 1);
        if (rnd_below(3) == 0)
            off &= ~(cs - 1);
        if (kind < 80) {
            if (rnd_below(10) == 0)
                memset(buf, 0, len);
            else
                fill_pattern(buf, len, seed * 1000003 + i);
            ret = bh_node_pwrite(bs, buf, off, len,
                                 rnd_below(20) == 0 ? BH_IO_FUA : 0, &err);
            if (ret < 0)
                die_err("write", err, ret);
            if (pwrite(fd, buf, len, off) != (ssize_t)len)
                return 1;
        } else if (kind < 90) {
            ret = bh_node_write_zeroes(bs, off, len,
                                       rnd_below(2) ? BH_IO_MAY_UNMAP : 0,
                                       &err);
            if (ret < 0)
                die_err("write_zeroes", err, ret);
            memset(buf, 0, len);
            if (pwrite(fd, buf, len, off) != (ssize_t)len)
                return 1;
        } else if (kind < 98) {
            uint64_t a = (off + cs - 1) & ~(cs - 1);
            uint64_t b = (off + len) & ~(cs - 1);
            ret = bh_node_discard(bs, off, len, &err);
            if (ret < 0)
                die_err("discard", err, ret);
            /* Whole clusters read as zeros afterwards, except on a v2
             * image with a backing file, where discard does nothing. */
            if (b > a && (!backing || v3)) {
                g_autofree uint8_t *z = g_malloc0(b - a);
                if (pwrite(fd, z, b - a, a) != (ssize_t)(b - a))
                    return 1;
            }
        } else {
            ret = bh_node_flush(bs, &err);
            if (ret < 0)
                die_err("flush", err, ret);
        }
        if (rnd_below(8) == 0) {
            uint64_t rl = 1 + rnd_below(3 * cs), ro;
            rl = MIN(rl, size);
            ro = rnd_below(size - rl + 1);
            ret = bh_node_pread(bs, got, ro, rl, 0, &err);
            if (ret < 0)
                die_err("read", err, ret);
            if (pread(fd, buf, rl, ro) != (ssize_t)rl)
                return 1;
            if (memcmp(buf, got, rl) != 0) {
                fprintf(stderr, "mismatch after op %" PRIu64 " reading %"
                        PRIu64 "+%" PRIu64 "\n", i, ro, rl);
                return 1;
            }
        }
    }
    close(fd);
    return 0;
}

typedef struct {
    BhNode *bs;
    int fd;
    int t, nthreads;
    uint64_t seed, nops, size;
    int failed;
    bool compress;        /* stress: compressed writes too */
} ParArg;

static gpointer par_thread(gpointer data)
{
    ParArg *a = data;
    uint8_t buf[4096];
    uint64_t pieces = a->size / 4096;
    BhError *err = NULL;

    for (uint64_t i = 0; i < a->nops; i++) {
        uint64_t seq = a->seed * 1000003 + a->t * 100000007ull + i;
        uint64_t p = (seq * 2654435761u) % (pieces / a->nthreads);
        uint64_t piece = p * a->nthreads + a->t;
        uint64_t in = (seq >> 7) % 4096, len = 1 + (seq >> 3) % (4096 - in);
        fill_pattern(buf, len, seq);
        if (bh_node_pwrite(a->bs, buf, piece * 4096 + in, len, 0, &err) < 0 ||
            pwrite(a->fd, buf, len, piece * 4096 + in) != (ssize_t)len) {
            fprintf(stderr, "thread %d: %s\n", a->t,
                    err ? bh_error_message(err) : "mirror write failed");
            bh_error_clear(&err);
            a->failed = 1;
            return NULL;
        }
    }
    return NULL;
}

static int cmd_parallel(BhNode *bs, const char *mirror, uint64_t seed,
                        int nthreads, uint64_t nops)
{
    int fd = open(mirror, O_RDWR);
    ParArg args[16];
    GThread *th[16];
    int failed = 0;

    if (fd < 0 || nthreads < 1 || nthreads > 16)
        return 1;
    for (int t = 0; t < nthreads; t++) {
        args[t] = (ParArg){ bs, fd, t, nthreads, seed, nops,
                            (uint64_t)bh_node_size(bs), 0 };
        th[t] = g_thread_new("writer", par_thread, &args[t]);
    }
    for (int t = 0; t < nthreads; t++) {
        g_thread_join(th[t]);
        failed |= args[t].failed;
    }
    close(fd);
    return failed;
}

/* Each thread owns the clusters whose index is t modulo the thread count
 * and does everything there: writes, zero writes, discards, flushes and
 * reads checked against the mirror.  Frees race with other threads' I/O. */
static gpointer stress_thread(gpointer data)
{
    ParArg *a = data;
    uint64_t cs = a->seed >> 32, nclusters = a->size / cs;
    uint64_t st = (a->seed & 0xffffffff) * 977 + a->t + 1;
    g_autofree uint8_t *buf = g_malloc(cs);
    g_autofree uint8_t *got = g_malloc(cs);
    BhError *err = NULL;
    int ret = 0;

    for (uint64_t i = 0; i < a->nops && ret == 0; i++) {
        uint64_t c, in, len, kind;
        st ^= st >> 12; st ^= st << 25; st ^= st >> 27;
        c = ((st >> 8) % (nclusters / a->nthreads)) * a->nthreads + a->t;
        in = (st >> 20) % cs;
        len = 1 + (st >> 36) % (cs - in);
        kind = st % 16;
        if (kind < 8) {
            fill_pattern(buf, len, st);
            ret = bh_node_pwrite(a->bs, buf, c * cs + in, len, 0, &err);
            if (ret == 0 && pwrite(a->fd, buf, len, c * cs + in) != (ssize_t)len)
                ret = -EIO;
        } else if (kind < 10) {
            ret = bh_node_write_zeroes(a->bs, c * cs + in, len,
                                       BH_IO_MAY_UNMAP, &err);
            memset(buf, 0, len);
            if (ret == 0 && pwrite(a->fd, buf, len, c * cs + in) != (ssize_t)len)
                ret = -EIO;
        } else if (kind < 12) {
            ret = bh_node_discard(a->bs, c * cs, cs, &err);
            memset(buf, 0, cs);
            if (ret == 0 && pwrite(a->fd, buf, cs, c * cs) != (ssize_t)cs)
                ret = -EIO;
        } else if (kind == 12) {
            ret = bh_node_flush(a->bs, &err);
        } else if (kind == 13 && a->compress) {
            /* Empty the cluster, then fill it compressed: a quarter of
             * pattern and the rest one byte compresses; now and then all
             * pattern, which does not (written plainly). */
            ret = bh_node_discard(a->bs, c * cs, cs, &err);
            fill_pattern(buf, cs, st);
            if (st & 0x30000)
                memset(buf + cs / 4, (int)(st >> 40), cs - cs / 4);
            if (ret == 0)
                ret = bh_node_pwrite(a->bs, buf, c * cs, cs, BH_IO_COMPRESSED,
                                     &err);
            if (ret == 0 && pwrite(a->fd, buf, cs, c * cs) != (ssize_t)cs)
                ret = -EIO;
        } else {
            ret = bh_node_pread(a->bs, got, c * cs + in, len, 0, &err);
            if (ret == 0 && pread(a->fd, buf, len, c * cs + in) != (ssize_t)len)
                ret = -EIO;
            if (ret == 0 && memcmp(buf, got, len)) {
                fprintf(stderr, "thread %d: mismatch at %" PRIu64 "+%" PRIu64
                        "\n", a->t, c * cs + in, len);
                a->failed = 1;
                return NULL;
            }
        }
    }
    if (ret < 0) {
        fprintf(stderr, "thread %d: %s\n", a->t,
                err ? bh_error_message(err) : g_strerror(-ret));
        bh_error_clear(&err);
        a->failed = 1;
    }
    return NULL;
}

/* csubmit: the asynchronous request path with BH_IO_COMPRESSED. */
typedef struct {
    GMutex lock;
    GCond cond;
    bool done;
    int ret;
    char *msg;
} SubmitWait;

static void csubmit_done(void *opaque, int ret, const BhError *err)
{
    SubmitWait *w = opaque;
    g_mutex_lock(&w->lock);
    w->ret = ret;
    w->msg = err ? g_strdup(bh_error_message(err)) : NULL;
    w->done = true;
    g_cond_signal(&w->cond);
    g_mutex_unlock(&w->lock);
}

static int cmd_csubmit(BhNode *bs, uint64_t off, uint64_t len, int byte)
{
    g_autofree uint8_t *buf = g_malloc(len);
    struct iovec iov = { buf, len };
    SubmitWait w = { 0 };

    memset(buf, byte, len);
    g_mutex_init(&w.lock);
    g_cond_init(&w.cond);
    bh_node_submit(bh_request_new(bs, BH_OP_WRITE, off, len, &iov, 1,
                                  BH_IO_COMPRESSED, csubmit_done, &w));
    g_mutex_lock(&w.lock);
    while (!w.done)
        g_cond_wait(&w.cond, &w.lock);
    g_mutex_unlock(&w.lock);
    if (w.ret < 0)
        fprintf(stderr, "write failed: %s\n", w.msg ? w.msg : g_strerror(-w.ret));
    g_free(w.msg);
    /* The request lets go of its node reference only after the callback
     * returns: should it be the last one, the node closes on the core's
     * thread, which exit() may cut short.  Flush while the node is ours. */
    if (w.ret == 0) {
        g_autoptr(BhError) err = NULL;
        if (bh_node_flush(bs, &err) < 0) {
            fprintf(stderr, "flush failed: %s\n", bh_error_message(err));
            return 1;
        }
    }
    return w.ret < 0;
}

static int cmd_stress(BhNode *bs, const char *mirror, uint64_t seed,
                      int nthreads, uint64_t nops, bool compress)
{
    int fd = open(mirror, O_RDWR);
    uint64_t cs = info_int(bs, "cluster-size");
    ParArg args[16];
    GThread *th[16];
    int failed = 0;

    if (fd < 0 || nthreads < 1 || nthreads > 16)
        return 1;
    for (int t = 0; t < nthreads; t++) {
        args[t] = (ParArg){ bs, fd, t, nthreads, cs << 32 | (seed & 0xffffffff),
                            nops, (uint64_t)bh_node_size(bs), 0, compress };
        th[t] = g_thread_new("stress", stress_thread, &args[t]);
    }
    for (int t = 0; t < nthreads; t++) {
        g_thread_join(th[t]);
        failed |= args[t].failed;
    }
    close(fd);
    return failed;
}

/* The crash writer uses each slot (3 clusters) at most once, so the data
 * of a durable write can never be overwritten by a later one. */
static int cmd_crash_writer(BhNode *bs, const char *log, uint64_t seed,
                            uint64_t base)
{
    uint64_t cs = info_int(bs, "cluster-size"), slot = 3 * cs;
    uint64_t nslots = bh_node_size(bs) / slot;
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    g_autofree uint8_t *buf = g_malloc(slot);
    GArray *pending = g_array_new(FALSE, FALSE, sizeof(uint64_t) * 3);
    g_autoptr(BhError) err = NULL;

    if (fd < 0)
        return 1;
    rng_state = seed * 31 + 7;
    for (uint64_t seq = 0; seq < nslots; seq++) {
        uint64_t s = (base + seq * 7919) % nslots;   /* 7919 is prime */
        uint64_t in = rnd_below(slot), len = 1 + rnd_below(slot - in);
        uint64_t rec[3] = { seed * 1000003 + seq, s * slot + in, len };
        bool fua = rnd_below(4) == 0;
        int ret;

        if (rnd_below(3) == 0) {     /* whole clusters, no COW */
            in = 0;
            len = (1 + rnd_below(3)) * cs;
            rec[1] = s * slot;
            rec[2] = len;
        }
        fill_pattern(buf, len, rec[0]);
        ret = bh_node_pwrite(bs, buf, rec[1], len, fua ? BH_IO_FUA : 0, &err);
        if (ret < 0)
            die_err("write", err, ret);
        if (fua) {
            if (write(fd, rec, sizeof(rec)) != sizeof(rec))
                return 1;
        } else {
            g_array_append_vals(pending, rec, 1);
        }
        if (rnd_below(8) == 0) {
            ret = bh_node_flush(bs, &err);
            if (ret < 0)
                die_err("flush", err, ret);
            if (pending->len &&
                write(fd, pending->data, pending->len * sizeof(rec)) !=
                (ssize_t)(pending->len * sizeof(rec)))
                return 1;
            g_array_set_size(pending, 0);
        }
    }
    /* Out of slots: idle until killed. */
    for (;;)
        pause();
}

static int cmd_crash_verify(BhNode *bs, const char *log)
{
    FILE *f = fopen(log, "rb");
    uint64_t rec[3];
    int bad = 0, n = 0;
    g_autoptr(BhError) err = NULL;

    if (!f) {           /* killed before it opened its log */
        printf("0 durable writes checked\n");
        return 0;
    }
    while (fread(rec, sizeof(rec), 1, f) == 1) {
        g_autofree uint8_t *want = g_malloc(rec[2]);
        g_autofree uint8_t *got = g_malloc(rec[2]);
        int ret;
        fill_pattern(want, rec[2], rec[0]);
        ret = bh_node_pread(bs, got, rec[1], rec[2], 0, &err);
        if (ret < 0)
            die_err("read", err, ret);
        if (memcmp(want, got, rec[2]) != 0) {
            fprintf(stderr, "durable write at %" PRIu64 "+%" PRIu64
                    " lost\n", rec[1], rec[2]);
            bad = 1;
        }
        n++;
    }
    fclose(f);
    printf("%d durable writes checked\n", n);
    return bad;
}

int main(int argc, char **argv)
{
    g_autoptr(BhError) err = NULL;
    const char *cmd = argc > 1 ? argv[1] : "";
    BhNode *bs;
    int ret = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: qcow2-tool COMMAND IMG ...\n");
        return 2;
    }
    if (strcmp(cmd, "open") == 0) {
        bs = open_img(argv[2], argc > 3 ? argv[3] : NULL);
        printf("ok\n");
    } else if (strcmp(cmd, "read") == 0 && argc >= 5) {
        uint64_t off = g_ascii_strtoull(argv[3], NULL, 0);
        uint64_t len = g_ascii_strtoull(argv[4], NULL, 0);
        g_autofree uint8_t *buf = g_malloc(len);
        bs = open_img(argv[2], argc > 5 ? argv[5] : NULL);
        ret = bh_node_pread(bs, buf, off, len, 0, &err);
        if (ret < 0)
            fprintf(stderr, "read failed: %s\n", bh_error_message(err));
        else
            printf("ok\n");
        ret = ret < 0;
    } else if (strcmp(cmd, "write") == 0 && argc >= 6) {
        uint64_t off = g_ascii_strtoull(argv[3], NULL, 0);
        uint64_t len = g_ascii_strtoull(argv[4], NULL, 0);
        g_autofree uint8_t *buf = g_malloc(len);
        memset(buf, (int)g_ascii_strtoull(argv[5], NULL, 0), len);
        bs = open_img(argv[2], argc > 6 ? argv[6] : NULL);
        ret = bh_node_pwrite(bs, buf, off, len, 0, &err);
        if (ret < 0)
            fprintf(stderr, "write failed: %s\n", bh_error_message(err));
        ret = ret < 0;
    } else if (strcmp(cmd, "csubmit") == 0 && argc >= 6) {
        bs = open_img(argv[2], argc > 6 ? argv[6] : NULL);
        ret = cmd_csubmit(bs, g_ascii_strtoull(argv[3], NULL, 0),
                          g_ascii_strtoull(argv[4], NULL, 0),
                          (int)g_ascii_strtoull(argv[5], NULL, 0));
    } else if (strcmp(cmd, "dump") == 0 && argc >= 4) {
        bs = open_img(argv[2], "readonly=on");
        ret = cmd_dump(bs, argv[3]);
    } else if (strcmp(cmd, "map") == 0) {
        bs = open_img(argv[2], "readonly=on");
        ret = cmd_map(bs);
    } else if (strcmp(cmd, "random") == 0 && argc >= 6) {
        bs = open_img(argv[2], argc > 6 ? argv[6] : "discard=unmap");
        ret = cmd_random(bs, argv[3], g_ascii_strtoull(argv[4], NULL, 0),
                         g_ascii_strtoull(argv[5], NULL, 0));
    } else if (strcmp(cmd, "parallel") == 0 && argc >= 7) {
        bs = open_img(argv[2], argc > 7 ? argv[7] : NULL);
        ret = cmd_parallel(bs, argv[3], g_ascii_strtoull(argv[4], NULL, 0),
                           atoi(argv[5]), g_ascii_strtoull(argv[6], NULL, 0));
    } else if ((strcmp(cmd, "stress") == 0 || strcmp(cmd, "cstress") == 0) &&
               argc >= 7) {
        bs = open_img(argv[2], argc > 7 ? argv[7] : "discard=unmap");
        ret = cmd_stress(bs, argv[3], g_ascii_strtoull(argv[4], NULL, 0),
                         atoi(argv[5]), g_ascii_strtoull(argv[6], NULL, 0),
                         cmd[0] == 'c');
    } else if (strcmp(cmd, "crash-writer") == 0 && argc >= 6) {
        bs = open_img(argv[2], argc > 6 ? argv[6] : NULL);
        ret = cmd_crash_writer(bs, argv[3], g_ascii_strtoull(argv[4], NULL, 0),
                               g_ascii_strtoull(argv[5], NULL, 0));
    } else if (strcmp(cmd, "crash-verify") == 0 && argc >= 4) {
        bs = open_img(argv[2], "readonly=on");
        ret = cmd_crash_verify(bs, argv[3]);
    } else {
        fprintf(stderr, "qcow2-tool: unknown command or missing arguments\n");
        return 2;
    }
    bh_node_unref(bs);
    return ret;
}
