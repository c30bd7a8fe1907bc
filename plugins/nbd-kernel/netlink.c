/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The kernel's generic-netlink interface to nbd (family "nbd"), spoken
 * over a raw NETLINK_GENERIC socket so that no libnl is needed.
 *
 * Requests carry NLM_F_ACK and are answered by zero or more replies and an
 * NLMSG_ERROR whose error field is 0 or -errno.  Attributes are 4-byte
 * aligned TLVs; sockets are passed as a nested list of nested items, each
 * holding one fd (the kernel looks the fd up in the sending process).
 * LINK_DEAD events arrive on the "nbd_mc_group" multicast group.
 */
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd-kernel.h"
#include <blkhost/glib.h>

struct NbdNl {
    int fd;
    uint16_t family;
    uint32_t mcast_group;   /* 0 if the kernel did not name one */
    uint32_t seq;
};

#define NL_BUF 8192

typedef struct {
    char buf[NL_BUF];
    size_t len;
} NlMsg;

static void msg_init(NlMsg *m, uint16_t type, uint8_t cmd, uint32_t seq)
{
    memset(m->buf, 0, NLMSG_HDRLEN + GENL_HDRLEN);
    struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
    h->nlmsg_type = type;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = seq;
    struct genlmsghdr *g = (struct genlmsghdr *)(m->buf + NLMSG_HDRLEN);
    g->cmd = cmd;
    g->version = NBD_GENL_VERSION;
    m->len = NLMSG_HDRLEN + GENL_HDRLEN;
}

/* Returns the offset of the attribute, for nesting. */
static size_t attr_put(NlMsg *m, uint16_t type, const void *data,
                       size_t len)
{
    size_t off = m->len;
    g_assert(off + NLA_HDRLEN + NLA_ALIGN(len) <= NL_BUF);
    struct nlattr *a = (struct nlattr *)(m->buf + off);
    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    if (len)
        memcpy(m->buf + off + NLA_HDRLEN, data, len);
    memset(m->buf + off + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
    m->len += NLA_HDRLEN + NLA_ALIGN(len);
    return off;
}

static void put_u32(NlMsg *m, uint16_t type, uint32_t v)
{
    attr_put(m, type, &v, 4);
}

static void put_u64(NlMsg *m, uint16_t type, uint64_t v)
{
    attr_put(m, type, &v, 8);
}

static size_t nest_start(NlMsg *m, uint16_t type)
{
    return attr_put(m, type | NLA_F_NESTED, NULL, 0);
}

static void nest_end(NlMsg *m, size_t off)
{
    ((struct nlattr *)(m->buf + off))->nla_len = (uint16_t)(m->len - off);
}

typedef void (*NlReplyFn)(void *ctx, const struct nlmsghdr *h);

/* Send m and read until its ack; replies go to fn.  0 or -errno. */
static int transact(NbdNl *nl, NlMsg *m, NlReplyFn fn, void *ctx)
{
    struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
    h->nlmsg_len = (uint32_t)m->len;
    h->nlmsg_seq = ++nl->seq;
    struct sockaddr_nl to = { .nl_family = AF_NETLINK };
    if (sendto(nl->fd, m->buf, m->len, 0, (struct sockaddr *)&to,
               sizeof(to)) < 0)
        return -errno;
    g_autofree char *buf = g_malloc(32768);
    for (;;) {
        ssize_t n = recv(nl->fd, buf, 32768, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, n);
             r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_seq != nl->seq)
                continue;   /* a multicast event or a stale reply */
            if (r->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(r);
                return e->error;
            }
            if (r->nlmsg_type == NLMSG_DONE)
                return 0;
            if (fn)
                fn(ctx, r);
        }
    }
}

/* Walk the attributes after the genl header of h. */
#define FOR_ATTRS(a, start, len)                                           \
    for (struct nlattr *a = (struct nlattr *)(start);                       \
         (len) >= (size_t)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&         \
         (size_t)a->nla_len <= (len);                                       \
         (len) -= MIN((size_t)NLA_ALIGN(a->nla_len), (len)),                \
         a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))

static void *attr_data(struct nlattr *a)
{
    return (char *)a + NLA_HDRLEN;
}

static void family_reply(void *ctx, const struct nlmsghdr *h)
{
    NbdNl *nl = ctx;
    size_t len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
    FOR_ATTRS(a, (char *)NLMSG_DATA(h) + GENL_HDRLEN, len) {
        uint16_t type = a->nla_type & NLA_TYPE_MASK;
        if (type == CTRL_ATTR_FAMILY_ID) {
            nl->family = *(uint16_t *)attr_data(a);
        } else if (type == CTRL_ATTR_MCAST_GROUPS) {
            size_t glen = a->nla_len - NLA_HDRLEN;
            FOR_ATTRS(grp, attr_data(a), glen) {
                size_t ilen = grp->nla_len - NLA_HDRLEN;
                const char *name = NULL;
                uint32_t id = 0;
                FOR_ATTRS(it, attr_data(grp), ilen) {
                    uint16_t t = it->nla_type & NLA_TYPE_MASK;
                    if (t == CTRL_ATTR_MCAST_GRP_NAME)
                        name = attr_data(it);
                    else if (t == CTRL_ATTR_MCAST_GRP_ID)
                        id = *(uint32_t *)attr_data(it);
                }
                if (name && strcmp(name, NBD_GENL_MCAST_GROUP_NAME) == 0)
                    nl->mcast_group = id;
            }
        }
    }
}

NbdNl *nbd_nl_open(BhError **errp)
{
    NbdNl *nl = g_new0(NbdNl, 1);
    nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (nl->fd < 0) {
        bh_error_set_errno(errp, errno, "cannot open a generic netlink "
                           "socket");
        g_free(nl);
        return NULL;
    }
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        bh_error_set_errno(errp, errno, "cannot bind a generic netlink "
                           "socket");
        nbd_nl_close(nl);
        return NULL;
    }
    NlMsg *m = g_new(NlMsg, 1);
    msg_init(m, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
    ((struct genlmsghdr *)(m->buf + NLMSG_HDRLEN))->version = 1;
    attr_put(m, CTRL_ATTR_FAMILY_NAME, NBD_GENL_FAMILY_NAME,
             sizeof(NBD_GENL_FAMILY_NAME));
    int r = transact(nl, m, family_reply, nl);
    g_free(m);
    if (r == 0 && !nl->family)
        r = -ENOENT;
    if (r < 0) {
        if (r == -ENOENT)
            bh_error_set(errp, ENOENT, "the kernel has no generic netlink "
                         "family \"nbd\" (nbd module not loaded, or a "
                         "kernel older than 4.12)");
        else
            bh_error_set_errno(errp, -r, "cannot look up the generic "
                               "netlink family \"nbd\"");
        nbd_nl_close(nl);
        return NULL;
    }
    return nl;
}

void nbd_nl_close(NbdNl *nl)
{
    if (!nl)
        return;
    if (nl->fd >= 0)
        close(nl->fd);
    g_free(nl);
}

static void put_sockets(NlMsg *m, const int *fds, unsigned nfds)
{
    size_t socks = nest_start(m, NBD_ATTR_SOCKETS);
    for (unsigned i = 0; i < nfds; i++) {
        size_t item = nest_start(m, NBD_SOCK_ITEM);
        put_u32(m, NBD_SOCK_FD, (uint32_t)fds[i]);
        nest_end(m, item);
    }
    nest_end(m, socks);
}

static void put_backend(NlMsg *m, const char *backend)
{
    if (backend)
        attr_put(m, NBD_ATTR_BACKEND_IDENTIFIER, backend,
                 strlen(backend) + 1);
}

int nbd_nl_connect(NbdNl *nl, const NbdKernelParams *p, BhError **errp)
{
    g_autofree NlMsg *m = g_new(NlMsg, 1);
    msg_init(m, nl->family, NBD_CMD_CONNECT, 0);
    put_u32(m, NBD_ATTR_INDEX, (uint32_t)p->index);
    put_u64(m, NBD_ATTR_SIZE_BYTES, p->size);
    put_u64(m, NBD_ATTR_BLOCK_SIZE_BYTES, p->block_size);
    put_u64(m, NBD_ATTR_SERVER_FLAGS, p->server_flags);
    if (p->timeout)
        put_u64(m, NBD_ATTR_TIMEOUT, p->timeout);
    if (p->dead_timeout)
        put_u64(m, NBD_ATTR_DEAD_CONN_TIMEOUT, p->dead_timeout);
    put_sockets(m, p->fds, p->nfds);
    put_backend(m, p->backend);
    int r = transact(nl, m, NULL, NULL);
    if (r < 0) {
        g_autofree char *dev = g_strdup_printf("/dev/nbd%d", p->index);
        if (r == -EBUSY)
            return bh_error_set(errp, EBUSY, "%s is already connected "
                                "(in use by another client)", dev);
        return nbd_dev_perm_error(errp, -r, "the kernel refused to "
                                  "connect", dev);
    }
    return 0;
}

int nbd_nl_disconnect(NbdNl *nl, int index, BhError **errp)
{
    g_autofree NlMsg *m = g_new(NlMsg, 1);
    msg_init(m, nl->family, NBD_CMD_DISCONNECT, 0);
    put_u32(m, NBD_ATTR_INDEX, (uint32_t)index);
    int r = transact(nl, m, NULL, NULL);
    if (r < 0) {
        g_autofree char *dev = g_strdup_printf("/dev/nbd%d", index);
        return nbd_dev_perm_error(errp, -r, "the kernel refused to "
                                  "disconnect", dev);
    }
    return 0;
}

int nbd_nl_reconfigure(NbdNl *nl, int index, const int *fds, unsigned nfds,
                       const char *backend, BhError **errp)
{
    g_autofree NlMsg *m = g_new(NlMsg, 1);
    msg_init(m, nl->family, NBD_CMD_RECONFIGURE, 0);
    put_u32(m, NBD_ATTR_INDEX, (uint32_t)index);
    put_sockets(m, fds, nfds);
    put_backend(m, backend);
    int r = transact(nl, m, NULL, NULL);
    if (r < 0)
        return bh_error_set_errno(errp, -r, "the kernel refused to give "
                                  "/dev/nbd%d its new connection", index);
    return 0;
}

int nbd_nl_subscribe(NbdNl *nl, BhError **errp)
{
    if (!nl->mcast_group)
        return bh_error_set(errp, ENOTSUP, "the kernel's nbd family has no "
                            "\"%s\" multicast group",
                            NBD_GENL_MCAST_GROUP_NAME);
    if (setsockopt(nl->fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP,
                   &nl->mcast_group, sizeof(nl->mcast_group)) < 0)
        return bh_error_set_errno(errp, errno, "cannot listen for nbd "
                                  "link events");
    return 0;
}

int nbd_nl_fd(NbdNl *nl)
{
    return nl->fd;
}

int nbd_nl_read_event(NbdNl *nl)
{
    char buf[4096];
    ssize_t n = recv(nl->fd, buf, sizeof(buf), MSG_DONTWAIT);
    int index = -1;
    if (n <= 0)
        return -1;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != nl->family ||
            h->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
            continue;
        struct genlmsghdr *g = NLMSG_DATA(h);
        if (g->cmd != NBD_CMD_LINK_DEAD)
            continue;
        size_t len = h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN;
        FOR_ATTRS(a, (char *)g + GENL_HDRLEN, len) {
            if ((a->nla_type & NLA_TYPE_MASK) == NBD_ATTR_INDEX)
                index = (int)*(uint32_t *)attr_data(a);
        }
    }
    return index;
}
