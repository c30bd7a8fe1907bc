/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the libFuzzer targets in this folder: quiet logging
 * (a fuzzer prints millions of refusals, and printing is most of the cost)
 * and a "memory" node holding the fuzzer's bytes, so that every target
 * goes through the same driver stack a real image would.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <blkhost/blkhost.h>

/* Once per process: drop GLib warnings (the libraries warn on damaged
 * input, which is what every fuzz input is; FUZZ_VERBOSE=1 keeps them),
 * make criticals fatal, and turn g_error()'s SIGTRAP into an abort that
 * libFuzzer records as a crash. */
void fuzz_init(void);

/* A writable memory node of max(len, min_size) bytes (rounded up to a
 * 512-byte sector) whose first len bytes are data.  Aborts on failure:
 * that is a harness bug, not a finding. */
BhNode *fuzz_memory_node(const uint8_t *data, size_t len, uint64_t min_size);

#endif
