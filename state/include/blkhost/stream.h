/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * BhStream: a buffered byte stream, the QEMUFile of blkhost.
 *
 * The savevm code (vmstate.h, savevm.h) writes and reads device and script
 * state through a BhStream, whatever holds the bytes: a file descriptor, a
 * growable memory buffer, or any place reached by a pair of positioned
 * read/write callbacks (how a node's vmstate area is plugged in by the
 * snapshot code).  A stream is either for writing or for reading, never
 * both.  Numbers are big-endian, as in QEMU's migration stream.
 *
 * Errors are sticky: the first failure (an I/O error, or reading past the
 * end: "unexpected end of stream at offset N") is kept as a BhError plus an
 * errno, every later call is a no-op, and get functions return 0.  So a
 * parser can read a whole record and check bh_stream_error() once.
 *
 * A stream is not thread-safe; one thread uses it at a time.
 */
#ifndef BLKHOST_STREAM_H
#define BLKHOST_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct BhStream BhStream;

/*
 * The backend of a callback stream.  pos is the byte position within the
 * backend, counted from 0 at the first byte the stream reads or writes.
 *   read_at:  read up to len bytes at pos into buf; return the number read
 *             (0 means end of data; fewer than len is fine) or -errno.
 *   write_at: write all len bytes at pos; return 0 or -errno.
 *   flush:    optional; make written data durable; 0 or -errno.
 *   close:    optional; called once by bh_stream_close (after the last
 *             flush), e.g. to drop a node reference.
 * A read-only stream needs only read_at, a writable one only write_at.
 * Errors may be described in *errp (which is never NULL); if a callback
 * returns -errno without setting it, the stream writes a generic message.
 */
typedef struct BhStreamOps {
    ssize_t (*read_at)(void *opaque, void *buf, uint64_t pos, size_t len,
                       BhError **errp);
    int (*write_at)(void *opaque, const void *buf, uint64_t pos, size_t len,
                    BhError **errp);
    int (*flush)(void *opaque, BhError **errp);
    void (*close)(void *opaque);
} BhStreamOps;

/* A stream over callbacks (see BhStreamOps); ops must outlive the stream. */
BhStream *bh_stream_new_callbacks(const BhStreamOps *ops, void *opaque,
                                  bool writable);

/* A stream over an fd, read or written sequentially from its current file
 * position (pipes and sockets work).  The fd is not closed by the stream,
 * and bh_stream_flush does not fsync it. */
BhStream *bh_stream_new_fd(int fd, bool writable);

/* A writable stream into a growable memory buffer; see bh_stream_mem_data. */
BhStream *bh_stream_new_mem_writer(void);

/* A read-only stream over a copy of data[0..len). */
BhStream *bh_stream_new_mem_reader(const void *data, size_t len);

/* The bytes written so far into a memory writer (flushed first), valid
 * until the next write or close; NULL for other streams. */
const uint8_t *bh_stream_mem_data(BhStream *s, size_t *len);

bool bh_stream_is_writable(const BhStream *s);

/* Bytes read (consumed) or written so far. */
uint64_t bh_stream_tell(const BhStream *s);

/* Writers push buffered bytes to the backend (and call ops->flush).
 * Returns 0 or the sticky error's -errno. */
int bh_stream_flush(BhStream *s);

/* Flush a writer, call ops->close, free the stream.  Returns 0 or -errno of
 * the stream's first error, which is also copied into errp.  NULL is a
 * no-op returning 0. */
int bh_stream_close(BhStream *s, BhError **errp);

/* 0 when all is well, otherwise -errno of the first error. */
int bh_stream_error(const BhStream *s);

/* The first error (owned by the stream), or NULL. */
const BhError *bh_stream_get_error(const BhStream *s);

/* Copy the first error into errp and return its -errno; 0 if none.  The
 * stream stays failed (the error is sticky). */
int bh_stream_take_error(const BhStream *s, BhError **errp);

/* Record an error (kept only if it is the first); returns -errnum.  Used by
 * parsers on top of the stream so that a bad value also stops the stream. */
int bh_stream_set_error(BhStream *s, int errnum, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

/* Writing.  No-ops on a failed stream; EBADF on a read-only one. */
void bh_stream_put_u8(BhStream *s, uint8_t v);
void bh_stream_put_be16(BhStream *s, uint16_t v);
void bh_stream_put_be32(BhStream *s, uint32_t v);
void bh_stream_put_be64(BhStream *s, uint64_t v);
void bh_stream_put_buffer(BhStream *s, const void *buf, size_t len);
/* A u8 length then the bytes (no NUL); EINVAL if longer than 255. */
void bh_stream_put_counted_string(BhStream *s, const char *str);

/* Reading.  Return 0 (and fill nothing) once the stream has failed; EBADF
 * on a write-only stream. */
uint8_t bh_stream_get_u8(BhStream *s);
uint16_t bh_stream_get_be16(BhStream *s);
uint32_t bh_stream_get_be32(BhStream *s);
uint64_t bh_stream_get_be64(BhStream *s);
/* Read exactly len bytes; returns true on success.  On failure buf may be
 * partly written. */
bool bh_stream_get_buffer(BhStream *s, void *buf, size_t len);
/* Read a u8 length and that many bytes into str (which has room for 256
 * bytes), NUL-terminated.  Returns true on success. */
bool bh_stream_get_counted_string(BhStream *s, char str[256]);
/* Skip len bytes; true on success. */
bool bh_stream_skip(BhStream *s, size_t len);

/* Copy up to len bytes that lie offset bytes ahead without consuming them;
 * returns how many were available (fewer at the end of the stream, which is
 * not an error here).  offset + len must be at most BH_STREAM_PEEK_MAX. */
#define BH_STREAM_PEEK_MAX 4096
size_t bh_stream_peek(BhStream *s, void *buf, size_t len, size_t offset);

/* Signed values travel as their two's complement bit patterns. */
static inline void bh_stream_put_s8(BhStream *s, int8_t v) { bh_stream_put_u8(s, (uint8_t)v); }
static inline void bh_stream_put_sbe16(BhStream *s, int16_t v) { bh_stream_put_be16(s, (uint16_t)v); }
static inline void bh_stream_put_sbe32(BhStream *s, int32_t v) { bh_stream_put_be32(s, (uint32_t)v); }
static inline void bh_stream_put_sbe64(BhStream *s, int64_t v) { bh_stream_put_be64(s, (uint64_t)v); }
static inline int8_t bh_stream_get_s8(BhStream *s) { return (int8_t)bh_stream_get_u8(s); }
static inline int16_t bh_stream_get_sbe16(BhStream *s) { return (int16_t)bh_stream_get_be16(s); }
static inline int32_t bh_stream_get_sbe32(BhStream *s) { return (int32_t)bh_stream_get_be32(s); }
static inline int64_t bh_stream_get_sbe64(BhStream *s) { return (int64_t)bh_stream_get_be64(s); }

G_END_DECLS

#endif
