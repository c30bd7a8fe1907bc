/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bh.process: what a long-running command needs from its own process —
 * going to the background the way qemu-nbd does, a pid file, a private
 * temporary file, absolute paths.
 *
 *   bh.process.daemonize()       -- returns in the background child only
 *   ... open, listen ...          -- errors written to stderr reach the
 *                                 -- waiting parent, which prints them
 *   bh.process.ready()           -- the parent exits 0; stderr -> /dev/null
 *   bh.process.ready{keep_stderr=true}  -- or back to the original stderr
 *
 *   bh.process.write_pid_file(path)     -- locked, removed at exit
 *   bh.process.tempfile([{dir=, prefix=}]) -> path (created, empty, 0600)
 *   bh.process.realpath(path) -> absolute path of an existing file
 *   bh.process.pid() -> number
 *   bh.process.lock_file(path [, {wait=false}]) -> handle, or nil, message,
 *                                 holder pid when another process holds it
 *
 * daemonize() forks twice (so the server is no session leader and cannot
 * pick up a controlling terminal), points stdin and stdout at /dev/null and
 * stderr at a pipe to the parent.  The parent copies what arrives there to
 * its own stderr and exits once the child is ready (status 0) or gone
 * without becoming ready (status 1), so `blkhost nbd --fork ...; nbdinfo
 * ...` in a shell script never races the server.  It must run before
 * anything starts threads (servers, workers): fork() copies only the
 * calling thread, so it refuses when the process already has others.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bh-lua.h"

/* The background child's end of the "ready" pipe, -1 when not daemonized
 * or already ready; and its original stderr for ready{keep_stderr=true}. */
static int process_ready_fd = -1;
static int process_saved_stderr = -1;

/* Pid files written by this process: removed by an atexit handler, but
 * only by the process that wrote them (a forked child inherits the list). */
static GPtrArray *process_pid_files;
static pid_t process_pid_files_owner;

static int process_thread_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static bool process_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* The foreground parent: relay the child's stderr until both pipes close,
 * then exit without running Lua finalizers or atexit handlers (the child
 * owns everything now). */
static G_NORETURN void process_parent_wait(int err_fd, int ready_fd)
{
    bool ready = false, output = false;
    struct pollfd p[2] = {
        { .fd = err_fd, .events = POLLIN },
        { .fd = ready_fd, .events = POLLIN },
    };
    char buf[4096];

    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
            } else if (i == 0) {
                output = true;
                process_write_all(STDERR_FILENO, buf, (size_t)n);
            } else {
                ready = true;
            }
        }
    }
    if (!ready && !output) {
        static const char msg[] = "blkhost: the background process ended "
                                  "before it was ready\n";
        process_write_all(STDERR_FILENO, msg, sizeof(msg) - 1);
    }
    fflush(stdout);
    _exit(ready ? 0 : 1);
}

/* bh.process.daemonize() -> true, in the background child only */
static int process_daemonize(lua_State *L)
{
    int err_pipe[2], ready_pipe[2];
    int threads = process_thread_count();

    if (process_ready_fd >= 0)
        return luaL_error(L, "bh.process.daemonize: already in the "
                          "background");
    if (threads > 1)
        return luaL_error(L, "bh.process.daemonize must run before anything "
                          "starts threads (this process has %d); call it "
                          "before opening servers", threads);
    if (pipe2(err_pipe, O_CLOEXEC) < 0)
        return luaL_error(L, "bh.process.daemonize: pipe: %s",
                          g_strerror(errno));
    if (pipe2(ready_pipe, O_CLOEXEC) < 0) {
        int e = errno;
        close(err_pipe[0]);
        close(err_pipe[1]);
        return luaL_error(L, "bh.process.daemonize: pipe: %s", g_strerror(e));
    }
    fflush(NULL);

    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(err_pipe[0]); close(err_pipe[1]); close(ready_pipe[0]); close(ready_pipe[1]);
        return luaL_error(L, "bh.process.daemonize: fork: %s", g_strerror(e));
    }
    if (pid > 0) {
        close(err_pipe[1]);
        close(ready_pipe[1]);
        /* Reap the intermediate child; the server is its orphan. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        process_parent_wait(err_pipe[0], ready_pipe[0]);
    }

    /* Intermediate child: a new session, then fork again and leave. */
    close(err_pipe[0]);
    close(ready_pipe[0]);
    if (setsid() < 0)
        _exit(1);
    pid = fork();
    if (pid < 0) {
        dprintf(err_pipe[1], "blkhost: fork failed: %s\n", g_strerror(errno));
        _exit(1);
    }
    if (pid > 0)
        _exit(0);

    /* The server. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0) {
        dprintf(err_pipe[1], "blkhost: cannot open /dev/null: %s\n",
                g_strerror(errno));
        _exit(1);
    }
    process_saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    close(null);
    close(err_pipe[1]);
    process_ready_fd = ready_pipe[1];
    lua_pushboolean(L, 1);
    return 1;
}

/* bh.process.ready([{keep_stderr=false}]): release the waiting parent. */
static int process_ready(lua_State *L)
{
    bool keep = false;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        keep = bh_lua_opt_flag(L, 1, "keep_stderr", false);
    }
    if (process_ready_fd < 0) {
        /* Not daemonized: nothing is waiting; harmless, so scripts can
         * call it on both paths. */
        lua_pushboolean(L, 0);
        return 1;
    }
    fflush(stderr);
    int target = keep && process_saved_stderr >= 0
                     ? process_saved_stderr
                     : open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (target >= 0) {
        dup2(target, STDERR_FILENO);
        if (target != process_saved_stderr)
            close(target);
    }
    if (process_saved_stderr >= 0) {
        close(process_saved_stderr);
        process_saved_stderr = -1;
    }
    process_write_all(process_ready_fd, "R", 1);
    close(process_ready_fd);
    process_ready_fd = -1;
    lua_pushboolean(L, 1);
    return 1;
}

static void process_remove_pid_files(void)
{
    if (!process_pid_files || getpid() != process_pid_files_owner)
        return;
    for (guint i = 0; i < process_pid_files->len; i++)
        unlink(process_pid_files->pdata[i]);
}

/* bh.process.write_pid_file(path): write our pid; refused when another
 * live process holds the file's lock (as qemu's pid files are). */
static int process_write_pid_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return luaL_error(L, "cannot open pid file '%s': %s", path,
                          g_strerror(errno));
    if (lockf(fd, F_TLOCK, 0) < 0) {
        int e = errno;
        close(fd);
        return luaL_error(L, "cannot lock pid file '%s': %s (is another "
                          "server running?)", path, g_strerror(e));
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || !process_write_all(fd, buf, (size_t)n)) {
        int e = errno;
        close(fd);
        return luaL_error(L, "cannot write pid file '%s': %s", path,
                          g_strerror(e));
    }
    /* The descriptor stays open: it holds the lock until we exit.  A list
     * inherited through fork() belongs to the parent: start afresh. */
    if (!process_pid_files) {
        process_pid_files = g_ptr_array_new_with_free_func(g_free);
        atexit(process_remove_pid_files);
    } else if (process_pid_files_owner != getpid()) {
        g_ptr_array_set_size(process_pid_files, 0);
    }
    process_pid_files_owner = getpid();
    char *abs = g_canonicalize_filename(path, NULL);
    g_ptr_array_add(process_pid_files, abs);
    return 0;
}

/* bh.process.tempfile([{dir=, prefix=}]) -> path of a new empty file.
 * dir defaults to $TMPDIR, else /var/tmp (where qemu puts its temporary
 * snapshot overlays: they can be large). */
static int process_tempfile(lua_State *L)
{
    const char *dir = NULL, *prefix = "blkhost";
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_getfield(L, 1, "dir");
        dir = luaL_optstring(L, -1, NULL);
        lua_getfield(L, 1, "prefix");
        prefix = luaL_optstring(L, -1, prefix);
        lua_pop(L, 2);  /* the strings stay alive: the table holds them */
    }
    if (!dir)
        dir = g_getenv("TMPDIR");
    if (!dir || !*dir)
        dir = "/var/tmp";
    if (strchr(prefix, '/'))
        return luaL_error(L, "tempfile prefix '%s' must not contain '/'",
                          prefix);
    char *tmpl = g_strdup_printf("%s/%s.XXXXXX", dir, prefix);
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        lua_pushfstring(L, "cannot create a temporary file in '%s': %s", dir,
                        g_strerror(e));
        g_free(tmpl);
        return lua_error(L);
    }
    close(fd);
    lua_pushstring(L, tmpl);
    g_free(tmpl);
    return 1;
}

/* bh.process.realpath(path) -> absolute path with no symlinks */
static int process_realpath(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char *r = realpath(path, NULL);
    if (!r)
        return luaL_error(L, "cannot resolve '%s': %s", path,
                          g_strerror(errno));
    lua_pushstring(L, r);
    free(r);
    return 1;
}

static int process_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/*
 * Lock files: an exclusive flock() on a file that stays in place, so two
 * jobs working on the same thing (two snapshot rotations of one image)
 * cannot run at once.  flock, not fcntl: the lock belongs to the open file
 * description, so it is neither shared with nor dropped by other
 * descriptors of this process, and it goes away with the process however
 * it ends.  The file is never removed (removing a lock file races with the
 * next locker); the holder writes its pid into it so a refused caller can
 * say who is in the way.
 */
#define PROCESS_LOCK_MT "blkhost.lockfile"

typedef struct {
    int fd;
    char *path;
} ProcessLock;

static ProcessLock *process_checklock(lua_State *L)
{
    return luaL_checkudata(L, 1, PROCESS_LOCK_MT);
}

static int process_lock_close(lua_State *L)
{
    ProcessLock *lk = process_checklock(L);
    if (lk->fd >= 0) {
        /* Clear the pid first: a stale pid in an unlocked file would
         * only mislead. */
        if (ftruncate(lk->fd, 0) < 0) {
            /* nothing to do: the lock is released below anyway */
        }
        close(lk->fd);
        lk->fd = -1;
    }
    g_clear_pointer(&lk->path, g_free);
    return 0;
}

static int process_lock_path(lua_State *L)
{
    ProcessLock *lk = process_checklock(L);
    lua_pushstring(L, lk->path ? lk->path : "");
    return 1;
}

static int process_lock_tostring(lua_State *L)
{
    ProcessLock *lk = process_checklock(L);
    lua_pushfstring(L, "blkhost.lockfile(%s%s)", lk->path ? lk->path : "",
                    lk->fd >= 0 ? "" : ", released");
    return 1;
}

/* The pid a lock file holds, or 0. */
static long process_lock_holder(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* bh.process.lock_file(path [, {wait=false}]) -> handle
 * or nil, message, holder pid (0 if unknown) when the lock is taken. */
static int process_lock_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    bool wait = false;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        wait = bh_lua_opt_flag(L, 2, "wait", false);
    }
    ProcessLock *lk = lua_newuserdatauv(L, sizeof(*lk), 0);
    lk->fd = -1;
    lk->path = NULL;
    luaL_setmetatable(L, PROCESS_LOCK_MT);

    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0)
        return luaL_error(L, "cannot open lock file '%s': %s", path,
                          g_strerror(errno));
    int r;
    while ((r = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB))) < 0 &&
           errno == EINTR)
        ;
    if (r < 0) {
        int e = errno;
        long holder = e == EWOULDBLOCK ? process_lock_holder(fd) : 0;
        close(fd);
        if (e != EWOULDBLOCK)
            return luaL_error(L, "cannot lock '%s': %s", path, g_strerror(e));
        lua_pushnil(L);
        if (holder > 0)
            lua_pushfstring(L, "'%s' is locked by process %d", path,
                            (int)holder);
        else
            lua_pushfstring(L, "'%s' is locked by another process", path);
        lua_pushinteger(L, holder);
        return 3;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        /* The lock holds without the pid; only messages lose detail. */
    }
    lk->fd = fd;
    lk->path = g_strdup(path);
    return 1;
}

static const luaL_Reg process_lock_methods[] = {
    { "close", process_lock_close },
    { "path", process_lock_path },
    { NULL, NULL },
};

static const luaL_Reg process_funcs[] = {
    { "daemonize", process_daemonize },
    { "ready", process_ready },
    { "write_pid_file", process_write_pid_file },
    { "tempfile", process_tempfile },
    { "realpath", process_realpath },
    { "pid", process_getpid },
    { "lock_file", process_lock_file },
    { NULL, NULL },
};


void bh_lua_open_process(lua_State *L, int module_index)
{
    module_index = lua_absindex(L, module_index);
    luaL_newlib(L, process_funcs);
    lua_setfield(L, module_index, "process");

    if (luaL_newmetatable(L, PROCESS_LOCK_MT)) {
        luaL_newlib(L, process_lock_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, process_lock_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, process_lock_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, process_lock_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
