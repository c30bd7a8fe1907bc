/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * qcow2 header: parse and validate it (with its extensions and the
 * snapshot table) before anything else is read, and update single fields
 * in place (feature bits, refcount table pointer).
 *
 * Every field that comes from the image is range checked here, with a
 * message naming the field, its value and what was expected, so a broken
 * or hostile image is refused before a single byte is written to it.
 */
#include "qcow2.h"

#include <errno.h>
#include <inttypes.h>

typedef struct {
    uint8_t type, bit;
    char name[47];
} FeatureName;

static const char *feature_name(const FeatureName *names, size_t n,
                                int type, int bit, const char *fallback)
{
    for (size_t i = 0; i < n; i++)
        if (names[i].type == type && names[i].bit == bit && names[i].name[0])
            return names[i].name;
    return fallback;
}

static int check_table(Qcow2State *s, const char *what, uint64_t offset,
                       uint64_t bytes, int64_t file_len, BhError **errp)
{
    if (offset & (s->cluster_size - 1))
        return bh_error_set(errp, EINVAL, "qcow2: %s offset 0x%" PRIx64
                            " is not aligned to the cluster size (%" PRIu64 ")",
                            what, offset, s->cluster_size);
    if (offset > INT64_MAX - bytes || offset + bytes > (uint64_t)file_len)
        return bh_error_set(errp, EINVAL, "qcow2: %s at 0x%" PRIx64 " (%"
                            PRIu64 " bytes) extends past the end of the file "
                            "(%" PRId64 " bytes): truncated or corrupt image",
                            what, offset, bytes, file_len);
    if (bytes && offset < s->cluster_size)
        return bh_error_set(errp, EINVAL, "qcow2: %s at 0x%" PRIx64
                            " overlaps the header", what, offset);
    return 0;
}

static int read_extensions(Qcow2State *s, const uint8_t *cl, uint64_t start,
                           uint64_t end, FeatureName **names, size_t *nnames,
                           BhError **errp)
{
    uint64_t pos = start;

    while (pos + 8 <= end) {
        uint32_t type = qcow2_be32(cl + pos), len = qcow2_be32(cl + pos + 4);
        const uint8_t *data = cl + pos + 8;

        if (type == QCOW2_EXT_END)
            return 0;
        if (len > end - pos - 8)
            return bh_error_set(errp, EINVAL, "qcow2: header extension 0x%08x "
                                "at offset %" PRIu64 " claims %u bytes, which "
                                "runs past the header area (%" PRIu64 " bytes)",
                                type, pos, len, end);
        switch (type) {
        case QCOW2_EXT_BACKING_FMT:
            if (len > 255)
                return bh_error_set(errp, EINVAL, "qcow2: backing format "
                                    "name of %u bytes is too long", len);
            g_free(s->backing_format);
            s->backing_format = g_strndup((const char *)data, len);
            break;
        case QCOW2_EXT_FEATURES:
            g_free(*names);
            *nnames = len / 48;
            *names = g_new0(FeatureName, *nnames);
            for (size_t i = 0; i < *nnames; i++) {
                (*names)[i].type = data[i * 48];
                (*names)[i].bit = data[i * 48 + 1];
                memcpy((*names)[i].name, data + i * 48 + 2, 46);
            }
            break;
        case QCOW2_EXT_DATA_FILE:
            g_free(s->data_file_name);
            s->data_file_name = g_strndup((const char *)data, len);
            break;
        case QCOW2_EXT_BITMAPS: {
            /* Listed by info; their autoclear bit is cleared before the
             * first write (bitmaps.c). */
            int ret = qcow2_read_bitmaps(s, pos, len, data, errp);
            if (ret < 0)
                return ret;
            break;
        }
        default:
            /* Encryption pointers and unknown extensions stay untouched
             * in the file. */
            break;
        }
        pos += 8 + qcow2_align_up(len, 8);
    }
    return 0;
}

static int check_features(Qcow2State *s, const FeatureName *names,
                          size_t nnames, uint32_t crypt, BhError **errp)
{
    uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                     QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION |
                     QCOW2_INCOMPAT_EXTL2;
    uint64_t unknown = s->incompat & ~known;

    if (unknown) {
        GString *msg = g_string_new(NULL);
        for (int bit = 0; bit < 64; bit++) {
            if (!(unknown & (1ull << bit)))
                continue;
            g_string_append_printf(msg, "%s%s (bit %d)", msg->len ? ", " : "",
                                   feature_name(names, nnames, 0, bit,
                                                "unknown feature"), bit);
        }
        bh_error_set(errp, ENOTSUP, "qcow2: unsupported incompatible "
                     "feature: %s", msg->str);
        g_string_free(msg, TRUE);
        return -ENOTSUP;
    }
    if (s->incompat & QCOW2_INCOMPAT_DATA_FILE)
        return bh_error_set(errp, ENOTSUP, "qcow2: images with an external "
                            "data file%s%s%s are not supported",
                            s->data_file_name ? " ('" : "",
                            s->data_file_name ? s->data_file_name : "",
                            s->data_file_name ? "')" : "");
    if (s->incompat & QCOW2_INCOMPAT_EXTL2)
        return bh_error_set(errp, ENOTSUP, "qcow2: images with extended L2 "
                            "entries (subclusters) are not supported");
    if (crypt)
        return bh_error_set(errp, ENOTSUP, "qcow2: encrypted images (%s "
                            "encryption, crypt_method %u) are not supported",
                            crypt == 1 ? "AES" : crypt == 2 ? "LUKS" :
                            "unknown", crypt);
    if (!!(s->incompat & QCOW2_INCOMPAT_COMPRESSION) !=
        (s->compression_type != 0))
        return bh_error_set(errp, EINVAL, "qcow2: compression_type %d does "
                            "not match the compression type feature bit",
                            s->compression_type);
    if (s->compression_type > 1)
        return bh_error_set(errp, ENOTSUP, "qcow2: unknown compression_type "
                            "%d (0 zlib, 1 zstd)", s->compression_type);
#ifndef HAVE_ZSTD
    if (s->compression_type == 1)
        return bh_error_set(errp, ENOTSUP, "qcow2: zstd compressed images "
                            "need libzstd, which this build lacks");
#endif
    return 0;
}

int qcow2_read_header(Qcow2State *s, BhError **errp)
{
    uint8_t h[112] = { 0 };
    g_autofree uint8_t *cl = NULL;
    g_autofree FeatureName *names = NULL;
    size_t nnames = 0;
    int64_t file_len = bh_node_size(s->file);
    uint64_t l1_needed, cs, backing_off, ext_end, per_l1;
    uint32_t backing_len, crypt;
    int ret;

    if (file_len < 72)
        return bh_error_set(errp, EINVAL, "qcow2: the file is %" PRId64
                            " bytes, too short for a qcow2 header", file_len);
    ret = bh_node_pread(s->file, h, 0, MIN((int64_t)sizeof(h), file_len), 0,
                        errp);
    if (ret < 0)
        return ret;
    if (qcow2_be32(h) != QCOW2_MAGIC)
        return bh_error_set(errp, EINVAL, "qcow2: bad magic (not a qcow2 "
                            "image)");
    s->version = qcow2_be32(h + QH_VERSION);
    if (s->version != 2 && s->version != 3)
        return bh_error_set(errp, ENOTSUP, "qcow2: version %u is not "
                            "supported (2 or 3)", s->version);
    s->cluster_bits = qcow2_be32(h + QH_CLUSTER_BITS);
    if (qcow2_be32(h + QH_CLUSTER_BITS) < QCOW2_MIN_CLUSTER_BITS ||
        qcow2_be32(h + QH_CLUSTER_BITS) > QCOW2_MAX_CLUSTER_BITS)
        return bh_error_set(errp, EINVAL, "qcow2: cluster_bits %u is out of "
                            "range (9..21, 512 B to 2 MiB clusters)",
                            qcow2_be32(h + QH_CLUSTER_BITS));
    cs = s->cluster_size = 1ull << s->cluster_bits;
    s->l2_bits = s->cluster_bits - 3;
    s->l2_entries = 1ull << s->l2_bits;
    s->size = qcow2_be64(h + QH_SIZE);
    crypt = qcow2_be32(h + QH_CRYPT);
    s->l1_size = qcow2_be32(h + QH_L1_SIZE);
    s->l1_offset = qcow2_be64(h + QH_L1_OFFSET);
    s->reftable_offset = qcow2_be64(h + QH_REFTABLE_OFFSET);
    s->reftable_clusters = qcow2_be32(h + QH_REFTABLE_CLUSTERS);
    s->nb_snapshots = qcow2_be32(h + QH_NB_SNAPSHOTS);
    s->snapshots_offset = qcow2_be64(h + QH_SNAPSHOTS_OFFSET);
    backing_off = qcow2_be64(h + QH_BACKING_OFFSET);
    backing_len = qcow2_be32(h + QH_BACKING_SIZE);

    if (s->version == 2) {
        s->header_length = 72;
        s->refcount_order = 4;
    } else {
        s->header_length = qcow2_be32(h + QH_HEADER_LENGTH);
        s->incompat = qcow2_be64(h + QH_INCOMPAT);
        s->compat = qcow2_be64(h + QH_COMPAT);
        s->autoclear = qcow2_be64(h + QH_AUTOCLEAR);
        s->refcount_order = qcow2_be32(h + QH_REFCOUNT_ORDER);
        if (s->header_length < 104 || s->header_length % 8 ||
            s->header_length > cs)
            return bh_error_set(errp, EINVAL, "qcow2: header_length %u (0x%x)"
                                " is invalid (a multiple of 8 from 104 to the "
                                "cluster size, %" PRIu64 ")", s->header_length,
                                s->header_length, cs);
        if (s->header_length > 104)
            s->compression_type = h[QH_COMPRESSION_TYPE];
        if (qcow2_be32(h + QH_REFCOUNT_ORDER) > 6)
            return bh_error_set(errp, EINVAL, "qcow2: refcount_order %u is "
                                "out of range (0..6)",
                                qcow2_be32(h + QH_REFCOUNT_ORDER));
    }
    s->refcount_bits = 1 << s->refcount_order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX :
                      (1ull << s->refcount_bits) - 1;
    s->rb_bits = s->cluster_bits + 3 - s->refcount_order;
    s->csize_shift = 62 - (s->cluster_bits - 8);
    s->csize_mask = (1ull << (s->cluster_bits - 8)) - 1;
    s->coffset_mask = (1ull << s->csize_shift) - 1;

    /* The header, its extensions and the backing file name all live in
     * the first cluster. */
    cl = g_malloc0(cs);
    ret = bh_node_pread(s->file, cl, 0, MIN((int64_t)cs, file_len), 0, errp);
    if (ret < 0)
        return ret;
    ext_end = cs;
    if (backing_off) {
        if (backing_len > QCOW2_MAX_BACKING_NAME)
            return bh_error_set(errp, EINVAL, "qcow2: backing_file_size %u is"
                                " too long (at most %d)", backing_len,
                                QCOW2_MAX_BACKING_NAME);
        if (backing_off < s->header_length || backing_off > cs ||
            backing_len > cs - backing_off)
            return bh_error_set(errp, EINVAL, "qcow2: backing file name "
                                "(offset %" PRIu64 ", %u bytes) is not inside "
                                "the first cluster after the header",
                                backing_off, backing_len);
        s->backing_file = g_strndup((const char *)cl + backing_off,
                                    backing_len);
        ext_end = backing_off;
    }
    ret = read_extensions(s, cl, s->header_length, ext_end, &names, &nnames,
                          errp);
    if (ret < 0)
        return ret;
    ret = check_features(s, names, nnames, crypt, errp);
    if (ret < 0)
        return ret;

    if (s->size > INT64_MAX)
        return bh_error_set(errp, EFBIG, "qcow2: virtual size %" PRIu64
                            " is too large", s->size);
    per_l1 = cs * s->l2_entries;
    l1_needed = s->size / per_l1 + (s->size % per_l1 != 0);
    if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return bh_error_set(errp, EFBIG, "qcow2: l1_size %u (0x%x) is too "
                            "large (at most %u entries)", s->l1_size,
                            s->l1_size, QCOW2_MAX_L1_BYTES / 8);
    if (s->l1_size < l1_needed)
        return bh_error_set(errp, EINVAL, "qcow2: l1_size %u is too small for"
                            " the virtual size %" PRIu64 " (needs %" PRIu64 ")",
                            s->l1_size, s->size, l1_needed);
    if (l1_needed > QCOW2_MAX_L1_BYTES / 8)
        return bh_error_set(errp, EFBIG, "qcow2: virtual size %" PRIu64
                            " needs an L1 table larger than %u bytes",
                            s->size, QCOW2_MAX_L1_BYTES);
    ret = check_table(s, "L1 table", s->l1_offset, (uint64_t)s->l1_size * 8,
                      file_len, errp);
    if (ret < 0)
        return ret;

    if ((uint64_t)s->reftable_clusters * cs > QCOW2_MAX_REFTABLE_BYTES ||
        s->reftable_clusters == 0)
        return bh_error_set(errp, EFBIG, "qcow2: refcount_table_clusters %u "
                            "(0x%x) is invalid (1 to %" PRIu64 ")",
                            s->reftable_clusters, s->reftable_clusters,
                            QCOW2_MAX_REFTABLE_BYTES / cs);
    ret = check_table(s, "refcount table", s->reftable_offset,
                      (uint64_t)s->reftable_clusters * cs, file_len, errp);
    if (ret < 0)
        return ret;

    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return bh_error_set(errp, EFBIG, "qcow2: nb_snapshots %u (0x%x) is "
                            "more than %d", s->nb_snapshots, s->nb_snapshots,
                            QCOW2_MAX_SNAPSHOTS);
    if (s->nb_snapshots) {
        ret = check_table(s, "snapshot table", s->snapshots_offset, 40,
                          file_len, errp);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Parse the snapshot table: nothing is done with the snapshots yet except
 * keeping their L1 tables known (refcount rebuild, overlap checks). */
int qcow2_read_snapshot_table(Qcow2State *s, BhError **errp)
{
    int64_t file_len = bh_node_size(s->file);
    uint64_t pos = s->snapshots_offset;
    uint8_t e[40];
    int ret;

    s->snapshots = g_new0(Qcow2Snapshot, s->nb_snapshots ? s->nb_snapshots : 1);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        uint32_t extra;
        uint16_t id_len, name_len;
        uint64_t len;
        g_autofree char *strs = NULL;

        if (pos + 40 > (uint64_t)file_len)
            return bh_error_set(errp, EINVAL, "qcow2: snapshot %u header at "
                                "0x%" PRIx64 " is past the end of the file", i,
                                pos);
        ret = bh_node_pread(s->file, e, pos, 40, 0, errp);
        if (ret < 0)
            return ret;
        sn->l1_offset = qcow2_be64(e);
        sn->l1_size = qcow2_be32(e + 8);
        id_len = (uint16_t)(e[12] << 8 | e[13]);
        name_len = (uint16_t)(e[14] << 8 | e[15]);
        extra = qcow2_be32(e + 36);
        if (extra > 1024)
            return bh_error_set(errp, EFBIG, "qcow2: snapshot %u has %u bytes "
                                "of extra data (at most 1024)", i, extra);
        len = 40 + (uint64_t)extra + id_len + name_len;
        if (pos + len > (uint64_t)file_len)
            return bh_error_set(errp, EINVAL, "qcow2: snapshot %u at 0x%"
                                PRIx64 " runs past the end of the file", i, pos);
        strs = g_malloc((size_t)id_len + name_len + 1);
        ret = bh_node_pread(s->file, strs, pos + 40 + extra,
                            (size_t)id_len + name_len, 0, errp);
        if (ret < 0)
            return ret;
        sn->id = g_strndup(strs, id_len);
        sn->name = g_strndup(strs + id_len, name_len);
        if ((sn->l1_offset & (s->cluster_size - 1)) ||
            (uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
            sn->l1_offset + (uint64_t)sn->l1_size * 8 > (uint64_t)file_len)
            return bh_error_set(errp, EINVAL, "qcow2: snapshot '%s' has an "
                                "invalid L1 table (offset 0x%" PRIx64 ", %u "
                                "entries)", sn->name, sn->l1_offset,
                                sn->l1_size);
        pos += qcow2_align_up(len, 8);
        if (pos - s->snapshots_offset > 64ull << 20)
            return bh_error_set(errp, EFBIG, "qcow2: snapshot table larger "
                                "than 64 MiB");
    }
    s->snapshots_bytes = pos - s->snapshots_offset;
    return 0;
}

/* Write one header field and make it durable before going on. */
int qcow2_header_write_field(Qcow2State *s, uint64_t offset, const void *buf,
                             size_t len, BhError **errp)
{
    int ret = bh_node_pwrite(s->file, buf, offset, len, 0, errp);
    if (ret == 0)
        ret = bh_node_flush(s->file, errp);
    return ret;
}

int qcow2_header_set_incompat(Qcow2State *s, uint64_t bits, bool set,
                              BhError **errp)
{
    uint64_t v = set ? s->incompat | bits : s->incompat & ~bits;
    uint8_t be[8];
    int ret;

    if (s->version < 3 || v == s->incompat)
        return 0;
    qcow2_put_be64(be, v);
    ret = qcow2_header_write_field(s, QH_INCOMPAT, be, 8, errp);
    if (ret == 0)
        s->incompat = v;
    return ret;
}

/* Before the first change to the image: clear autoclear bits we do not
 * know (all of them: bitmaps are not kept up to date), and with lazy
 * refcounts set the dirty bit, since refcounts may lag from now on. */
int qcow2_prepare_first_write_locked(Qcow2State *s, BhError **errp)
{
    uint8_t zero[8] = { 0 };
    int ret;

    /* Checked on every write: once an overlap marked the image corrupt,
     * nothing more goes to it in this open, as in QEMU. */
    if (s->incompat & QCOW2_INCOMPAT_CORRUPT)
        return bh_error_set(errp, EIO, "qcow2: %s: the image is marked "
                            "corrupt; writes refused",
                            bh_node_filename(s->file));
    if (s->header_touched)
        return 0;
    if (s->version >= 3 && s->autoclear) {
        ret = qcow2_header_write_field(s, QH_AUTOCLEAR, zero, 8, errp);
        if (ret < 0)
            return ret;
        qcow2_bitmaps_dropped(s);
        s->autoclear = 0;
    }
    if (s->lazy) {
        ret = qcow2_header_set_incompat(s, QCOW2_INCOMPAT_DIRTY, true, errp);
        if (ret < 0)
            return ret;
    }
    s->header_touched = true;
    return 0;
}
