/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tar-split records (vbatts/tar-split's format, as Docker's layerdb keeps them):
 * gzip'd JSON lines, a segment of raw tar bytes or a file's name, size and
 * CRC-64 each, from which the applied tar is rebuilt byte for byte.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fsutil.h"
#include "layerio.h"

/* Go's JSON packer types. */
enum { TS_FILE = 1, TS_SEGMENT = 2 };

/* Segments longer than this are split, as tar-split's own padding chunks are. */
#define SEGMENT_MAX (1024 * 1024)

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Each 12 bits of input as their two base64 characters: half the look-ups of one a time. */
static char b64_pairs[4096][2];
static pthread_once_t b64_pairs_once = PTHREAD_ONCE_INIT;

static void b64_pairs_init(void)
{
	for (int i = 0; i < 4096; i++) {
		b64_pairs[i][0] = b64chars[i >> 6];
		b64_pairs[i][1] = b64chars[i & 63];
	}
}

/* Standard base64 with padding (Go's encoding/json for []byte). @out holds 4*ceil(len/3)+1. */
static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	pthread_once(&b64_pairs_once, b64_pairs_init);
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		memcpy(out + o, b64_pairs[v >> 12], 2);
		memcpy(out + o + 2, b64_pairs[v & 4095], 2);
		o += 4;
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static signed char b64_rev[256];
static pthread_once_t b64_rev_once = PTHREAD_ONCE_INIT;

static void b64_rev_init(void)
{
	memset(b64_rev, -1, sizeof(b64_rev));
	for (int i = 0; i < 64; i++)
		b64_rev[(unsigned char)b64chars[i]] = (signed char)i;
}

/* Decodes standard base64 into @out (room for 3*len/4 bytes); -EBADMSG on bad input. */
static ssize_t b64_decode(const char *in, size_t len, unsigned char *out)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	pthread_once(&b64_rev_once, b64_rev_init);
	while (len > 0 && in[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		int v = b64_rev[(unsigned char)in[i]];
		if (v < 0)
			return -EBADMSG;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (ssize_t)o;
}

/*
 * The caller queues items (a segment's raw bytes, a file's name, size and CRC) in one of
 * two buffers while a thread of the writer turns the other into JSON lines and compresses
 * them: apply waits neither on base64 nor on zlib.
 */
#define ITEMS_BUF (256 * 1024)

struct item {
	uint8_t type;      /* TS_SEGMENT: @len raw bytes follow; TS_FILE: a name of @len */
	uint32_t len;
	int64_t size;
	uint64_t crc;
	uint64_t position;
};

struct item_buf {
	unsigned char *data;
	size_t len, cap;
};

struct tarsplit_writer {
	struct strata *s;
	int fd;
	gzFile gz;
	char tmp[NAME_MAX];
	uint64_t position;
	bool failed;

	struct item_buf bufs[2];
	struct item_buf *cur;       /* the one being filled */
	pthread_t zthread;
	bool zstarted;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item_buf *pending;   /* handed to the thread, until written */
	bool end;                   /* no more buffers */
	bool zfailed;               /* formatting or gzwrite failed */

	char *line;                 /* the thread's: one line */
	size_t line_cap;
};

/* The thread's line buffer, with room for @n bytes. */
static char *line_room(struct tarsplit_writer *w, size_t n)
{
	if (w->line_cap < n) {
		size_t ncap = n > 4096 ? n : 4096;
		char *l = realloc(w->line, ncap);
		if (!l)
			return NULL;
		w->line = l;
		w->line_cap = ncap;
	}
	return w->line;
}

static bool write_segment(struct tarsplit_writer *w, const struct item *it,
			  const unsigned char *p)
{
	char *line = line_room(w, 4 * (it->len / 3 + 1) + 96);
	if (!line)
		return false;
	size_t o = (size_t)sprintf(line, "{\"type\":%d,\"payload\":\"", TS_SEGMENT);
	o += b64_encode(p, it->len, line + o);
	o += (size_t)sprintf(line + o, "\",\"position\":%llu}\n",
			     (unsigned long long)it->position);
	return gzwrite(w->gz, line, (unsigned)o) == (int)o;
}

static bool write_file(struct tarsplit_writer *w, const struct item *it, const char *name)
{
	_cleanup_free_ char *name_json = NULL;
	char payload[16] = "null";
	json_t *js = json_stringn(name, it->len);
	bool raw = !js;

	if (js) {
		name_json = json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT);
		json_decref(js);
	} else {
		/* Not UTF-8: tar-split keeps such names as "name_raw", base64. */
		name_json = malloc(4 * (it->len / 3 + 1) + 3);
		if (name_json) {
			name_json[0] = '"';
			size_t o = 1 + b64_encode((const unsigned char *)name, it->len,
						  name_json + 1);
			name_json[o++] = '"';
			name_json[o] = '\0';
		}
	}
	if (!name_json)
		return false;
	if (it->size > 0) {
		unsigned char be[8];
		for (int i = 0; i < 8; i++)
			be[i] = (unsigned char)(it->crc >> (56 - 8 * i));
		payload[0] = '"';
		size_t o = 1 + b64_encode(be, 8, payload + 1);
		payload[o++] = '"';
		payload[o] = '\0';
	}
	char *line = line_room(w, strlen(name_json) + 128);
	if (!line)
		return false;
	size_t o = (size_t)sprintf(line, "{\"type\":%d,\"%s\":%s,", TS_FILE,
				   raw ? "name_raw" : "name", name_json);
	if (it->size > 0)
		o += (size_t)sprintf(line + o, "\"size\":%lld,", (long long)it->size);
	o += (size_t)sprintf(line + o, "\"payload\":%s,\"position\":%llu}\n", payload,
			     (unsigned long long)it->position);
	return gzwrite(w->gz, line, (unsigned)o) == (int)o;
}

/* Every item of @b, as JSON lines into the gzip stream. */
static bool write_items(struct tarsplit_writer *w, const struct item_buf *b)
{
	for (size_t off = 0; off < b->len;) {
		struct item it;
		memcpy(&it, b->data + off, sizeof(it));
		const unsigned char *p = b->data + off + sizeof(it);
		bool ok = it.type == TS_SEGMENT ? write_segment(w, &it, p)
						: write_file(w, &it, (const char *)p);
		if (!ok)
			return false;
		off += sizeof(it) + it.len;
	}
	return true;
}

static void *compress_thread(void *arg)
{
	struct tarsplit_writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->pending && !w->end)
			pthread_cond_wait(&w->cond, &w->lock);
		struct item_buf *b = w->pending;
		if (!b)
			break;
		pthread_mutex_unlock(&w->lock);
		bool ok = w->zfailed || write_items(w, b);
		b->len = 0;
		pthread_mutex_lock(&w->lock);
		if (!ok)
			w->zfailed = true;
		w->pending = NULL;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Hands the current buffer to the thread, once it is done with the other one. */
static int hand_over(struct tarsplit_writer *w, bool end)
{
	bool failed;

	pthread_mutex_lock(&w->lock);
	while (w->pending)
		pthread_cond_wait(&w->cond, &w->lock);
	if (w->cur->len > 0) {
		w->pending = w->cur;
		w->cur = w->cur == &w->bufs[0] ? &w->bufs[1] : &w->bufs[0];
		pthread_cond_broadcast(&w->cond);
	}
	if (end) {
		while (w->pending)
			pthread_cond_wait(&w->cond, &w->lock);
		w->end = true;
	}
	failed = w->zfailed;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (end)
		pthread_join(w->zthread, NULL);
	return failed ? -EIO : 0;
}

int tarsplit_writer_new(struct strata *s, struct tarsplit_writer **ret)
{
	struct tarsplit_writer *w = calloc(1, sizeof(*w));
	int fd;

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->fd = -1;
	do {
		make_temp_name(w->tmp, sizeof(w->tmp), "tarsplit");
		fd = openat(s->tmp_fd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0600);
	} while (fd < 0 && errno == EEXIST);
	if (fd < 0) {
		free(w);
		return -errno;
	}
	w->fd = fd;
	int gfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	/* Level 1: the record is mostly base64 of headers, and apply must not wait on it. */
	if (gfd < 0 || !(w->gz = gzdopen(gfd, "wb1"))) {
		if (gfd >= 0)
			close(gfd);
		tarsplit_writer_free(w);
		return -ENOMEM;
	}
	gzbuffer(w->gz, 256 * 1024);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->cur = &w->bufs[0];
	int r = -pthread_create(&w->zthread, NULL, compress_thread, w);
	if (r < 0) {
		tarsplit_writer_free(w);
		return r;
	}
	w->zstarted = true;
	*ret = w;
	return 0;
}

void tarsplit_writer_free(struct tarsplit_writer *w)
{
	if (!w)
		return;
	if (w->zstarted) {
		/* abandoned: what is still gathered need not be compressed */
		w->cur->len = 0;
		w->zstarted = false;
		hand_over(w, true);
	}
	if (w->gz)
		gzclose(w->gz);
	if (w->fd >= 0) {
		close(w->fd);
		unlinkat(w->s->tmp_fd, w->tmp, 0);
	}
	free(w->bufs[0].data);
	free(w->bufs[1].data);
	free(w->line);
	free(w);
}

/* Queues an item with @len bytes from @data, or fails the writer. */
static int put_item(struct tarsplit_writer *w, struct item it, const void *data)
{
	struct item_buf *b = w->cur;
	size_t n = sizeof(it) + it.len;

	if (w->failed)
		return -EIO;
	if (b->cap - b->len < n) {
		size_t ncap = b->len + n > ITEMS_BUF ? b->len + n : ITEMS_BUF;
		unsigned char *d = realloc(b->data, ncap);
		if (!d) {
			w->failed = true;
			return -ENOMEM;
		}
		b->data = d;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, &it, sizeof(it));
	memcpy(b->data + b->len + sizeof(it), data, it.len);
	b->len += n;
	if (b->len >= ITEMS_BUF && hand_over(w, false) < 0) {
		w->failed = true;
		return -EIO;
	}
	return 0;
}

int tarsplit_add_segment(struct tarsplit_writer *w, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		/* one item a line: longer segments take several, as tar-split's padding does */
		size_t n = len > SEGMENT_MAX ? SEGMENT_MAX : len;
		struct item it = { .type = TS_SEGMENT, .len = (uint32_t)n,
				   .position = w->position++ };
		int r = put_item(w, it, p);
		if (r < 0)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

int tarsplit_add_file(struct tarsplit_writer *w, const char *name, int64_t size, uint64_t crc)
{
	size_t nlen = strlen(name);

	if (nlen > UINT32_MAX)
		return -ENAMETOOLONG;
	struct item it = { .type = TS_FILE, .len = (uint32_t)nlen, .size = size, .crc = crc,
			   .position = w->position++ };
	return put_item(w, it, name);
}

static int tarsplit_dir(struct strata *s, bool create)
{
	int fd;

	if (s->state_fd < 0)
		return -ENOENT;
	if (create) {
		int r = mkdirat_exact(s->state_fd, TARSPLIT_DIR, 0700, (uid_t)-1, (gid_t)-1);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	fd = openat(s->state_fd, TARSPLIT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

int tarsplit_writer_commit(struct tarsplit_writer *w, const char *id)
{
	char name[NAME_MAX + 1];
	int r;

	if (w->failed)
		return -EIO;
	w->zstarted = false;
	if (hand_over(w, true) < 0) {
		w->failed = true;
		return -EIO;
	}
	r = gzclose(w->gz);
	w->gz = NULL;
	if (r != Z_OK)
		return -EIO;
	if (fsync(w->fd) < 0)
		return -errno;
	_cleanup_close_ int dfd = tarsplit_dir(w->s, true);
	if (dfd < 0)
		return dfd;
	snprintf(name, sizeof(name), "%s.json.gz", id);
	if (renameat(w->s->tmp_fd, w->tmp, dfd, name) < 0)
		return -errno;
	close(w->fd);
	w->fd = -1;
	(void)fsync(dfd);
	return 0;
}

int tarsplit_open(struct strata *s, const char *id)
{
	char name[NAME_MAX + 1];
	_cleanup_close_ int dfd = tarsplit_dir(s, false);
	int fd;

	if (dfd < 0)
		return dfd;
	snprintf(name, sizeof(name), "%s.json.gz", id);
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

int tarsplit_remove(struct strata *s, const char *id)
{
	char name[NAME_MAX + 1];
	_cleanup_close_ int dfd = tarsplit_dir(s, false);

	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	snprintf(name, sizeof(name), "%s.json.gz", id);
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---- rebuilding a tar from its record ---- */

/*
 * Rebuilding is a pipeline of two threads. A reader thread inflates and decodes the record
 * and reads the layer's files, checking each one's size and CRC, into a few recycled
 * chunks of output; the calling thread writes the chunks out in order. Headers and small
 * files thus leave in large writes, memory stays at a few chunks whatever the layer's size,
 * and the two halves of the work run on two CPUs.
 */
#define LINE_MAX_BYTES (64 * 1024 * 1024)
#define CHUNK_SIZE (256 * 1024)
#define CHUNKS 8

struct ts_chunk {
	struct ts_chunk *next;
	size_t len;
	uint64_t bytes, entries; /* progress, once this chunk is out */
	unsigned char data[CHUNK_SIZE];
};

struct ts_pipe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ts_chunk *full, **full_tail; /* for the writer, in order */
	struct ts_chunk *free;              /* for the reader */
	bool stop;                          /* the writer gave up */
	bool done;                          /* the reader ended, with: */
	int err;                            /* 0 at the end of the record, or -errno */
	char *bad;                          /* the file that failed its check, if one did */

	/* the reader's own */
	gzFile gz;
	int layer_fd;
	struct ts_chunk *cur;
	uint64_t bytes, entries;
	unsigned char *scratch;
	size_t scratch_cap;
};

/* Reads one line of at most LINE_MAX_BYTES; 0 at the end, 1 with a line, -errno. */
static int gz_getline(gzFile gz, char **buf, size_t *cap, size_t *ret_len)
{
	size_t len = 0;

	for (;;) {
		if (*cap - len < 4096) {
			size_t ncap = *cap ? *cap * 2 : 65536;
			if (ncap > LINE_MAX_BYTES + 4096)
				return -EBADMSG;
			char *n = realloc(*buf, ncap);
			if (!n)
				return -ENOMEM;
			*buf = n;
			*cap = ncap;
		}
		if (!gzgets(gz, *buf + len, (int)(*cap - len))) {
			int e;
			gzerror(gz, &e);
			if (e != Z_OK && e != Z_BUF_ERROR)
				return -EBADMSG;
			break;
		}
		len += strlen(*buf + len);
		if (len > 0 && (*buf)[len - 1] == '\n')
			break;
	}
	*ret_len = len;
	return len > 0;
}

/* Hands the current chunk, if any, to the writer. */
static void pipe_push(struct ts_pipe *p)
{
	struct ts_chunk *c = p->cur;

	if (!c)
		return;
	p->cur = NULL;
	c->bytes = p->bytes;
	c->entries = p->entries;
	c->next = NULL;
	pthread_mutex_lock(&p->lock);
	*p->full_tail = c;
	p->full_tail = &c->next;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* A chunk with room in it; NULL once the writer has given up. */
static struct ts_chunk *pipe_room(struct ts_pipe *p)
{
	if (p->cur && p->cur->len < CHUNK_SIZE)
		return p->cur;
	pipe_push(p);
	pthread_mutex_lock(&p->lock);
	while (!p->free && !p->stop)
		pthread_cond_wait(&p->cond, &p->lock);
	if (!p->stop) {
		p->cur = p->free;
		p->free = p->cur->next;
		p->cur->len = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return p->cur;
}

static int pipe_put(struct ts_pipe *p, const unsigned char *data, size_t len)
{
	while (len > 0) {
		struct ts_chunk *c = pipe_room(p);
		if (!c)
			return -ECANCELED;
		size_t n = CHUNK_SIZE - c->len < len ? CHUNK_SIZE - c->len : len;
		memcpy(c->data + c->len, data, n);
		c->len += n;
		data += n;
		len -= n;
	}
	return 0;
}

/* Decodes base64 @p64 into the reader's scratch buffer; its length or -errno. */
static ssize_t decode_scratch(struct ts_pipe *p, const char *p64)
{
	size_t plen = strlen(p64);

	if (p->scratch_cap < plen / 4 * 3 + 4) {
		unsigned char *n = realloc(p->scratch, plen / 4 * 3 + 4);
		if (!n)
			return -ENOMEM;
		p->scratch = n;
		p->scratch_cap = plen / 4 * 3 + 4;
	}
	return b64_decode(p64, plen, p->scratch);
}

/* Reads exactly @len bytes of @fd into @buf; -EBADMSG if the file is shorter. */
static int read_exact(int fd, unsigned char *buf, size_t len)
{
	ssize_t n = read_all(fd, buf, len);

	return n < 0 ? (int)n : (size_t)n == len ? 0 : -EBADMSG;
}

/* Puts the layer's file @name out, checking its @size and that its CRC is @want. */
static int put_file(struct ts_pipe *p, const char *name, int64_t size, const unsigned char *want,
		    size_t want_len)
{
	char clean[PATH_MAX];
	struct stat st;
	uint64_t crc = 0;
	int r;

	if (want_len != 8)
		return -EBADMSG;
	r = tar_path_clean(name, clean, sizeof(clean));
	if (r < 0)
		return r == -EXDEV ? -EXDEV : -EBADMSG;
	_cleanup_close_ int fd = layer_openat(p->layer_fd, clean, O_RDONLY | O_NOCTTY, 0);
	if (fd < 0)
		return fd == -ENOENT ? -EBADMSG : fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size != size)
		return -EBADMSG;
	if (size > CHUNK_SIZE)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (int64_t left = size; left > 0;) {
		struct ts_chunk *c = pipe_room(p);
		if (!c)
			return -ECANCELED;
		size_t n = CHUNK_SIZE - c->len < (uint64_t)left ? CHUNK_SIZE - c->len : (size_t)left;
		r = read_exact(fd, c->data + c->len, n);
		if (r < 0)
			return r;
		crc = crc64_iso_update(crc, c->data + c->len, n);
		c->len += n;
		left -= (int64_t)n;
	}
	for (int i = 0; i < 8; i++)
		if (want[i] != (unsigned char)(crc >> (56 - 8 * i)))
			return -EBADMSG;
	return 0;
}

/* A JSON number that is a whole number a double holds exactly (0 if absent), or -1. */
static int64_t json_whole(const cJSON *n)
{
	if (!cJSON_IsNumber(n))
		return 0;
	double d = n->valuedouble;
	return d >= 0 && d <= 9007199254740992.0 && d == (double)(int64_t)d ? (int64_t)d : -1;
}

static int put_file_entry(struct ts_pipe *p, const cJSON *e, const unsigned char *want,
			  size_t want_len)
{
	const cJSON *jn = cJSON_GetObjectItemCaseSensitive(e, "name");
	const cJSON *jr = cJSON_GetObjectItemCaseSensitive(e, "name_raw");
	int64_t size = json_whole(cJSON_GetObjectItemCaseSensitive(e, "size"));
	_cleanup_free_ char *raw = NULL;
	const char *name;
	int r;

	if (cJSON_IsString(jn)) {
		name = jn->valuestring;
	} else if (cJSON_IsString(jr)) {
		/* not UTF-8: tar-split keeps such a name in base64 */
		size_t rlen = strlen(jr->valuestring);
		if (!(raw = malloc(rlen / 4 * 3 + 4)))
			return -ENOMEM;
		ssize_t m = b64_decode(jr->valuestring, rlen, (unsigned char *)raw);
		if (m < 0 || memchr(raw, '\0', (size_t)m))
			return -EBADMSG;
		raw[m] = '\0';
		name = raw;
	} else {
		return -EBADMSG;
	}
	if (size < 0)
		return -EBADMSG;
	p->entries++;
	if (size == 0)
		return 0;
	r = put_file(p, name, size, want, want_len);
	if ((r == -EBADMSG || r == -EXDEV) && !p->bad)
		p->bad = strdup(name);
	p->bytes += (uint64_t)size;
	return r;
}

/*
 * One JSON line of the record. The lines are read with cJSON, many times faster than
 * jansson on long strings; it keeps strings NUL-terminated, so a line whose strings may
 * hold an escaped NUL is refused (no tar name holds one, and jansson refuses them too).
 */
static int assemble_line(struct ts_pipe *p, const char *line, size_t len)
{
	cJSON *e = cJSON_ParseWithLength(line, len);
	int r = -EBADMSG;

	if (!cJSON_IsObject(e) || memmem(line, len, "\\u0000", 6))
		goto out;
	const cJSON *jp = cJSON_GetObjectItemCaseSensitive(e, "payload");
	ssize_t n = decode_scratch(p, cJSON_IsString(jp) ? jp->valuestring : "");
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	switch (json_whole(cJSON_GetObjectItemCaseSensitive(e, "type"))) {
	case TS_SEGMENT:
		r = pipe_put(p, p->scratch, (size_t)n);
		p->bytes += (uint64_t)n;
		break;
	case TS_FILE:
		r = put_file_entry(p, e, p->scratch, (size_t)n);
		break;
	}
out:
	cJSON_Delete(e);
	return r;
}

static void *reader_thread(void *arg)
{
	struct ts_pipe *p = arg;
	_cleanup_free_ char *line = NULL;
	size_t cap = 0, len;
	int r;

	while ((r = gz_getline(p->gz, &line, &cap, &len)) > 0) {
		r = assemble_line(p, line, len);
		if (r < 0)
			break;
	}
	pipe_push(p);
	pthread_mutex_lock(&p->lock);
	p->done = true;
	p->err = r < 0 ? r : 0;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void gzclosep(gzFile *gz)
{
	if (*gz)
		gzclose(*gz);
}

int tarsplit_assemble(int record_fd, int layer_fd, int out_fd,
		      const struct strata_progress *progress, char **ret_bad)
{
	_cleanup_(gzclosep) gzFile gz = gzdopen(record_fd, "rb");
	_cleanup_free_ struct ts_chunk *chunks = NULL;
	struct ts_pipe p = {
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
		.gz = gz,
		.layer_fd = layer_fd,
	};
	pthread_t reader;
	int r = 0;

	*ret_bad = NULL;
	if (!gz) {
		close(record_fd);
		return -ENOMEM;
	}
	gzbuffer(gz, 256 * 1024);
	if (!(chunks = malloc(CHUNKS * sizeof(*chunks))))
		return -ENOMEM;
	for (int i = 0; i < CHUNKS; i++) {
		chunks[i].next = p.free;
		p.free = &chunks[i];
	}
	p.full_tail = &p.full;
	r = -pthread_create(&reader, NULL, reader_thread, &p);
	if (r < 0)
		return r;
	pthread_mutex_lock(&p.lock);
	for (;;) {
		while (!p.full && !p.done)
			pthread_cond_wait(&p.cond, &p.lock);
		struct ts_chunk *c = p.full;
		if (!c)
			break;
		p.full = c->next;
		if (!p.full)
			p.full_tail = &p.full;
		pthread_mutex_unlock(&p.lock);
		r = write_all(out_fd, c->data, c->len);
		if (r == 0 && progress && progress->fn)
			progress->fn(progress->userdata, c->bytes, c->entries);
		pthread_mutex_lock(&p.lock);
		c->next = p.free;
		p.free = c;
		pthread_cond_broadcast(&p.cond);
		if (r < 0) {
			p.stop = true;
			break;
		}
	}
	pthread_mutex_unlock(&p.lock);
	pthread_join(reader, NULL);
	free(p.scratch);
	if (r == 0 && p.err < 0) {
		r = p.err;
		*ret_bad = p.bad;
	} else {
		free(p.bad);
	}
	return r;
}
