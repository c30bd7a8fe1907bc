/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The main loop: one GMainLoop on the main thread, where Lua runs.
 *
 * bh_loop_run() returns when SIGINT or SIGTERM arrives, when bh_loop_quit()
 * is called, or when nothing holds the loop any more (every holder called
 * bh_loop_release(); a non-persistent server releases when its last client
 * leaves).  Frontend threads use bh_loop_invoke() to run code on the main
 * thread.
 */
#ifndef BLKHOST_LOOP_H
#define BLKHOST_LOOP_H

#include <glib.h>

G_BEGIN_DECLS

/* Returns the signal number that ended it, or 0. */
int bh_loop_run(void);
void bh_loop_quit(void);
void bh_loop_hold(void);
void bh_loop_release(void);
/* Run fn(data) on the main thread soon; safe from any thread. */
void bh_loop_invoke(void (*fn)(void *data), void *data);

G_END_DECLS

#endif
