/* SPDX-License-Identifier: Apache-2.0 */
/* CRC-64/ISO as Go's hash/crc64 computes it: tar-split stores it for every file of a layer. */
#include <pthread.h>

#include "layerio.h"

/* The ISO polynomial, reversed (Go's crc64.ISO). */
#define CRC64_ISO_POLY 0xD800000000000000ULL

/* Slicing by 8: this runs over every byte of every applied layer. */
static uint64_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	for (unsigned i = 0; i < 256; i++) {
		uint64_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC64_ISO_POLY : c >> 1;
		table[0][i] = c;
	}
	for (unsigned i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint64_t crc64_iso_update(uint64_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&table_once, table_init);
	crc = ~crc;
	while (len >= 8) {
		uint64_t v = crc ^ ((uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
				    (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
				    (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
				    (uint64_t)p[7] << 56);
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		      table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		      table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
