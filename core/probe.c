/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Format probing, and the guard that keeps a guessed raw image raw.
 *
 * Probing shows the first BH_PROBE_BYTES of a file to every format
 * driver and takes the most confident.  When none claims it, the image
 * is raw.  That guess is only safe while it stays true: a raw image's
 * bytes are the guest's, so a client could write a qcow2 header naming
 * /etc/shadow as its backing file into block 0, and the next open
 * without a format would serve that file.  So a file whose format was
 * guessed as raw carries a guard (the format it was probed as), and
 * io.c checks every write, write-zeroes and discard that lands in the
 * probed bytes here: the head the request would leave behind is probed
 * again, and the request is refused with EPERM if another format would
 * claim it.  That is QEMU's rule for probed raw images; naming the
 * format (format=raw, -f raw) lifts it.
 *
 * Before any of that, the filename picks the protocol under the format:
 * a "SCHEME://" prefix that a protocol driver lists in uri_schemes (nbd://),
 * or a "SCHEME:" prefix listed with its colon (QEMU's rbd:pool/image),
 * opens that driver, anything else the file driver.
 */
#include <errno.h>
#include <string.h>

#include "core-priv.h"

const BhPluginRecord *bh_probe_buffer(const uint8_t *buf, size_t len,
                                      const char *filename)
{
    const BhPluginRecord *best = NULL;
    int best_score = 0;

    for (size_t i = 0; i < bh_plugin_count(); i++) {
        const BhPluginRecord *rec = bh_plugin_get(i);
        if (rec->error || rec->kind != BH_PLUGIN_DRIVER)
            continue;
        const BhDriver *d = rec->desc.driver;
        if (!d->probe || (d->flags & (BH_DRIVER_PROTOCOL | BH_DRIVER_NO_PROBE)))
            continue;
        int score = d->probe(buf, len, filename);
        if (score > best_score) {
            best_score = score;
            best = rec;
        }
    }
    return best;
}

const BhPluginRecord *bh_probe_protocol(const char *filename)
{
    if (!filename)
        return NULL;
    const char *colon = strstr(filename, "://");
    size_t n = colon ? (size_t)(colon - filename) : 0;
    for (size_t i = 0; i < bh_plugin_count(); i++) {
        const BhPluginRecord *rec = bh_plugin_get(i);
        if (rec->error || rec->kind != BH_PLUGIN_DRIVER ||
            !(rec->desc.driver->flags & BH_DRIVER_PROTOCOL) ||
            !rec->desc.driver->uri_schemes)
            continue;
        for (const char *const *sc = rec->desc.driver->uri_schemes; *sc;
             sc++) {
            size_t len = strlen(*sc);
            /* "rbd:" claims QEMU's pseudo-protocol prefix as it is. */
            if (len > 1 && (*sc)[len - 1] == ':') {
                if (g_ascii_strncasecmp(*sc, filename, len) == 0)
                    return rec;
            } else if (colon && len == n &&
                       g_ascii_strncasecmp(*sc, filename, n) == 0) {
                return rec;
            }
        }
    }
    return NULL;
}

const BhPluginRecord *bh_probe_node(BhNode *file, const char *filename,
                                    BhError **errp)
{
    uint8_t buf[BH_PROBE_BYTES] = { 0 };
    int64_t size = bh_node_size(file);
    size_t n = (size_t)CLAMP(size, 0, BH_PROBE_BYTES);
    int r = n ? bh_node_pread(file, buf, 0, n, 0, errp) : 0;

    if (r < 0) {
        bh_error_prefix(errp, "cannot probe the format of '%s': ", filename);
        return NULL;
    }
    const BhPluginRecord *best = bh_probe_buffer(buf, n, filename);
    if (best)
        return best;
    best = bh_plugin_find("raw", BH_PLUGIN_DRIVER);
    if (!best)
        bh_error_set(errp, ENOENT, "no format driver recognises '%s' and "
                     "the raw driver is not loaded", filename);
    return best;
}

void bh_probe_guard(BhNode *file, const BhPluginRecord *probed,
                    bool writable)
{
    file->probe_guard = probed;
    if (writable)
        g_printerr("blkhost: warning: no format was given for '%s' and "
                   "probing guessed %s; writes that would make its first "
                   "%d bytes look like another format are refused.  Name "
                   "the format to lift this: format=\"%s\" in bh.open(), "
                   "-f %s for blkhost nbd.\n", file->filename, probed->name,
                   BH_PROBE_BYTES, probed->name, probed->name);
}

int bh_probe_guard_check(BhNode *file, const char *what, uint64_t offset,
                         uint64_t len, const void *data,
                         uint8_t head[BH_PROBE_BYTES], BhError **errp)
{
    int64_t size = bh_node_size(file);
    size_t n = (size_t)CLAMP(size, 0, BH_PROBE_BYTES);
    size_t end = (size_t)MIN(offset + len, (uint64_t)BH_PROBE_BYTES);

    memset(head, 0, BH_PROBE_BYTES);
    int r = n ? bh_node_pread(file, head, 0, n, 0, errp) : 0;
    if (r < 0) {
        bh_error_prefix(errp, "%s on '%s': cannot read its first bytes to "
                       "check them: ", what, file->filename);
        return r;
    }
    /* NULL data: zeros (write-zeroes, and what a discard leaves). */
    if (data)
        memcpy(head + offset, data, end - offset);
    else
        memset(head + offset, 0, end - offset);
    const BhPluginRecord *now = bh_probe_buffer(head, MAX(n, end),
                                                file->filename);
    if (now && now != file->probe_guard)
        return bh_error_set(errp, EPERM, "%s on '%s' refused: it would make "
                            "an image whose format was guessed as %s probe "
                            "as %s; name the format (format=\"%s\", "
                            "-f %s) to allow it", what, file->filename,
                            file->probe_guard->name, now->name,
                            file->probe_guard->name,
                            file->probe_guard->name);
    return 0;
}
