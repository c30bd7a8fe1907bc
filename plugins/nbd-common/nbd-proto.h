/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NBD wire protocol: constants and on-the-wire layouts shared by the
 * nbd-server frontend and the nbd-kernel frontend (which runs the same
 * server code in-process over a socketpair).  Values follow
 * NetworkBlockDevice/nbd doc/proto.md; every integer on the wire is
 * big-endian, so the packed structs below hold network-order fields and
 * callers convert with the GUINT*_TO_BE / FROM_BE macros.
 */
#ifndef NBD_PROTO_H
#define NBD_PROTO_H

#include <errno.h>
#include <stdint.h>

#define NBD_DEFAULT_PORT 10809

/* Handshake. */
#define NBD_MAGIC            UINT64_C(0x4e42444d41474943) /* "NBDMAGIC" */
#define NBD_IHAVEOPT         UINT64_C(0x49484156454F5054) /* "IHAVEOPT" */
#define NBD_REP_MAGIC        UINT64_C(0x0003e889045565a9)

#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

#define NBD_OPT_EXPORT_NAME        1
#define NBD_OPT_ABORT              2
#define NBD_OPT_LIST               3
#define NBD_OPT_STARTTLS           5
#define NBD_OPT_INFO               6
#define NBD_OPT_GO                 7
#define NBD_OPT_STRUCTURED_REPLY   8
#define NBD_OPT_LIST_META_CONTEXT  9
#define NBD_OPT_SET_META_CONTEXT   10
#define NBD_OPT_EXTENDED_HEADERS   11

#define NBD_REP_ACK           1u
#define NBD_REP_SERVER        2u
#define NBD_REP_INFO          3u
#define NBD_REP_META_CONTEXT  4u
#define NBD_REP_ERR_BASE      (1u << 31)
#define NBD_REP_ERR_UNSUP           (NBD_REP_ERR_BASE + 1)
#define NBD_REP_ERR_POLICY          (NBD_REP_ERR_BASE + 2)
#define NBD_REP_ERR_INVALID         (NBD_REP_ERR_BASE + 3)
#define NBD_REP_ERR_PLATFORM        (NBD_REP_ERR_BASE + 4)
#define NBD_REP_ERR_TLS_REQD        (NBD_REP_ERR_BASE + 5)
#define NBD_REP_ERR_UNKNOWN         (NBD_REP_ERR_BASE + 6)
#define NBD_REP_ERR_SHUTDOWN        (NBD_REP_ERR_BASE + 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_ERR_BASE + 8)
#define NBD_REP_ERR_TOO_BIG         (NBD_REP_ERR_BASE + 9)

#define NBD_INFO_EXPORT       0
#define NBD_INFO_NAME         1
#define NBD_INFO_DESCRIPTION  2
#define NBD_INFO_BLOCK_SIZE   3

/* Transmission flags (16 bits, sent with the export size). */
#define NBD_FLAG_HAS_FLAGS          (1u << 0)
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_FLAG_SEND_FLUSH         (1u << 2)
#define NBD_FLAG_SEND_FUA           (1u << 3)
#define NBD_FLAG_ROTATIONAL         (1u << 4)
#define NBD_FLAG_SEND_TRIM          (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1u << 6)
#define NBD_FLAG_SEND_DF            (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1u << 8)
#define NBD_FLAG_SEND_CACHE         (1u << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1u << 11)

/* Transmission. */
#define NBD_REQUEST_MAGIC           UINT32_C(0x25609513)
#define NBD_SIMPLE_REPLY_MAGIC      UINT32_C(0x67446698)
#define NBD_STRUCTURED_REPLY_MAGIC  UINT32_C(0x668e33ef)

#define NBD_CMD_READ          0
#define NBD_CMD_WRITE         1
#define NBD_CMD_DISC          2
#define NBD_CMD_FLUSH         3
#define NBD_CMD_TRIM          4
#define NBD_CMD_CACHE         5
#define NBD_CMD_WRITE_ZEROES  6
#define NBD_CMD_BLOCK_STATUS  7

#define NBD_CMD_FLAG_FUA        (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE    (1u << 1)
#define NBD_CMD_FLAG_DF         (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE    (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO  (1u << 4)

#define NBD_REPLY_FLAG_DONE     (1u << 0)

#define NBD_REPLY_TYPE_NONE          0
#define NBD_REPLY_TYPE_OFFSET_DATA   1
#define NBD_REPLY_TYPE_OFFSET_HOLE   2
#define NBD_REPLY_TYPE_BLOCK_STATUS  5
#define NBD_REPLY_TYPE_ERROR         32769
#define NBD_REPLY_TYPE_ERROR_OFFSET  32770

#define NBD_STATE_HOLE  (1u << 0)
#define NBD_STATE_ZERO  (1u << 1)

#define NBD_EPERM      1
#define NBD_EIO        5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN  108

/* Limits.  Strings (export names, descriptions, queries) are at most 4096
 * bytes by the spec; we refuse option payloads longer than that, too,
 * because no option we understand needs more. */
#define NBD_MAX_STRING        4096
#define NBD_MAX_OPTION_LEN    4096
/* Clients may assume 32 MiB works when no block size was negotiated. */
#define NBD_DEFAULT_MAX_PAYLOAD (32u * 1024 * 1024)
/* The largest READ or WRITE payload our server accepts; advertised as the
 * maximum block size (NBD_INFO_BLOCK_SIZE) to clients that ask. */
#define NBD_MAX_PAYLOAD       (64u * 1024 * 1024)
/* The meta context id we give base:allocation. */
#define NBD_META_ID_BASE_ALLOCATION 1
#define NBD_META_BASE_ALLOCATION "base:allocation"

/* ---- on-the-wire layouts (network byte order) ---- */

typedef struct __attribute__((packed)) NbdOptionHeader {
    uint64_t magic;     /* NBD_IHAVEOPT */
    uint32_t option;
    uint32_t length;
} NbdOptionHeader;

typedef struct __attribute__((packed)) NbdOptionReply {
    uint64_t magic;     /* NBD_REP_MAGIC */
    uint32_t option;
    uint32_t type;
    uint32_t length;
} NbdOptionReply;

typedef struct __attribute__((packed)) NbdRequest {
    uint32_t magic;     /* NBD_REQUEST_MAGIC */
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint64_t offset;
    uint32_t length;
} NbdRequest;

typedef struct __attribute__((packed)) NbdSimpleReply {
    uint32_t magic;     /* NBD_SIMPLE_REPLY_MAGIC */
    uint32_t error;
    uint64_t cookie;
} NbdSimpleReply;

typedef struct __attribute__((packed)) NbdChunkHeader {
    uint32_t magic;     /* NBD_STRUCTURED_REPLY_MAGIC */
    uint16_t flags;
    uint16_t type;
    uint64_t cookie;
    uint32_t length;
} NbdChunkHeader;

_Static_assert(sizeof(NbdOptionHeader) == 16, "option header is 16 bytes");
_Static_assert(sizeof(NbdOptionReply) == 20, "option reply is 20 bytes");
_Static_assert(sizeof(NbdRequest) == 28, "request is 28 bytes");
_Static_assert(sizeof(NbdSimpleReply) == 16, "simple reply is 16 bytes");
_Static_assert(sizeof(NbdChunkHeader) == 20, "chunk header is 20 bytes");

/* Map an errno (positive or negative) to the NBD error a client sees. */
static inline uint32_t nbd_errno_to_wire(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0: return 0;
    case EPERM: case EROFS: return NBD_EPERM;
    case ENOMEM: return NBD_ENOMEM;
    case EINVAL: return NBD_EINVAL;
    case ENOSPC: case EFBIG: case EDQUOT: return NBD_ENOSPC;
    case EOVERFLOW: return NBD_EOVERFLOW;
    case ENOTSUP: return NBD_ENOTSUP;
    case ESHUTDOWN: return NBD_ESHUTDOWN;
    default: return NBD_EIO;
    }
}

#endif
