/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The nbd-kernel frontend plugin: attaches a source to /dev/nbdN through
 * the kernel's nbd driver, as `qemu-nbd -c` and `nbd-client` do.
 *
 * Sources: one BhExport (served in-process: the kernel gets one end of a
 * socketpair per connection, the nbd-common server engine serves the
 * other end in this process, with simple replies only), or a remote
 * server named by an NBD URI (handshake by nbd-client.c, then the socket
 * goes to the kernel).  The kernel is driven through generic netlink, with
 * the ioctl interface as the fall-back.
 *
 * Options (BhOpts keys, '_' and '-' alike):
 *   device        /dev/nbdN (required)
 *   uri           nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=P
 *   name          export name to ask the uri's server for (default: the
 *                 URI's path)
 *   connections   sockets to the server (default 1; >1 needs CAN_MULTI_CONN)
 *   readonly      attach read-only
 *   block-size    logical block size, 512..4096 (default 512, or the
 *                 server's minimum block size); the export size must be a
 *                 multiple of it
 *   timeout       I/O timeout in seconds (default: the kernel's)
 *   dead-timeout  seconds the kernel waits for a dead connection to be
 *                 replaced before failing I/O (default 0, 60 with persist)
 *   persist       reconnect to the uri's server, with backoff, when a
 *                 connection dies (netlink only)
 *   interface     auto|netlink|ioctl (default auto: netlink when the
 *                 kernel has it)
 *   threads       workers serving an in-process export (default 4)
 *
 * Lifetime: start() returns once the kernel shows the device's size.  A
 * device fed by this process (in-process export, ioctl interface, or
 * persist) holds the main loop until it is disconnected, from here (stop)
 * or from outside; stop() disconnects only a device this instance still
 * owns (same pid in sysfs).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-client.h"
#include "nbd-kernel.h"
#include <blkhost/glib.h>

#define NBD_KERNEL_LIVE_WAIT_MS 10000
#define NBD_KERNEL_PERSIST_DEAD_TIMEOUT 60
#define NBD_KERNEL_MAX_CONNECTIONS 16

enum { IFACE_AUTO, IFACE_NETLINK, IFACE_IOCTL };
static const char *const iface_names[] = { "auto", "netlink", "ioctl", NULL };

typedef struct NbdKernel NbdKernel;

typedef struct ServeArg {
    NbdKernel *k;
    unsigned i;
} ServeArg;

struct NbdKernel {
    /* options */
    char *device;
    char *uri;
    char *name;
    unsigned connections;
    bool readonly, persist;
    uint64_t timeout, dead_timeout, block_size;
    int iface;
    unsigned threads;
    BhExport *exp;

    /* set by start */
    int index;
    NbdUri u;
    char *export_name;
    char *backend;
    uint64_t size;
    uint16_t tflags;
    int64_t pid;
    bool via_ioctl;
    GMutex lock;
    bool started, stopped;
    gint stopping;
    gint holding;

    /* in-process export */
    NbdSession session;
    NbdPool *pool;
    NbdStats stats;
    int *srv_fds;
    GThread **serve;
    ServeArg *serve_args;
    unsigned nserve;
    gint serving;

    NbdIoctl *io;

    /* persist */
    GThread *monitor;
    NbdNl *events;
    int wake[2];
    gint reconnects;
    gint link_dead;
    gint monitor_done;
};

static void loop_release_cb(void *data)
{
    bh_loop_release();
}

/* Let the main loop end (once): the device no longer needs us. */
static void let_go(NbdKernel *k)
{
    if (g_atomic_int_compare_and_exchange(&k->holding, 1, 0))
        bh_loop_invoke(loop_release_cb, NULL);
}

/* ---- options ---- */

static void *nk_create(BhOpts *opts, BhError **errp)
{
    NbdKernel *k = g_new0(NbdKernel, 1);
    uint64_t conns = 1, threads = 4;
    k->wake[0] = k->wake[1] = -1;
    g_mutex_init(&k->lock);
    k->device = g_strdup(bh_opts_get(opts, "device"));
    k->uri = g_strdup(bh_opts_get(opts, "uri"));
    k->name = g_strdup(bh_opts_get(opts, "name"));
    if (!bh_opts_get_uint(opts, "connections", 1, NBD_KERNEL_MAX_CONNECTIONS,
                          &conns, errp) ||
        !bh_opts_get_bool(opts, "readonly", false, &k->readonly, errp) ||
        !bh_opts_get_bool(opts, "persist", false, &k->persist, errp) ||
        !bh_opts_get_uint(opts, "timeout", 0, 86400 * 365, &k->timeout,
                          errp) ||
        !bh_opts_get_uint(opts, "dead-timeout", 0, 86400 * 365,
                          &k->dead_timeout, errp) ||
        !bh_opts_get_size(opts, "block-size", 0, &k->block_size, errp) ||
        !bh_opts_get_enum(opts, "interface", iface_names, IFACE_AUTO,
                          &k->iface, errp) ||
        !bh_opts_get_uint(opts, "threads", 4, 256, &threads, errp))
        goto fail;
    k->connections = (unsigned)conns;
    k->threads = threads ? (unsigned)threads : 4;
    if (!k->device || !*k->device) {
        bh_error_set(errp, EINVAL, "nbd-kernel: device is required, "
                     "e.g. device=/dev/nbd0");
        goto fail;
    }
    if (k->connections == 0) {
        bh_error_set(errp, EINVAL, "nbd-kernel: connections must be 1 to "
                     "%d", NBD_KERNEL_MAX_CONNECTIONS);
        goto fail;
    }
    if (k->block_size) {
        long page = sysconf(_SC_PAGESIZE);
        if (k->block_size < 512 || k->block_size > (uint64_t)page ||
            (k->block_size & (k->block_size - 1))) {
            bh_error_set(errp, EINVAL, "nbd-kernel: block size %" PRIu64
                         " is not supported: the kernel takes a power of "
                         "two from 512 to %ld", k->block_size, page);
            goto fail;
        }
    }
    if (k->uri && !nbd_uri_parse(k->uri, &k->u, errp))
        goto fail;
    if (k->persist && !k->uri) {
        bh_error_set(errp, EINVAL, "nbd-kernel: persist reconnects to a "
                     "remote server and needs a uri; an in-process export "
                     "never goes away");
        goto fail;
    }
    if (k->persist && k->iface == IFACE_IOCTL) {
        bh_error_set(errp, EINVAL, "nbd-kernel: persist needs the netlink "
                     "interface (interface=ioctl cannot reconnect)");
        goto fail;
    }
    if (k->persist && !k->dead_timeout)
        k->dead_timeout = NBD_KERNEL_PERSIST_DEAD_TIMEOUT;
    return k;

fail:
    nbd_uri_clear(&k->u);
    g_free(k->device);
    g_free(k->uri);
    g_free(k->name);
    g_mutex_clear(&k->lock);
    g_free(k);
    return NULL;
}

static int nk_add_export(void *fe, BhExport *exp, BhError **errp)
{
    NbdKernel *k = fe;
    int r = 0;
    if (k->uri)
        r = bh_error_set(errp, EINVAL, "nbd-kernel: attach either an export "
                         "or a uri, not both");
    else if (k->exp)
        r = bh_error_set(errp, EEXIST, "nbd-kernel: a device takes one "
                         "export");
    if (r < 0) {
        bh_export_free(exp);
        return r;
    }
    k->exp = exp;
    return 0;
}

/* ---- sources ---- */

static gpointer serve_thread(gpointer data)
{
    ServeArg *a = data;
    NbdKernel *k = a->k;
    g_autoptr(BhError) err = NULL;
    int r = nbd_conn_serve(k->srv_fds[a->i], &k->session, k->pool,
                           &k->stats, &err);
    if (r < 0 && !g_atomic_int_get(&k->stopping))
        g_printerr("nbd-kernel: %s: connection %u: %s\n", k->device, a->i,
                   err ? bh_error_message(err) : g_strerror(-r));
    if (g_atomic_int_dec_and_test(&k->serving) &&
        !g_atomic_int_get(&k->stopping))
        let_go(k);
    return NULL;
}

/* Socketpairs served here; the kernel's ends go to cli_fds. */
static int open_local(NbdKernel *k, int *cli_fds, uint32_t *min_block,
                      BhError **errp)
{
    BhExport *e = k->exp;
    nbd_export_view_init(&k->session.exp, bh_export_node(e), bh_export_name(e),
                         bh_export_description(e), bh_export_readonly(e) || k->readonly, false);
    k->session.structured = false;
    k->size = k->session.exp.size;
    k->tflags = k->session.exp.tflags;
    *min_block = k->session.exp.min_block;

    k->pool = nbd_pool_new(k->threads, errp);
    if (!k->pool)
        return -ENOMEM;
    unsigned n = k->connections;
    k->srv_fds = g_new(int, n);
    k->serve = g_new0(GThread *, n);
    k->serve_args = g_new0(ServeArg, n);
    for (unsigned i = 0; i < n; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            return bh_error_set_errno(errp, errno, "socketpair");
        cli_fds[i] = sv[0];
        k->srv_fds[i] = sv[1];
        k->serve_args[i] = (ServeArg){ k, i };
        g_atomic_int_inc(&k->serving);
        GError *gerr = NULL;
        k->serve[i] = g_thread_try_new("nbd-kernel-serve", serve_thread,
                                       &k->serve_args[i], &gerr);
        k->nserve = i + 1;
        if (!k->serve[i]) {
            bh_error_take_gerror(errp, gerr, EAGAIN);
            g_atomic_int_dec_and_test(&k->serving);
            return -EAGAIN;
        }
    }
    return 0;
}

/* One negotiated socket to the uri's server, or -1. */
static int connect_remote(NbdKernel *k, NbdClientExport *ex, BhError **errp)
{
    int fd = nbd_uri_connect(&k->u, errp);
    if (fd < 0)
        return -1;
    if (nbd_client_handshake(fd, k->export_name, ex, errp) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int open_remote(NbdKernel *k, int *cli_fds, uint32_t *min_block,
                       BhError **errp)
{
    for (unsigned i = 0; i < k->connections; i++) {
        NbdClientExport ex;
        cli_fds[i] = connect_remote(k, &ex, errp);
        if (cli_fds[i] < 0)
            return -EIO;
        if (i == 0) {
            k->size = ex.size;
            k->tflags = ex.tflags;
            *min_block = ex.min_block;
            if (k->connections > 1 && !(ex.tflags & NBD_FLAG_CAN_MULTI_CONN))
                return bh_error_set(errp, EINVAL, "the NBD server does not "
                                    "allow several connections to export "
                                    "'%s' (no CAN_MULTI_CONN flag): use "
                                    "connections=1", k->export_name);
        } else if (ex.size != k->size) {
            return bh_error_set(errp, EIO, "the NBD server gave a different "
                                "size on connection %u", i + 1);
        }
    }
    return 0;
}

/* ---- start ---- */

static int check_geometry(NbdKernel *k, uint32_t min_block, BhError **errp)
{
    long page = sysconf(_SC_PAGESIZE);
    if (min_block > (uint32_t)page)
        return bh_error_set(errp, EINVAL, "the export needs %u-byte blocks; "
                            "the kernel takes at most %ld", min_block, page);
    if (!k->block_size)
        k->block_size = MAX(512u, min_block);
    else if (k->block_size < min_block)
        return bh_error_set(errp, EINVAL, "block size %" PRIu64 " is smaller "
                            "than the export's minimum block size %u",
                            k->block_size, min_block);
    if (k->size == 0)
        return bh_error_set(errp, EINVAL, "the export is empty (0 bytes); "
                            "there is nothing to attach");
    if (k->size % k->block_size)
        return bh_error_set(errp, EINVAL, "the export is %" PRIu64 " bytes, "
                            "not a multiple of the block size (%" PRIu64 "): "
                            "the kernel would hide the last %" PRIu64
                            " bytes; resize it to a multiple of %" PRIu64,
                            k->size, k->block_size,
                            k->size % k->block_size, k->block_size);
    return 0;
}

/* NBD_DO_IT returned: disconnected from outside, or every connection of
 * a remote device died. */
static void ioctl_done(void *opaque)
{
    NbdKernel *k = opaque;
    if (!g_atomic_int_get(&k->stopping))
        let_go(k);
}

static int attach_kernel(NbdKernel *k, const int *fds, BhError **errp)
{
    NbdKernelParams p = {
        .index = k->index, .size = k->size, .block_size = k->block_size,
        .timeout = k->timeout, .dead_timeout = k->dead_timeout,
        .server_flags = k->tflags | (k->readonly ? NBD_FLAG_READ_ONLY : 0),
        .fds = fds, .nfds = k->connections, .backend = k->backend,
    };
    if (k->iface != IFACE_IOCTL) {
        BhError *err = NULL;
        NbdNl *nl = nbd_nl_open(&err);
        if (nl) {
            int r = nbd_nl_connect(nl, &p, errp);
            nbd_nl_close(nl);
            return r;
        }
        if (k->iface == IFACE_NETLINK || bh_error_errno(err) != ENOENT ||
            k->persist) {
            bh_error_propagate(errp, err);
            return -ENOTSUP;
        }
        bh_error_free(err);
    }
    if (k->dead_timeout)
        return bh_error_set(errp, EINVAL, "dead-timeout needs the netlink "
                            "interface");
    k->via_ioctl = true;
    k->io = nbd_ioctl_connect(k->device, &p, ioctl_done, k, errp);
    return k->io ? 0 : -EIO;
}

/* Connected means the kernel shows the size; a DO_IT that returned early
 * means it failed. */
static int wait_live(NbdKernel *k, BhError **errp)
{
    for (int waited = 0; waited < NBD_KERNEL_LIVE_WAIT_MS; waited += 5) {
        int err = 0;
        if (nbd_dev_size(k->index) == k->size && nbd_dev_pid(k->index) > 0)
            return 0;
        if (k->io && nbd_ioctl_done(k->io, &err))
            return nbd_dev_perm_error(errp, err ? err : EIO,
                                      "NBD_DO_IT failed on", k->device);
        g_usleep(5000);
    }
    return bh_error_set(errp, ETIMEDOUT, "%s did not come up within %d s "
                        "(the kernel shows %" PRIu64 " bytes, expected %"
                        PRIu64 ")", k->device, NBD_KERNEL_LIVE_WAIT_MS / 1000,
                        nbd_dev_size(k->index), k->size);
}

static gpointer monitor_thread(gpointer data);
static void nk_teardown(NbdKernel *k, bool disconnect);

static int nk_start(void *fe, BhError **errp)
{
    NbdKernel *k = fe;
    uint32_t min_block = 1;
    int r;
    if (k->started)
        return bh_error_set(errp, EALREADY, "%s: already started",
                            k->device);
    if (!k->exp && !k->uri)
        return bh_error_set(errp, EINVAL, "nbd-kernel: nothing to attach to "
                            "%s: give an export or a uri", k->device);
    if ((r = nbd_dev_resolve(k->device, errp)) < 0)
        return r;
    k->index = r;
    int64_t pid = nbd_dev_pid(k->index);
    if (pid > 0) {
        g_autofree char *backend = nbd_dev_sysfs(k->index, "backend");
        return bh_error_set(errp, EBUSY, "%s is already connected (by pid "
                            "%" PRId64 "%s%s); disconnect it first",
                            k->device, pid, backend && *backend ? ", " : "",
                            backend ? backend : "");
    }
    k->started = true;
    if (k->uri)
        k->export_name = g_strdup(k->name ? k->name : k->u.export_name);
    k->backend = g_strdup_printf("blkhost:%s", k->uri ? k->uri
                                 : bh_node_filename(bh_export_node(k->exp)));
    if (strlen(k->backend) > 200)
        k->backend[200] = 0;

    g_autofree int *fds = g_new(int, k->connections);
    for (unsigned i = 0; i < k->connections; i++)
        fds[i] = -1;
    r = k->exp ? open_local(k, fds, &min_block, errp)
               : open_remote(k, fds, &min_block, errp);
    if (r == 0)
        r = check_geometry(k, min_block, errp);
    if (r == 0 && k->persist) {
        k->events = nbd_nl_open(errp);
        r = !k->events ? -ENOTSUP : nbd_nl_subscribe(k->events, errp);
    }
    if (r == 0)
        r = attach_kernel(k, fds, errp);
    /* The kernel holds its own references to the sockets now. */
    for (unsigned i = 0; i < k->connections; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (r == 0 && (r = wait_live(k, errp)) < 0) {
        k->stopped = true;
        nk_teardown(k, true);
        return r;
    }
    if (r < 0) {
        k->stopped = true;
        nk_teardown(k, false);
        return r;
    }
    k->pid = nbd_dev_pid(k->index);
    nbd_dev_reread_partitions(k->index);

    if (k->persist) {
        if (pipe2(k->wake, O_CLOEXEC) == 0)
            k->monitor = g_thread_try_new("nbd-kernel-persist",
                                          monitor_thread, k, NULL);
        if (!k->monitor)
            g_printerr("nbd-kernel: %s: cannot start the reconnect thread; "
                       "persist is off\n", k->device);
    }
    if (k->exp || k->io || k->monitor) {
        g_atomic_int_set(&k->holding, 1);
        bh_loop_hold();
        /* A connection that already ended would have found nobody to
         * release. */
        if ((k->exp && g_atomic_int_get(&k->serving) == 0) ||
            (k->io && nbd_ioctl_done(k->io, NULL)) ||
            g_atomic_int_get(&k->monitor_done))
            let_go(k);
    }
    return 0;
}

/* ---- persist ---- */

/* Sleep ms unless woken; false when told to stop. */
static bool monitor_sleep(NbdKernel *k, int ms)
{
    struct pollfd p = { .fd = k->wake[0], .events = POLLIN };
    return poll(&p, 1, ms) == 0 && !g_atomic_int_get(&k->stopping);
}

static bool still_ours(NbdKernel *k)
{
    return nbd_dev_pid(k->index) == k->pid;
}

static void reconnect(NbdKernel *k)
{
    int delay = 100;
    bool said = false;
    g_atomic_int_set(&k->link_dead, 1);
    g_printerr("nbd-kernel: %s: lost a connection to %s; reconnecting\n",
               k->device, k->uri);
    while (!g_atomic_int_get(&k->stopping) && still_ours(k)) {
        g_autoptr(BhError) err = NULL;
        NbdClientExport ex;
        int fd = connect_remote(k, &ex, &err);
        if (fd >= 0 && ex.size != k->size) {
            bh_error_set(&err, EIO, "the export is now %" PRIu64
                        " bytes, was %" PRIu64, ex.size, k->size);
        } else if (fd >= 0) {
            NbdNl *nl = nbd_nl_open(&err);
            if (nl && nbd_nl_reconfigure(nl, k->index, &fd, 1, k->backend,
                                         &err) == 0) {
                nbd_nl_close(nl);
                close(fd);
                g_atomic_int_inc(&k->reconnects);
                g_atomic_int_set(&k->link_dead, 0);
                g_printerr("nbd-kernel: %s: reconnected to %s\n", k->device,
                           k->uri);
                return;
            }
            nbd_nl_close(nl);
        }
        if (fd >= 0)
            close(fd);
        if (!said)
            g_printerr("nbd-kernel: %s: reconnecting: %s; retrying with "
                       "backoff\n", k->device, bh_error_message(err));
        said = true;
        if (!monitor_sleep(k, delay))
            return;
        delay = MIN(delay * 2, 5000);
    }
}

static gpointer monitor_thread(gpointer data)
{
    NbdKernel *k = data;
    struct pollfd p[2] = {
        { .fd = k->wake[0], .events = POLLIN },
        { .fd = nbd_nl_fd(k->events), .events = POLLIN },
    };
    while (!g_atomic_int_get(&k->stopping)) {
        int n = poll(p, 2, 1000);
        if (g_atomic_int_get(&k->stopping) || (n > 0 && p[0].revents))
            break;
        if (n > 0 && (p[1].revents & POLLIN) &&
            nbd_nl_read_event(k->events) == k->index)
            reconnect(k);
        if (!still_ours(k))
            break;   /* disconnected from outside */
    }
    g_atomic_int_set(&k->monitor_done, 1);
    if (!g_atomic_int_get(&k->stopping))
        let_go(k);
    return NULL;
}

/* ---- stop ---- */

/* Push the device's dirty pages to the source before cutting it off. */
static void flush_device(NbdKernel *k)
{
    int fd = open(k->device, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void disconnect_kernel(NbdKernel *k)
{
    if (k->io) {
        nbd_ioctl_disconnect_and_free(k->io);
        k->io = NULL;
        return;
    }
    g_autoptr(BhError) err = NULL;
    NbdNl *nl = nbd_nl_open(&err);
    if (!nl || nbd_nl_disconnect(nl, k->index, &err) < 0)
        g_printerr("nbd-kernel: %s: %s\n", k->device, bh_error_message(err));
    nbd_nl_close(nl);
}

/* Undo start; disconnect says whether the kernel was attached. */
static void nk_teardown(NbdKernel *k, bool disconnect)
{
    g_atomic_int_set(&k->stopping, 1);
    if (k->monitor) {
        if (write(k->wake[1], "x", 1) < 0) { /* the poll also times out */ }
        g_thread_join(k->monitor);
        k->monitor = NULL;
    }
    if (disconnect && k->pid && still_ours(k)) {
        if (!g_atomic_int_get(&k->link_dead) &&
            (!k->exp || g_atomic_int_get(&k->serving) > 0))
            flush_device(k);
        disconnect_kernel(k);
        /* The kernel drops its configuration once its receive workers
         * have gone; wait a little so that a new connect finds it free. */
        for (int i = 0; i < 400 && nbd_dev_pid(k->index) > 0; i++)
            g_usleep(5000);
    } else if (disconnect && !k->pid) {
        disconnect_kernel(k);
    }
    if (k->io) {
        nbd_ioctl_disconnect_and_free(k->io);
        k->io = NULL;
    }
    for (unsigned i = 0; i < k->nserve; i++)
        shutdown(k->srv_fds[i], SHUT_RDWR);
    for (unsigned i = 0; i < k->nserve; i++)
        if (k->serve[i])
            g_thread_join(k->serve[i]);
    for (unsigned i = 0; i < k->nserve; i++)
        close(k->srv_fds[i]);
    k->nserve = 0;
    if (k->pool) {
        nbd_pool_free(k->pool);
        k->pool = NULL;
    }
    if (k->exp && !k->session.exp.readonly) {
        g_autoptr(BhError) err = NULL;
        if (bh_node_flush(bh_export_node(k->exp), &err) < 0)
            g_printerr("nbd-kernel: %s: flushing the export: %s\n",
                       k->device, bh_error_message(err));
    }
    nbd_nl_close(k->events);
    k->events = NULL;
    for (int i = 0; i < 2; i++)
        if (k->wake[i] >= 0) {
            close(k->wake[i]);
            k->wake[i] = -1;
        }
    if (g_atomic_int_compare_and_exchange(&k->holding, 1, 0))
        bh_loop_release();
}

static void nk_stop(void *fe)
{
    NbdKernel *k = fe;
    g_mutex_lock(&k->lock);
    bool go = k->started && !k->stopped;
    k->stopped = true;
    g_mutex_unlock(&k->lock);
    if (go)
        nk_teardown(k, true);
}

static void nk_destroy(void *fe)
{
    NbdKernel *k = fe;
    nk_stop(k);
    if (k->exp)
        bh_export_free(k->exp);
    nbd_uri_clear(&k->u);
    g_free(k->srv_fds);
    g_free(k->serve);
    g_free(k->serve_args);
    g_free(k->device);
    g_free(k->uri);
    g_free(k->name);
    g_free(k->export_name);
    g_free(k->backend);
    g_mutex_clear(&k->lock);
    g_free(k);
}

static char *nk_uri(void *fe, const char *export_name)
{
    NbdKernel *k = fe;
    return g_strdup(k->device);
}

static void nk_status(void *fe, BhInfo *info)
{
    NbdKernel *k = fe;
    if (k->started) {
        nbd_dev_info(k->index, info);
        /* Connected to us, not to whoever took the device since. */
        bh_info_add_bool(info, "connected", k->pid > 0 && !k->stopped &&
                         still_ours(k));
    } else {
        bh_info_add_str(info, "device", k->device);
        bh_info_add_bool(info, "connected", false);
    }
    bh_info_add_str(info, "source", k->uri ? k->uri
                    : k->exp ? bh_node_filename(bh_export_node(k->exp)) : "");
    bh_info_add_str(info, "interface", k->via_ioctl ? "ioctl" : "netlink");
    bh_info_add_int(info, "connections", k->connections);
    bh_info_add_int(info, "block-size", (int64_t)k->block_size);
    bh_info_add_bool(info, "persist", k->persist);
    bh_info_add_int(info, "reconnects", g_atomic_int_get(&k->reconnects));
    if (k->exp) {
        bh_info_add_int(info, "serving", g_atomic_int_get(&k->serving));
        bh_info_add_int(info, "requests", (int64_t)__atomic_load_n(
                            &k->stats.requests, __ATOMIC_RELAXED));
        bh_info_add_int(info, "bytes-read", (int64_t)__atomic_load_n(
                            &k->stats.bytes_read, __ATOMIC_RELAXED));
        bh_info_add_int(info, "bytes-written", (int64_t)__atomic_load_n(
                            &k->stats.bytes_written, __ATOMIC_RELAXED));
    }
}

static void nk_set_event_cb(void *fe, BhFrontendEventFn cb, void *data)
{
}

static const BhFrontend nbd_kernel_frontend = {
    .create = nk_create,
    .add_export = nk_add_export,
    .start = nk_start,
    .stop = nk_stop,
    .destroy = nk_destroy,
    .uri = nk_uri,
    .status = nk_status,
    .set_event_cb = nk_set_event_cb,
    .control = nbd_kernel_control,
};

static const BhPluginDesc desc = {
    .kind = BH_PLUGIN_FRONTEND,
    .thread_model = BH_THREAD_PARALLEL,
    .name = "nbd-kernel",
    .version = "0.1.0",
    .description = "Kernel NBD client: attaches an export or an NBD URI to "
                   "/dev/nbdN",
    .frontend = &nbd_kernel_frontend,
};

BH_PLUGIN_REGISTER(desc)
