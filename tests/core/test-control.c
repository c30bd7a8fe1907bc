/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Frontend control commands (BhFrontend.control through
 * bh_frontend_control): the one way a script reaches a frontend plugin
 * besides create.  Refusals name the frontend and the command; a command
 * that works answers records.  Uses the in-tree nbd-kernel and nbd-server
 * plugins; nothing here needs the kernel's nbd module.
 */
#include <errno.h>
#include <string.h>

#include <blkhost/blkhost.h>

#include "tap.h"

static void expect(int r, BhError **err, int want, const char *part,
                   const char *what)
{
    ok(r == -want && *err && strstr(bh_error_message(*err), part),
       "%s: %s", what, *err ? bh_error_message(*err) : "(no error)");
    bh_error_clear(err);
}

int main(void)
{
    BhError *err = NULL;
    BhInfoList *reply = NULL;
    g_autoptr(BhOpts) none = bh_opts_new();
    g_autoptr(BhOpts) bogus = bh_opts_new();
    bh_opts_set(bogus, "bogus", "1");

    plan(6);
    int r = bh_frontend_control("nosuch", "devices", none, &reply, &err);
    expect(r, &err, ENOENT, "unknown frontend 'nosuch'",
           "control of a frontend that does not exist is refused by name");
    r = bh_frontend_control("nbd-server", "devices", none, &reply, &err);
    expect(r, &err, ENOTSUP, "frontend nbd-server has no control commands",
           "control of a frontend without commands says so");
    r = bh_frontend_control("nbd-kernel", "frobnicate", none, &reply, &err);
    expect(r, &err, ENOTSUP, "no control command 'frobnicate'",
           "an unknown command is refused, naming the ones that exist");
    r = bh_frontend_control("nbd-kernel", "disconnect", none, &reply, &err);
    expect(r, &err, EINVAL, "disconnect needs device=",
           "a command missing its argument says which");
    r = bh_frontend_control("nbd-kernel", "devices", bogus, &reply, &err);
    ok(r < 0 && err && strstr(bh_error_message(err), "bogus") && !reply,
       "an argument nobody takes is refused: %s",
       err ? bh_error_message(err) : "(no error)");
    bh_error_clear(&err);
    r = bh_frontend_control("nbd-kernel", "devices", none, &reply, &err);
    ok(r == 0 && reply, "devices answers a list (%zu records here)",
       reply ? bh_info_list_count(reply) : 0);
    bh_info_list_free(reply);
    return done();
}
