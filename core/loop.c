/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The main loop.  Lua and every callback into it run here, on the main
 * thread; frontend threads reach it through bh_loop_invoke().  The loop
 * ends on SIGINT/SIGTERM, on bh_loop_quit(), or when the last holder
 * releases it (a non-persistent server whose last client left).
 */
#include <signal.h>

#include <glib-unix.h>

#include "blkhost/loop.h"
#include <blkhost/glib.h>

static GMainLoop *loop_main;
static gint loop_holds;
static int loop_signal;

typedef struct {
    void (*fn)(void *data);
    void *data;
} LoopCall;

static gboolean loop_call_cb(gpointer p)
{
    LoopCall *c = p;
    c->fn(c->data);
    g_free(c);
    return G_SOURCE_REMOVE;
}

void bh_loop_invoke(void (*fn)(void *data), void *data)
{
    LoopCall *c = g_new(LoopCall, 1);
    c->fn = fn;
    c->data = data;
    g_idle_add(loop_call_cb, c);
}

static gboolean loop_quit_cb(gpointer p)
{
    if (loop_main)
        g_main_loop_quit(loop_main);
    return G_SOURCE_REMOVE;
}

void bh_loop_quit(void)
{
    g_idle_add(loop_quit_cb, NULL);
}

void bh_loop_hold(void)
{
    g_atomic_int_inc(&loop_holds);
}

void bh_loop_release(void)
{
    if (g_atomic_int_dec_and_test(&loop_holds))
        bh_loop_quit();
}

static gboolean loop_signal_cb(gpointer p)
{
    loop_signal = GPOINTER_TO_INT(p);
    if (loop_main)
        g_main_loop_quit(loop_main);
    return G_SOURCE_CONTINUE;
}

int bh_loop_run(void)
{
    if (g_atomic_int_get(&loop_holds) <= 0)
        return 0;
    loop_signal = 0;
    /* Drain what is pending first: a quit posted while no loop ran must
     * not end this one. */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    /* What ran there may have let go of the last hold (a client that
     * came and went before the loop started): its quit was dropped with
     * the rest, so do not start a loop nothing would end. */
    if (g_atomic_int_get(&loop_holds) <= 0)
        return 0;
    loop_main = g_main_loop_new(NULL, FALSE);
    guint s1 = g_unix_signal_add(SIGINT, loop_signal_cb,
                                 GINT_TO_POINTER(SIGINT));
    guint s2 = g_unix_signal_add(SIGTERM, loop_signal_cb,
                                 GINT_TO_POINTER(SIGTERM));
    g_main_loop_run(loop_main);
    g_source_remove(s1);
    g_source_remove(s2);
    g_main_loop_unref(loop_main);
    loop_main = NULL;
    /* Run what frontends posted before the loop ended (disconnect events). */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    return loop_signal;
}
