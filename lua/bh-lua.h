/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internal header of the Lua bindings: what the binding files (module.c,
 * node.c, plugin.c, frontend.c, loop.c, util.c) share, and what later
 * binding files (nbd.c, partition.c, snapshot.c, ...) use to extend the
 * module.  Not installed.
 *
 * Extending the module: a binding file defines a bh_lua_open_* function
 * (declared below) and adds it to lua_parts in module.c, the one list of
 * parts.  luaopen_blkhost calls each with the module table at
 * module_index, after the node metatable exists, so a part can
 *   - add module functions:  lua_pushcfunction(L, f);
 *                            lua_setfield(L, module_index, "name");
 *   - add node methods:      bh_lua_node_methods(L);
 *                            luaL_setfuncs(L, regs, 0);
 *                            lua_pop(L, 1);
 * Node userdata use the metatable registered as BH_LUA_NODE_MT; its
 * __index is the method table bh_lua_node_methods() pushes.
 */
#ifndef BH_LUA_H
#define BH_LUA_H

#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>

#include "blkhost/blkhost.h"

#define BH_LUA_NODE_MT "blkhost.node"
#define BH_LUA_FRONTEND_MT "blkhost.frontend"

/* ---- nodes (node.c) ---- */

/* The node at idx; raises a Lua error if it is not a node or is closed. */
BhNode *bh_lua_checknode(lua_State *L, int idx);
/* Push a node userdata; takes the caller's reference to bs. */
void bh_lua_pushnode(lua_State *L, BhNode *bs);
/* Push the node method table (the metatable's __index) to add methods. */
void bh_lua_node_methods(lua_State *L);
/* Create the node metatable (called by luaopen_blkhost). */
void bh_lua_node_register(lua_State *L);

/* ---- shared helpers (util.c) ---- */

/* Frees err and raises a Lua error whose message is err's; never returns. */
int bh_lua_error(lua_State *L, BhError *err);
/* Lua table at idx -> BhOpts.  Booleans become "on"/"off", integral
 * numbers decimal integers, strings stay as they are, an array of
 * strings/numbers becomes repeated keys, and a nested table with string
 * keys is flattened with a dotted prefix ({file={locking=false}} ->
 * "file.locking=off").  nil or none at idx gives an empty list.  Returns
 * NULL with *errp set on a value it cannot convert.  Raises no Lua error
 * for bad content (only for out-of-memory). */
BhOpts *bh_lua_opts_from_table(lua_State *L, int idx, BhError **errp);
/* Push a table {key=value, ...} made from info (ints as integers). */
void bh_lua_push_info(lua_State *L, const BhInfo *info);
/* Argument idx as a non-negative integer (floats with an integral value are
 * accepted); raises luaL_argerror naming what (e.g. "offset") otherwise. */
uint64_t bh_lua_check_u64(lua_State *L, int idx, const char *what);
/* Optional boolean field of the table at idx (absent or nil: def). */
bool bh_lua_opt_flag(lua_State *L, int idx, const char *field, bool def);
/* Push t[name] of the table at index, creating it if absent (bindings
 * sharing one sub-table such as bh.nbd). */
void bh_lua_subtable(lua_State *L, int index, const char *name);
/* Push a new frontend handle (metatable BH_LUA_FRONTEND_MT) for plugin
 * name with the options table at opts_idx; raises on error.  label names
 * it in messages and __tostring; auto_start starts it at its first
 * export (bh.nbd.server). */
void bh_lua_frontend_push(lua_State *L, const char *name, int opts_idx,
                          const char *label, bool auto_start);
/* Call the function at fn_idx as fn(details) for each event of that name
 * (e.g. "connect") of the handle at ud_idx, on the main thread. */
void bh_lua_frontend_on(lua_State *L, int ud_idx, const char *event,
                        int fn_idx);
/* (node, {name=, description=, readonly=}) export arguments at node_idx
 * and opts_idx as a new BhExport (frontend.c). */
BhExport *bh_lua_check_export(lua_State *L, int node_idx, int opts_idx);
/* "1 GiB", "64 MiB", "1.5 KiB", "512 B": three significant digits, the
 * way qemu-img prints sizes.  g_free the result. */
char *bh_lua_human_size(uint64_t bytes);

/* ---- module parts registered by luaopen_blkhost ---- */
void bh_lua_plugin_register(lua_State *L, int module_index);   /* plugin.c */
void bh_lua_frontend_register(lua_State *L, int module_index); /* frontend.c */
void bh_lua_loop_register(lua_State *L, int module_index);     /* loop.c */
void bh_lua_window_register(lua_State *L, int module_index); /* window.c: node:window{} */
void bh_lua_timezone_register(lua_State *L, int module_index); /* timezone.c */

/* For callbacks that run Lua from inside bh.loop() (frontend events):
 * call fn (on top of the stack, below its nargs arguments) protected; on
 * error keep the message, quit the loop, and have bh.loop() raise it. */
void bh_lua_loop_call(lua_State *L, int nargs);

/* For callbacks that must not stop the loop (timers, control socket
 * commands): call fn as above; on error print "blkhost: WHAT failed
 * (serving goes on): " and the traceback, and go on. */
void bh_lua_loop_report(lua_State *L, int nargs, const char *what);
/* A lua_pcall message handler: the message with a traceback. */
int bh_lua_traceback(lua_State *L);

/* The module opener; main.c preloads it as "blkhost". */
int luaopen_blkhost(lua_State *L);
/* A new state with the standard libraries, "blkhost" preloaded and the
 * Lua library looked for in dir first (programs that run in the tree,
 * the fuzzers and tests, pass BH_LUA_SRC_DIR); NULL without memory. */
lua_State *bh_lua_state_new(const char *dir);

/* ---- the other parts of the module (lua_parts in module.c) ---- */
void bh_lua_open_nbd(lua_State *L, int module_index);
void bh_lua_open_partition(lua_State *L, int module_index);
void bh_lua_open_snapshot(lua_State *L, int module_index);
/* nbd-kernel.c: adds connect/disconnect/devices/list to bh.nbd (runs after
 * bh_lua_open_nbd, so the nbd table exists at module_index's "nbd"). */
void bh_lua_open_nbd_kernel(lua_State *L, int module_index);
/* process.c: process-level helpers for commands (daemonize, pid files). */
void bh_lua_open_process(lua_State *L, int module_index);
/* fuse.c: bh.fuse.export (the fuse frontend plugin). */
void bh_lua_open_fuse(lua_State *L, int module_index);
void bh_lua_open_filter(lua_State *L, int module_index);  /* filter.c */
/* control.c: bh.control.socket (listen and the commands are Lua). */
void bh_lua_open_control(lua_State *L, int module_index);
/* served.c: bh.exports(), and what frontend.c tells it. */
void bh_lua_open_served(lua_State *L, int module_index);
/* An export of the frontend at handle_idx (address fe) over bs. */
void bh_lua_served_export(lua_State *L, int handle_idx, const void *fe,
                          BhNode *bs, const char *name,
                          const char *description, bool readonly);
/* A frontend event with its details table at details_idx. */
void bh_lua_served_event(lua_State *L, const void *fe, const char *event,
                         int details_idx);
/* The frontend at fe no longer serves the export called name. */
void bh_lua_served_unexport(lua_State *L, const void *fe, const char *name);
/* Disconnect the clients of every export of bs (raises on failure);
 * returns how many there were. */
lua_Integer bh_lua_served_disconnect(lua_State *L, BhNode *bs);
/* The frontend at fe is closed. */
void bh_lua_served_forget(lua_State *L, const void *fe);
/* Whether bs (or a node it sits on, or one on it) is exported here;
 * *clients: how many clients are connected to those exports. */
bool bh_lua_served_clients(lua_State *L, BhNode *bs, lua_Integer *clients);
/* timer.c: bh.timer (every, after, now; at from blkhost/timer.lua). */
void bh_lua_open_timer(lua_State *L, int module_index);

/* copy.c: bh.copy (the engine behind convert, inflight.h). */
void bh_lua_open_copy(lua_State *L, int module_index);
/* bench.c: bh.bench (qemu-img bench's request loop). */
void bh_lua_open_bench(lua_State *L, int module_index);

/* driver.c: bh.driver.register and *.lua driver files. */
void bh_lua_open_driver(lua_State *L, int module_index);
/* Load and register a Lua driver file (bh.plugin.load("x.lua")). */
const BhPluginRecord *bh_lua_driver_load_file(const char *path,
                                              BhError **errp);
/* bh.loop() lets the server's threads into the script's Lua drivers. */
void bh_lua_driver_release(void);
void bh_lua_driver_reacquire(void);

#endif
