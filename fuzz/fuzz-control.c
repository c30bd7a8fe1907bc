/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control socket's requests (docs/control.md): the input is what a
 * client writes to the socket.  It is cut into lines as lua/control.c
 * cuts them (a trailing '\r' dropped; the last line counts even without
 * its newline, as if the client sent one) and each line goes through the
 * dispatcher the socket uses, blkhost.control's handle(), in one Lua state
 * kept for the whole run (creating a state and loading dkjson per input
 * would cost more than the input).  fuzz-control.lua holds the checks:
 * every non-blank line gets exactly one answer, a one-line JSON object
 * with "return" or a known error class, carrying the request's id.
 *
 * The state serves one export, "disk": a qcow2 image (the qcow2 seed
 * v3-snap-write, with a snapshot) on a memory node, so that the snapshot
 * commands and rotate run for real.  It has no NBD server, so export-add
 * stops before opening any path the input names.  After an input that
 * changed the image, the next input gets a fresh copy.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "fuzz-util.h"
#include "lua-config.h"
#include <blkhost/glib.h>

lua_State *bh_lua_state_new(const char *dir);
void bh_lua_pushnode(lua_State *L, BhNode *bs);

static lua_State *fuzz_L;
static int fuzz_run_ref, fuzz_dirty_ref;
static gchar *fuzz_image;
static gsize fuzz_image_len;

/* An error from the harness is a finding: show it, then crash. */
static void fuzz_control_check(lua_State *L, int status, const char *what)
{
    if (status == LUA_OK)
        return;
    fprintf(stderr, "fuzz-control: %s: %s\n", what, lua_tostring(L, -1));
    abort();
}

/* bh.exports()'s stand-in pushes this: the export's node, a fresh copy
 * of the image. */
static int fuzz_control_new_node(lua_State *L)
{
    BhNode *mem = fuzz_memory_node((const uint8_t *)fuzz_image,
                                   fuzz_image_len, 8 * 1024 * 1024);
    BhError *err = NULL;
    BhNode *node = bh_node_open_over(mem, "qcow2", NULL, &err);
    bh_node_unref(mem);
    if (!node) {
        fprintf(stderr, "fuzz-control: %s\n", bh_error_message(err));
        abort();
    }
    bh_lua_pushnode(L, node);
    return 1;
}

static void fuzz_control_setup(void)
{
    GError *gerr = NULL;
    if (!g_file_get_contents(FUZZ_SRC_DIR "/corpus/qcow2/v3-snap-write",
                             &fuzz_image, &fuzz_image_len, &gerr)) {
        fprintf(stderr, "fuzz-control: %s\n", gerr->message);
        abort();
    }
    lua_State *L = bh_lua_state_new(BH_LUA_SRC_DIR);
    if (!L)
        abort();
    fuzz_control_check(L, luaL_loadfile(L, FUZZ_SRC_DIR "/fuzz-control.lua"),
                       "loading fuzz-control.lua");
    lua_pushcfunction(L, fuzz_control_new_node);
    fuzz_control_check(L, lua_pcall(L, 1, 2, 0), "fuzz-control.lua");
    fuzz_dirty_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    fuzz_run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    fuzz_L = L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_init();
    if (!fuzz_L)
        fuzz_control_setup();
    lua_State *L = fuzz_L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_run_ref);
    lua_pushlstring(L, (const char *)data, len);
    fuzz_control_check(L, lua_pcall(L, 1, 0, 0), "a request");
    /* What the input left to the collector is freed as the state goes on
     * allocating, not here: a full collection per input walked every
     * module loaded and cost a quarter of the run.  libFuzzer's per-input
     * leak check, which would take that garbage for leaks, is off for
     * this target (fuzz/run.sh); LeakSanitizer still checks at exit. */
    return 0;
}
