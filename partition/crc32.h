/*
 * CRC-32 as GPT, zlib, gzip and PNG use it (IEEE 802.3 polynomial, bits
 * reflected, initial value and final xor 0xffffffff).  Internal to the
 * core: partition.c checks GPT headers and entry arrays with it.
 */
#ifndef BH_CRC32_H
#define BH_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0 for a fresh buffer; feeding the
 * result back in with the next piece gives the CRC of the concatenation. */
uint32_t bh_crc32(uint32_t crc, const void *buf, size_t len);

#endif
