/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NBD client handshake (see nbd-client.h): URI parsing and connecting,
 * GO / EXPORT_NAME negotiation and export listing.
 *
 * The socket this negotiates may be handed to the kernel, so the client
 * asks for nothing that changes the transmission protocol: no structured
 * replies, no meta contexts, no extended headers.  While haggling, reads
 * time out (a server that stops answering must not hang a connect); the
 * timeout is removed again before the socket is returned, because the
 * kernel's receive path would otherwise inherit it.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd-client.h"
#include <blkhost/glib.h>

#define NBD_OLDSTYLE_MAGIC  UINT64_C(0x0000420281861253)
#define NBD_CLIENT_HANDSHAKE_TIMEOUT 30   /* seconds per read */

/* ---- URIs ---- */

void nbd_uri_clear(NbdUri *u)
{
    g_clear_pointer(&u->host, g_free);
    g_clear_pointer(&u->port, g_free);
    g_clear_pointer(&u->socket_path, g_free);
    g_clear_pointer(&u->export_name, g_free);
    u->is_unix = false;
}

static bool uri_fail(NbdUri *u, BhError **errp, const char *uri,
                     const char *what)
{
    nbd_uri_clear(u);
    bh_error_set(errp, EINVAL, "bad NBD URI '%s': %s (expected "
                 "nbd://HOST[:PORT]/EXPORT or "
                 "nbd+unix:///EXPORT?socket=PATH)", uri, what);
    return false;
}

static bool parse_authority(NbdUri *u, const char *auth, BhError **errp,
                            const char *uri)
{
    const char *port = NULL;
    if (auth[0] == '[') {
        const char *close = strchr(auth, ']');
        if (!close)
            return uri_fail(u, errp, uri, "unclosed '[' in the host");
        u->host = g_strndup(auth + 1, (size_t)(close - auth - 1));
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            return uri_fail(u, errp, uri, "junk after the IPv6 address");
    } else {
        const char *colon = strchr(auth, ':');
        if (colon && strchr(colon + 1, ':'))
            return uri_fail(u, errp, uri, "an IPv6 address must be in "
                            "brackets, e.g. nbd://[::1]:10809/");
        u->host = colon ? g_strndup(auth, (size_t)(colon - auth))
                        : g_strdup(auth);
        if (colon)
            port = colon + 1;
    }
    if (!*u->host)
        return uri_fail(u, errp, uri, "the host is missing");
    if (port) {
        if (!*port || strspn(port, "0123456789") != strlen(port) ||
            strlen(port) > 5 || atoi(port) == 0 || atoi(port) > 65535)
            return uri_fail(u, errp, uri, "the port must be a number from "
                            "1 to 65535");
        u->port = g_strdup(port);
    } else {
        u->port = g_strdup_printf("%d", NBD_DEFAULT_PORT);
    }
    return true;
}

bool nbd_uri_parse(const char *uri, NbdUri *u, BhError **errp)
{
    memset(u, 0, sizeof(*u));
    const char *sep = strstr(uri, "://");
    if (!sep)
        return uri_fail(u, errp, uri, "no scheme");
    g_autofree char *scheme = g_ascii_strdown(uri, sep - uri);
    if (strcmp(scheme, "nbd+unix") == 0)
        u->is_unix = true;
    else if (strcmp(scheme, "nbd") != 0 && strcmp(scheme, "nbd+tcp") != 0) {
        if (g_str_has_prefix(scheme, "nbds"))
            /* The kernel NBD client gets a plain socket and cannot
             * speak TLS, so this client (which feeds it) does not. */
            return uri_fail(u, errp, uri, "TLS (nbds) is not supported: "
                            "the kernel NBD client cannot use TLS; serve "
                            "it over plain nbd:// or nbd+unix://");
        return uri_fail(u, errp, uri, "unknown scheme");
    }
    const char *rest = sep + 3;
    const char *slash = strchr(rest, '/');
    const char *query = strchr(rest, '?');
    if (query && slash && slash > query)
        slash = NULL;
    const char *auth_end = slash ? slash : query ? query : rest + strlen(rest);
    g_autofree char *auth = g_strndup(rest, (size_t)(auth_end - rest));

    if (u->is_unix) {
        if (*auth)
            return uri_fail(u, errp, uri, "nbd+unix takes no host: write "
                            "three slashes, nbd+unix:///");
    } else if (!parse_authority(u, auth, errp, uri)) {
        return false;
    }

    const char *path_end = query ? query : auth_end + strlen(auth_end);
    g_autofree char *path = slash ? g_strndup(slash + 1,
                                              (size_t)(path_end - slash - 1))
                                  : g_strdup("");
    u->export_name = g_uri_unescape_string(path, NULL);
    if (!u->export_name)
        return uri_fail(u, errp, uri, "bad percent-encoding in the export "
                        "name");
    if (strlen(u->export_name) > NBD_MAX_STRING)
        return uri_fail(u, errp, uri, "the export name is longer than 4096 "
                        "bytes");

    if (query) {
        g_auto(GStrv) params = g_strsplit(query + 1, "&", -1);
        for (char **p = params; *p; p++) {
            if (!**p)
                continue;
            if (u->is_unix && g_str_has_prefix(*p, "socket=")) {
                g_free(u->socket_path);
                u->socket_path = g_uri_unescape_string(*p + 7, NULL);
                if (!u->socket_path)
                    return uri_fail(u, errp, uri, "bad percent-encoding in "
                                    "the socket path");
                continue;
            }
            g_autofree char *msg = g_strdup_printf("unsupported query "
                                                   "parameter '%s'", *p);
            return uri_fail(u, errp, uri, msg);
        }
    }
    if (u->is_unix) {
        if (!u->socket_path || !*u->socket_path)
            return uri_fail(u, errp, uri, "nbd+unix needs ?socket=PATH");
        if (strlen(u->socket_path) >=
            sizeof(((struct sockaddr_un *)0)->sun_path))
            return uri_fail(u, errp, uri, "the socket path is too long");
    }
    return true;
}

int nbd_uri_connect(const NbdUri *u, BhError **errp)
{
    if (u->is_unix) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        g_strlcpy(sa.sun_path, u->socket_path, sizeof(sa.sun_path));
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return bh_error_set_errno(errp, errno, "socket"), -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int e = errno;
            close(fd);
            bh_error_set_errno(errp, e, "cannot connect to the NBD server "
                               "at '%s'", u->socket_path);
            return -1;
        }
        return fd;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(u->host, u->port, &hints, &res);
    if (gai != 0) {
        bh_error_set(errp, EHOSTUNREACH, "cannot resolve NBD server '%s': "
                     "%s", u->host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, last = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            last = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        bh_error_set_errno(errp, last, "cannot connect to the NBD server at "
                           "%s port %s", u->host, u->port);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* ---- handshake ---- */

static void set_read_timeout(int fd, int seconds)
{
    struct timeval tv = { .tv_sec = seconds };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static int io_fail(BhError **errp, int r, const char *doing)
{
    if (r == -EPIPE)
        return bh_error_set(errp, EPIPE, "the NBD server closed the "
                            "connection while %s", doing);
    if (r == -EAGAIN || r == -EWOULDBLOCK)
        return bh_error_set(errp, ETIMEDOUT, "the NBD server did not "
                            "answer within %d s while %s",
                            NBD_CLIENT_HANDSHAKE_TIMEOUT, doing);
    return bh_error_set_errno(errp, -r, "NBD handshake failed while %s",
                              doing);
}

/* Greeting and client flags; *no_zeroes tells whether EXPORT_NAME's reply
 * omits its 124 bytes of padding. */
static int client_greeting(int fd, bool *no_zeroes, BhError **errp)
{
    uint64_t magic[2];
    uint16_t hflags;
    int r = nbd_read_full(fd, magic, sizeof(magic));
    if (r < 0)
        return io_fail(errp, r, "reading its greeting");
    if (GUINT64_FROM_BE(magic[0]) != NBD_MAGIC)
        return bh_error_set(errp, EPROTO, "the peer is not an NBD server "
                            "(bad greeting magic)");
    if (GUINT64_FROM_BE(magic[1]) == NBD_OLDSTYLE_MAGIC)
        return bh_error_set(errp, EPROTO, "the NBD server speaks the "
                            "oldstyle protocol, which is not supported");
    if (GUINT64_FROM_BE(magic[1]) != NBD_IHAVEOPT)
        return bh_error_set(errp, EPROTO, "the NBD server sent an unknown "
                            "handshake magic");
    if ((r = nbd_read_full(fd, &hflags, 2)) < 0)
        return io_fail(errp, r, "reading its handshake flags");
    hflags = GUINT16_FROM_BE(hflags);
    if (!(hflags & NBD_FLAG_FIXED_NEWSTYLE))
        return bh_error_set(errp, EPROTO, "the NBD server does not speak "
                            "fixed newstyle NBD");
    *no_zeroes = hflags & NBD_FLAG_NO_ZEROES;
    uint32_t cflags = NBD_FLAG_C_FIXED_NEWSTYLE |
                      (*no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0);
    cflags = GUINT32_TO_BE(cflags);
    if ((r = nbd_write_full(fd, &cflags, 4)) < 0)
        return io_fail(errp, r, "sending client flags");
    return 0;
}

static int send_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
    NbdOptionHeader h = { .magic = GUINT64_TO_BE(NBD_IHAVEOPT),
                          .option = GUINT32_TO_BE(opt),
                          .length = GUINT32_TO_BE(len) };
    int r = nbd_write_full(fd, &h, sizeof(h));
    if (r == 0 && len)
        r = nbd_write_full(fd, data, len);
    return r;
}

/* One option reply; *payload (g_free) holds its data, NUL-terminated. */
static int read_reply(int fd, uint32_t opt, uint32_t *type, char **payload,
                      uint32_t *len, BhError **errp)
{
    NbdOptionReply rep;
    int r = nbd_read_full(fd, &rep, sizeof(rep));
    if (r < 0)
        return io_fail(errp, r, "reading an option reply");
    if (GUINT64_FROM_BE(rep.magic) != NBD_REP_MAGIC ||
        GUINT32_FROM_BE(rep.option) != opt)
        return bh_error_set(errp, EPROTO, "the NBD server sent a malformed "
                            "option reply");
    *type = GUINT32_FROM_BE(rep.type);
    *len = GUINT32_FROM_BE(rep.length);
    if (*len > NBD_MAX_OPTION_LEN + 64)
        return bh_error_set(errp, EPROTO, "the NBD server sent an option "
                            "reply of %u bytes", *len);
    *payload = g_malloc(*len + 1);
    if (*len && (r = nbd_read_full(fd, *payload, *len)) < 0) {
        g_clear_pointer(payload, g_free);
        return io_fail(errp, r, "reading an option reply");
    }
    (*payload)[*len] = 0;
    return 0;
}

static uint32_t be32_at(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}

/* An error reply to opt, as a BhError whose errno says what kind it was. */
static int reply_error(uint32_t type, const char *msg, const char *name,
                       BhError **errp)
{
    const char *sep = *msg ? ": " : "";
    switch (type) {
    case NBD_REP_ERR_UNKNOWN:
        return bh_error_set(errp, ENOENT, "the NBD server has no export "
                            "named '%s'%s%s", name, sep, msg);
    case NBD_REP_ERR_POLICY:
        return bh_error_set(errp, EACCES, "the NBD server refused export "
                            "'%s'%s%s", name, sep, msg);
    case NBD_REP_ERR_TLS_REQD:
        return bh_error_set(errp, EACCES, "the NBD server requires TLS, "
                            "which is not supported%s%s", sep, msg);
    case NBD_REP_ERR_SHUTDOWN:
        return bh_error_set(errp, ESHUTDOWN, "the NBD server is shutting "
                            "down%s%s", sep, msg);
    case NBD_REP_ERR_BLOCK_SIZE_REQD:
        return bh_error_set(errp, EINVAL, "the NBD server requires block "
                            "size negotiation%s%s", sep, msg);
    default:
        return bh_error_set(errp, EPROTO, "the NBD server refused the "
                            "option (error 0x%x)%s%s", type, sep, msg);
    }
}

/* GO or INFO (opt): 1 on success, 0 when the server does not know the
 * option, else -errno. */
static int client_go(int fd, uint32_t opt, const char *name,
                     NbdClientExport *out, BhError **errp)
{
    /* name length, name, one information request: BLOCK_SIZE */
    uint32_t nlen = (uint32_t)strlen(name);
    g_autofree char *data = g_malloc(nlen + 8);
    uint32_t be = GUINT32_TO_BE(nlen);
    uint16_t ninfo = GUINT16_TO_BE(1);
    uint16_t want = GUINT16_TO_BE(NBD_INFO_BLOCK_SIZE);
    memcpy(data, &be, 4);
    memcpy(data + 4, name, nlen);
    memcpy(data + 4 + nlen, &ninfo, 2);
    memcpy(data + 6 + nlen, &want, 2);
    int r = send_option(fd, opt, data, nlen + 8);
    if (r < 0)
        return io_fail(errp, r, opt == NBD_OPT_GO ? "sending NBD_OPT_GO"
                                                  : "sending NBD_OPT_INFO");

    bool have_export = false;
    for (;;) {
        uint32_t type, len;
        g_autofree char *p = NULL;
        if ((r = read_reply(fd, opt, &type, &p, &len, errp)) < 0)
            return r;
        if (type == NBD_REP_ACK) {
            if (!have_export)
                return bh_error_set(errp, EPROTO, "the NBD server accepted "
                                    "GO without sending the export size");
            out->used_go = opt == NBD_OPT_GO;
            return 1;
        }
        if (type == NBD_REP_INFO) {
            if (len < 2)
                return bh_error_set(errp, EPROTO, "the NBD server sent a "
                                    "truncated NBD_REP_INFO");
            uint16_t itype;
            memcpy(&itype, p, 2);
            itype = GUINT16_FROM_BE(itype);
            if (itype == NBD_INFO_EXPORT && len == 12) {
                uint64_t size;
                uint16_t tf;
                memcpy(&size, p + 2, 8);
                memcpy(&tf, p + 10, 2);
                out->size = GUINT64_FROM_BE(size);
                out->tflags = GUINT16_FROM_BE(tf);
                have_export = true;
            } else if (itype == NBD_INFO_BLOCK_SIZE && len == 14) {
                out->min_block = be32_at(p + 2);
                out->pref_block = be32_at(p + 6);
                out->max_block = be32_at(p + 10);
            }
            continue;
        }
        if (type == NBD_REP_ERR_UNSUP)
            return 0;
        if (type & NBD_REP_ERR_BASE)
            return reply_error(type, p, name, errp);
        /* Unknown non-error replies must be ignored. */
    }
}

static int client_export_name(int fd, const char *name, bool no_zeroes,
                              NbdClientExport *out, BhError **errp)
{
    int r = send_option(fd, NBD_OPT_EXPORT_NAME, name,
                        (uint32_t)strlen(name));
    if (r < 0)
        return io_fail(errp, r, "sending NBD_OPT_EXPORT_NAME");
    char buf[10 + 124];
    size_t want = no_zeroes ? 10 : sizeof(buf);
    r = nbd_read_full(fd, buf, want);
    if (r == -EPIPE)
        /* The only way EXPORT_NAME can say no. */
        return bh_error_set(errp, ENOENT, "the NBD server closed the "
                            "connection: it has no export named '%s' (or "
                            "refused it)", name);
    if (r < 0)
        return io_fail(errp, r, "reading the export size");
    uint64_t size;
    uint16_t tf;
    memcpy(&size, buf, 8);
    memcpy(&tf, buf + 8, 2);
    out->size = GUINT64_FROM_BE(size);
    out->tflags = GUINT16_FROM_BE(tf);
    out->used_go = false;
    return 0;
}

static void export_defaults(NbdClientExport *ex)
{
    memset(ex, 0, sizeof(*ex));
    ex->min_block = 1;
    ex->pref_block = 4096;
    ex->max_block = NBD_DEFAULT_MAX_PAYLOAD;
}

int nbd_client_handshake(int fd, const char *name, NbdClientExport *out,
                         BhError **errp)
{
    bool no_zeroes = false;
    export_defaults(out);
    if (!name)
        name = "";
    if (strlen(name) > NBD_MAX_STRING)
        return bh_error_set(errp, EINVAL, "export name is longer than %d "
                            "bytes", NBD_MAX_STRING);
    set_read_timeout(fd, NBD_CLIENT_HANDSHAKE_TIMEOUT);
    int r = client_greeting(fd, &no_zeroes, errp);
    if (r == 0) {
        r = client_go(fd, NBD_OPT_GO, name, out, errp);
        if (r == 0)
            r = client_export_name(fd, name, no_zeroes, out, errp);
        else if (r == 1)
            r = 0;
    }
    set_read_timeout(fd, 0);
    if (r == 0 && out->min_block == 0)
        out->min_block = 1;
    return r;
}

/* NBD_OPT_STRUCTURED_REPLY: true when the server agreed. */
static int client_structured(int fd, bool *structured, BhError **errp)
{
    *structured = false;
    int r = send_option(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    if (r < 0)
        return io_fail(errp, r, "sending NBD_OPT_STRUCTURED_REPLY");
    uint32_t type, len;
    g_autofree char *p = NULL;
    if ((r = read_reply(fd, NBD_OPT_STRUCTURED_REPLY, &type, &p, &len,
                        errp)) < 0)
        return r;
    *structured = type == NBD_REP_ACK;
    return 0;
}

/* NBD_OPT_LIST_META_CONTEXT for name with no query: every context the
 * server offers.  *out is a NULL-terminated array (g_strfreev), NULL when
 * the server refused the option (the listing goes on without). */
static int client_meta_contexts(int fd, const char *name, char ***out,
                                BhError **errp)
{
    uint32_t nlen = (uint32_t)strlen(name);
    g_autofree char *data = g_malloc(nlen + 8);
    uint32_t be = GUINT32_TO_BE(nlen);
    memcpy(data, &be, 4);
    memcpy(data + 4, name, nlen);
    memset(data + 4 + nlen, 0, 4);      /* no queries */
    *out = NULL;
    int r = send_option(fd, NBD_OPT_LIST_META_CONTEXT, data, nlen + 8);
    if (r < 0)
        return io_fail(errp, r, "sending NBD_OPT_LIST_META_CONTEXT");
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    bool refused = false;
    for (;;) {
        uint32_t type, len;
        g_autofree char *p = NULL;
        if ((r = read_reply(fd, NBD_OPT_LIST_META_CONTEXT, &type, &p, &len,
                            errp)) < 0)
            return r;
        if (type == NBD_REP_ACK)
            break;
        if (type == NBD_REP_META_CONTEXT && len > 4)
            g_ptr_array_add(names, g_strndup(p + 4, len - 4));
        else if (type & NBD_REP_ERR_BASE) {
            refused = true;     /* an error reply ends the option */
            break;
        }
    }
    if (!refused) {
        g_ptr_array_add(names, NULL);
        *out = (char **)g_ptr_array_free(g_steal_pointer(&names), false);
    }
    return 0;
}

int nbd_client_list_info(int fd, NbdListInfoFn fn, void *ctx, BhError **errp)
{
    bool no_zeroes;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) descs = g_ptr_array_new_with_free_func(g_free);
    set_read_timeout(fd, NBD_CLIENT_HANDSHAKE_TIMEOUT);
    bool structured = false;
    int r = client_greeting(fd, &no_zeroes, errp);
    if (r < 0 || (r = client_structured(fd, &structured, errp)) < 0)
        return r;
    if ((r = send_option(fd, NBD_OPT_LIST, NULL, 0)) < 0)
        return io_fail(errp, r, "sending NBD_OPT_LIST");
    for (;;) {
        uint32_t type, len;
        g_autofree char *p = NULL;
        if ((r = read_reply(fd, NBD_OPT_LIST, &type, &p, &len, errp)) < 0)
            return r;
        if (type == NBD_REP_ACK)
            break;
        if (type == NBD_REP_SERVER) {
            uint32_t nlen = len >= 4 ? be32_at(p) : UINT32_MAX;
            if (nlen > len - 4)
                return bh_error_set(errp, EPROTO, "the NBD server sent a "
                                    "malformed NBD_REP_SERVER");
            g_ptr_array_add(names, g_strndup(p + 4, nlen));
            g_ptr_array_add(descs, p[4 + nlen] ? g_strdup(p + 4 + nlen)
                                               : NULL);
            continue;
        }
        if (type == NBD_REP_ERR_UNSUP)
            return bh_error_set(errp, ENOTSUP, "the NBD server does not "
                                "support listing its exports%s%s",
                                *p ? ": " : "", p);
        if (type == NBD_REP_ERR_POLICY)
            return bh_error_set(errp, EACCES, "the NBD server refused to "
                                "list its exports%s%s", *p ? ": " : "", p);
        if (type & NBD_REP_ERR_BASE)
            return reply_error(type, p, "", errp);
    }
    /* INFO per export, as long as the server answers it: servers without
     * INFO (or refusing one export) still get their names listed. */
    bool info = true;
    for (guint i = 0; i < names->len; i++) {
        NbdClientExport ex;
        const char *name = g_ptr_array_index(names, i);
        export_defaults(&ex);
        if (info) {
            g_autoptr(BhError) err = NULL;
            r = client_go(fd, NBD_OPT_INFO, name, &ex, &err);
            if (r == 0)
                info = false;   /* NBD_REP_ERR_UNSUP: never ask again */
            else if (r < 0 && (r == -EPIPE || r == -EPROTO ||
                               r == -ETIMEDOUT || r == -ECONNRESET))
                return bh_error_propagate(errp, g_steal_pointer(&err)), r;
            g_auto(GStrv) contexts = NULL;
            if (r == 1 && structured) {
                int m = client_meta_contexts(fd, name, &contexts, errp);
                if (m < 0)
                    return m;
                ex.meta_contexts = contexts;
            }
            fn(ctx, name, g_ptr_array_index(descs, i), r == 1 ? &ex : NULL);
        } else {
            fn(ctx, name, g_ptr_array_index(descs, i), NULL);
        }
    }
    /* Polite goodbye; the server's ACK to ABORT is optional to wait for. */
    send_option(fd, NBD_OPT_ABORT, NULL, 0);
    return 0;
}

typedef struct {
    NbdListFn fn;
    void *ctx;
} ListOnly;

static void list_only(void *ctx, const char *name, const char *desc,
                      const NbdClientExport *ex)
{
    ListOnly *l = ctx;
    l->fn(l->ctx, name, desc);
}

int nbd_client_list(int fd, NbdListFn fn, void *ctx, BhError **errp)
{
    ListOnly l = { fn, ctx };
    return nbd_client_list_info(fd, list_only, &l, errp);
}
