/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Image locking compatible with QEMU's file-posix driver, so that blkhost
 * and QEMU (qemu-io, qemu-nbd, a running VM) refuse to write the same image
 * at once.  QEMU's scheme uses open-file-description (OFD) byte-range locks
 * as shared markers:
 *   byte 100 + i  read-locked by every opener that HOLDS permission i;
 *   byte 200 + i  read-locked by every opener that does NOT SHARE i.
 * Holding i conflicts with someone's 200 + i; not sharing i conflicts with
 * someone's 100 + i.  Testing for "someone" is F_OFD_GETLK with a write
 * lock: our own description never conflicts with itself.  We take our
 * locks first and check second (as QEMU does), so two openers racing both
 * see each other rather than neither.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blkhost/driver.h"
#include <blkhost/glib.h>

#define LOCK_PERM_BASE 100
#define LOCK_SHARE_BASE 200
#define LOCK_NPERMS 4

static const char *const lock_perm_names[LOCK_NPERMS] = {
    "consistent read", "write", "write unchanged", "resize",
};

static int lock_set(int fd, off_t byte, short type)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
                        .l_start = byte, .l_len = 1 };
    return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

static bool lock_taken_by_other(int fd, off_t byte)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                        .l_start = byte, .l_len = 1 };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return false;
    return fl.l_type != F_UNLCK;
}

static void lock_release_all(int fd)
{
    for (int i = 0; i < LOCK_NPERMS; i++) {
        lock_set(fd, LOCK_PERM_BASE + i, F_UNLCK);
        lock_set(fd, LOCK_SHARE_BASE + i, F_UNLCK);
    }
}

/* Does this fdinfo text show a lock on dev:ino covering byte? */
static bool lock_fdinfo_covers(const char *text, const char *devino,
                               off_t byte)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, "lock:", 5) != 0)
            continue;
        const char *p = strstr(l, devino);
        const char *eol = strchr(l, '\n');
        if (!p || (eol && p > eol))
            continue;
        p += strlen(devino);
        long long start = 0;
        char endstr[32] = "";
        if (sscanf(p, " %lld %31s", &start, endstr) != 2)
            continue;
        long long end = g_str_equal(endstr, "EOF") ? INT64_MAX
                                                   : g_ascii_strtoll(endstr,
                                                                     NULL, 10);
        if (byte >= start && byte <= end)
            return true;
    }
    return false;
}

/* "qemu-io (pid 1234)" for the first process whose open file holds a
 * lock on byte of the file behind fd, or NULL; fd itself does not count.
 * Our own process, holding it through another open of the same image,
 * is "this process": its name and pid would only puzzle the user.
 * Linux shows each descriptor's locks in /proc/PID/fdinfo/FD. */
static char *lock_find_holder(int fd, off_t byte)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return NULL;
    char devino[64];
    snprintf(devino, sizeof devino, "%02x:%02x:%" PRIu64 " ",
             major(st.st_dev), minor(st.st_dev), (uint64_t)st.st_ino);
    char *found = NULL;
    DIR *proc = opendir("/proc");
    struct dirent *de;
    while (proc && !found && (de = readdir(proc))) {
        if (!g_ascii_isdigit(de->d_name[0]))
            continue;
        /* Our own process may hold it through another descriptor. */
        bool self = atoi(de->d_name) == (int)getpid();
        g_autofree char *fddir = g_strdup_printf("/proc/%s/fdinfo",
                                                 de->d_name);
        DIR *d = opendir(fddir);
        struct dirent *fe;
        while (d && !found && (fe = readdir(d))) {
            if (fe->d_name[0] == '.' || (self && atoi(fe->d_name) == fd))
                continue;
            g_autofree char *path = g_strdup_printf("%s/%s", fddir,
                                                    fe->d_name);
            g_autofree char *text = NULL;
            if (!g_file_get_contents(path, &text, NULL, NULL))
                continue;
            if (!lock_fdinfo_covers(text, devino, byte))
                continue;
            if (self) {
                found = g_strdup("this process");
            } else {
                g_autofree char *commf = g_strdup_printf("/proc/%s/comm",
                                                         de->d_name);
                g_autofree char *comm = NULL;
                g_file_get_contents(commf, &comm, NULL, NULL);
                if (comm)
                    g_strchomp(comm);
                found = g_strdup_printf("%s (pid %s)", comm ? comm : "?",
                                        de->d_name);
            }
        }
        if (d)
            closedir(d);
    }
    if (proc)
        closedir(proc);
    return found;
}

/* what: "holds" or "does not share"; the message leads with who. */
static int lock_conflict(int fd, const char *filename, off_t byte,
                         const char *what, int perm, BhError **errp)
{
    g_autofree char *holder = lock_find_holder(fd, byte);
    bool self = holder && g_str_equal(holder, "this process");
    lock_release_all(fd);
    return bh_error_set(errp, EAGAIN,
                        "'%s' is locked: %s %s the \"%s\" permission "
                        "(QEMU-style image lock; %s locking=off overrides)",
                        filename, holder ? holder : "another process", what,
                        lock_perm_names[perm],
                        self ? "the image is open here already, close that "
                               "first;"
                             : "is QEMU, qemu-nbd or another blkhost using "
                               "it?");
}

int bh_lock_apply(int fd, const char *filename, uint32_t perms,
                  uint32_t shared, BhError **errp)
{
    for (int i = 0; i < LOCK_NPERMS; i++) {
        uint32_t bit = 1u << i;
        int r = lock_set(fd, LOCK_PERM_BASE + i,
                         (perms & bit) ? F_RDLCK : F_UNLCK);
        if (r == 0)
            r = lock_set(fd, LOCK_SHARE_BASE + i,
                         (shared & bit) ? F_UNLCK : F_RDLCK);
        if (r == -EAGAIN || r == -EACCES) {
            /* Someone holds a write lock on a marker byte: not QEMU's
             * protocol, but certainly a conflict. */
            return lock_conflict(fd, filename, LOCK_PERM_BASE + i,
                                 "holds a write lock on", i, errp);
        }
        if (r < 0) {
            lock_release_all(fd);
            /* Filesystems without OFD locks: carry on unlocked, as QEMU
             * does when locking is unsupported. */
            if (r == -ENOTSUP || r == -ENOLCK || r == -EINVAL)
                return 0;
            return bh_error_set_errno(errp, -r, "cannot lock '%s'",
                                      filename);
        }
    }
    for (int i = 0; i < LOCK_NPERMS; i++) {
        uint32_t bit = 1u << i;
        if ((perms & bit) && lock_taken_by_other(fd, LOCK_SHARE_BASE + i))
            return lock_conflict(fd, filename, LOCK_SHARE_BASE + i,
                                 "does not share", i, errp);
        if (!(shared & bit) && lock_taken_by_other(fd, LOCK_PERM_BASE + i))
            return lock_conflict(fd, filename, LOCK_PERM_BASE + i, "holds",
                                 i, errp);
    }
    return 0;
}
