/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Running one NBD request on a worker thread and sending its reply.
 *
 * On a node whose driver completes requests itself (bh_node_can_submit:
 * io_uring or Linux AIO files, RBD, NBD, memory), reads, writes and
 * flushes are submitted and the worker goes on to the next request; the
 * reply is sent from the completion, on whichever thread the driver
 * completes, which is safe because nbd_reply_send() never blocks.  So the
 * requests in flight are not capped by the number of workers (two on a
 * 2-CPU machine), as qemu-nbd's coroutines are not.  Other nodes are
 * called synchronously on the worker, which costs no thread hop.
 *
 * Each reply is header(s) plus payload taken from the slot's
 * preallocated buffers, handed to the connection's reply path
 * (nbd-reply.c), which sends it without blocking the worker; nothing is
 * allocated.  Read data and block status descriptors are produced in the
 * slot buffer with the header written into the headroom right before
 * them (NBD_SLOT_HEADROOM), so such a reply is one contiguous piece: one
 * iovec, one TLS record per 16 KiB, and no copy.  Node calls pass
 * errp == NULL and get -errno back, which nbd_errno_to_wire() turns into
 * the NBD error.  Structured replies are
 * used only when the client negotiated them; then errors carry a message.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nbd-conn-priv.h"
#include <blkhost/glib.h>

static inline void stat_add(uint64_t *p, uint64_t v)
{
    __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static void head_simple(NbdReplyHead *h, uint32_t err, uint64_t cookie)
{
    h->h.simple.magic = GUINT32_TO_BE(NBD_SIMPLE_REPLY_MAGIC);
    h->h.simple.error = GUINT32_TO_BE(err);
    h->h.simple.cookie = GUINT64_TO_BE(cookie);
}

static void head_chunk(NbdReplyHead *h, uint16_t flags, uint16_t type,
                       uint64_t cookie, uint32_t len)
{
    h->h.chunk.magic = GUINT32_TO_BE(NBD_STRUCTURED_REPLY_MAGIC);
    h->h.chunk.flags = GUINT16_TO_BE(flags);
    h->h.chunk.type = GUINT16_TO_BE(type);
    h->h.chunk.cookie = GUINT64_TO_BE(cookie);
    h->h.chunk.length = GUINT32_TO_BE(len);
}

static void reply_error(NbdSlot *slot, int err, const char *msg)
{
    uint32_t wire = nbd_errno_to_wire(err);
    if (wire == 0)
        wire = NBD_EIO;
    stat_add(&slot->conn->stats->errors, 1);
    if (!slot->conn->s->structured) {
        head_simple(&slot->heads[0], wire, slot->cookie);
        slot->iov[0] = (struct iovec){ &slot->heads[0], sizeof(NbdSimpleReply) };
        nbd_reply_send(slot, 1);
        return;
    }
    size_t mlen = msg ? strlen(msg) : 0;
    NbdReplyHead *h = &slot->heads[0];
    head_chunk(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, slot->cookie,
               (uint32_t)(6 + mlen));
    h->u.e.error = GUINT32_TO_BE(wire);
    h->u.e.len = GUINT16_TO_BE((uint16_t)mlen);
    slot->iov[0] = (struct iovec){ h, sizeof(NbdChunkHeader) + 6 };
    slot->iov[1] = (struct iovec){ (void *)msg, mlen };
    nbd_reply_send(slot, mlen ? 2 : 1);
}

/* Error from a node call: say which operation failed. */
static void reply_io_error(NbdSlot *slot, const char *op, int r)
{
    snprintf(slot->msg, sizeof(slot->msg), "%s failed: %s", op,
             g_strerror(-r));
    reply_error(slot, -r, slot->msg);
}

static void reply_ok(NbdSlot *slot)
{
    /* A simple reply is allowed for everything but READ even with
     * structured replies, and is the shortest. */
    if (slot->type == NBD_CMD_READ && slot->conn->s->structured) {
        head_chunk(&slot->heads[0], NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE,
                   slot->cookie, 0);
        slot->iov[0] = (struct iovec){ &slot->heads[0], sizeof(NbdChunkHeader) };
    } else {
        head_simple(&slot->heads[0], 0, slot->cookie);
        slot->iov[0] = (struct iovec){ &slot->heads[0], sizeof(NbdSimpleReply) };
    }
    nbd_reply_send(slot, 1);
}

typedef struct ReadChunk {
    uint64_t off;
    uint64_t len;
    bool zero;
} ReadChunk;

/* A read that block status says is partly zero: send those parts as
 * OFFSET_HOLE chunks.  Returns false (nothing sent) when that would not
 * help, and the caller reads everything. */
static bool cmd_read_sparse(NbdSlot *slot, BhNode *node)
{
    ReadChunk ch[NBD_READ_CHUNKS];
    int n = 0;
    uint64_t off = slot->offset, end = slot->offset + slot->len;

    while (off < end) {
        uint64_t pnum = 0;
        uint32_t st = 0;
        if (bh_node_block_status(node, off, end - off, &pnum, &st, NULL) < 0 ||
            pnum == 0)
            return false;
        pnum = MIN(pnum, end - off);
        bool zero = st & BH_BLOCK_ZERO;
        if (n && ch[n - 1].zero == zero) {
            ch[n - 1].len += pnum;
        } else if (n == NBD_READ_CHUNKS) {
            /* Out of chunks: the rest is sent as data. */
            ch[n - 1].zero = false;
            ch[n - 1].len = end - ch[n - 1].off;
            break;
        } else {
            ch[n++] = (ReadChunk){ off, pnum, zero };
        }
        off += pnum;
    }
    if (n == 1 && !ch[0].zero)
        return false;

    int niov = 0;
    for (int i = 0; i < n; i++) {
        NbdReplyHead *h = &slot->heads[i];
        uint16_t flags = i == n - 1 ? NBD_REPLY_FLAG_DONE : 0;
        if (ch[i].zero) {
            head_chunk(h, flags, NBD_REPLY_TYPE_OFFSET_HOLE, slot->cookie, 12);
            h->u.c.offset = GUINT64_TO_BE(ch[i].off);
            h->u.c.size = GUINT32_TO_BE((uint32_t)ch[i].len);
            slot->iov[niov++] = (struct iovec){ h, sizeof(NbdChunkHeader) + 12 };
            continue;
        }
        uint8_t *dst = slot->buf + (ch[i].off - slot->offset);
        int r = bh_node_pread(node, dst, ch[i].off, ch[i].len, 0, NULL);
        if (r < 0) {
            reply_io_error(slot, "read", r);
            return true;
        }
        /* The header goes right before its data when the bytes there are
         * free: the headroom for the first chunk, else the buffer's part
         * of the hole before it (runs of one kind are merged, so a data
         * chunk follows a hole, except after running out of chunks). */
        size_t hl = sizeof(NbdChunkHeader) + 8;
        bool inline_head = i == 0 || (ch[i - 1].zero && ch[i - 1].len >= hl);
        if (inline_head)
            h = (NbdReplyHead *)(dst - hl);
        head_chunk(h, flags, NBD_REPLY_TYPE_OFFSET_DATA, slot->cookie,
                   (uint32_t)(8 + ch[i].len));
        h->u.c.offset = GUINT64_TO_BE(ch[i].off);
        if (inline_head) {
            slot->iov[niov++] = (struct iovec){ h, hl + ch[i].len };
        } else {
            slot->iov[niov++] = (struct iovec){ h, hl };
            slot->iov[niov++] = (struct iovec){ dst, ch[i].len };
        }
    }
    stat_add(&slot->conn->stats->bytes_read, slot->len);
    nbd_reply_send(slot, niov);
    return true;
}

/* The data is in the slot buffer: its header goes into the headroom just
 * before it, and the reply leaves as one piece. */
static void read_reply(NbdSlot *slot)
{
    const NbdSession *s = slot->conn->s;
    size_t hl = s->structured ? sizeof(NbdChunkHeader) + 8
                              : sizeof(NbdSimpleReply);
    NbdReplyHead *h = (NbdReplyHead *)(slot->buf - hl);

    if (s->structured) {
        head_chunk(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                   slot->cookie, 8 + slot->len);
        h->u.c.offset = GUINT64_TO_BE(slot->offset);
    } else {
        head_simple(h, 0, slot->cookie);
    }
    slot->iov[0] = (struct iovec){ h, hl + slot->len };
    stat_add(&slot->conn->stats->bytes_read, slot->len);
    nbd_reply_send(slot, 1);
}

/* Completion of a submitted read, write or flush (see the top). */
static void slot_io_done(void *opaque, int ret, const BhError *err)
{
    NbdSlot *slot = opaque;

    (void)err;
    switch (slot->type) {
    case NBD_CMD_READ:
        if (ret < 0)
            reply_io_error(slot, "read", ret);
        else
            read_reply(slot);
        return;
    case NBD_CMD_WRITE:
        if (ret < 0) {
            reply_io_error(slot, "write", ret);
            return;
        }
        stat_add(&slot->conn->stats->bytes_written, slot->len);
        break;
    default:
        if (ret < 0) {
            reply_io_error(slot, "flush", ret);
            return;
        }
        break;
    }
    reply_ok(slot);
}

static void slot_submit(NbdSlot *slot, BhNode *node, BhOp op, uint32_t flags)
{
    struct iovec iov = { slot->buf, slot->len };
    bool data = op == BH_OP_READ || op == BH_OP_WRITE;

    bh_node_submit(bh_request_new(node, op, data ? slot->offset : 0,
                                  data ? slot->len : 0, data ? &iov : NULL,
                                  data ? 1 : 0, flags, slot_io_done, slot));
}

static void cmd_read(NbdSlot *slot)
{
    const NbdSession *s = slot->conn->s;
    BhNode *node = s->exp.node;

    if (slot->len == 0) {
        reply_ok(slot);
        return;
    }
    if (s->structured && !(slot->flags & NBD_CMD_FLAG_DF) &&
        slot->len >= NBD_SPARSE_READ_MIN && s->exp.can_block_status &&
        cmd_read_sparse(slot, node))
        return;
    if (bh_node_can_submit(node)) {
        slot_submit(slot, node, BH_OP_READ, 0);
        return;
    }
    int r = bh_node_pread(node, slot->buf, slot->offset, slot->len, 0, NULL);
    if (r < 0) {
        reply_io_error(slot, "read", r);
        return;
    }
    read_reply(slot);
}

static void cmd_block_status(NbdSlot *slot)
{
    BhNode *node = slot->conn->s->exp.node;
    uint64_t off = slot->offset, end = slot->offset + slot->len;
    uint32_t *d;
    int n = 0;
    int max = slot->flags & NBD_CMD_FLAG_REQ_ONE ? 1 : NBD_STATUS_EXTENTS;

    if (!nbd_slot_reserve(slot, 8 * NBD_STATUS_EXTENTS)) {
        reply_error(slot, ENOMEM, "out of memory for block status");
        return;
    }
    d = (uint32_t *)slot->buf;
    while (off < end) {
        uint64_t pnum = 0;
        uint32_t st = 0;
        int r = bh_node_block_status(node, off, end - off, &pnum, &st, NULL);
        if (r == -ENOTSUP) {
            pnum = end - off;   /* "allocated" is always a safe answer */
            st = 0;
        } else if (r < 0 || pnum == 0) {
            if (n > 0)
                break;      /* send what we have; the client asks again */
            reply_io_error(slot, "block status", r < 0 ? r : -EIO);
            return;
        }
        pnum = MIN(pnum, end - off);
        st &= NBD_STATE_HOLE | NBD_STATE_ZERO;
        if (n && GUINT32_FROM_BE(d[2 * n - 1]) == st) {
            d[2 * n - 2] = GUINT32_TO_BE(GUINT32_FROM_BE(d[2 * n - 2]) +
                                         (uint32_t)pnum);
        } else {
            if (n == max)
                break;
            d[2 * n] = GUINT32_TO_BE((uint32_t)pnum);
            d[2 * n + 1] = GUINT32_TO_BE(st);
            n++;
        }
        off += pnum;
    }
    size_t hl = sizeof(NbdChunkHeader) + 4;
    NbdReplyHead *h = (NbdReplyHead *)((uint8_t *)d - hl);
    head_chunk(h, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
               slot->cookie, 4 + 8 * n);
    h->u.context_id = GUINT32_TO_BE(NBD_META_ID_BASE_ALLOCATION);
    slot->iov[0] = (struct iovec){ h, hl + 8 * (size_t)n };
    nbd_reply_send(slot, 1);
}

/* CACHE: read the range so that later reads hit the page cache. */
static int cmd_cache(NbdSlot *slot, BhNode *node)
{
    size_t step = MIN(slot->len, 1024u * 1024);
    if (step && !nbd_slot_reserve(slot, step))
        return -ENOMEM;
    for (uint64_t done = 0; done < slot->len; done += step) {
        size_t n = MIN(step, slot->len - done);
        int r = bh_node_pread(node, slot->buf, slot->offset + done, n, 0, NULL);
        if (r < 0)
            return r;
    }
    return 0;
}

void nbd_slot_run(NbdSlot *slot)
{
    BhNode *node = slot->conn->s->exp.node;
    bool fua = slot->flags & NBD_CMD_FLAG_FUA;
    int r = 0;

    stat_add(&slot->conn->stats->requests, 1);
    if (slot->err) {
        reply_error(slot, slot->err, slot->errmsg);
        return;
    }
    switch (slot->type) {
    case NBD_CMD_READ:
        cmd_read(slot);
        return;
    case NBD_CMD_BLOCK_STATUS:
        cmd_block_status(slot);
        return;
    case NBD_CMD_WRITE:
        if (slot->len && bh_node_can_submit(node)) {
            slot_submit(slot, node, BH_OP_WRITE, fua ? BH_IO_FUA : 0);
            return;
        }
        if (slot->len)
            r = bh_node_pwrite(node, slot->buf, slot->offset, slot->len,
                               fua ? BH_IO_FUA : 0, NULL);
        if (r < 0) {
            reply_io_error(slot, "write", r);
            return;
        }
        stat_add(&slot->conn->stats->bytes_written, slot->len);
        break;
    case NBD_CMD_FLUSH:
        if (bh_node_can_submit(node)) {
            slot_submit(slot, node, BH_OP_FLUSH, 0);
            return;
        }
        r = bh_node_flush(node, NULL);
        if (r < 0) {
            reply_io_error(slot, "flush", r);
            return;
        }
        break;
    case NBD_CMD_TRIM:
        if (slot->len)
            r = bh_node_discard(node, slot->offset, slot->len, NULL);
        if (r == 0 && fua)
            r = bh_node_flush(node, NULL);
        if (r < 0) {
            reply_io_error(slot, "trim", r);
            return;
        }
        break;
    case NBD_CMD_CACHE:
        r = cmd_cache(slot, node);
        if (r < 0) {
            reply_io_error(slot, "cache", r);
            return;
        }
        break;
    case NBD_CMD_WRITE_ZEROES: {
        uint32_t f = fua ? BH_IO_FUA : 0;
        if (!(slot->flags & NBD_CMD_FLAG_NO_HOLE))
            f |= BH_IO_MAY_UNMAP;
        if (slot->flags & NBD_CMD_FLAG_FAST_ZERO)
            f |= BH_IO_FAST_ZERO;
        if (slot->len)
            r = bh_node_write_zeroes(node, slot->offset, slot->len, f, NULL);
        if (r < 0) {
            if (r == -ENOTSUP && (f & BH_IO_FAST_ZERO))
                reply_error(slot, ENOTSUP, "fast zeroing is not possible "
                                           "here; write zeroes instead");
            else
                reply_io_error(slot, "write zeroes", r == -ENOTSUP ? -EIO : r);
            return;
        }
        stat_add(&slot->conn->stats->bytes_written, slot->len);
        break;
    }
    default:
        reply_error(slot, EINVAL, "unknown command");
        return;
    }
    reply_ok(slot);
}
