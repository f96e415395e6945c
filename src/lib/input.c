/* SPDX-License-Identifier: Apache-2.0 */
/* The input of apply: a layer tar read from an fd, decompressed on its own thread. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "input.h"

static const char *const compression_names[] = { "tar", "bzip2", "gzip", "xz", "zstd" };

/* Docker's DecompressStream order and magics. */
static enum compression detect(const unsigned char *p, size_t n)
{
	if (n >= 3 && !memcmp(p, "BZh", 3))
		return COMP_BZIP2;
	if (n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08)
		return COMP_GZIP;
	if (n >= 6 && !memcmp(p, "\xfd" "7zXZ\0", 6))
		return COMP_XZ;
	if (n >= 4 && !memcmp(p, "\x28\xb5\x2f\xfd", 4))
		return COMP_ZSTD;
	if (n >= 8 && ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		       (uint32_t)p[3] << 24) >> 4 == 0x184D2A5)
		return COMP_ZSTD;
	return COMP_NONE;
}

/* Reads what the fd has into buf at @off: the length, 0 at the end (eof set), or -errno. */
static ssize_t read_some(struct input *in, size_t off)
{
	for (;;) {
		ssize_t n = read(in->fd, in->buf + off, INPUT_CHUNK - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			in->eof = true;
		return n;
	}
}

/* Plain read of the next chunk of the fd (after the detection head). */
static ssize_t input_read_fd(struct input *in, const void **ret)
{
	if (in->head_pending) {
		in->head_pending = false;
		*ret = in->buf;
		return (ssize_t)in->head_len;
	}
	if (in->eof)
		return 0;
	ssize_t n = read_some(in, 0);
	*ret = in->buf;
	return n;
}

static ssize_t dec_read_cb(struct archive *a, void *u, const void **buf)
{
	struct input *in = u;
	ssize_t n = input_read_fd(in, buf);
	if (n < 0) {
		in->error = (int)n;
		archive_set_error(a, (int)-n, "read error");
		return -1;
	}
	return n;
}

/* The decompressing thread: fills free slots until the stream ends or the unpacker stops. */
static void *dec_thread(void *u)
{
	struct input *in = u;

	for (;;) {
		pthread_mutex_lock(&in->lock);
		while (in->produced - in->consumed == DEC_SLOTS && !in->stop)
			pthread_cond_wait(&in->cond, &in->lock);
		bool stop = in->stop;
		unsigned i = (unsigned)(in->produced % DEC_SLOTS);
		pthread_mutex_unlock(&in->lock);
		if (stop)
			return NULL;

		size_t len = 0;
		int err = 0;
		bool end = false;
		while (len < INPUT_CHUNK) {
			/*
			 * Block by block: archive_read_data() drops what it copied when a
			 * later block fails, and a truncated stream would lose its last
			 * good entries with it.
			 */
			if (in->block_len == 0) {
				la_int64_t off;
				int r = archive_read_data_block(in->dec, &in->block, &in->block_len,
								&off);
				if (r == ARCHIVE_EOF) {
					end = true;
					break;
				}
				if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
					continue;
				err = in->error ? in->error : -EBADMSG;
				if (!in->error) {
					const char *why = archive_error_string(in->dec);
					snprintf(in->dec_msg, sizeof(in->dec_msg),
						 "damaged %s data: %s", compression_names[in->comp],
						 why ? why : "unknown");
				}
				break;
			}
			size_t n = in->block_len;
			if (n > INPUT_CHUNK - len)
				n = INPUT_CHUNK - len;
			memcpy(in->slots[i] + len, in->block, n);
			in->block = (const unsigned char *)in->block + n;
			in->block_len -= n;
			len += n;
		}
		pthread_mutex_lock(&in->lock);
		if (len > 0) {
			in->lens[i] = len;
			in->produced++;
		}
		if (end || err) {
			in->done = true;
			in->dec_error = err;
		}
		pthread_cond_broadcast(&in->cond);
		pthread_mutex_unlock(&in->lock);
		if (end || err)
			return NULL;
	}
}

int input_open(struct input *in, int fd)
{
	enum compression c;

	in->fd = fd;
	if (!(in->buf = malloc(INPUT_CHUNK)))
		return -ENOMEM;
	while (in->head_len < 16 && !in->eof) {
		ssize_t n = read_some(in, in->head_len);
		if (n < 0)
			return (int)n;
		in->head_len += (size_t)n;
	}
	in->head_pending = true;
	c = in->comp = detect(in->buf, in->head_len);
	if (c == COMP_NONE)
		return 0;
	if (!(in->dec = archive_read_new()))
		return -ENOMEM;
	switch (c) {
	case COMP_BZIP2:
		archive_read_support_filter_bzip2(in->dec);
		break;
	case COMP_GZIP:
		archive_read_support_filter_gzip(in->dec);
		break;
	case COMP_XZ:
		archive_read_support_filter_xz(in->dec);
		break;
	default:
		archive_read_support_filter_zstd(in->dec);
		break;
	}
	archive_read_support_format_raw(in->dec);
	struct archive_entry *e;
	if (archive_read_open(in->dec, in, NULL, dec_read_cb, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(in->dec, &e) != ARCHIVE_OK) {
		if (in->error)
			return in->error;
		snprintf(in->dec_msg, sizeof(in->dec_msg), "damaged %s data: %s",
			 compression_names[c],
			 archive_error_string(in->dec) ? archive_error_string(in->dec) : "unknown");
		return -EBADMSG;
	}
	for (int i = 0; i < DEC_SLOTS; i++)
		if (!(in->slots[i] = malloc(INPUT_CHUNK)))
			return -ENOMEM;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	if (pthread_create(&in->thread, NULL, dec_thread, in) != 0)
		return -EAGAIN;
	in->thread_started = true;
	return 0;
}

void input_close(struct input *in)
{
	if (in->thread_started) {
		pthread_mutex_lock(&in->lock);
		in->stop = true;
		pthread_cond_broadcast(&in->cond);
		pthread_mutex_unlock(&in->lock);
		pthread_join(in->thread, NULL);
		pthread_mutex_destroy(&in->lock);
		pthread_cond_destroy(&in->cond);
	}
	for (int i = 0; i < DEC_SLOTS; i++)
		free(in->slots[i]);
	if (in->dec)
		archive_read_free(in->dec);
	free(in->buf);
}

const char *input_strerror(const struct input *in, int err)
{
	if (in->dec_msg[0])
		return in->dec_msg;
	return strerror(-err);
}

ssize_t input_next(struct input *in, const void **ret)
{
	ssize_t n;

	if (!in->dec)
		return input_read_fd(in, ret);
	pthread_mutex_lock(&in->lock);
	if (in->holding) {
		in->holding = false;
		in->consumed++;
		pthread_cond_broadcast(&in->cond);
	}
	while (in->produced == in->consumed && !in->done)
		pthread_cond_wait(&in->cond, &in->lock);
	if (in->produced > in->consumed) {
		unsigned i = (unsigned)(in->consumed % DEC_SLOTS);
		*ret = in->slots[i];
		n = (ssize_t)in->lens[i];
		in->holding = true;
	} else
		n = in->dec_error;
	pthread_mutex_unlock(&in->lock);
	return n;
}
