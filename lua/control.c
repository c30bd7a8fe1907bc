/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.control.socket(path, on_line [, on_close]): a Unix socket in the
 * main loop that hands each line a client sends to Lua, for the control
 * socket (lua/blkhost/control.lua: JSON, commands).  Lines, not JSON,
 * cross this file: the protocol lives in Lua.
 *
 *   local srv = bh.control.socket("/run/x.sock", function(conn, line)
 *     conn:send('{"return": {}}')            -- a newline is added
 *   end, function(conn) end)                 -- the client went away
 *   srv:path(); srv:close()                  -- close removes the socket
 *   conn:close(); conn:closed(); conn.id
 *
 *   local c = bh.control.connect(path [, timeout_seconds])  -- the client
 *   c:call(line) -> the answer line (blocking; raises on timeout, EOF)
 *   c:close()
 *
 * The socket: mode 0600 (created under umask 0177, so there is no moment
 * when others may connect); an existing path that is not a socket is
 * refused, one where a server answers is refused as in use, and a stale
 * one (nobody answers) is replaced.
 *
 * A client that disconnects while its command runs only makes its answer
 * go nowhere: writes use MSG_NOSIGNAL, a failed write closes that
 * connection alone.  Answers a slow reader leaves unread are queued, and
 * a client queueing more than CONTROL_MAX_LINE unterminated bytes is
 * dropped.  An error raised by a handler is reported on stderr with its
 * traceback; the server goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "bh-lua.h"

#define CONTROL_SERVER_MT "blkhost.control.server"
#define CONTROL_CONN_MT "blkhost.control.conn"
#define CONTROL_MAX_LINE (1024 * 1024)

typedef struct ControlServer ControlServer;

typedef struct {
    int fd;                 /* -1 once closed */
    guint in_watch, out_watch;
    GString *in, *out;
    ControlServer *srv;     /* NULL once the server is gone */
    lua_Integer id;
} ControlConn;

struct ControlServer {
    int fd;                 /* -1 once closed */
    guint watch;
    char *path;
    lua_State *L;           /* the main thread */
    int line_ref, close_ref;
    int conns_ref;          /* table id -> conn userdata */
    lua_Integer next_id;
};

/* Call the function under its nargs arguments; report, never raise. */
static void control_call(lua_State *L, int nargs)
{
    bh_lua_loop_report(L, nargs, "control socket handler");
}

/* Push conn's userdata (from the server's table), or nil. */
static void control_push_conn(ControlServer *srv, lua_Integer id)
{
    lua_rawgeti(srv->L, LUA_REGISTRYINDEX, srv->conns_ref);
    lua_rawgeti(srv->L, -1, id);
    lua_remove(srv->L, -2);
}

static void control_conn_close(ControlConn *c)
{
    if (c->fd < 0)
        return;
    if (c->in_watch)
        g_source_remove(c->in_watch);
    if (c->out_watch)
        g_source_remove(c->out_watch);
    c->in_watch = c->out_watch = 0;
    close(c->fd);
    c->fd = -1;
    g_string_truncate(c->in, 0);
    g_string_truncate(c->out, 0);
    ControlServer *srv = c->srv;
    if (!srv)
        return;
    lua_State *L = srv->L;
    /* Keep the userdata alive through on_close, then forget it. */
    control_push_conn(srv, c->id);
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->conns_ref);
    lua_pushnil(L);
    lua_rawseti(L, -2, c->id);
    lua_pop(L, 1);
    if (srv->close_ref != LUA_NOREF && !lua_isnil(L, -1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, srv->close_ref);
        lua_pushvalue(L, -2);
        control_call(L, 1);
    }
    lua_pop(L, 1);
}

static gboolean control_conn_writable(gint fd, GIOCondition cond,
                                      gpointer p);

/* Write what is queued; returns false if the connection was closed. */
static bool control_conn_flush(ControlConn *c)
{
    while (c->out->len) {
        ssize_t n = send(c->fd, c->out->str, c->out->len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->out_watch)
                c->out_watch = g_unix_fd_add(c->fd, G_IO_OUT,
                                             control_conn_writable, c);
            return true;
        }
        if (n < 0) {
            /* EPIPE, ECONNRESET: the client left; its answer goes nowhere. */
            control_conn_close(c);
            return false;
        }
        g_string_erase(c->out, 0, n);
    }
    if (c->out_watch) {
        g_source_remove(c->out_watch);
        c->out_watch = 0;
    }
    return true;
}

static gboolean control_conn_writable(gint fd, GIOCondition cond, gpointer p)
{
    ControlConn *c = p;
    /* This watch ends here; flush arms a new one if it must wait again. */
    c->out_watch = 0;
    control_conn_flush(c);
    return G_SOURCE_REMOVE;
}

static gboolean control_conn_readable(gint fd, GIOCondition cond, gpointer p)
{
    ControlConn *c = p;
    ControlServer *srv = c->srv;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return G_SOURCE_CONTINUE;
    if (n <= 0) {
        c->in_watch = 0;    /* removed by returning */
        control_conn_close(c);
        return G_SOURCE_REMOVE;
    }
    g_string_append_len(c->in, buf, n);

    /* Keep the userdata on the stack while its lines run: a handler may
     * close it (or the whole server). */
    lua_State *L = srv->L;
    control_push_conn(srv, c->id);
    int ud = lua_gettop(L);
    size_t start = 0;
    while (c->fd >= 0 && c->srv) {
        char *nl = memchr(c->in->str + start, '\n', c->in->len - start);
        if (!nl)
            break;
        size_t len = nl - (c->in->str + start);
        if (len && c->in->str[start + len - 1] == '\r')
            len--;
        lua_rawgeti(L, LUA_REGISTRYINDEX, srv->line_ref);
        lua_pushvalue(L, ud);
        lua_pushlstring(L, c->in->str + start, len);
        start = nl - c->in->str + 1;
        control_call(L, 2);
    }
    if (c->fd >= 0) {
        g_string_erase(c->in, 0, start);
        if (c->in->len > CONTROL_MAX_LINE) {
            static const char msg[] = "{\"error\": {\"class\": \"GenericError\", "
                "\"desc\": \"request line longer than 1 MiB\"}}\n";
            g_string_truncate(c->in, 0);
            g_string_append(c->out, msg);
            control_conn_flush(c);
            if (c->fd >= 0) {
                lua_settop(L, ud - 1);
                c->in_watch = 0;
                control_conn_close(c);
                return G_SOURCE_REMOVE;
            }
        }
    }
    lua_settop(L, ud - 1);
    if (c->fd < 0)
        return G_SOURCE_REMOVE;   /* in_watch was removed by close */
    return G_SOURCE_CONTINUE;
}

static gboolean control_accept(gint fd, GIOCondition cond, gpointer p)
{
    ControlServer *srv = p;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return G_SOURCE_CONTINUE;   /* EAGAIN, ECONNABORTED, EMFILE: next time */

    lua_State *L = srv->L;
    ControlConn *c = lua_newuserdatauv(L, sizeof(*c), 0);
    memset(c, 0, sizeof(*c));
    c->fd = cfd;
    c->srv = srv;
    c->id = ++srv->next_id;
    c->in = g_string_new(NULL);
    c->out = g_string_new(NULL);
    luaL_setmetatable(L, CONTROL_CONN_MT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->conns_ref);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, c->id);
    lua_pop(L, 2);
    c->in_watch = g_unix_fd_add(cfd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                control_conn_readable, c);
    return G_SOURCE_CONTINUE;
}

/* Bind path at mode 0600, after the checks in the header comment. */
static int control_bind(const char *path, char **errmsg)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        *errmsg = g_strdup_printf("control socket path '%s' is too long (at "
                                  "most %zu bytes)", path,
                                  sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *errmsg = g_strdup_printf("'%s' exists and is not a socket; not "
                                      "replacing it", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool alive = probe >= 0 &&
            connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (alive) {
            *errmsg = g_strdup_printf("control socket '%s' is in use by a "
                                      "running server", path);
            return -1;
        }
        unlink(path);    /* stale: its server is gone */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *errmsg = g_strdup_printf("socket: %s", g_strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (r < 0 || listen(fd, 16) < 0) {
        e = r < 0 ? e : errno;
        close(fd);
        *errmsg = g_strdup_printf("cannot listen on '%s': %s", path,
                                  g_strerror(e));
        return -1;
    }
    return fd;
}

static ControlServer *control_server_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, CONTROL_SERVER_MT);
}

/* bh.control.socket(path, on_line [, on_close]) -> server */
static int control_socket(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    char *msg = NULL;
    int fd = control_bind(path, &msg);
    if (fd < 0) {
        lua_pushstring(L, msg);
        g_free(msg);
        return lua_error(L);
    }
    ControlServer *srv = lua_newuserdatauv(L, sizeof(*srv), 0);
    memset(srv, 0, sizeof(*srv));
    srv->fd = fd;
    srv->path = g_strdup(path);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    srv->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    srv->line_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    srv->close_ref = LUA_NOREF;
    if (!lua_isnoneornil(L, 3)) {
        lua_pushvalue(L, 3);
        srv->close_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_newtable(L);
    srv->conns_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    luaL_setmetatable(L, CONTROL_SERVER_MT);
    srv->watch = g_unix_fd_add(fd, G_IO_IN, control_accept, srv);
    return 1;
}

static int control_server_close(lua_State *L)
{
    ControlServer *srv = control_server_check(L, 1);
    if (srv->fd < 0)
        return 0;
    g_source_remove(srv->watch);
    close(srv->fd);
    srv->fd = -1;
    unlink(srv->path);
    /* Close the connections (no on_close: the server is going). */
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->conns_ref);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        ControlConn *c = lua_touserdata(L, -1);
        c->srv = NULL;
        control_conn_close(c);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, srv->conns_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, srv->line_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, srv->close_ref);
    srv->conns_ref = srv->line_ref = srv->close_ref = LUA_NOREF;
    g_free(srv->path);
    srv->path = NULL;
    return 0;
}

static int control_server_path(lua_State *L)
{
    ControlServer *srv = control_server_check(L, 1);
    if (!srv->path)
        return luaL_error(L, "control socket is closed");
    lua_pushstring(L, srv->path);
    return 1;
}

static int control_server_tostring(lua_State *L)
{
    ControlServer *srv = control_server_check(L, 1);
    lua_pushfstring(L, "blkhost.control(%s)", srv->path ? srv->path : "closed");
    return 1;
}

static ControlConn *control_conn_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, CONTROL_CONN_MT);
}

/* conn:send(line): queued with a newline; false if the client is gone. */
static int control_conn_send(lua_State *L)
{
    ControlConn *c = control_conn_check(L, 1);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    if (c->fd < 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    g_string_append_len(c->out, s, len);
    g_string_append_c(c->out, '\n');
    lua_pushboolean(L, control_conn_flush(c));
    return 1;
}

static int control_conn_close_l(lua_State *L)
{
    ControlConn *c = control_conn_check(L, 1);
    if (c->fd >= 0) {
        /* What is queued goes first, as far as the socket takes it. */
        control_conn_flush(c);
        control_conn_close(c);
    }
    return 0;
}

static int control_conn_closed(lua_State *L)
{
    lua_pushboolean(L, control_conn_check(L, 1)->fd < 0);
    return 1;
}

static int control_conn_index(lua_State *L)
{
    ControlConn *c = control_conn_check(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "id") == 0) {
        lua_pushinteger(L, c->id);
        return 1;
    }
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, k);
    return 1;
}

static int control_conn_gc(lua_State *L)
{
    ControlConn *c = control_conn_check(L, 1);
    c->srv = NULL;
    control_conn_close(c);
    if (c->in)
        g_string_free(c->in, TRUE);
    if (c->out)
        g_string_free(c->out, TRUE);
    c->in = c->out = NULL;
    return 0;
}

static const luaL_Reg control_server_methods[] = {
    { "close", control_server_close },
    { "path", control_server_path },
    { NULL, NULL },
};

static const luaL_Reg control_conn_methods[] = {
    { "send", control_conn_send },
    { "close", control_conn_close_l },
    { "closed", control_conn_closed },
    { NULL, NULL },
};

/* ---- the client side (blkhost ctl, the outside tools) ---- */

#define CONTROL_CLIENT_MT "blkhost.control.client"

typedef struct {
    int fd;
    GString *in;
} ControlClient;

/* bh.control.connect(path [, timeout]) -> client */
static int control_connect(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Number timeout = luaL_optnumber(L, 2, 60);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return luaL_error(L, "control socket path '%s' is too long", path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return luaL_error(L, "socket: %s", g_strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return luaL_error(L, "cannot connect to control socket '%s': %s",
                          path, g_strerror(e));
    }
    if (timeout > 0) {
        struct timeval tv = { .tv_sec = (time_t)timeout,
            .tv_usec = (suseconds_t)((timeout - (time_t)timeout) * 1e6) };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    ControlClient *c = lua_newuserdatauv(L, sizeof(*c), 0);
    c->fd = fd;
    c->in = g_string_new(NULL);
    luaL_setmetatable(L, CONTROL_CLIENT_MT);
    return 1;
}

static ControlClient *control_client_check(lua_State *L)
{
    ControlClient *c = luaL_checkudata(L, 1, CONTROL_CLIENT_MT);
    if (c->fd < 0)
        luaL_error(L, "control connection is closed");
    return c;
}

/* c:send(line): the line and a newline, all of it. */
static int control_client_send(lua_State *L)
{
    ControlClient *c = control_client_check(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    GString *buf = g_string_new_len(s, len);
    g_string_append_c(buf, '\n');
    size_t done = 0;
    while (done < buf->len) {
        ssize_t n = send(c->fd, buf->str + done, buf->len - done,
                         MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            g_string_free(buf, TRUE);
            return luaL_error(L, "control socket: %s", g_strerror(e));
        }
        done += n;
    }
    g_string_free(buf, TRUE);
    return 0;
}

/* c:receive() -> the next line, without its newline */
static int control_client_receive(lua_State *L)
{
    ControlClient *c = control_client_check(L);
    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);
        if (nl) {
            lua_pushlstring(L, c->in->str, nl - c->in->str);
            g_string_erase(c->in, 0, nl - c->in->str + 1);
            return 1;
        }
        char buf[65536];
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return luaL_error(L, "control socket: %s",
                              errno == EAGAIN ? "no answer in time"
                                              : g_strerror(errno));
        if (n == 0)
            return luaL_error(L, "control socket: the server closed the "
                              "connection without answering");
        g_string_append_len(c->in, buf, n);
    }
}

static int control_client_call(lua_State *L)
{
    control_client_send(L);
    return control_client_receive(L);
}

static int control_client_close(lua_State *L)
{
    ControlClient *c = luaL_checkudata(L, 1, CONTROL_CLIENT_MT);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->in) {
        g_string_free(c->in, TRUE);
        c->in = NULL;
    }
    return 0;
}

static const luaL_Reg control_client_methods[] = {
    { "send", control_client_send },
    { "receive", control_client_receive },
    { "call", control_client_call },
    { "close", control_client_close },
    { NULL, NULL },
};

/* bh.control.listen and the commands come from blkhost.control the first
 * time they are read. */
static int control_index(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "blkhost.control");
    lua_call(L, 1, 0);
    lua_pushvalue(L, 2);
    lua_rawget(L, 1);
    return 1;
}

void bh_lua_open_control(lua_State *L, int module_index)
{
    static const luaL_Reg server_meta[] = {
        { "__gc", control_server_close },
        { "__close", control_server_close },
        { "__tostring", control_server_tostring },
        { NULL, NULL },
    };
    static const luaL_Reg conn_meta[] = {
        { "__index", control_conn_index },
        { "__gc", control_conn_gc },
        { NULL, NULL },
    };
    static const luaL_Reg client_meta[] = {
        { "__gc", control_client_close },
        { "__close", control_client_close },
        { NULL, NULL },
    };
    /* Each type: its metamethods, and its methods as __index (a
     * connection's under "methods": its __index also answers conn.id). */
    const struct {
        const char *name, *methods_field;
        const luaL_Reg *meta, *methods;
    } types[] = {
        { CONTROL_SERVER_MT, "__index", server_meta, control_server_methods },
        { CONTROL_CONN_MT, "methods", conn_meta, control_conn_methods },
        { CONTROL_CLIENT_MT, "__index", client_meta, control_client_methods },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
        if (luaL_newmetatable(L, types[i].name)) {
            luaL_setfuncs(L, types[i].meta, 0);
            lua_newtable(L);
            luaL_setfuncs(L, types[i].methods, 0);
            lua_setfield(L, -2, types[i].methods_field);
        }
        lua_pop(L, 1);
    }

    bh_lua_subtable(L, module_index, "control");
    lua_pushcfunction(L, control_socket);
    lua_setfield(L, -2, "socket");
    lua_pushcfunction(L, control_connect);
    lua_setfield(L, -2, "connect");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, control_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
}
