/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Listening sockets of the nbd-server frontend and the URIs clients use.
 *
 * Specs: "unix:PATH", "tcp:HOST:PORT" (HOST an IPv4 address, a bracketed
 * IPv6 address such as [::1], or a name; PORT may be 0 for any free
 * port), "fd:N" for an inherited listening socket, and "systemd" for
 * sockets passed by socket activation (LISTEN_PID/LISTEN_FDS), which are
 * also used when no spec is given and the variables name this process.
 * A stale Unix socket file (nobody accepting) is replaced; anything else
 * at that path is refused.  Stop removes only the socket files we made.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-server.h"
#include <blkhost/glib.h>

#define SD_LISTEN_FDS_START 3

/* Lets "return fail_(bh_error_set(errp, ...));" read as one statement. */
static inline bool fail_(int negative_errno)
{
    (void)negative_errno;
    return false;
}

/* Split "HOST:PORT" / "[V6]:PORT"; the caller frees *host. */
static bool split_host_port(const char *hp, char **host, char **port,
                            BhError **errp)
{
    const char *colon;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (!close || close[1] != ':')
            goto bad;
        *host = g_strndup(hp + 1, (size_t)(close - hp - 1));
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon || colon == hp)
            goto bad;
        *host = g_strndup(hp, (size_t)(colon - hp));
        if (strchr(*host, ':')) {
            g_clear_pointer(host, g_free);
            goto bad;
        }
    }
    const char *p = colon + 1;
    if (!*p || strspn(p, "0123456789") != strlen(p) || atol(p) > 65535) {
        g_clear_pointer(host, g_free);
        goto bad;
    }
    *port = g_strdup(p);
    return true;
bad:
    bh_error_set(errp, EINVAL,
                 "bad TCP address 'tcp:%s': expected tcp:HOST:PORT, e.g. "
                 "tcp:127.0.0.1:10809 or tcp:[::1]:10809", hp);
    return false;
}

bool nbd_listen_check_spec(const char *spec, BhError **errp)
{
    if (g_str_has_prefix(spec, "unix:")) {
        const char *path = spec + 5;
        if (!*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return fail_(bh_error_set(errp, EINVAL,
                                "bad Unix socket path in '%s': it must be "
                                "1 to %zu bytes", spec,
                                sizeof(((struct sockaddr_un *)0)->sun_path) - 1));
        return true;
    }
    if (g_str_has_prefix(spec, "tcp:")) {
        g_autofree char *host = NULL, *port = NULL;
        return split_host_port(spec + 4, &host, &port, errp);
    }
    if (g_str_has_prefix(spec, "fd:")) {
        const char *p = spec + 3;
        if (*p && strspn(p, "0123456789") == strlen(p))
            return true;
    } else if (strcmp(spec, "systemd") == 0) {
        return true;
    }
    bh_error_set(errp, EINVAL,
                 "bad listen address '%s': expected unix:PATH, "
                 "tcp:HOST:PORT, fd:N or systemd", spec);
    return false;
}

static void add_listener(NbdServer *srv, NbdListener *l)
{
    g_array_append_val(srv->listeners, *l);
}

static bool adopt_fd(NbdServer *srv, int fd, const char *what, BhError **errp)
{
    int acc = 0;
    socklen_t len = sizeof(acc);
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc ||
        getsockname(fd, (struct sockaddr *)&ss, &slen) < 0)
        return fail_(bh_error_set(errp, EINVAL, "%s (fd %d) is not a "
                                  "listening socket", what, fd));
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    NbdListener l = { .fd = fd, .family = ss.ss_family };
    add_listener(srv, &l);
    return true;
}

static bool open_systemd(NbdServer *srv, BhError **errp)
{
    const char *pid = g_getenv("LISTEN_PID");
    const char *fds = g_getenv("LISTEN_FDS");
    if (!pid || !fds || atol(pid) != (long)getpid())
        return fail_(bh_error_set(errp, EINVAL,
                            "listen=systemd, but LISTEN_PID/LISTEN_FDS do "
                            "not pass sockets to this process"));
    long n = atol(fds);
    if (n <= 0 || n > 64)
        return fail_(bh_error_set(errp, EINVAL, "LISTEN_FDS=%s is not a socket "
                            "count", fds));
    for (long i = 0; i < n; i++)
        if (!adopt_fd(srv, SD_LISTEN_FDS_START + (int)i, "a systemd socket",
                      errp))
            return false;
    /* As sd_listen_fds(1): children must not take them again. */
    g_unsetenv("LISTEN_PID");
    g_unsetenv("LISTEN_FDS");
    g_unsetenv("LISTEN_FDNAMES");
    return true;
}

static bool open_unix(NbdServer *srv, const char *path, BhError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return fail_(bh_error_set(errp, EEXIST, "cannot listen on '%s': it "
                                "exists and is not a socket", path));
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 &&
                    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (live)
            return fail_(bh_error_set(errp, EADDRINUSE, "cannot listen on '%s': "
                                "another server is accepting there",
                                path));
        unlink(path);   /* stale: its server is gone */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail_(bh_error_set_errno(errp, errno, "socket"));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 128) < 0) {
        int e = errno;
        close(fd);
        return fail_(bh_error_set_errno(errp, e, "cannot listen on '%s'",
                                  path));
    }
    NbdListener l = { .fd = fd, .family = AF_UNIX, .path = g_strdup(path),
                      .owned = true };
    if (stat(path, &st) == 0) {
        l.dev = st.st_dev;
        l.ino = st.st_ino;
    }
    add_listener(srv, &l);
    return true;
}

static bool open_tcp(NbdServer *srv, const char *hp, BhError **errp)
{
    g_autofree char *host = NULL, *port = NULL;
    if (!split_host_port(hp, &host, &port, errp))
        return false;
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return fail_(bh_error_set(errp, EINVAL, "cannot resolve '%s': %s", host,
                            gai_strerror(gai)));
    bool any = false;
    int last_err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            last_err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
            listen(fd, 128) < 0) {
            last_err = errno;
            close(fd);
            continue;
        }
        NbdListener l = { .fd = fd, .family = ai->ai_family, .owned = true };
        add_listener(srv, &l);
        any = true;
    }
    freeaddrinfo(res);
    if (!any)
        return fail_(bh_error_set_errno(errp, last_err ? last_err : EADDRNOTAVAIL,
                                  "cannot listen on tcp:%s", hp));
    return true;
}

bool nbd_listen_open(NbdServer *srv, BhError **errp)
{
    char **specs = srv->listen;
    bool ok = true;
    if (!specs || !specs[0]) {
        const char *pid = g_getenv("LISTEN_PID");
        if (pid && atol(pid) == (long)getpid())
            return open_systemd(srv, errp);
        return fail_(bh_error_set(errp, EINVAL,
                            "nbd-server: no listen address given; use "
                            "listen=unix:PATH or listen=tcp:HOST:PORT"));
    }
    for (char **s = specs; ok && *s; s++) {
        if (g_str_has_prefix(*s, "unix:"))
            ok = open_unix(srv, *s + 5, errp);
        else if (g_str_has_prefix(*s, "tcp:"))
            ok = open_tcp(srv, *s + 4, errp);
        else if (g_str_has_prefix(*s, "fd:"))
            ok = adopt_fd(srv, atoi(*s + 3), *s, errp);
        else if (strcmp(*s, "systemd") == 0)
            ok = open_systemd(srv, errp);
        else
            ok = nbd_listen_check_spec(*s, errp);
    }
    if (!ok)
        nbd_listen_close(srv);
    return ok;
}

void nbd_listen_close(NbdServer *srv)
{
    for (guint i = 0; i < srv->listeners->len; i++) {
        NbdListener *l = &g_array_index(srv->listeners, NbdListener, i);
        struct stat st;
        if (l->path && stat(l->path, &st) == 0 && st.st_dev == l->dev &&
            st.st_ino == l->ino)
            unlink(l->path);
        if (l->fd >= 0)
            close(l->fd);
        g_free(l->path);
    }
    g_array_set_size(srv->listeners, 0);
}

/* Host and port of an inet listener, bracketing IPv6 and turning the
 * wildcard address into localhost (what a local client would use). */
static char *inet_authority(const NbdListener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "localhost";
    int port = NBD_DEFAULT_PORT;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            if (in->sin_addr.s_addr != htonl(INADDR_ANY))
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            port = ntohs(in6->sin6_port);
            if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
                char a[INET6_ADDRSTRLEN];
                inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
                return g_strdup_printf("[%s]:%d", a, port);
            }
        }
    }
    return g_strdup_printf("%s:%d", host, port);
}

static char *unix_path_of(const NbdListener *l)
{
    if (l->path)
        return g_strdup(l->path);
    struct sockaddr_un sa;
    socklen_t len = sizeof(sa);
    if (getsockname(l->fd, (struct sockaddr *)&sa, &len) == 0 &&
        len > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0])
        return g_strndup(sa.sun_path, len - offsetof(struct sockaddr_un,
                                                      sun_path));
    return g_strdup("");
}

char *nbd_listen_uri(const NbdListener *l, const char *export_name, bool tls)
{
    /* A client must know to start TLS when the server requires it. */
    const char *s = tls ? "s" : "";
    g_autofree char *name = g_uri_escape_string(export_name ? export_name : "",
                                                NULL, FALSE);
    if (l->family == AF_UNIX) {
        g_autofree char *path = unix_path_of(l);
        g_autofree char *qpath = g_uri_escape_string(path, "/", FALSE);
        return g_strdup_printf("nbd%s+unix:///%s?socket=%s", s, name, qpath);
    }
    g_autofree char *auth = inet_authority(l);
    return g_strdup_printf("nbd%s://%s/%s", s, auth, name);
}

char *nbd_listen_describe(const NbdListener *l)
{
    if (l->family == AF_UNIX) {
        g_autofree char *path = unix_path_of(l);
        return g_strdup_printf("unix:%s", path);
    }
    g_autofree char *auth = inet_authority(l);
    return g_strdup_printf("tcp:%s", auth);
}
