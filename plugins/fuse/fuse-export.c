/*
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The fuse frontend plugin: shows one export as one regular file, the way
 * `qemu-storage-daemon --export type=fuse,mountpoint=FILE` does.  The
 * mount point may be an existing regular file (the file is covered by the
 * export, as with qemu) or a directory (the export appears inside it as
 * one file).
 *
 * Options (BhOpts keys, '_' and '-' alike):
 *   mountpoint   the file or directory to mount over (required)
 *   allow-other  let other users in (FUSE's allow_other; the file is
 *                then readable by all, writable by its owner)
 *   name         the file's name when mounting over a directory
 *                (default: "disk")
 *   threads      request threads when the node is parallel (default:
 *                one per CPU, at least 2 and at most 16: the kernel
 *                keeps at most 12 asynchronous requests of a mount in
 *                flight by default); a serialized node gets one
 *
 * Life cycle.  start() mounts, then worker threads take the kernel's
 * requests from /dev/fuse (non-blocking, each waiting in its own epoll
 * set so that a request wakes one worker, and an eventfd wakes them all
 * at stop).  stop() wakes the workers, lets each finish the request it
 * holds, joins them, flushes, and unmounts (lazily, so the mount is gone
 * at once even while a process still has the file open; that process's
 * later requests fail with ENOTCONN).  A mount removed from outside
 * (umount, fusermount3 -u) ends the export: its hold on the main loop is
 * released so that `bh.loop()` returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_log.h>

#include "fuse-export.h"

/* While start() mounts, libfuse's messages from that thread are kept
 * here to become the error's text; other threads' messages (a running
 * export's) go to stderr.  A lock and the owner's id rather than a
 * __thread variable: thread-local storage in a dlopen'd plugin is
 * dynamic TLS, and clang 14's LeakSanitizer crashed walking it at exit. */
static GMutex fuse_export_log_lock;
static GString *fuse_export_log_capture;
static pthread_t fuse_export_log_owner;

static void fuse_export_log(enum fuse_log_level level, const char *fmt,
                            va_list ap)
{
    g_mutex_lock(&fuse_export_log_lock);
    if (fuse_export_log_capture &&
        pthread_equal(fuse_export_log_owner, pthread_self())) {
        g_string_append_vprintf(fuse_export_log_capture, fmt, ap);
        g_mutex_unlock(&fuse_export_log_lock);
        return;
    }
    g_mutex_unlock(&fuse_export_log_lock);
    fputs("fuse: ", stderr);
    vfprintf(stderr, fmt, ap);
}

static void fuse_export_log_capture_to(GString *log)
{
    g_mutex_lock(&fuse_export_log_lock);
    fuse_export_log_capture = log;
    fuse_export_log_owner = pthread_self();
    g_mutex_unlock(&fuse_export_log_lock);
}

static bool fuse_export_load(BhError **errp)
{
    fuse_set_log_func(fuse_export_log);
    return true;
}

static void *fuse_export_create(BhOpts *opts, BhError **errp)
{
    bool allow_other = false;
    uint64_t threads = 0;
    const char *mountpoint = bh_opts_get(opts, "mountpoint");
    const char *name = bh_opts_get(opts, "name");

    if (!mountpoint || !*mountpoint) {
        bh_error_set(errp, EINVAL, "the mountpoint option is "
                     "required (an existing regular file or directory)");
        return NULL;
    }
    if (name && (!*name || strchr(name, '/') || !strcmp(name, ".") ||
                 !strcmp(name, ".."))) {
        bh_error_set(errp, EINVAL, "bad file name '%s': expected "
                     "one path component", name);
        return NULL;
    }
    if (!bh_opts_get_bool(opts, "allow-other", false, &allow_other, errp) ||
        !bh_opts_get_uint(opts, "threads", 0, 256, &threads, errp))
        return NULL;

    FuseExport *fe = g_new0(FuseExport, 1);
    g_mutex_init(&fe->lock);
    fe->mountpoint = g_strdup(mountpoint);
    fe->file_name = g_strdup(name ? name : "disk");
    fe->allow_other = allow_other;
    fe->nthreads = (unsigned)threads;
    fe->stop_fd = -1;
    return fe;
}

static int fuse_export_add_export(void *opaque, BhExport *exp, BhError **errp)
{
    FuseExport *fe = opaque;
    g_mutex_lock(&fe->lock);
    if (fe->exp || fe->started) {
        g_mutex_unlock(&fe->lock);
        bh_export_free(exp);
        return bh_error_set(errp, EBUSY, "'%s' already shows an "
                            "export; a FUSE mount shows exactly one",
                            fe->mountpoint);
    }
    fe->exp = exp;
    g_mutex_unlock(&fe->lock);
    return 0;
}

/* /proc/self/mountinfo escapes blanks and backslashes as \ooo. */
static char *fuse_export_unescape(const char *s)
{
    GString *out = g_string_new(NULL);
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
            s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            g_string_append_c(out, (char)((s[1] - '0') * 64 +
                                          (s[2] - '0') * 8 + (s[3] - '0')));
            s += 3;
        } else {
            g_string_append_c(out, *s);
        }
    }
    return g_string_free(out, FALSE);
}

/* Whether path (canonical) is a mount point now.  The kernel would let a
 * second FUSE mount stack over the first, hiding it; refusing says what
 * happened instead. */
static bool fuse_export_is_mounted(const char *path)
{
    g_autofree char *text = NULL;
    if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, NULL))
        return false;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        g_auto(GStrv) f = g_strsplit(*l, " ", 6);
        if (g_strv_length(f) < 5)
            continue;
        g_autofree char *mp = fuse_export_unescape(f[4]);
        if (strcmp(mp, path) == 0)
            return true;
    }
    return false;
}

/* The mount point must exist, be a regular file or a directory, and not
 * be a mount point already. */
static bool fuse_export_check_mountpoint(FuseExport *fe, BhError **errp)
{
    struct stat st;
    if (stat(fe->mountpoint, &st) < 0) {
        if (errno == ENOTCONN)
            bh_error_set(errp, ENOTCONN, "mount point '%s' is a FUSE mount "
                         "whose server is gone (killed?); unmount it first "
                         "(fusermount3 -u or umount -l)", fe->mountpoint);
        else
            bh_error_set_errno(errp, errno, "mount point '%s'",
                               fe->mountpoint);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        fe->dir_mode = true;
    } else if (!S_ISREG(st.st_mode)) {
        bh_error_set(errp, EINVAL, "mount point '%s' is neither a "
                     "regular file nor a directory", fe->mountpoint);
        return false;
    }
    char *real = realpath(fe->mountpoint, NULL);
    bool busy = real && fuse_export_is_mounted(real);
    free(real);
    if (busy) {
        bh_error_set(errp, EBUSY, "'%s' is already a mount point "
                     "(another FUSE export or file system is mounted "
                     "there); unmount it first", fe->mountpoint);
        return false;
    }
    return true;
}

/* Create the session and mount it; libfuse's own messages become the
 * error's text. */
static bool fuse_export_mount(FuseExport *fe, BhError **errp)
{
    /* A read-only export is a read-only mount: the kernel then answers
     * every attempt to write with EROFS before looking at the mode, for
     * root and other users alike. */
    g_autofree char *mopts = g_strdup_printf(
        "default_permissions,fsname=blkhost,subtype=blkhost%s%s",
        fe->allow_other ? ",allow_other" : "", fe->readonly ? ",ro" : "");
    char *argv[] = { "blkhost", "-o", mopts, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    GString *log = g_string_new(NULL);

    fuse_export_log_capture_to(log);
    fe->se = fuse_session_new(&args, &fuse_export_ops,
                              sizeof(fuse_export_ops), fe);
    bool ok = fe->se && fuse_session_mount(fe->se, fe->mountpoint) == 0;
    fuse_export_log_capture_to(NULL);
    fuse_opt_free_args(&args);

    g_strstrip(log->str);
    if (!ok) {
        bool said = log->str[0] != '\0';
        bh_error_set(errp, EIO, "cannot mount FUSE on '%s'%s%s%s",
                     fe->mountpoint, said ? " (" : "", log->str,
                     said ? ")" : "");
        if (fe->se)
            fuse_session_destroy(fe->se);
        fe->se = NULL;
    }
    g_string_free(log, TRUE);
    return ok;
}

/* The mount went away without stop() (umount from outside): let the
 * main loop go, since nothing can reach this export any more. */
static void fuse_export_ended(FuseExport *fe)
{
    g_mutex_lock(&fe->lock);
    bool release = !fe->stopping && fe->holding;
    if (!fe->stopping && !fe->gone) {
        fe->gone = true;
        g_printerr("fuse: '%s' was unmounted from outside; the export "
                   "ends\n", fe->mountpoint);
    }
    if (release)
        fe->holding = false;
    g_mutex_unlock(&fe->lock);
    if (release)
        bh_loop_release();
}

static gpointer fuse_export_worker(gpointer opaque)
{
    FuseExport *fe = opaque;
    struct fuse_buf buf = { 0 };
    int fd = fuse_session_fd(fe->se);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
    bool ended = false;

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        g_printerr("fuse: worker cannot wait on /dev/fuse: %s\n",
                   g_strerror(errno));
        if (ep >= 0)
            close(ep);
        return NULL;
    }
    ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = 1 };
    epoll_ctl(ep, EPOLL_CTL_ADD, fe->stop_fd, &ev);

    while (!g_atomic_int_get(&fe->quit)) {
        int r = fuse_session_receive_buf(fe->se, &buf);
        if (r > 0) {
            fuse_session_process_buf(fe->se, &buf);
            continue;
        }
        if (r == -EINTR)
            continue;
        if (r != -EAGAIN) {
            /* 0: the connection ended (ENODEV); else libfuse said why. */
            ended = true;
            break;
        }
        struct epoll_event got[2];
        int n = epoll_wait(ep, got, 2, -1);
        bool stop = false;
        for (int i = 0; i < n; i++)
            stop |= got[i].data.u32 == 1;
        if (stop)
            break;
    }
    close(ep);
    free(buf.mem);
    if (ended) {
        /* Wake the others: the eventfd stays readable for all of them. */
        eventfd_write(fe->stop_fd, 1);
        fuse_export_ended(fe);
    }
    return NULL;
}

static void fuse_export_join(FuseExport *fe)
{
    for (unsigned i = 0; i < fe->nworkers; i++)
        g_thread_join(fe->workers[i]);
    g_free(fe->workers);
    fe->workers = NULL;
    fe->nworkers = 0;
}

/* Workers take no signals: SIGINT and SIGTERM belong to the main loop,
 * and a worker's epoll_wait has no use for EINTR. */
static bool fuse_export_spawn(FuseExport *fe, unsigned n, BhError **errp)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    fe->workers = g_new0(GThread *, n);
    for (unsigned i = 0; i < n; i++) {
        GError *gerr = NULL;
        fe->workers[i] = g_thread_try_new("fuse-worker", fuse_export_worker,
                                          fe, &gerr);
        if (!fe->workers[i]) {
            bh_error_take_gerror(errp, gerr, EAGAIN);
            break;
        }
        fe->nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return fe->nworkers == n;
}

static int fuse_export_start(void *opaque, BhError **errp)
{
    FuseExport *fe = opaque;

    if (fe->started)
        return bh_error_set(errp, EALREADY, "the FUSE export on '%s' is "
                            "already started", fe->mountpoint);
    if (!fe->exp)
        return bh_error_set(errp, EINVAL, "nothing to show on '%s': "
                            "add an export first", fe->mountpoint);
    if (!fuse_export_check_mountpoint(fe, errp))
        return -EINVAL;

    fe->node = bh_export_node(fe->exp);
    fe->readonly = bh_export_readonly(fe->exp) || bh_node_is_readonly(fe->node);
    fe->file_ino = fe->dir_mode ? FUSE_EXPORT_FILE_DIR_INO : FUSE_ROOT_ID;
    fe->uid = getuid();
    fe->gid = getgid();
    fe->start_time = time(NULL);
    fe->mode = (fe->readonly ? 0400 : 0600) | (fe->allow_other ? 0044 : 0);

    unsigned n = 1;
    if (bh_node_is_parallel(fe->node))
        n = fe->nthreads ? fe->nthreads
                         : CLAMP(g_get_num_processors(), 2u, 16u);
    fe->nthreads = n;

    fe->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fe->stop_fd < 0)
        return bh_error_set_errno(errp, errno, "eventfd");
    if (!fuse_export_mount(fe, errp)) {
        close(fe->stop_fd);
        fe->stop_fd = -1;
        return -EIO;
    }
    /* Non-blocking, so that a worker woken with the others for one
     * request goes back to waiting instead of blocking in read(). */
    int fd = fuse_session_fd(fe->se);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (!fuse_export_spawn(fe, n, errp)) {
        eventfd_write(fe->stop_fd, 1);
        fuse_export_join(fe);
        fuse_session_unmount(fe->se);
        fuse_session_destroy(fe->se);
        fe->se = NULL;
        close(fe->stop_fd);
        fe->stop_fd = -1;
        return -EAGAIN;
    }
    g_mutex_lock(&fe->lock);
    fe->started = true;
    fe->holding = true;
    g_mutex_unlock(&fe->lock);
    bh_loop_hold();
    return 0;
}

static void fuse_export_stop(void *opaque)
{
    FuseExport *fe = opaque;

    g_mutex_lock(&fe->lock);
    if (!fe->started || fe->stopping) {
        g_mutex_unlock(&fe->lock);
        return;
    }
    fe->stopping = true;
    g_mutex_unlock(&fe->lock);

    /* Each worker finishes the request it holds, then sees the eventfd. */
    g_atomic_int_set(&fe->quit, 1);
    eventfd_write(fe->stop_fd, 1);
    fuse_export_join(fe);
    if (!fe->readonly) {
        g_autoptr(BhError) err = NULL;
        if (bh_node_flush(fe->node, &err) < 0)
            g_printerr("fuse: flushing the export on '%s': %s\n",
                       fe->mountpoint, bh_error_message(err));
    }
    fuse_session_unmount(fe->se);
    fuse_session_destroy(fe->se);
    fe->se = NULL;
    close(fe->stop_fd);
    fe->stop_fd = -1;

    g_mutex_lock(&fe->lock);
    bool release = fe->holding;
    fe->holding = false;
    fe->stopped = true;
    g_mutex_unlock(&fe->lock);
    if (release)
        bh_loop_release();
}

static void fuse_export_destroy(void *opaque)
{
    FuseExport *fe = opaque;
    fuse_export_stop(fe);
    bh_export_free(fe->exp);
    g_free(fe->mountpoint);
    g_free(fe->file_name);
    g_mutex_clear(&fe->lock);
    g_free(fe);
}

/* The path a program opens: the mount point, or the file inside it. */
static char *fuse_export_uri(void *opaque, const char *export_name)
{
    FuseExport *fe = opaque;
    if (fe->started && fe->dir_mode)
        return g_build_filename(fe->mountpoint, fe->file_name, NULL);
    return g_strdup(fe->mountpoint);
}

static void fuse_export_status(void *opaque, BhInfo *info)
{
    FuseExport *fe = opaque;
    g_mutex_lock(&fe->lock);
    bh_info_add_str(info, "state", fe->stopping || fe->gone ? "stopped"
                    : fe->started ? "running" : "created");
    bh_info_add_str(info, "mountpoint", fe->mountpoint);
    if (fe->started && fe->dir_mode)
        bh_info_add_str(info, "file", fe->file_name);
    bh_info_add_bool(info, "readonly", fe->readonly);
    bh_info_add_bool(info, "allow-other", fe->allow_other);
    bh_info_add_int(info, "threads", fe->nthreads);
    g_mutex_unlock(&fe->lock);
    bh_info_add_int(info, "requests", (int64_t)__atomic_load_n(
                        &fe->stats.requests, __ATOMIC_RELAXED));
    bh_info_add_int(info, "bytes-read", (int64_t)__atomic_load_n(
                        &fe->stats.bytes_read, __ATOMIC_RELAXED));
    bh_info_add_int(info, "bytes-written", (int64_t)__atomic_load_n(
                        &fe->stats.bytes_written, __ATOMIC_RELAXED));
    bh_info_add_int(info, "errors", (int64_t)__atomic_load_n(
                        &fe->stats.errors, __ATOMIC_RELAXED));
}

static const BhFrontend fuse_export_frontend = {
    .struct_size = sizeof(BhFrontend),
    .create = fuse_export_create,
    .add_export = fuse_export_add_export,
    .start = fuse_export_start,
    .stop = fuse_export_stop,
    .destroy = fuse_export_destroy,
    .uri = fuse_export_uri,
    .status = fuse_export_status,
};

static const BhPluginDesc desc = {
    .abi_version = BH_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(BhPluginDesc),
    .kind = BH_PLUGIN_FRONTEND,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "fuse",
    .version = "0.1.0",
    .description = "FUSE export: shows a node as one regular file",
    .frontend = &fuse_export_frontend,
    .load = fuse_export_load,
};

BH_PLUGIN_REGISTER(desc)
