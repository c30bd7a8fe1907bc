/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The server side of the NBD fixed-newstyle handshake: greeting, client
 * flags, then option haggling until EXPORT_NAME or a successful GO.
 *
 * Every length the client sends is checked before anything is read into
 * memory: option payloads are limited to NBD_MAX_OPTION_LEN; a longer one
 * is skipped and answered NBD_REP_ERR_TOO_BIG when it is small enough to
 * skip, else the connection is dropped.  Malformed options get
 * NBD_REP_ERR_INVALID and haggling continues, as the spec asks.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-common.h"
#include <blkhost/glib.h>

/* Larger option payloads than this are not worth skipping. */
#define NBD_OPTION_SKIP_MAX (1u << 20)

int nbd_write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOTSOCK) {
                n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0)
                    return -errno;
            } else {
                return -errno;
            }
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int nbd_read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void nbd_export_view_init(NbdExportView *v, BhNode *node, const char *name,
                          const char *description, bool readonly,
                          bool structured)
{
    int64_t size = bh_node_size(node);
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                 NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_CACHE;

    v->name = name;
    v->description = description;
    v->node = node;
    v->size = size < 0 ? 0 : (uint64_t)size;
    v->readonly = readonly || bh_node_is_readonly(node);
    v->can_block_status = bh_node_can_block_status(node);
    /* Every connection goes through the same BhNode, so a flush on one
     * covers writes made on all of them: multi-conn is safe.  But where
     * only one client may connect, advertising it makes clients such as
     * nbdcopy open several connections that cannot all be served;
     * qemu-nbd -e 1 leaves the flag out for the same reason. */
    if (!v->single_conn)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    if (v->readonly) {
        f |= NBD_FLAG_READ_ONLY;
    } else {
        f |= NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
        if (bh_node_can_discard(node))
            f |= NBD_FLAG_SEND_TRIM;
    }
    if (structured)
        f |= NBD_FLAG_SEND_DF;
    v->tflags = f;

    uint32_t min = 1, pref = 4096, max = NBD_MAX_PAYLOAD;
    bh_node_block_limits(node, &min, &pref, &max);
    if (min == 0 || min > 65536 || (min & (min - 1)))
        min = 1;
    if (pref < min || pref > NBD_MAX_PAYLOAD || (pref & (pref - 1)))
        pref = min > 4096 ? min : 4096;
    /* The core serves any length on every node and answers 32 MiB for a
     * node that set no limit (qcow2 names the same figure); only a
     * smaller maximum is a real constraint of the node. */
    if (max == 0 || max >= NBD_DEFAULT_MAX_PAYLOAD)
        max = NBD_MAX_PAYLOAD;
    if (max < pref)
        max = pref;
    v->min_block = min;
    v->pref_block = pref;
    v->max_block = max;
}

void nbd_session_clear(NbdSession *s)
{
    g_free(s->meta_export);
    nbd_tls_conn_free(s->tls);
    memset(s, 0, sizeof(*s));
}

typedef struct Hs {
    int fd;
    const NbdHandshakeOps *ops;
    void *data;
    NbdSession *s;
    NbdTls *tls;          /* TLS offered, or NULL */
    char *tls_refuse;     /* why the TLS peer is refused, or NULL */
    uint32_t opt;
    int err;     /* sticky write error */
} Hs;

/* Handshake I/O, over TLS once STARTTLS succeeded. */
static int hs_write(Hs *hs, const void *buf, size_t len)
{
    if (hs->s->tls)
        return nbd_tls_send(hs->s->tls, buf, len);
    return nbd_write_full(hs->fd, buf, len);
}

static int hs_read(Hs *hs, void *buf, size_t len)
{
    if (hs->s->tls)
        return nbd_tls_read_full(hs->s->tls, buf, len);
    return nbd_read_full(hs->fd, buf, len);
}

static int hs_reply(Hs *hs, uint32_t type, const void *data, size_t len)
{
    NbdOptionReply r = {
        .magic = GUINT64_TO_BE(NBD_REP_MAGIC),
        .option = GUINT32_TO_BE(hs->opt),
        .type = GUINT32_TO_BE(type),
        .length = GUINT32_TO_BE((uint32_t)len),
    };
    if (hs->err)
        return hs->err;
    /* Header and data in one buffer so a reply is one send. */
    char stackbuf[512];
    char *buf = len + sizeof(r) <= sizeof(stackbuf) ? stackbuf
                                                    : g_malloc(len + sizeof(r));
    memcpy(buf, &r, sizeof(r));
    if (len)
        memcpy(buf + sizeof(r), data, len);
    int ret = hs_write(hs, buf, sizeof(r) + len);
    if (buf != stackbuf)
        g_free(buf);
    if (ret < 0)
        hs->err = ret;
    return ret;
}

static int hs_error(Hs *hs, uint32_t type, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static int hs_error(Hs *hs, uint32_t type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    int ret = hs_reply(hs, type, msg, strlen(msg));
    g_free(msg);
    return ret;
}

static void list_one(void *ctx, const char *name, const char *desc)
{
    Hs *hs = ctx;
    size_t nlen = strlen(name), dlen = desc ? strlen(desc) : 0;
    if (nlen > NBD_MAX_STRING)
        return;
    if (dlen > NBD_MAX_STRING)
        dlen = NBD_MAX_STRING;
    g_autofree char *buf = g_malloc(4 + nlen + dlen);
    uint32_t be = GUINT32_TO_BE((uint32_t)nlen);
    memcpy(buf, &be, 4);
    memcpy(buf + 4, name, nlen);
    if (dlen)
        memcpy(buf + 4 + nlen, desc, dlen);
    hs_reply(hs, NBD_REP_SERVER, buf, 4 + nlen + dlen);
}

/* Copy a counted string out of an option payload; NULL if it does not fit
 * or holds a NUL byte (no export name can match that). */
static char *take_string(const char **p, size_t *left, bool *bad)
{
    uint32_t len;
    if (*left < 4) {
        *bad = true;
        return NULL;
    }
    memcpy(&len, *p, 4);
    len = GUINT32_FROM_BE(len);
    *p += 4;
    *left -= 4;
    if (len > *left || len > NBD_MAX_STRING) {
        *bad = true;
        return NULL;
    }
    char *s = g_strndup(*p, len);
    *p += len;
    *left -= len;
    if (strlen(s) != len) {
        *bad = true;
        g_free(s);
        return NULL;
    }
    return s;
}

static int send_info(Hs *hs, uint16_t type, const void *data, size_t len)
{
    g_autofree char *buf = g_malloc(2 + len);
    uint16_t be = GUINT16_TO_BE(type);
    memcpy(buf, &be, 2);
    if (len)
        memcpy(buf + 2, data, len);
    return hs_reply(hs, NBD_REP_INFO, buf, 2 + len);
}

static void put_be32(char *p, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(p, &v, 4);
}

/* INFO and GO: returns 1 if GO succeeded, 0 to keep haggling, <0 error. */
static int hs_info_go(Hs *hs, const char *payload, size_t len)
{
    const char *p = payload;
    size_t left = len;
    bool bad = false;
    g_autofree char *name = take_string(&p, &left, &bad);
    if (bad || left < 2)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "malformed %s request: bad export name length",
                        hs->opt == NBD_OPT_GO ? "GO" : "INFO");
    uint16_t nreq;
    memcpy(&nreq, p, 2);
    nreq = GUINT16_FROM_BE(nreq);
    p += 2;
    left -= 2;
    if (left != (size_t)nreq * 2)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "malformed %s request: %u information requests "
                        "but %zu bytes left",
                        hs->opt == NBD_OPT_GO ? "GO" : "INFO", nreq, left);
    bool want_name = false, want_desc = false;
    for (unsigned i = 0; i < nreq; i++) {
        uint16_t t;
        memcpy(&t, p + 2 * i, 2);
        t = GUINT16_FROM_BE(t);
        if (t == NBD_INFO_NAME)
            want_name = true;
        else if (t == NBD_INFO_DESCRIPTION)
            want_desc = true;
    }

    NbdExportView v = { 0 };
    if (!hs->ops->lookup(hs->data, name, &v))
        return hs_error(hs, NBD_REP_ERR_UNKNOWN, "export '%s' not found",
                        name);
    nbd_export_view_init(&v, v.node, v.name, v.description, v.readonly,
                         hs->s->structured);

    char buf[12];
    uint64_t size = GUINT64_TO_BE(v.size);
    uint16_t tf = GUINT16_TO_BE(v.tflags);
    memcpy(buf, &size, 8);
    memcpy(buf + 8, &tf, 2);
    send_info(hs, NBD_INFO_EXPORT, buf, 10);
    if (want_name)
        send_info(hs, NBD_INFO_NAME, v.name, strlen(v.name));
    if (want_desc && v.description)
        send_info(hs, NBD_INFO_DESCRIPTION, v.description,
                  MIN(strlen(v.description), NBD_MAX_STRING));
    /* Always sent: clients ignore what they did not ask for, and our
     * constraints are the defaults unless the node needs alignment. */
    put_be32(buf, v.min_block);
    put_be32(buf + 4, v.pref_block);
    put_be32(buf + 8, v.max_block);
    send_info(hs, NBD_INFO_BLOCK_SIZE, buf, 12);
    if (hs->opt == NBD_OPT_GO && hs->ops->enter && !hs->ops->enter(hs->data))
        return hs_error(hs, NBD_REP_ERR_SHUTDOWN, "the server is shutting "
                        "down");
    int r = hs_reply(hs, NBD_REP_ACK, NULL, 0);
    if (r < 0)
        return r;
    if (hs->opt != NBD_OPT_GO)
        return 0;
    hs->s->exp = v;
    return 1;
}

/* LIST_META_CONTEXT and SET_META_CONTEXT with base:allocation only. */
static int hs_meta(Hs *hs, const char *payload, size_t len)
{
    bool set = hs->opt == NBD_OPT_SET_META_CONTEXT;
    const char *what = set ? "SET_META_CONTEXT" : "LIST_META_CONTEXT";
    if (set) {
        /* Replaces the previous selection even if this one fails. */
        hs->s->meta_base_allocation = false;
        g_clear_pointer(&hs->s->meta_export, g_free);
    }
    if (!hs->s->structured)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "%s needs structured replies negotiated first", what);

    const char *p = payload;
    size_t left = len;
    bool bad = false;
    g_autofree char *name = take_string(&p, &left, &bad);
    if (bad || left < 4)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "malformed %s request: bad export name", what);
    uint32_t nq;
    memcpy(&nq, p, 4);
    nq = GUINT32_FROM_BE(nq);
    p += 4;
    left -= 4;

    bool base = !set && nq == 0;   /* LIST with no query lists everything */
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t qlen;
        if (left < 4)
            return hs_error(hs, NBD_REP_ERR_INVALID,
                            "malformed %s request: query %u is truncated",
                            what, i);
        memcpy(&qlen, p, 4);
        qlen = GUINT32_FROM_BE(qlen);
        p += 4;
        left -= 4;
        if (qlen > left || qlen > NBD_MAX_STRING)
            return hs_error(hs, NBD_REP_ERR_INVALID,
                            "malformed %s request: query %u length %u "
                            "exceeds the option", what, i, qlen);
        if (qlen == strlen(NBD_META_BASE_ALLOCATION) &&
            memcmp(p, NBD_META_BASE_ALLOCATION, qlen) == 0)
            base = true;
        else if (!set && qlen == 5 && memcmp(p, "base:", 5) == 0)
            base = true;
        p += qlen;
        left -= qlen;
    }
    if (left != 0)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "malformed %s request: %zu trailing bytes", what,
                        left);

    NbdExportView v = { 0 };
    if (!hs->ops->lookup(hs->data, name, &v))
        return hs_error(hs, NBD_REP_ERR_UNKNOWN, "export '%s' not found",
                        name);
    if (base) {
        char buf[4 + sizeof(NBD_META_BASE_ALLOCATION) - 1];
        put_be32(buf, set ? NBD_META_ID_BASE_ALLOCATION : 0);
        memcpy(buf + 4, NBD_META_BASE_ALLOCATION,
               sizeof(NBD_META_BASE_ALLOCATION) - 1);
        hs_reply(hs, NBD_REP_META_CONTEXT, buf, sizeof(buf));
        if (set) {
            hs->s->meta_base_allocation = true;
            hs->s->meta_export = g_steal_pointer(&name);
        }
    }
    return hs_reply(hs, NBD_REP_ACK, NULL, 0);
}

static int hs_export_name(Hs *hs, const char *payload, size_t len,
                          BhError **errp)
{
    g_autofree char *name = g_strndup(payload, len);
    NbdExportView v = { 0 };
    if (strlen(name) != len || !hs->ops->lookup(hs->data, name, &v))
        /* EXPORT_NAME cannot answer an error: the spec says hang up. */
        return bh_error_set(errp, ENOENT,
                            "client asked for export '%s' with EXPORT_NAME, "
                            "which does not exist; disconnecting", name);
    nbd_export_view_init(&v, v.node, v.name, v.description, v.readonly,
                         hs->s->structured);
    if (hs->ops->enter && !hs->ops->enter(hs->data))
        return bh_error_set(errp, ESHUTDOWN, "the server is shutting down; "
                            "disconnecting a client that sent EXPORT_NAME");
    char buf[10 + 124] = { 0 };
    uint64_t size = GUINT64_TO_BE(v.size);
    uint16_t tf = GUINT16_TO_BE(v.tflags);
    memcpy(buf, &size, 8);
    memcpy(buf + 8, &tf, 2);
    int r = hs_write(hs, buf, hs->s->no_zeroes ? 10 : sizeof(buf));
    if (r < 0)
        return bh_error_set_errno(errp, -r, "sending export details");
    hs->s->exp = v;
    return 1;
}

/* STARTTLS: acknowledge in plaintext, then the TLS handshake; what was
 * negotiated before does not carry over into the TLS session. */
static int hs_starttls(Hs *hs, uint32_t len, BhError **errp)
{
    if (len)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "STARTTLS takes no data, got %u bytes", len);
    if (!hs->tls)
        return hs_error(hs, NBD_REP_ERR_POLICY,
                        "TLS is not enabled on this server");
    if (hs->s->tls)
        return hs_error(hs, NBD_REP_ERR_INVALID,
                        "TLS is already active on this connection");
    int r = hs_reply(hs, NBD_REP_ACK, NULL, 0);
    if (r < 0)
        return r;
    hs->s->tls = nbd_tls_handshake(hs->tls, hs->fd, &hs->tls_refuse, errp);
    if (!hs->s->tls)
        return -EPROTO;
    hs->s->structured = false;
    hs->s->meta_base_allocation = false;
    g_clear_pointer(&hs->s->meta_export, g_free);
    return 0;
}

static int hs_run(Hs *hs, const char *refuse, BhError **errp);

int nbd_handshake_server(int fd, const NbdHandshakeOps *ops, void *data,
                         const char *refuse, NbdSession *s, BhError **errp)
{
    return nbd_handshake_server_tls(fd, ops, data, NULL, refuse, s, errp);
}

int nbd_handshake_server_tls(int fd, const NbdHandshakeOps *ops, void *data,
                             NbdTls *tls, const char *refuse, NbdSession *s,
                             BhError **errp)
{
    Hs hs = { .fd = fd, .ops = ops, .data = data, .s = s, .tls = tls };
    memset(s, 0, sizeof(*s));
    int r = hs_run(&hs, refuse, errp);
    if (r == 0 && hs.tls_refuse) {
        const char *id = nbd_tls_conn_identity(s->tls);
        if (id && !strstr(hs.tls_refuse, id))
            r = bh_error_set(errp, EACCES, "TLS client '%s' refused: %s",
                             id, hs.tls_refuse);
        else
            r = bh_error_set(errp, EACCES, "TLS client refused: %s",
                             hs.tls_refuse);
    }
    g_free(hs.tls_refuse);
    return r;
}

static int hs_run(Hs *hs, const char *refuse, BhError **errp)
{
    NbdSession *s = hs->s;
    const NbdHandshakeOps *ops = hs->ops;
    void *data = hs->data;

    char greet[18];
    uint64_t m = GUINT64_TO_BE(NBD_MAGIC), o = GUINT64_TO_BE(NBD_IHAVEOPT);
    uint16_t hf = GUINT16_TO_BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    memcpy(greet, &m, 8);
    memcpy(greet + 8, &o, 8);
    memcpy(greet + 16, &hf, 2);
    int r = hs_write(hs, greet, sizeof(greet));
    if (r < 0)
        return r == -EPIPE || r == -ECONNRESET ? 0
               : bh_error_set_errno(errp, -r, "sending the greeting");

    uint32_t cflags;
    r = hs_read(hs, &cflags, 4);
    if (r < 0)
        return r == -EPIPE || r == -ECONNRESET ? 0
               : bh_error_set_errno(errp, -r, "reading the client flags");
    cflags = GUINT32_FROM_BE(cflags);
    if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES))
        return bh_error_set(errp, EPROTO,
                            "client sent unknown handshake flags 0x%x "
                            "(known: 0x3); disconnecting", cflags);
    s->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

    for (;;) {
        NbdOptionHeader h;
        r = hs_read(hs, &h, sizeof(h));
        if (r == -EPIPE || r == -ECONNRESET)
            return 0;
        if (r < 0)
            return bh_error_set_errno(errp, -r, "reading an option");
        if (GUINT64_FROM_BE(h.magic) != NBD_IHAVEOPT)
            return bh_error_set(errp, EPROTO,
                                "bad option magic 0x%016" G_GINT64_MODIFIER
                                "x (expected IHAVEOPT); disconnecting",
                                GUINT64_FROM_BE(h.magic));
        hs->opt = GUINT32_FROM_BE(h.option);
        uint32_t len = GUINT32_FROM_BE(h.length);

        if (len > NBD_MAX_OPTION_LEN) {
            if (len > NBD_OPTION_SKIP_MAX)
                return bh_error_set(errp, EPROTO,
                                    "option %u has length %u, far over the "
                                    "%u byte limit; disconnecting",
                                    hs->opt, len, NBD_MAX_OPTION_LEN);
            char skip[4096];
            for (uint32_t left = len; left > 0;) {
                uint32_t n = MIN(left, sizeof(skip));
                r = hs_read(hs, skip, n);
                if (r < 0)
                    return r == -EPIPE ? 0 : bh_error_set_errno(errp, -r,
                                                       "skipping an option");
                left -= n;
            }
            if (hs->opt == NBD_OPT_EXPORT_NAME)
                return bh_error_set(errp, EPROTO,
                                    "EXPORT_NAME of %u bytes is over the "
                                    "%u byte limit; disconnecting", len,
                                    NBD_MAX_STRING);
            r = hs_error(hs, NBD_REP_ERR_TOO_BIG,
                         "option %u has length %u, over the %u byte limit",
                         hs->opt, len, NBD_MAX_OPTION_LEN);
            if (r < 0)
                return 0;
            continue;
        }
        char payload[NBD_MAX_OPTION_LEN + 1];
        r = hs_read(hs, payload, len);
        if (r < 0)
            return r == -EPIPE || r == -ECONNRESET ? 0
                   : bh_error_set_errno(errp, -r, "reading an option");
        payload[len] = 0;

        const char *no = refuse ? refuse : hs->tls_refuse;
        if (no && hs->opt != NBD_OPT_ABORT) {
            if (hs->opt == NBD_OPT_EXPORT_NAME)
                return refuse ? bh_error_set(errp, EBUSY, "%s; disconnecting",
                                             refuse) : 0;
            hs_error(hs, NBD_REP_ERR_POLICY, "%s", no);
            if (hs->err)
                return 0;
            continue;
        }
        if (nbd_tls_mode(hs->tls) == NBD_TLS_REQUIRE && !s->tls &&
            hs->opt != NBD_OPT_ABORT && hs->opt != NBD_OPT_STARTTLS) {
            if (hs->opt == NBD_OPT_EXPORT_NAME)
                return bh_error_set(errp, EPERM, "client sent EXPORT_NAME "
                                    "without TLS, but this server requires "
                                    "TLS; disconnecting");
            hs_error(hs, NBD_REP_ERR_TLS_REQD, "this server requires TLS: "
                     "send STARTTLS first");
            if (hs->err)
                return 0;
            continue;
        }

        switch (hs->opt) {
        case NBD_OPT_EXPORT_NAME:
            r = hs_export_name(hs, payload, len, errp);
            if (r == 1)
                goto entered;
            return r;
        case NBD_OPT_ABORT:
            hs_reply(hs, NBD_REP_ACK, NULL, 0);
            return 0;
        case NBD_OPT_LIST:
            if (len)
                hs_error(hs, NBD_REP_ERR_INVALID,
                         "LIST takes no data, got %u bytes", len);
            else {
                ops->list(data, list_one, hs);
                hs_reply(hs, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_STARTTLS:
            r = hs_starttls(hs, len, errp);
            if (r < 0 && !hs->err)
                return r;      /* the TLS handshake failed: errp says why */
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            r = hs_info_go(hs, payload, len);
            if (r == 1)
                goto entered;
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len) {
                hs_error(hs, NBD_REP_ERR_INVALID,
                         "STRUCTURED_REPLY takes no data, got %u bytes", len);
            } else {
                s->structured = true;
                hs_reply(hs, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            hs_meta(hs, payload, len);
            break;
        default:
            hs_error(hs, NBD_REP_ERR_UNSUP, "option %u is not supported",
                     hs->opt);
            break;
        }
        if (hs->err)
            return hs->err == -EPIPE || hs->err == -ECONNRESET
                   ? 0 : bh_error_set_errno(errp, -hs->err,
                                            "sending an option reply");
    }

entered:
    /* base:allocation counts only if it was selected for this export. */
    if (s->meta_base_allocation &&
        g_strcmp0(s->meta_export, s->exp.name) != 0)
        s->meta_base_allocation = false;
    return 1;
}
