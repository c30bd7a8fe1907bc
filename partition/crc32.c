/*
 * CRC-32 (IEEE polynomial, reflected), the checksum of GPT headers and
 * partition entry arrays.  A byte-at-a-time table: GPT checks at most a
 * few kilobytes per disk, so nothing faster is worth its code.
 */
#include <glib.h>

#include "crc32.h"

static uint32_t crc32_table[256];

static void crc32_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc32_table[i] = c;
    }
}

uint32_t bh_crc32(uint32_t crc, const void *buf, size_t len)
{
    static gsize once;
    if (g_once_init_enter(&once)) {
        crc32_init_table();
        g_once_init_leave(&once, 1);
    }
    const uint8_t *p = buf;
    crc = ~crc;
    while (len--)
        crc = crc32_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
