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
 * Global options come before the command name: -q/--quiet and
 * -v/--verbose apply to every command as if given to it, --debug (or
 * BLKHOST_DEBUG=1) keeps the Lua locations and tracebacks that are
 * otherwise left out of messages.  They reach Lua as the table
 * package.loaded["blkhost.global"] = {quiet=, verbose=, debug=}, which
 * lua/blkhost/cli.lua reads.
 *
 * Where the Lua library lives (lua/blkhost/NAME.lua, lua/cmd/NAME.lua):
 * BLKHOST_LUA_PATH (colon separated) if set; else the source tree when this
 * binary runs from its build tree (main_uninstalled_lua_dir); else the
 * installed datadir.
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

/* A binary in the build tree (BUILD/lua/blkhost) uses the source tree's
 * scripts, so a test never runs stale installed copies.  The build tree
 * is told by the marker meson writes at its root, whose first line is
 * the source root: no build or source path is compiled in, so installed
 * files do not depend on where they were built.  NULL when installed. */
static char *main_uninstalled_lua_dir(void)
{
    char *exe = realpath("/proc/self/exe", NULL);
    if (!exe)
        return NULL;
    char *dir = g_path_get_dirname(exe);
    char *root = g_path_get_dirname(dir);
    char *marker = g_build_filename(root, "blkhost-uninstalled.txt", NULL);
    char *text = NULL, *lua = NULL;
    if (g_file_get_contents(marker, &text, NULL, NULL)) {
        char *nl = strchr(text, '\n');
        if (nl)
            *nl = '\0';
        lua = g_build_filename(text, "lua", NULL);
        if (!*text || !g_file_test(lua, G_FILE_TEST_IS_DIR)) {
            g_free(lua);
            lua = NULL;
        }
    }
    g_free(text);
    g_free(marker);
    g_free(root);
    g_free(dir);
    free(exe);
    return lua;
}

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
        char *src = main_uninstalled_lua_dir();
        g_ptr_array_add(a, src ? src : g_strdup(BH_LUA_INSTALL_DIR));
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

static bool main_debug;

/* msg without the locations inside blkhost's own Lua library (cli.clean),
 * or msg itself if that cannot be had. */
static const char *main_clean(lua_State *L, const char *msg)
{
    int top = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "blkhost.cli");
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_istable(L, -1)) {
        lua_getfield(L, -1, "clean");
        lua_pushstring(L, msg);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_isstring(L, -1))
            return lua_tostring(L, -1);
    }
    lua_settop(L, top);
    return msg;
}

/* Message handler: the error plus a traceback from where it was raised.
 * A script's own locations stay; those inside the library's Lua files
 * only with --debug. */
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
    if (!main_debug)
        msg = main_clean(L, msg);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Built-in commands report their own errors (cli.run); one that escapes
 * (a command that does not load) gets its message alone unless --debug. */
static int main_msgh_cmd(lua_State *L)
{
    if (main_debug)
        return main_msgh(L);
    const char *msg = lua_tostring(L, 1);
    lua_pushstring(L, main_clean(L, msg ? msg : "(error object is not a string)"));
    return 1;
}

/* Run file (NULL: stdin) with arg = {[0]=script, argv...}.  Returns the
 * exit status. */
static int main_run(lua_State *L, const char *prog, const char *script,
                    const char *file, bool builtin, int argc, char **argv)
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

    lua_pushcfunction(L, builtin ? main_msgh_cmd : main_msgh);
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
            "Usage: blkhost [-q] [-v] [--debug] COMMAND [ARGS...]\n"
            "       blkhost [-q] [-v] [--debug] run SCRIPT [ARGS...]\n"
            "       blkhost --help | --version\n"
            "\n"
            "Host block devices: open disk images through driver plugins,\n"
            "serve them through frontend plugins, steer it all from Lua.\n"
            "\n"
            "Global options (before COMMAND):\n"
            "  -q, --quiet    no status lines or progress (as COMMAND -q)\n"
            "  -v, --verbose  say more on stderr (as COMMAND -v where it has one)\n"
            "  --debug        Lua tracebacks and internal locations in errors\n"
            "  -h, --help     this text;  -V, --version  the version\n"
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
            "  BLKHOST_LUA_PATH     directories holding blkhost/*.lua and cmd/*.lua\n"
            "  BLKHOST_DEBUG=1      as --debug\n"
            "\n"
            "Manual: man blkhost; each command: man blkhost-COMMAND;\n"
            "the scripting API: man blkhost-lua.\n");
}

/* Parse the global options in argv[1..]; returns the index of the
 * command name, or -1 after printing why not (*status set). */
static int main_global_options(int argc, char **argv, char **dirs,
                               bool *quiet, bool *verbose, int *status)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            main_usage(stdout, dirs);
            *status = 0;
            return -1;
        } else if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            printf("blkhost %s (%s)\n", bh_version(), LUA_RELEASE);
            *status = 0;
            return -1;
        } else if (!strcmp(a, "--quiet")) {
            *quiet = true;
        } else if (!strcmp(a, "--verbose")) {
            *verbose = true;
        } else if (!strcmp(a, "--debug")) {
            main_debug = true;
        } else if (a[1] != '-' && strspn(a + 1, "qv") == strlen(a + 1)) {
            *quiet = *quiet || strchr(a, 'q');
            *verbose = *verbose || strchr(a, 'v');
        } else {
            fprintf(stderr, "blkhost: unknown option '%s' before the command; "
                            "'blkhost --help' lists the global options\n", a);
            *status = 1;
            return -1;
        }
    }
    if (i >= argc) {
        main_usage(stderr, dirs);
        *status = 1;
        return -1;
    }
    return i;
}

/* package.loaded["blkhost.global"]: the global options for cli.lua. */
static void main_set_global(lua_State *L, bool quiet, bool verbose)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, quiet);
    lua_setfield(L, -2, "quiet");
    lua_pushboolean(L, verbose);
    lua_setfield(L, -2, "verbose");
    lua_pushboolean(L, main_debug);
    lua_setfield(L, -2, "debug");
    lua_setfield(L, -2, "blkhost.global");
    lua_pop(L, 1);
}

int main(int argc, char **argv)
{
    /* A closed pipe (blkhost info | head) must be an EPIPE error, not a
     * silent death. */
    signal(SIGPIPE, SIG_IGN);

    char **dirs = main_lua_dirs();
    const char *prog = argc > 0 ? argv[0] : "blkhost";
    const char *env_debug = g_getenv("BLKHOST_DEBUG");
    main_debug = env_debug && *env_debug && strcmp(env_debug, "0") != 0;

    bool quiet = false, verbose = false;
    int status = 0;
    int ci = main_global_options(argc, argv, dirs, &quiet, &verbose, &status);
    if (ci < 0) {
        g_strfreev(dirs);
        return status;
    }
    const char *cmd = argv[ci];
    if (!strcmp(cmd, "help")) {
        main_usage(stdout, dirs);
        g_strfreev(dirs);
        return 0;
    }

    const char *script;
    char *file = NULL;
    int first_arg;
    if (!strcmp(cmd, "run")) {
        if (argc < ci + 2 || !strcmp(argv[ci + 1], "--help") ||
            !strcmp(argv[ci + 1], "-h")) {
            bool help = argc >= ci + 2;
            fprintf(help ? stdout : stderr,
                    "%sblkhost run SCRIPT [ARGS...] ('-' reads stdin)\n"
                    "Runs a Lua 5.4 script with require \"blkhost\" preloaded "
                    "and arg set as lua(1) sets it.\nSee man blkhost-run and "
                    "man blkhost-lua.\n",
                    help ? "Usage: " : "blkhost: run needs a script: ");
            g_strfreev(dirs);
            return help ? 0 : 1;
        }
        script = argv[ci + 1];
        file = strcmp(script, "-") ? g_strdup(script) : NULL;
        first_arg = ci + 2;
    } else {
        file = main_find_cmd(dirs, cmd);
        if (!file) {
            fprintf(stderr, "blkhost: unknown command '%s'; "
                            "'blkhost --help' lists the commands\n", cmd);
            g_strfreev(dirs);
            return 1;
        }
        script = file;
        first_arg = ci + 1;
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
    main_set_global(L, quiet, verbose);

    status = main_run(L, prog, script, file, strcmp(cmd, "run") != 0,
                      argc - first_arg, argv + first_arg);
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
