/*
 * bh_node_amend: change options of an existing image (`blkhost amend`).
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The core's part is small: refuse keys the driver does not amend before
 * anything is touched, then run the driver's amend with the node drained,
 * as the other calls that rewrite metadata do (snapshots, truncate).
 */
#include <errno.h>
#include <string.h>

#include "core-priv.h"

/* The name in list (ended by a NULL name) that is key, '-' and '_'
 * alike, or NULL; entries without help (creation-only names) count only
 * if any. */
static const char *amend_listed(const BhCreateOption *list, const char *key,
                                bool any)
{
    for (size_t i = 0; list && list[i].name; i++) {
        const char *a = list[i].name, *b = key;
        if (!list[i].help && !any)
            continue;
        while (*a && *b && (*a == *b || ((*a == '-' || *a == '_') &&
                                         (*b == '-' || *b == '_')))) {
            a++;
            b++;
        }
        if (!*a && !*b)
            return list[i].name;
    }
    return NULL;
}

int bh_node_amend(BhNode *bs, const BhOpts *opts, uint32_t flags,
                  BhAmendProgress progress, void *opaque, BhError **errp)
{
    const BhDriver *drv = bs->drv;
    int r;

    if (!drv->amend)
        return bh_error_set(errp, ENOTSUP, "Format driver '%s' does not "
                            "support option amendment", bs->plugin->name);
    /* Every key first, so that a typo never costs a half-done amend.
     * As qemu-img: the first key amend does not take is named, with a
     * hint when every key at least is a creation option. */
    for (size_t i = 0; i < bh_opts_count(opts); i++) {
        const char *key = bh_opts_key(opts, i), *name;
        bool creation = true;
        if (amend_listed(drv->amend_options, key, false))
            continue;
        for (size_t j = 0; j < bh_opts_count(opts) && creation; j++) {
            const char *k = bh_opts_key(opts, j);
            creation = amend_listed(drv->amend_options, k, true) ||
                       amend_listed(drv->create_options, k, true);
        }
        /* Named as the lists spell it: the stored key has '-' for '_'. */
        name = amend_listed(drv->amend_options, key, true);
        if (!name)
            name = amend_listed(drv->create_options, key, true);
        return bh_error_set(errp, EINVAL, "Invalid parameter '%s'%s",
                            name ? name : key,
                            creation ? "\nThis option is only supported "
                                       "for image creation" : "");
    }
    if (bs->readonly)
        return bh_error_set(errp, EROFS, "cannot amend '%s': the node is "
                            "read-only", bs->filename);
    BhOpts *work = bh_opts_copy(opts);
    bh_node_drain_begin(bs);
    r = drv->amend(bs, work, flags, progress, opaque, errp);
    bh_node_drain_end(bs);
    bh_opts_free(work);
    return r;
}
