/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bad input to the four drivers: each must be refused with the right errno
 * and a message that names what was wrong, and must change nothing.
 */
#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "drv-test.h"
#include <blkhost/glib.h>

static void expect_open_fails(const char *filename, const char *optstr,
                              int want_errno, const char *want_msg,
                              const char *desc)
{
    BhError *err = NULL;
    BhNode *bs = open_node(filename, optstr, &err);
    check_open_fails(bs, &err, want_errno, want_msg, "%s", desc);
}

/* Root reads mode-000 files anyway, so a root test run opens the file in
 * a child that has dropped to uid/gid 65534 ("nobody").  Returns the
 * errno of the failed open (0 if it opened), -1 if privileges could not be
 * dropped; *why gets the message. */
static int open_as_nobody(const char *filename, char **why)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    chmod(scratch_dir, 0755);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
            _exit(3);
        BhError *err = NULL;
        BhNode *bs = open_node(filename, "format=raw", &err);
        g_autofree char *msg = g_strdup_printf("%d %s", bs ? 0 : bh_error_errno(err),
                                               bs ? "" : bh_error_message(err));
        if (write(fds[1], msg, strlen(msg)) < 0)
            _exit(4);
        _exit(0);
    }
    close(fds[1]);
    char buf[1024] = "";
    ssize_t n = pid > 0 ? read(fds[0], buf, sizeof buf - 1) : -1;
    close(fds[0]);
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    chmod(scratch_dir, 0700);
    if (pid < 0 || n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return -1;
    buf[n] = 0;
    char *sp = strchr(buf, ' ');
    *why = g_strdup(sp ? sp + 1 : "");
    return atoi(buf);
}

static void test_files(void)
{
    const char *missing = scratch("no-such-file.img");
    g_autofree char *msg = g_strdup_printf("'%s'", missing);
    BhError *err = NULL;
    BhNode *bs = open_node(missing, "format=raw", &err);
    bool named = err && strstr(bh_error_message(err), msg) &&
                 strstr(bh_error_message(err), "No such file");
    check_open_fails(bs, &err, ENOENT, NULL, "missing file refused with "
                     "ENOENT");
    ok(named, "missing file: the message names the path and the reason");

    expect_open_fails(scratch_dir, "format=raw", EISDIR, "is a directory",
                      "directory refused with EISDIR (raw)");
    expect_open_fails(scratch_dir, "format=file,readonly=on", EISDIR,
                      "is a directory",
                      "directory refused with EISDIR (file, read-only)");
    expect_open_fails(scratch_dir, NULL, EISDIR, "is a directory",
                      "directory refused with EISDIR (probed format)");

    const char *fifo = scratch("a-fifo");
    mkfifo(fifo, 0600);
    expect_open_fails(fifo, "format=file,readonly=on,locking=off",
                      EINVAL, "not a regular file or a block device",
                      "fifo refused with EINVAL");
    expect_open_fails("/dev/zero", "format=file,readonly=on,locking=off",
                      EINVAL, "not a regular file or a block device",
                      "character device /dev/zero refused with EINVAL");

    const char *locked = scratch("unreadable.img");
    make_sparse(locked, 4096);
    chmod(locked, 0);
    g_autofree char *m = g_strdup_printf("could not open '%s': Permission "
                                         "denied", locked);
    const char *desc = "unreadable file (mode 000) refused with EACCES "
                       "naming the path";
    if (geteuid() != 0) {
        expect_open_fails(locked, "format=raw", EACCES, m, desc);
    } else {
        g_autofree char *why = NULL;
        int code = open_as_nobody(locked, &why);
        if (code < 0)
            ok(1, "# SKIP %s: running as root, and cannot drop to uid "
               "65534", desc);
        else
            ok(code == EACCES && why && strstr(why, m), "%s (as uid 65534)",
               desc);
        if (code >= 0 && (code != EACCES || !why || !strstr(why, m)))
            diag("got %d '%s'", code, why ? why : "");
    }
    expect_open_fails("", "format=file", EINVAL, "filename",
                      "empty filename refused with EINVAL");
}

static void test_raw_options(void)
{
    const char *img = scratch("opts.img");
    make_sparse(img, 4096);
    poke_pattern(img, 0, 4096, 1);

    expect_open_fails(img, "format=raw,offset=abc", EINVAL,
                      "option 'offset': 'abc' is not a number",
                      "raw: offset=abc refused with EINVAL");
    expect_open_fails(img, "format=raw,offset=-1", EINVAL,
                      "option 'offset': '-1' is negative",
                      "raw: offset=-1 refused with EINVAL");
    expect_open_fails(img, "format=raw,size=xyz", EINVAL,
                      "option 'size': 'xyz' is not a number",
                      "raw: size=xyz refused with EINVAL");
    expect_open_fails(img, "format=raw,size=-4096", EINVAL,
                      "option 'size': '-4096' is negative",
                      "raw: size=-4096 refused with EINVAL");
    expect_open_fails(img, "format=raw,size=12Q", EINVAL, "unknown suffix",
                      "raw: size=12Q refused with EINVAL");
    expect_open_fails(img, "format=raw,offset=99999999999999999999999",
                      EINVAL, "too large",
                      "raw: offset=99999999999999999999999 refused with "
                      "EINVAL");
    expect_open_fails(img, "format=raw,offset=8192", EINVAL,
                      "offset 8192 is beyond the end of the file (4096 "
                      "bytes)", "raw: offset=8192 beyond a 4096-byte file "
                      "refused with EINVAL");
    expect_open_fails(img, "format=raw,offset=5000,size=100", EINVAL,
                      "offset 5000 + size 100 is beyond the end of the file "
                      "(4096 bytes)", "raw: offset=5000,size=100 beyond a "
                      "4096-byte file refused with EINVAL");
    expect_open_fails(img, "format=raw,offset=1,size=4096", EINVAL,
                      "offset 1 + size 4096 is beyond the end",
                      "raw: offset=1,size=4096 (one byte too far) refused "
                      "with EINVAL");
    expect_open_fails(img, "format=raw,offset=4096,size=15E", EINVAL,
                      "is beyond the end", "raw: offset=4096,size=15E "
                      "refused with EINVAL");
    expect_open_fails(img, "format=raw,frobnicate=1", EINVAL,
                      "'frobnicate'", "raw: unknown option frobnicate=1 "
                      "refused with EINVAL naming it");
    expect_open_fails(img, "format=file,offset=5", EINVAL, "'offset'",
                      "file: option offset (raw's, not file's) refused "
                      "naming it");
    expect_open_fails(img, "format=raw,file.bogus=1", EINVAL, "'bogus'",
                      "raw: unknown file.bogus=1 refused naming it");
    expect_open_fails(img, "format=nosuch", EINVAL, "unknown format 'nosuch'",
                      "unknown format nosuch refused with EINVAL");

    g_autofree uint8_t *disk = peek(img, 0, 4096);
    uint8_t expect[4096];
    fill_pattern(expect, 4096, 0, 1);
    ok(memcmp(disk, expect, 4096) == 0 && file_size(img) == 4096,
       "raw: the refused opens changed nothing in the file");
}

static void test_protocol_options(void)
{
    expect_open_fails("x", "format=null", EINVAL, "option 'size' is required",
                      "null: missing size refused with EINVAL");
    expect_open_fails("x", "format=null,size=abc", EINVAL,
                      "'abc' is not a number",
                      "null: size=abc refused with EINVAL");
    expect_open_fails("x", "format=null,size=-5", EINVAL, "is negative",
                      "null: size=-5 refused with EINVAL");
    expect_open_fails("x", "format=null,size=1G,offset=3", EINVAL,
                      "'offset'", "null: unknown option offset refused "
                      "naming it");
    expect_open_fails("x", "format=memory", EINVAL,
                      "option 'size' is required",
                      "memory: missing size refused with EINVAL");
    expect_open_fails("x", "format=memory,size=1T0", EINVAL,
                      "'1T0' is not a number",
                      "memory: size=1T0 refused with EINVAL");
    expect_open_fails("x", "format=memory,size=2P", EFBIG, "too large",
                      "memory: size=2P (over the 1P limit) refused with "
                      "EFBIG");
}

int main(void)
{
    plan(31);
    test_files();
    test_raw_options();
    test_protocol_options();
    scratch_cleanup();
    return done();
}
