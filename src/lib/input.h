/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A layer tar's input: plain, or decompressed on a thread of its own (bzip2,
 * gzip, xz, zstd, told from the first bytes as Docker's DecompressStream).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct archive;

/* Bytes read from the fd at a time, and the size of a decompressed chunk. */
#define INPUT_CHUNK (1024 * 1024)

enum compression { COMP_NONE, COMP_BZIP2, COMP_GZIP, COMP_XZ, COMP_ZSTD };

/* Decompressed chunks in flight between the decompressing thread and the unpacker. */
#define DEC_SLOTS 4

struct input {
	int fd;
	unsigned char *buf;   /* INPUT_CHUNK */
	size_t head_len;      /* bytes of buf read while detecting, handed out first */
	bool head_pending;
	bool eof;
	struct archive *dec;  /* raw format + one filter, for compressed input */
	enum compression comp;
	const void *block;    /* the rest of the decompressor's last block */
	size_t block_len;
	int error;            /* -errno of a failed read */

	/*
	 * Decompression runs on its own thread, as `pigz -d | tar` runs in two
	 * processes: a ring of DEC_SLOTS chunks. The unpacker holds the chunk it was
	 * last given until it asks for the next (libarchive reads from it until then).
	 */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *slots[DEC_SLOTS];
	size_t lens[DEC_SLOTS];
	uint64_t produced, consumed;
	bool holding;         /* the unpacker holds slot consumed % DEC_SLOTS */
	bool done, stop;
	int dec_error;
	char dec_msg[160];    /* what the decompressor said of damaged data */
};

/* Starts reading @fd (not closed); 0 or -errno (-EBADMSG: damaged compressed data). */
int input_open(struct input *in, int fd);
/* Stops the decompressing thread and frees what @in holds; @in as { .fd = -1 } is fine. */
void input_close(struct input *in);
/* The next chunk of the decompressed stream: its length, 0 at the end, or -errno. */
ssize_t input_next(struct input *in, const void **ret);
/* What a read that failed with @err (-errno) is, for a message. */
const char *input_strerror(const struct input *in, int err);
