/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helper for the locking test: open an image with bh_node_open (read-write
 * unless the options say otherwise), print "ready", and keep it open until
 * stdin reaches end of file.  A failed open prints the error and exits 1.
 *
 *   hold-image IMAGE [k=v,...]
 *   hold-image --create IMAGE SIZE     (bh_create a raw image, then exit)
 */
#include <stdio.h>
#include <unistd.h>

#include <blkhost/blkhost.h>

static int create(const char *filename, const char *size)
{
    BhError *err = NULL;
    BhOpts *opts = bh_opts_new();
    bh_opts_set(opts, "size", size);
    bool ok = bh_create(filename, "raw", opts, &err);
    bh_opts_free(opts);
    if (!ok) {
        fprintf(stderr, "hold-image: %s\n", bh_error_message(err));
        bh_error_free(err);
        return 1;
    }
    printf("created\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && g_str_equal(argv[1], "--create"))
        return create(argv[2], argv[3]);
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s IMAGE [k=v,...]\n", argv[0]);
        return 2;
    }
    BhError *err = NULL;
    g_autoptr(BhOpts) opts = bh_opts_parse(argc > 2 ? argv[2] : "format=raw", NULL,
                                 &err);
    BhNode *bs = opts ? bh_node_open(argv[1], opts, &err) : NULL;
    if (!bs) {
        fprintf(stderr, "hold-image: %s\n", bh_error_message(err));
        bh_error_free(err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
    bh_node_unref(bs);
    return 0;
}
