/* SPDX-License-Identifier: BSD-3-Clause */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz-util.h"
#include <blkhost/glib.h>

/* Warnings and below are what damaged input is expected to cause;
 * criticals (a g_return_if_fail tripped) and errors are bugs and print. */
static void fuzz_util_log(const gchar *domain, GLogLevelFlags level,
                          const gchar *message, gpointer data)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        g_log_default_handler(domain, level, message, data);
}

/* g_error() and fatal criticals end in SIGTRAP, which libFuzzer does not
 * catch; turned into SIGABRT the input is kept as a crash. */
static void fuzz_util_trap(int sig)
{
    abort();
}

void fuzz_init(void)
{
    static gsize once;
    if (g_once_init_enter(&once)) {
        const char *v = g_getenv("FUZZ_VERBOSE");
        if (!v || !*v || g_str_equal(v, "0"))
            g_log_set_default_handler(fuzz_util_log, NULL);
        g_log_set_always_fatal(G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL);
        signal(SIGTRAP, fuzz_util_trap);
        /* As the servers do: a peer gone away is an EPIPE, not a death. */
        signal(SIGPIPE, SIG_IGN);
        g_once_init_leave(&once, 1);
    }
}

/*
 * One memory node per process, reset for each input: opening a fresh one
 * costs a 32 KiB top table, a leaf and a 64 KiB chunk to allocate, clear
 * and free again, a tenth of a fast target's time.  Reset means: the new
 * size, the input's bytes, zeros after them, which is what a new node
 * reads.  Callers get their own reference, as from an open.
 */
BhNode *fuzz_memory_node(const uint8_t *data, size_t len, uint64_t min_size)
{
    static BhNode *node;
    uint64_t size = MAX((uint64_t)len, min_size);
    size = MAX((size + 511) & ~(uint64_t)511, 512);
    BhError *err = NULL;

    if (!node) {
        g_autoptr(BhOpts) opts = bh_opts_new();
        g_autofree char *s = g_strdup_printf("%" G_GUINT64_FORMAT, size);
        bh_opts_set(opts, "format", "memory");
        bh_opts_set(opts, "size", s);
        node = bh_node_open(NULL, opts, &err);
    } else if ((uint64_t)bh_node_size(node) != size &&
               bh_node_truncate(node, size, &err) < 0) {
        /* (the last input's driver may have resized it) */
        goto fail;
    }
    if (!node || (len && bh_node_pwrite(node, data, 0, len, 0, &err) < 0) ||
        (size > len && bh_node_write_zeroes(node, len, size - len,
                                            BH_IO_MAY_UNMAP,
                                            &err) < 0))
        goto fail;
    return bh_node_ref(node);
fail:
    fprintf(stderr, "fuzz: memory node: %s\n", err ? bh_error_message(err) : "?");
    abort();
}
