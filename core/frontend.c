/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Exports and frontend instances: the core side of BhFrontend.  A handle
 * pairs a loaded frontend plugin with the instance its create() made, and
 * makes stop idempotent so Lua's __close and __gc can both call it.
 */
#include <errno.h>

#include "core-priv.h"

struct BhFrontendHandle {
    const BhPluginRecord *plugin;
    const BhFrontend *fe;
    void *inst;
    bool started;
    bool stopped;
};

struct BhExport {
    char *name;          /* "" is the default export */
    char *description;   /* may be NULL */
    BhNode *node;        /* a reference is held by the export */
    bool readonly;       /* served read-only even if the node is writable */
};

const char *bh_export_name(const BhExport *exp) { return exp->name; }
const char *bh_export_description(const BhExport *exp)
{
    return exp->description;
}
BhNode *bh_export_node(const BhExport *exp) { return exp->node; }
bool bh_export_readonly(const BhExport *exp) { return exp->readonly; }

BhExport *bh_export_new(BhNode *node, const char *name,
                        const char *description, bool readonly)
{
    BhExport *exp = g_new0(BhExport, 1);
    exp->node = bh_node_ref(node);
    exp->name = g_strdup(name ? name : "");
    exp->description = g_strdup(description);
    exp->readonly = readonly || bh_node_is_readonly(node);
    return exp;
}

void bh_export_free(BhExport *exp)
{
    if (!exp)
        return;
    bh_node_unref(exp->node);
    g_free(exp->name);
    g_free(exp->description);
    g_free(exp);
}

BhFrontendHandle *bh_frontend_new(const char *name, BhOpts *opts,
                                  BhError **errp)
{
    const BhPluginRecord *rec = bh_plugin_find(name, BH_PLUGIN_FRONTEND);
    if (!rec) {
        g_autofree char *avail = bh_plugin_names(BH_PLUGIN_FRONTEND);
        bh_error_set(errp, EINVAL, "unknown frontend '%s' (available: %s)",
                     name, *avail ? avail : "none");
        return NULL;
    }
    const BhFrontend *fe = rec->desc.frontend;
    g_autoptr(BhOpts) work = bh_opts_copy(opts);
    void *inst = fe->create ? fe->create(work, errp) : NULL;
    if (!inst) {
        if (errp && !*errp)
            bh_error_set(errp, EINVAL, "frontend %s: create failed", name);
        return NULL;
    }
    g_autofree char *who = g_strdup_printf("frontend %s", name);
    if (!bh_opts_check_used(work, who, errp)) {
        if (fe->destroy)
            fe->destroy(inst);
        return NULL;
    }
    BhFrontendHandle *h = g_new0(BhFrontendHandle, 1);
    h->plugin = rec;
    h->fe = fe;
    h->inst = inst;
    return h;
}

int bh_frontend_add_export(BhFrontendHandle *h, BhExport *exp, BhError **errp)
{
    if (!h->fe->add_export) {
        bh_export_free(exp);
        return bh_error_set(errp, ENOTSUP, "frontend %s takes no exports",
                            h->plugin->name);
    }
    return h->fe->add_export(h->inst, exp, errp);
}

int bh_frontend_start(BhFrontendHandle *h, BhError **errp)
{
    if (h->started)
        return 0;
    int r = h->fe->start ? h->fe->start(h->inst, errp) : 0;
    if (r == 0)
        h->started = true;
    return r;
}

void bh_frontend_stop(BhFrontendHandle *h)
{
    if (!h->started || h->stopped)
        return;
    h->stopped = true;
    if (h->fe->stop)
        h->fe->stop(h->inst);
}

void bh_frontend_free(BhFrontendHandle *h)
{
    if (!h)
        return;
    bh_frontend_stop(h);
    if (h->fe->destroy)
        h->fe->destroy(h->inst);
    g_free(h);
}

char *bh_frontend_uri(BhFrontendHandle *h, const char *export_name)
{
    return h->fe->uri ? h->fe->uri(h->inst, export_name) : NULL;
}

void bh_frontend_status(BhFrontendHandle *h, BhInfo *info)
{
    bh_info_add_str(info, "frontend", h->plugin->name);
    bh_info_add_bool(info, "running", h->started && !h->stopped);
    if (h->fe->status)
        h->fe->status(h->inst, info);
}

void bh_frontend_set_event_cb(BhFrontendHandle *h, BhFrontendEventFn cb,
                              void *data)
{
    if (h->fe->set_event_cb)
        h->fe->set_event_cb(h->inst, cb, data);
}

int bh_frontend_remove_export(BhFrontendHandle *h, const char *name,
                              bool hard, BhError **errp)
{
    if (!h->fe->remove_export)
        return bh_error_set(errp, ENOTSUP, "frontend %s cannot remove an "
                            "export while it runs", h->plugin->name);
    return h->fe->remove_export(h->inst, name, hard, errp);
}

int bh_frontend_disconnect(BhFrontendHandle *h, const char *name,
                           BhError **errp)
{
    if (!h->fe->disconnect)
        return bh_error_set(errp, ENOTSUP, "frontend %s cannot disconnect "
                            "its clients", h->plugin->name);
    return h->fe->disconnect(h->inst, name, errp);
}

const char *bh_frontend_name(const BhFrontendHandle *h)
{
    return h->plugin->name;
}

int bh_frontend_control(const char *name, const char *command,
                        const BhOpts *args, BhInfoList **reply,
                        BhError **errp)
{
    *reply = NULL;
    const BhPluginRecord *rec = bh_plugin_find(name, BH_PLUGIN_FRONTEND);
    if (!rec) {
        g_autofree char *avail = bh_plugin_names(BH_PLUGIN_FRONTEND);
        return bh_error_set(errp, ENOENT, "unknown frontend '%s' "
                            "(available: %s)", name, *avail ? avail : "none");
    }
    const BhFrontend *fe = rec->desc.frontend;
    if (!fe->control)
        return bh_error_set(errp, ENOTSUP, "frontend %s has no control "
                            "commands (asked for '%s')", name, command);
    g_autoptr(BhOpts) work = args ? bh_opts_copy(args) : bh_opts_new();
    BhInfoList *out = bh_info_list_new();
    int r = fe->control(command, work, out, errp);
    if (r == 0) {
        g_autofree char *who = g_strdup_printf("%s %s", name, command);
        if (!bh_opts_check_used(work, who, errp))
            r = -EINVAL;
    }
    if (r < 0) {
        if (errp && !*errp)
            bh_error_set(errp, -r, "%s %s failed", name, command);
        bh_info_list_free(out);
        return r;
    }
    *reply = out;
    return 0;
}
