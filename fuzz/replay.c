/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * main() for the fuzz targets when they are not built with libFuzzer
 * (gcc, or -Dfuzz=disabled): run LLVMFuzzerTestOneInput once on each file
 * named, as a libFuzzer binary does when given files.  This is how the
 * seed corpus and the regression inputs under tests/fuzz/ run in every
 * build, the sanitizer build included.
 */
#include <stdint.h>
#include <stdio.h>
#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        gchar *data = NULL;
        gsize len = 0;
        GError *err = NULL;
        if (!g_file_get_contents(argv[i], &data, &len, &err)) {
            fprintf(stderr, "%s\n", err->message);
            g_error_free(err);
            return 2;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        g_free(data);
    }
    return 0;
}
