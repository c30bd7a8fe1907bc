/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The blkhost executable: one Lua 5.4 state with the "blkhost" module
 * preloaded.  `blkhost run SCRIPT ARGS...` runs a script; `blkhost NAME
 * ARGS...` runs the built-in command lua/cmd/NAME.lua the same way.  Both
 * see `arg` as lua(1) sets it (arg[0] the script, arg[1..] the arguments)
 * and get them as `...` too.  An error prints "blkhost: " with the message
 * and a traceback and exits 1; a script that returns an integer exits with
 * it (after the state is closed, so every node's __gc has run).
 *
 * Where the Lua library lives (lua/blkhost/NAME.lua, lua/cmd/NAME.lua):
 * BLKHOST_LUA_PATH (colon separated) if set; else the source tree when this
 * binary runs from its build tree; else the installed datadir.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "bh-lua.h"
#include "lua-config.h"

/* The directories holding the Lua library, in search order. */
static char **main_lua_dirs(void)
{
    const char *env = g_getenv("BLKHOST_LUA_PATH");
    GPtrArray *a = g_ptr_array_new();

    if (env && *env) {
        char **parts = g_strsplit(env, ":", -1);
        for (int i = 0; parts[i]; i++)
            if (*parts[i])
                g_ptr_array_add(a, g_strdup(parts[i]));
        g_strfreev(parts);
    } else {
        /* A binary in the build tree uses the source tree's scripts, so a
         * test never runs stale installed copies. */
        char *exe = realpath("/proc/self/exe", NULL);
        char *dir = exe ? g_path_get_dirname(exe) : NULL;
        char *build = realpath(BH_LUA_BUILD_DIR, NULL);
        bool uninstalled = dir && build && strcmp(dir, build) == 0 &&
                           g_file_test(BH_LUA_SRC_DIR, G_FILE_TEST_IS_DIR);
        g_ptr_array_add(a, g_strdup(uninstalled ? BH_LUA_SRC_DIR
                                                : BH_LUA_INSTALL_DIR));
        free(exe);
        free(build);
        g_free(dir);
    }
    g_ptr_array_add(a, NULL);
    return (char **)g_ptr_array_free(a, FALSE);
}

/* package.path = DIR/?.lua;DIR/?/init.lua;... ahead of Lua's defaults. */
static void main_set_package_path(lua_State *L, char **dirs)
{
    GString *p = g_string_new(NULL);
    for (int i = 0; dirs[i]; i++)
        g_string_append_printf(p, "%s/?.lua;%s/?/init.lua;", dirs[i], dirs[i]);

    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    g_string_append(p, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    lua_pushstring(L, p->str);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    g_string_free(p, TRUE);
}

/* The path of cmd/NAME.lua in the first directory that has it. */
static char *main_find_cmd(char **dirs, const char *name)
{
    if (!*name || strchr(name, '/') || name[0] == '.')
        return NULL;
    for (int i = 0; dirs[i]; i++) {
        char *file = g_strdup_printf("%s/cmd/%s.lua", dirs[i], name);
        if (g_file_test(file, G_FILE_TEST_IS_REGULAR))
            return file;
        g_free(file);
    }
    return NULL;
}

/* Message handler: the error plus a traceback from where it was raised. */
static int main_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)",
                                  luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Run file (NULL: stdin) with arg = {[0]=script, argv...}.  Returns the
 * exit status. */
static int main_run(lua_State *L, const char *prog, const char *script,
                    const char *file, int argc, char **argv)
{
    lua_createtable(L, argc, 2);
    lua_pushstring(L, prog);
    lua_rawseti(L, -2, -1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");

    lua_pushcfunction(L, main_msgh);
    int msgh = lua_gettop(L);
    if (luaL_loadfile(L, file) != LUA_OK) {
        /* Syntax errors and unreadable files: the message already says
         * file:line or which file could not be opened. */
        fprintf(stderr, "blkhost: %s\n", lua_tostring(L, -1));
        return 1;
    }
    luaL_checkstack(L, argc, "too many arguments");
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc, 1, msgh) != LUA_OK) {
        fprintf(stderr, "blkhost: %s\n", lua_tostring(L, -1));
        return 1;
    }
    int status = 0;
    if (lua_isinteger(L, -1))
        status = (int)(lua_tointeger(L, -1) & 0xff);
    else if (lua_isboolean(L, -1))
        status = lua_toboolean(L, -1) ? 0 : 1;
    return status;
}

/* The first comment line of a command script after its licence line,
 * "-- NAME: what it does", for --help. */
static char *main_cmd_summary(const char *file)
{
    char *text = NULL;
    char *summary = NULL;
    if (!g_file_get_contents(file, &text, NULL, NULL))
        return NULL;
    char *line = text;
    if (g_str_has_prefix(line, "-- SPDX-License-Identifier:")) {
        char *next = strchr(line, '\n');
        line = next ? next + 1 : line + strlen(line);
    }
    if (g_str_has_prefix(line, "-- ")) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(line + 3, ':');
        summary = g_strdup(g_strstrip(colon ? colon + 1 : line + 3));
    }
    g_free(text);
    return summary;
}

static gint main_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void main_usage(FILE *out, char **dirs)
{
    fprintf(out,
            "Usage: blkhost COMMAND [ARGS...]\n"
            "       blkhost run SCRIPT [ARGS...]\n"
            "       blkhost --help | --version\n"
            "\n"
            "Host block devices: open disk images through driver plugins,\n"
            "serve them through frontend plugins, steer it all from Lua.\n"
            "\n"
            "Commands:\n"
            "  %-10s %s\n", "run",
            "run a Lua script; require \"blkhost\" is preloaded, arg is set");

    GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; dirs[i]; i++) {
        char *cmddir = g_build_filename(dirs[i], "cmd", NULL);
        GDir *d = g_dir_open(cmddir, 0, NULL);
        const char *e;
        while (d && (e = g_dir_read_name(d))) {
            if (!g_str_has_suffix(e, ".lua"))
                continue;
            char *name = g_strndup(e, strlen(e) - 4);
            bool dup = false;
            for (guint j = 0; j < names->len; j++)
                dup = dup || strcmp(names->pdata[j], name) == 0;
            if (dup)
                g_free(name);
            else
                g_ptr_array_add(names, name);
        }
        if (d)
            g_dir_close(d);
        g_free(cmddir);
    }
    g_ptr_array_sort(names, main_name_cmp);
    for (guint j = 0; j < names->len; j++) {
        char *file = main_find_cmd(dirs, names->pdata[j]);
        char *sum = file ? main_cmd_summary(file) : NULL;
        fprintf(out, "  %-10s %s\n", (char *)names->pdata[j], sum ? sum : "");
        g_free(sum);
        g_free(file);
    }
    g_ptr_array_free(names, TRUE);
    fprintf(out,
            "\n"
            "Run 'blkhost COMMAND --help' for a command's options.\n"
            "\n"
            "Environment:\n"
            "  BLKHOST_PLUGIN_PATH  extra plugin directories (colon separated),\n"
            "                       searched before the built-in ones\n"
            "  BLKHOST_LUA_PATH     directories holding blkhost/*.lua and cmd/*.lua\n");
}

int main(int argc, char **argv)
{
    /* A closed pipe (blkhost info | head) must be an EPIPE error, not a
     * silent death. */
    signal(SIGPIPE, SIG_IGN);

    char **dirs = main_lua_dirs();
    const char *prog = argc > 0 ? argv[0] : "blkhost";

    if (argc < 2) {
        main_usage(stderr, dirs);
        g_strfreev(dirs);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        main_usage(stdout, dirs);
        g_strfreev(dirs);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("blkhost %s (%s)\n", bh_version(), LUA_RELEASE);
        g_strfreev(dirs);
        return 0;
    }

    const char *script;
    char *file = NULL;
    int first_arg;
    if (!strcmp(cmd, "run")) {
        if (argc < 3) {
            fprintf(stderr, "blkhost: run needs a script: blkhost run SCRIPT "
                            "[ARGS...] ('-' reads stdin)\n");
            g_strfreev(dirs);
            return 1;
        }
        script = argv[2];
        file = strcmp(script, "-") ? g_strdup(script) : NULL;
        first_arg = 3;
    } else {
        file = main_find_cmd(dirs, cmd);
        if (!file) {
            fprintf(stderr, "blkhost: unknown command '%s'; "
                            "'blkhost --help' lists the commands\n", cmd);
            g_strfreev(dirs);
            return 1;
        }
        script = file;
        first_arg = 2;
    }

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "blkhost: cannot create a Lua state: out of memory\n");
        return 1;
    }
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_blkhost);
    lua_setfield(L, -2, "blkhost");
    lua_pop(L, 1);
    main_set_package_path(L, dirs);

    int status = main_run(L, prog, script, file, argc - first_arg,
                          argv + first_arg);
    /* Closing the state runs every __gc, so nodes are flushed and closed
     * before the exit status is reported. */
    lua_close(L);
    fflush(stdout);
    if (ferror(stdout) && status == 0) {
        fprintf(stderr, "blkhost: error writing to standard output\n");
        status = 1;
    }
    g_free(file);
    g_strfreev(dirs);
    return status;
}
