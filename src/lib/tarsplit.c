/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tar-split records (vbatts/tar-split's format, as Docker's layerdb keeps them):
 * gzip'd JSON lines, a segment of raw tar bytes or a file's name, size and
 * CRC-64 each, from which the applied tar is rebuilt byte for byte.
 */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fsutil.h"
#include "layerio.h"

/* Go's JSON packer types. */
enum { TS_FILE = 1, TS_SEGMENT = 2 };

/* Segments longer than this are split, as tar-split's own padding chunks are. */
#define SEGMENT_MAX (1024 * 1024)
#define COPY_BUF (1024 * 1024)

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding (Go's encoding/json for []byte). @out holds 4*ceil(len/3)+1. */
static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
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

/* Decodes standard base64 into @out (room for 3*len/4 bytes); -EBADMSG on bad input. */
static ssize_t b64_decode(const char *in, size_t len, unsigned char *out)
{
	static signed char rev[256];
	static bool init;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (!init) {
		memset(rev, -1, sizeof(rev));
		for (int i = 0; i < 64; i++)
			rev[(unsigned char)b64chars[i]] = (signed char)i;
		init = true;
	}
	while (len > 0 && in[len - 1] == '=')
		len--;
	for (size_t i = 0; i < len; i++) {
		int v = rev[(unsigned char)in[i]];
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

struct tarsplit_writer {
	struct strata *s;
	int fd;
	gzFile gz;
	char tmp[NAME_MAX];
	uint64_t position;
	char *line;
	size_t line_cap;
	bool failed;
};

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
	*ret = w;
	return 0;
}

void tarsplit_writer_free(struct tarsplit_writer *w)
{
	if (!w)
		return;
	if (w->gz)
		gzclose(w->gz);
	if (w->fd >= 0) {
		close(w->fd);
		unlinkat(w->s->tmp_fd, w->tmp, 0);
	}
	free(w->line);
	free(w);
}

static int line_reserve(struct tarsplit_writer *w, size_t n)
{
	if (w->line_cap >= n)
		return 0;
	char *l = realloc(w->line, n);
	if (!l)
		return -ENOMEM;
	w->line = l;
	w->line_cap = n;
	return 0;
}

static int put_line(struct tarsplit_writer *w, size_t len)
{
	if (gzwrite(w->gz, w->line, (unsigned)len) != (int)len) {
		w->failed = true;
		return -EIO;
	}
	return 0;
}

int tarsplit_add_segment(struct tarsplit_writer *w, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		size_t n = len > SEGMENT_MAX ? SEGMENT_MAX : len;
		int r = line_reserve(w, 4 * (n / 3 + 1) + 96);
		if (r < 0)
			return r;
		size_t o = (size_t)sprintf(w->line, "{\"type\":%d,\"payload\":\"", TS_SEGMENT);
		o += b64_encode(p, n, w->line + o);
		o += (size_t)sprintf(w->line + o, "\",\"position\":%llu}\n",
				     (unsigned long long)w->position++);
		r = put_line(w, o);
		if (r < 0)
			return r;
		p += n;
		len -= n;
	}
	return 0;
}

int tarsplit_add_file(struct tarsplit_writer *w, const char *name, int64_t size, uint64_t crc)
{
	_cleanup_free_ char *name_json = NULL;
	char payload[16] = "null";
	size_t nlen = strlen(name);
	json_t *js = json_stringn(name, nlen);
	bool raw = !js;
	int r;

	if (js) {
		name_json = json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT);
		json_decref(js);
	} else {
		/* Not UTF-8: tar-split keeps such names as "name_raw", base64. */
		name_json = malloc(4 * (nlen / 3 + 1) + 3);
		if (name_json) {
			name_json[0] = '"';
			size_t o = 1 + b64_encode((const unsigned char *)name, nlen, name_json + 1);
			name_json[o++] = '"';
			name_json[o] = '\0';
		}
	}
	if (!name_json)
		return -ENOMEM;
	if (size > 0) {
		unsigned char be[8];
		for (int i = 0; i < 8; i++)
			be[i] = (unsigned char)(crc >> (56 - 8 * i));
		payload[0] = '"';
		size_t o = 1 + b64_encode(be, 8, payload + 1);
		payload[o++] = '"';
		payload[o] = '\0';
	}
	r = line_reserve(w, strlen(name_json) + 128);
	if (r < 0)
		return r;
	size_t o = (size_t)sprintf(w->line, "{\"type\":%d,\"%s\":%s,", TS_FILE,
				   raw ? "name_raw" : "name", name_json);
	if (size > 0)
		o += (size_t)sprintf(w->line + o, "\"size\":%lld,", (long long)size);
	o += (size_t)sprintf(w->line + o, "\"payload\":%s,\"position\":%llu}\n", payload,
			     (unsigned long long)w->position++);
	return put_line(w, o);
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

/* Reads one line of any length; 0 at the end, 1 with a line, -errno. */
static int gz_getline(gzFile gz, char **buf, size_t *cap, size_t *ret_len)
{
	size_t len = 0;

	for (;;) {
		if (*cap - len < 4096) {
			size_t ncap = *cap ? *cap * 2 : 65536;
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

/* Streams @size bytes of the file @name of the layer to @out, checking size and CRC. */
static int assemble_file(int layer_fd, int out_fd, const char *name, int64_t size,
			 const unsigned char *want, size_t want_len, unsigned char *buf)
{
	char clean[PATH_MAX];
	struct stat st;
	uint64_t crc = 0;
	int r;

	r = tar_path_clean(name, clean, sizeof(clean));
	if (r < 0)
		return r == -EXDEV ? -EXDEV : -EBADMSG;
	_cleanup_close_ int fd = layer_openat(layer_fd, clean, O_RDONLY | O_NOCTTY, 0);
	if (fd < 0)
		return fd == -ENOENT ? -EBADMSG : fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size != size)
		return -EBADMSG;
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (int64_t left = size; left > 0;) {
		ssize_t n = read(fd, buf, left > COPY_BUF ? COPY_BUF : (size_t)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EBADMSG;
		crc = crc64_iso_update(crc, buf, (size_t)n);
		r = write_all(out_fd, buf, (size_t)n);
		if (r < 0)
			return r;
		left -= n;
	}
	if (want_len != 8)
		return -EBADMSG;
	for (int i = 0; i < 8; i++)
		if (want[i] != (unsigned char)(crc >> (56 - 8 * i)))
			return -EBADMSG;
	return 0;
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
	_cleanup_free_ char *line = NULL;
	_cleanup_free_ unsigned char *buf = NULL, *payload = NULL;
	size_t cap = 0, payload_cap = 0, len;
	uint64_t bytes = 0, entries = 0;
	int r;

	*ret_bad = NULL;
	if (!gz) {
		close(record_fd);
		return -ENOMEM;
	}
	gzbuffer(gz, 256 * 1024);
	if (!(buf = malloc(COPY_BUF)))
		return -ENOMEM;
	while ((r = gz_getline(gz, &line, &cap, &len)) > 0) {
		json_error_t jerr;
		json_t *e = json_loadb(line, len, 0, &jerr);
		if (!e || !json_is_object(e)) {
			json_decref(e);
			return -EBADMSG;
		}
		json_int_t type = json_integer_value(json_object_get(e, "type"));
		json_t *jp = json_object_get(e, "payload");
		const char *p64 = json_is_string(jp) ? json_string_value(jp) : "";
		size_t plen = strlen(p64);
		if (payload_cap < plen / 4 * 3 + 4) {
			unsigned char *np = realloc(payload, plen / 4 * 3 + 4);
			if (!np) {
				json_decref(e);
				return -ENOMEM;
			}
			payload = np;
			payload_cap = plen / 4 * 3 + 4;
		}
		ssize_t n = b64_decode(p64, plen, payload);
		if (n < 0) {
			json_decref(e);
			return -EBADMSG;
		}
		if (type == TS_SEGMENT) {
			r = write_all(out_fd, payload, (size_t)n);
			bytes += (uint64_t)n;
		} else if (type == TS_FILE) {
			json_int_t size = json_integer_value(json_object_get(e, "size"));
			const char *name = json_string_value(json_object_get(e, "name"));
			_cleanup_free_ char *raw = NULL;
			if (!name) {
				const char *r64 = json_string_value(json_object_get(e, "name_raw"));
				size_t rlen = r64 ? strlen(r64) : 0;
				if (!r64 || !(raw = malloc(rlen / 4 * 3 + 4))) {
					json_decref(e);
					return r64 ? -ENOMEM : -EBADMSG;
				}
				ssize_t m = b64_decode(r64, rlen, (unsigned char *)raw);
				if (m < 0) {
					json_decref(e);
					return -EBADMSG;
				}
				raw[m] = '\0';
				name = raw;
			}
			r = 0;
			if (size > 0) {
				r = assemble_file(layer_fd, out_fd, name, size, payload, (size_t)n, buf);
				if (r == -EBADMSG || r == -EXDEV)
					*ret_bad = strdup(name);
				bytes += (uint64_t)size;
			} else if (size < 0)
				r = -EBADMSG;
			entries++;
			if (progress && progress->fn && (entries & 255) == 0)
				progress->fn(progress->userdata, bytes, entries);
		} else
			r = -EBADMSG;
		json_decref(e);
		if (r < 0)
			return r;
	}
	if (r == 0 && progress && progress->fn)
		progress->fn(progress->userdata, bytes, entries);
	return r;
}
