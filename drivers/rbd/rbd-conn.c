/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * From a filename to an open RBD image: QEMU's filename syntax, the
 * cluster connection with timeouts, the pool and image lookups, and the
 * exclusive-lock check, each failure said in terms of the image.
 *
 * rbd:pool[/namespace]/image[@snap][:key=value...]: a backslash takes
 * the next character literally (a colon in mon_host=1.2.3.4\:6789).
 * id= names the user, conf= the ceph.conf; every other key goes to
 * rados_conf_set() as QEMU passes it (key=, keyring=, mon_host=, ...).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbd.h"

/* The cookie librbd's exclusive lock takes (ManagedLock): "auto <id>".
 * Any other cookie is an advisory lock (`rbd lock add`). */
#define RBD_AUTO_COOKIE "auto "

/* ---- the filename ---- */

/* Copy *p up to the first unescaped character of stop into a new string;
 * *p is left on that character (or the end).  Returns NULL on ENOMEM. */
static char *rbd_token(const char **p, const char *stop)
{
    const char *s = *p;
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        return NULL;
    while (*s && !strchr(stop, *s)) {
        if (*s == '\\' && s[1])
            s++;
        *o++ = *s++;
    }
    *o = '\0';
    *p = s;
    return out;
}

static int rbd_spec_extra(RbdSpec *spec, char *key, char *value)
{
    char **k = realloc(spec->extra_keys, (spec->nextra + 1) * sizeof(*k));
    if (!k)
        return -ENOMEM;
    spec->extra_keys = k;
    char **v = realloc(spec->extra_values, (spec->nextra + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    spec->extra_values = v;
    spec->extra_keys[spec->nextra] = key;
    spec->extra_values[spec->nextra] = value;
    spec->nextra++;
    return 0;
}

static void rbd_set(char **field, char *value)
{
    free(*field);
    *field = value;
}

static int rbd_parse_filename(RbdSpec *spec, const char *filename,
                              BhError **errp)
{
    const char *p = filename;
    static const char usage[] = "(QEMU's syntax: rbd:pool[/namespace]/image"
                                "[@snapshot][:key=value...])";

    if (strncmp(p, "rbd:", 4) == 0)
        p += 4;
    char *pool = rbd_token(&p, "/@:");
    if (*p != '/' || !pool || !*pool) {
        free(pool);
        return bh_error_set(errp, EINVAL, "rbd: '%s' names no pool and image "
                            "%s", filename, usage);
    }
    rbd_set(&spec->pool, pool);
    p++;
    char *image = rbd_token(&p, "/@:");
    if (*p == '/') {
        p++;
        rbd_set(&spec->nspace, image);
        image = rbd_token(&p, "@:");
    }
    if (!image || !*image) {
        free(image);
        return bh_error_set(errp, EINVAL, "rbd: '%s' names no image %s",
                            filename, usage);
    }
    rbd_set(&spec->image, image);
    if (*p == '@') {
        p++;
        rbd_set(&spec->snap, rbd_token(&p, ":"));
        if (!spec->snap || !*spec->snap)
            return bh_error_set(errp, EINVAL, "rbd: '%s' has an empty "
                                "snapshot name after '@'", filename);
    }
    while (*p == ':') {
        p++;
        char *key = rbd_token(&p, "=:");
        if (*p != '=' || !key || !*key) {
            free(key);
            return bh_error_set(errp, EINVAL, "rbd: '%s': options after the "
                                "image are key=value %s", filename, usage);
        }
        p++;
        char *value = rbd_token(&p, ":");
        if (!strcmp(key, "id")) {
            rbd_set(&spec->user, value);
            free(key);
        } else if (!strcmp(key, "conf")) {
            rbd_set(&spec->conf, value);
            free(key);
        } else if (rbd_spec_extra(spec, key, value) < 0) {
            free(key);
            free(value);
            return bh_error_set(errp, ENOMEM, "rbd: out of memory");
        }
    }
    return 0;
}

/* An option, when given, replaces what the filename said. */
static void rbd_opt(BhOpts *opts, const char *key, char **field)
{
    const char *v = bh_opts_get(opts, key);
    if (v)
        rbd_set(field, strdup(v));
}

int rbd_spec_parse(RbdSpec *spec, const char *filename, BhOpts *opts,
                   BhError **errp)
{
    spec->timeout = 10;
    if (filename && *filename) {
        int r = rbd_parse_filename(spec, filename, errp);
        if (r < 0)
            return r;
    }
    rbd_opt(opts, "pool", &spec->pool);
    rbd_opt(opts, "namespace", &spec->nspace);
    rbd_opt(opts, "image", &spec->image);
    rbd_opt(opts, "snapshot", &spec->snap);
    rbd_opt(opts, "conf", &spec->conf);
    rbd_opt(opts, "user", &spec->user);
    rbd_opt(opts, "cluster", &spec->cluster);
    rbd_opt(opts, "key_secret", &spec->key);
    rbd_opt(opts, "keyring", &spec->keyring);
    const char *t = bh_opts_get(opts, "connect-timeout");
    if (t) {
        char *end;
        errno = 0;
        spec->timeout = strtod(t, &end);
        if (errno || end == t || *end || !(spec->timeout > 0) ||
            spec->timeout > 86400)
            return bh_error_set(errp, EINVAL, "rbd: connect-timeout='%s' is "
                                "not a number of seconds above 0 (for example "
                                "5 or 0.5)", t);
    }
    if (!spec->pool || !*spec->pool || !spec->image || !*spec->image)
        return bh_error_set(errp, EINVAL, "rbd: no pool and image given "
                            "(filename rbd:pool/image, or the pool= and "
                            "image= options)");
    if (spec->nspace && !*spec->nspace)
        rbd_set(&spec->nspace, NULL);
    if (spec->snap && !*spec->snap)
        rbd_set(&spec->snap, NULL);
    return 0;
}

void rbd_spec_clear(RbdSpec *spec)
{
    free(spec->pool);
    free(spec->nspace);
    free(spec->image);
    free(spec->snap);
    free(spec->conf);
    free(spec->user);
    free(spec->cluster);
    free(spec->key);
    free(spec->keyring);
    for (int i = 0; i < spec->nextra; i++) {
        free(spec->extra_keys[i]);
        free(spec->extra_values[i]);
    }
    free(spec->extra_keys);
    free(spec->extra_values);
    memset(spec, 0, sizeof(*spec));
}

char *rbd_spec_label(const RbdSpec *spec, bool snap)
{
    size_t n = strlen(spec->pool) + strlen(spec->image) + 3 +
               (spec->nspace ? strlen(spec->nspace) + 1 : 0) +
               (snap && spec->snap ? strlen(spec->snap) + 1 : 0);
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s%s%s%s%s", spec->pool,
                 spec->nspace ? spec->nspace : "", spec->nspace ? "/" : "",
                 spec->image, snap && spec->snap ? "@" : "",
                 snap && spec->snap ? spec->snap : "");
    return out;
}

/* ---- errors ---- */

const char *rbd_cause(int r)
{
    switch (-r) {
    case ENOENT: return "no such image";
    case EPERM:
    case EACCES: return "permission denied (does the user have osd caps "
                        "on the pool, e.g. 'profile rbd pool=POOL'?)";
    case ETIMEDOUT: return "the cluster did not answer in time";
    case EROFS: return "the image is read-only here (a snapshot, or another "
                       "client holds its exclusive lock)";
    case EBUSY: return "the image is busy (locked or in use)";
    case EEXIST: return "it exists already";
    case ENOSPC:
    case EDQUOT: return "the pool is full or over its quota";
    case ESHUTDOWN: return "this client was blocklisted (its lock was "
                              "broken by another client)";
    default: return strerror(-r);
    }
}

/* ---- the cluster ---- */

static int rbd_conf_set(RbdState *s, const char *key, const char *value,
                        BhError **errp)
{
    int r = rados_conf_set(s->cluster, key, value);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: cannot set the Ceph option "
                            "%s='%s' for '%s': %s", key, value, s->label,
                            r == -ENOENT ? "no such option" : strerror(-r));
    return 0;
}

int rbd_connect(RbdState *s, BhError **errp)
{
    RbdSpec *sp = &s->spec;
    char name[256];
    char timeout[32];
    int r;

    snprintf(name, sizeof(name), "client.%s", sp->user ? sp->user : "admin");
    r = rados_create2(&s->cluster, sp->cluster ? sp->cluster : "ceph", name,
                      0);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: cannot set up a Ceph client for "
                            "'%s' as %s: %s", s->label, name, strerror(-r));
    /* An explicit conf must exist; without one, librados looks in
     * $CEPH_CONF and the usual places and may find nothing (then the
     * options must name the monitors). */
    r = rados_conf_read_file(s->cluster, sp->conf);
    if (r < 0 && sp->conf)
        return bh_error_set(errp, -r, "rbd: cannot read the Ceph "
                            "configuration '%s' for '%s': %s", sp->conf,
                            s->label, strerror(-r));
    rados_conf_parse_env(s->cluster, NULL);
    if (sp->key && (r = rbd_conf_set(s, "key", sp->key, errp)) < 0)
        return r;
    if (sp->keyring && (r = rbd_conf_set(s, "keyring", sp->keyring, errp)) < 0)
        return r;
    for (int i = 0; i < sp->nextra; i++)
        if ((r = rbd_conf_set(s, sp->extra_keys[i], sp->extra_values[i],
                              errp)) < 0)
            return r;
    /* As QEMU does: cache=none and directsync turn librbd's cache off,
     * so every write is in the cluster when it completes. */
    if (s->nocache && (r = rbd_conf_set(s, "rbd_cache", "false", errp)) < 0)
        return r;
    /* A cluster that is down must make the open fail, not hang: librados
     * waits for a monitor forever unless told otherwise. */
    snprintf(timeout, sizeof(timeout), "%g", sp->timeout);
    if ((r = rbd_conf_set(s, "client_mount_timeout", timeout, errp)) < 0 ||
        (r = rbd_conf_set(s, "rados_mon_op_timeout", timeout, errp)) < 0)
        return r;

    r = rados_connect(s->cluster);
    if (r < 0) {
        char mon[256] = "";
        size_t n = sizeof(mon);
        if (rados_conf_get(s->cluster, "mon_host", mon, n) < 0 || !*mon)
            snprintf(mon, n, "none configured");
        const char *why =
            r == -ETIMEDOUT ? "no monitor answered within connect-timeout" :
            r == -EACCES || r == -EPERM ? "authentication failed (wrong "
                                          "user, key or keyring?)" :
            r == -ENOENT ? "no monitors or key found (give conf=, or "
                           "mon_host and key)" : strerror(-r);
        r = bh_error_set(errp, -r, "rbd: cannot connect to the Ceph cluster "
                         "for '%s' as %s (monitors: %s): %s", s->label, name,
                         mon, why);
        rados_shutdown(s->cluster);
        s->cluster = NULL;
        return r;
    }
    r = rados_ioctx_create(s->cluster, sp->pool, &s->io);
    if (r < 0)
        return bh_error_set(errp, -r, "rbd: cannot open '%s': %s", s->label,
                            r == -ENOENT ? "no such pool" : rbd_cause(r));
    if (sp->nspace)
        rados_ioctx_set_namespace(s->io, sp->nspace);
    return 0;
}

void rbd_disconnect(RbdState *s)
{
    if (s->image) {
        if (s->locked)
            rbd_lock_release(s->image);
        rbd_close(s->image);
        s->image = NULL;
    }
    if (s->io) {
        rados_ioctx_destroy(s->io);
        s->io = NULL;
    }
    if (s->cluster) {
        rados_shutdown(s->cluster);
        s->cluster = NULL;
    }
}

/* ---- the exclusive lock ---- */

/* Whether a client at addr watches the image's header: a live librbd
 * client does; a crashed one stops within osd_client_watch_timeout. */
static bool rbd_watched_by(rbd_image_t image, const char *addr)
{
    rbd_image_watcher_t w[64];
    size_t n = 64;
    bool found = false;
    if (rbd_watchers_list(image, w, &n) < 0)
        return true;            /* cannot tell: assume alive */
    for (size_t i = 0; i < n; i++)
        if (!strcmp(w[i].addr, addr))
            found = true;
    rbd_watchers_list_cleanup(w, n);
    return found;
}

/*
 * 0 when nobody else holds the image's lock, or only a client that died
 * (librbd breaks that one when we acquire, blocklisting it, which is
 * what makes failover work); else -EBUSY with a message naming the
 * holder, as the file locks name theirs.  An advisory lock (`rbd lock
 * add`) always counts: librbd would not break it either.
 */
static int rbd_check_lockers(RbdState *s, BhError **errp)
{
    char tag[256], clients[1024], cookies[1024], addrs[1024];
    size_t tag_len = sizeof(tag), clients_len = sizeof(clients);
    size_t cookies_len = sizeof(cookies), addrs_len = sizeof(addrs);
    int exclusive = 0;
    ssize_t n = rbd_list_lockers(s->image, &exclusive, tag, &tag_len, clients,
                                 &clients_len, cookies, &cookies_len, addrs,
                                 &addrs_len);
    if (n <= 0)
        return 0;               /* none, or cannot tell: acquire decides */
    /* The lists are NUL-separated; the first holder is named. */
    const char *client = clients, *cookie = cookies, *addr = addrs;
    bool automatic = !strncmp(cookie, RBD_AUTO_COOKIE,
                              strlen(RBD_AUTO_COOKIE));
    if (automatic && !rbd_watched_by(s->image, addr)) {
        fprintf(stderr, "blkhost: rbd: '%s': %s at %s held its exclusive "
                "lock but is gone; taking the lock over\n", s->label, client,
                addr);
        return 0;
    }
    return bh_error_set(errp, EBUSY, "rbd: '%s' is locked: %s at %s holds "
                        "its %s lock (%s%s%s; is a VM, rbd-nbd or another "
                        "blkhost using it? locking=off overrides)", s->label,
                        client, addr,
                        automatic ? "exclusive" : exclusive ? "advisory "
                                    "exclusive" : "advisory shared",
                        automatic ? "librbd exclusive-lock" : "cookie '",
                        automatic ? "" : cookie,
                        automatic ? "" : "', see `rbd lock ls`");
}

int rbd_open_image(RbdState *s, bool nolock, BhError **errp)
{
    RbdSpec *sp = &s->spec;
    int r;

    if (s->writable) {
        r = rbd_open(s->io, sp->image, &s->image, NULL);
    } else {
        r = rbd_open_read_only(s->io, sp->image, &s->image, sp->snap);
        /* snapshot= may be an id, as the core passes it when it opens a
         * snapshot it found by listing (bh_node_snapshot_open). */
        char *end;
        uint64_t id = sp->snap ? strtoull(sp->snap, &end, 10) : 0;
        if (r == -ENOENT && sp->snap && *sp->snap && !*end &&
            rbd_open_read_only(s->io, sp->image, &s->image, NULL) == 0) {
            r = rbd_snap_set_by_id(s->image, id);
            if (r < 0)
                rbd_close(s->image);
        }
    }
    if (r < 0) {
        s->image = NULL;
        if (r == -ENOENT && sp->snap) {
            /* Which is missing, the image or its snapshot? */
            rbd_image_t probe;
            if (rbd_open_read_only(s->io, sp->image, &probe, NULL) == 0) {
                rbd_close(probe);
                return bh_error_set(errp, ENOENT, "rbd: cannot open '%s': "
                                    "no such snapshot", s->label);
            }
        }
        return bh_error_set(errp, -r, "rbd: cannot open '%s': %s", s->label,
                            rbd_cause(r));
    }
    rbd_image_info_t info;
    if (rbd_stat(s->image, &info, sizeof(info)) == 0)
        s->obj_size = info.obj_size;
    rbd_get_features(s->image, &s->features);
    if (!s->writable || nolock)
        return 0;
    r = rbd_check_lockers(s, errp);
    if (r < 0)
        return r;
    if (!(s->features & RBD_FEATURE_EXCLUSIVE_LOCK))
        return 0;
    /* Hold the lock from now on and refuse to hand it over when another
     * client asks (librbd's default is to pass it back and forth between
     * writers, which two VMs on one disk must never do). */
    r = rbd_lock_acquire(s->image, RBD_LOCK_MODE_EXCLUSIVE);
    if (r < 0) {
        if (rbd_check_lockers(s, errp) < 0)
            return -EBUSY;
        return bh_error_set(errp, -r, "rbd: cannot take the exclusive lock "
                            "of '%s': %s", s->label, rbd_cause(r));
    }
    s->locked = true;
    return 0;
}
