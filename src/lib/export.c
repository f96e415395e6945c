/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diff, DiffSize and DiffGetter: a layer out as a tar, as Docker's TarWithOptions
 * writes it (or rebuilt byte for byte from its tar-split record), its size, and
 * its files by their names in the tar.
 */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "fsutil.h"
#include "hashset.h"
#include "layerio.h"
#include "naive.h"
#include "whiteout.h"

#define COPY_BUF (1024 * 1024)
#define XATTR_CAPS "security.capability"
/* linux/capability.h: the revision lives in the top byte of magic_etc. */
#define VFS_CAP_REVISION_MASK 0xFF000000u
#define VFS_CAP_REVISION_2 0x02000000u
#define VFS_CAP_REVISION_3 0x03000000u
#define XATTR_CAPS_SZ_2 20

int diff_is_parent(struct strata *s, const char *op, const char *id, const char *parent,
		   bool *ret_fast, struct strata_error **err)
{
	_cleanup_strv_free_ char **chain = NULL;

	return layer_resolve_parent(s, op, id, &parent, &chain, ret_fast, err);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory @fd, sorted bytewise, NULL-terminated. */
static int sorted_names(int fd, char ***ret)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;

	if (dfd < 0)
		return -errno;
	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 2 > cap) {
			cap = cap ? cap * 2 : 32;
			char **nv = realloc(v, cap * sizeof(char *));
			if (!nv)
				goto oom;
			v = nv;
		}
		if (!(v[n++] = strdup(de->d_name)))
			goto oom;
		v[n] = NULL;
	}
	if (errno) {
		int e = -errno;
		strv_free(v);
		return e;
	}
	if (!v && !(v = calloc(1, sizeof(char *))))
		return -ENOMEM;
	qsort(v, n, sizeof(char *), cmp_name);
	*ret = v;
	return 0;
oom:
	if (v)
		v[n] = NULL;
	strv_free(v);
	return -ENOMEM;
}

static int size_walk(int fd, struct inode_set *seen, int64_t *total, unsigned depth)
{
	_cleanup_strv_free_ char **names = NULL;
	int r;

	if (depth > 2048)
		return -ELOOP;
	r = sorted_names(fd, &names);
	if (r < 0)
		return r;
	for (char **p = names; *p; p++) {
		struct stat st;
		if (fstatat(fd, *p, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int cfd =
				openat(fd, *p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				return -errno;
			r = size_walk(cfd, seen, total, depth + 1);
			if (r < 0)
				return r;
			continue;
		}
		if (st.st_size <= 0)
			continue;
		if (st.st_nlink > 1) {
			struct inode_slot *slot = inode_set_get(seen, st.st_dev, st.st_ino);
			if (!slot)
				return -ENOMEM;
			if (slot->used)
				continue;
			slot->used = true;
		}
		*total += st.st_size;
	}
	return 0;
}

int diff_size_at(int layer_fd, int64_t *ret)
{
	struct inode_set seen = { 0 };
	int64_t total = 0;
	int r = size_walk(layer_fd, &seen, &total, 0);

	inode_set_clear(&seen);
	if (r == 0)
		*ret = total;
	return r;
}

static int open_layer(struct strata *s, const char *op, const char *id, const char *parent,
		      int *ret_lock, int *ret_fd, struct strata_error **err)
{
	bool fast;
	int r;

	r = strata_check_id(op, id, err);
	if (r < 0)
		return r;
	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	_cleanup_close_ int lock = store_lock(s, id, LOCK_SH);
	if (lock < 0)
		return strata_fail(err, lock, "%s '%s': cannot lock: %s", op, id, strerror(-lock));
	r = diff_is_parent(s, op, id, parent, &fast, err);
	if (r == -ENOENT && !layer_exists(s, id))
		store_unlock_unknown(s, id, TAKE_FD(lock));
	if (r < 0)
		return r;
	if (!fast)
		return strata_fail(err, EOPNOTSUPP,
				   "%s '%s': parent '%s' is not the layer's parent: that needs the changes engine",
				   op, id, strempty(parent));
	int fd = openat(s->diff_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return strata_fail(err, errno, "%s '%s': cannot open '%s/diff/%s': %m", op, id,
				   s->root, id);
	*ret_fd = fd;
	*ret_lock = TAKE_FD(lock);
	return 0;
}

_public_ int strata_diff_size(struct strata *s, const char *id, const char *parent,
			      int64_t *ret_size, struct strata_error **err)
{
	_cleanup_close_ int lock = -1, fd = -1;
	int r;

	bool fast;
	r = diff_is_parent(s, "diff-size", id, parent, &fast, err);
	if (r < 0)
		return r;
	if (!fast)
		return naive_diff_size(s, id, parent, ret_size, err);
	r = open_layer(s, "diff-size", id, parent, &lock, &fd, err);
	if (r < 0)
		return r;
	r = diff_size_at(fd, ret_size);
	if (r < 0)
		return strata_fail(err, r, "diff-size '%s': cannot walk '%s/diff/%s': %s", id,
				   s->root, id, strerror(-r));
	return 0;
}

_public_ int strata_diff_getter_open(struct strata *s, const char *id, const char *path,
				     int *ret_fd, struct strata_error **err)
{
	_cleanup_close_ int lock = -1, layer_fd = -1;
	char clean[PATH_MAX];
	int r, fd;

	r = open_layer(s, "diff-get", id, NULL, &lock, &layer_fd, err);
	if (r < 0)
		return r;
	r = tar_path_clean(path, clean, sizeof(clean));
	if (r == -EXDEV)
		return strata_fail(err, EXDEV, "diff-get '%s': '%s' leaves the layer", id, path);
	if (r < 0)
		return strata_fail(err, -r, "diff-get '%s': '%s': %s", id, path, strerror(-r));
	/* O_NONBLOCK: a fifo of the layer must not hang the caller. */
	fd = layer_openat(layer_fd, clean, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
	if (fd == -EXDEV)
		return strata_fail(err, EXDEV, "diff-get '%s': '%s' leads out of the layer", id, path);
	if (fd < 0)
		return strata_fail(err, -fd, "diff-get '%s': cannot open '%s': %s", id, path,
				   strerror(-fd));
	(void)fcntl(fd, F_SETFL, 0);
	*ret_fd = fd;
	return 0;
}

/* ---- a fresh tar of the layer ---- */

struct exporter {
	struct archive *a;
	struct archive_entry *e;
	const char *id;
	struct strata_error **err;
	struct idmap map;
	struct inode_set links;
	unsigned char *buf;
	const struct strata_progress *progress;
	uint64_t bytes, entries;
};

static int export_fail(struct exporter *ex, int code, const char *rel, const char *what)
{
	return strata_fail(ex->err, code, "diff '%s': '%s': %s", ex->id, rel, what);
}

/* VFS_CAP_REVISION_3 caps carry a root uid that v2 readers reject: Docker writes v2. */
static size_t caps_to_v2(unsigned char *v, size_t len)
{
	if (len < 4)
		return len;
	uint32_t magic = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 |
			 (uint32_t)v[3] << 24;
	if ((magic & VFS_CAP_REVISION_MASK) != VFS_CAP_REVISION_3)
		return len;
	magic = (magic & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_2;
	v[0] = (unsigned char)magic;
	v[1] = (unsigned char)(magic >> 8);
	v[2] = (unsigned char)(magic >> 16);
	v[3] = (unsigned char)(magic >> 24);
	return len > XATTR_CAPS_SZ_2 ? XATTR_CAPS_SZ_2 : len;
}

static int write_archive(struct exporter *ex, int r, const char *rel)
{
	if (r >= ARCHIVE_WARN)
		return 0;
	int e = archive_errno(ex->a);
	return export_fail(ex, e > 0 ? e : EIO, rel, archive_error_string(ex->a));
}

static int export_entry(struct exporter *ex, int dfd, const char *name, const char *rel,
			const struct stat *st)
{
	struct archive_entry *e = ex->e;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *tarname = NULL;
	unsigned char caps[64];
	ssize_t caps_len = -1;
	uint32_t uid = st->st_uid, gid = st->st_gid;
	int r;

	if (S_ISSOCK(st->st_mode))
		return 0; /* Docker skips sockets */
	archive_entry_clear(e);
	if (asprintf(&tarname, "%s%s", rel, S_ISDIR(st->st_mode) ? "/" : "") < 0)
		return -ENOMEM;
	archive_entry_copy_pathname(e, tarname);
	if (!wh_is_whiteout(name) && idmap_pair_to_container(&ex->map, &uid, &gid) < 0)
		return export_fail(ex, ERANGE, rel, "owner cannot be mapped back");
	archive_entry_set_uid(e, uid);
	archive_entry_set_gid(e, gid);
	archive_entry_set_mode(e, st->st_mode);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, 0);

	if (S_ISREG(st->st_mode) || S_ISDIR(st->st_mode)) {
		fd = openat(dfd, name,
			    (S_ISDIR(st->st_mode) ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW |
				    O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return export_fail(ex, errno, rel, strerror(errno));
		caps_len = fgetxattr(fd, XATTR_CAPS, caps, sizeof(caps));
	} else {
		char path[64 + NAME_MAX];
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, name);
		caps_len = lgetxattr(path, XATTR_CAPS, caps, sizeof(caps));
	}
	if (caps_len > 0)
		archive_entry_xattr_add_entry(e, XATTR_CAPS, caps, caps_to_v2(caps, (size_t)caps_len));

	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		struct inode_slot *slot = inode_set_get(&ex->links, st->st_dev, st->st_ino);
		if (!slot)
			return -ENOMEM;
		if (slot->used) {
			archive_entry_copy_hardlink(e, slot->name);
			archive_entry_set_size(e, 0);
			r = archive_write_header(ex->a, e);
			ex->entries++;
			return write_archive(ex, r, rel);
		}
		slot->used = true;
		if (!(slot->name = strdup(tarname)))
			return -ENOMEM;
	}
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return export_fail(ex, errno, rel, strerror(errno));
		target[n] = '\0';
		archive_entry_copy_symlink(e, target);
	} else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		archive_entry_set_rdevmajor(e, major(st->st_rdev));
		archive_entry_set_rdevminor(e, minor(st->st_rdev));
	}
	archive_entry_set_size(e, S_ISREG(st->st_mode) ? st->st_size : 0);
	r = write_archive(ex, archive_write_header(ex->a, e), rel);
	if (r < 0)
		return r;
	ex->entries++;
	if (S_ISREG(st->st_mode) && st->st_size > 0) {
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		int64_t left = st->st_size;
		while (left > 0) {
			ssize_t n = read(fd, ex->buf, left > COPY_BUF ? COPY_BUF : (size_t)left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return export_fail(ex, errno, rel, strerror(errno));
			if (n == 0)
				return export_fail(ex, EIO, rel, "file shrank while it was exported");
			if (archive_write_data(ex->a, ex->buf, (size_t)n) != n)
				return write_archive(ex, ARCHIVE_FATAL, rel);
			left -= n;
			ex->bytes += (uint64_t)n;
			if (ex->progress && ex->progress->fn)
				ex->progress->fn(ex->progress->userdata, ex->bytes, ex->entries);
		}
	}
	return 0;
}

static int export_walk(struct exporter *ex, int dfd, const char *prefix, unsigned depth)
{
	_cleanup_strv_free_ char **names = NULL;
	int r;

	if (depth > 2048)
		return strata_fail(ex->err, ELOOP, "diff '%s': '%s': too deep", ex->id, prefix);
	r = sorted_names(dfd, &names);
	if (r < 0)
		return strata_fail(ex->err, r, "diff '%s': cannot read '%s': %s", ex->id,
				   *prefix ? prefix : ".", strerror(-r));
	for (char **p = names; *p; p++) {
		_cleanup_free_ char *rel = NULL;
		struct stat st;

		/* aufs metadata at the root (plnk, orph, the xino base) is never exported. */
		if (depth == 0 && wh_is_meta(*p) && !wh_is_opaque(*p))
			continue;
		if (asprintf(&rel, "%s%s%s", prefix, *prefix ? "/" : "", *p) < 0)
			return -ENOMEM;
		if (fstatat(dfd, *p, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return export_fail(ex, errno, rel, strerror(errno));
		}
		r = export_entry(ex, dfd, *p, rel, &st);
		if (r < 0)
			return r;
		if (ex->progress && ex->progress->fn)
			ex->progress->fn(ex->progress->userdata, ex->bytes, ex->entries);
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int cfd =
				openat(dfd, *p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0)
				return export_fail(ex, errno, rel, strerror(errno));
			r = export_walk(ex, cfd, rel, depth + 1);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int exporter_new(struct strata *s, const char *id, int out_fd,
		 const struct strata_progress *progress, struct strata_error **err,
		 struct exporter **ret)
{
	struct exporter *ex = calloc(1, sizeof(*ex));

	if (!ex)
		return strata_fail(err, ENOMEM, "diff '%s': out of memory", id);
	*ex = (struct exporter){ .id = id, .err = err, .progress = progress,
				 .map = store_layer_idmap(s) };
	ex->a = archive_write_new();
	ex->e = archive_entry_new();
	ex->buf = malloc(COPY_BUF);
	if (!ex->a || !ex->e || !ex->buf) {
		exporter_free(ex);
		return strata_fail(err, ENOMEM, "diff '%s': out of memory", id);
	}
	/* Restricted pax: an extended header only where ustar cannot say it, as Go does. */
	if (archive_write_set_format_pax_restricted(ex->a) != ARCHIVE_OK ||
	    archive_write_set_format_option(ex->a, "pax", "xattrheader", "SCHILY") < ARCHIVE_WARN ||
	    archive_write_set_bytes_per_block(ex->a, 65536) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(ex->a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(ex->a, out_fd) != ARCHIVE_OK) {
		int r = strata_fail(err, EIO, "diff '%s': cannot start the tar: %s", id,
				    archive_error_string(ex->a));
		exporter_free(ex);
		return r;
	}
	*ret = ex;
	return 0;
}

int exporter_add(struct exporter *ex, int dfd, const char *name, const char *rel,
		 const struct stat *st)
{
	int r = export_entry(ex, dfd, name, rel, st);
	if (r == -ENOMEM)
		return strata_fail(ex->err, ENOMEM, "diff '%s': out of memory", ex->id);
	if (r == 0 && ex->progress && ex->progress->fn)
		ex->progress->fn(ex->progress->userdata, ex->bytes, ex->entries);
	return r;
}

int exporter_add_whiteout(struct exporter *ex, const char *rel)
{
	/* As Docker's ExportChanges: a bare header, no mode or owner, stamped now. */
	_cleanup_free_ char *name = NULL;
	const char *slash = strrchr(rel, '/');
	struct timespec now;

	if (asprintf(&name, "%.*s" WH_PREFIX "%s", slash ? (int)(slash - rel + 1) : 0, rel,
		     slash ? slash + 1 : rel) < 0)
		return strata_fail(ex->err, ENOMEM, "diff '%s': out of memory", ex->id);
	clock_gettime(CLOCK_REALTIME, &now);
	archive_entry_clear(ex->e);
	archive_entry_copy_pathname(ex->e, name);
	archive_entry_set_filetype(ex->e, AE_IFREG);
	archive_entry_set_perm(ex->e, 0);
	archive_entry_set_size(ex->e, 0);
	archive_entry_set_mtime(ex->e, now.tv_sec, 0);
	int r = write_archive(ex, archive_write_header(ex->a, ex->e), name);
	if (r == 0)
		ex->entries++;
	return r;
}

int exporter_finish(struct exporter *ex)
{
	if (archive_write_close(ex->a) != ARCHIVE_OK)
		return strata_fail(ex->err, EIO, "diff '%s': cannot finish the tar: %s", ex->id,
				   archive_error_string(ex->a));
	if (ex->progress && ex->progress->fn)
		ex->progress->fn(ex->progress->userdata, ex->bytes, ex->entries);
	return 0;
}

void exporter_free(struct exporter *ex)
{
	if (!ex)
		return;
	if (ex->a)
		archive_write_free(ex->a);
	archive_entry_free(ex->e);
	inode_set_clear(&ex->links);
	free(ex->buf);
	free(ex);
}

static int export_fresh(struct strata *s, const char *id, int layer_fd, int out_fd,
			const struct strata_progress *progress, struct strata_error **err)
{
	struct exporter *ex;
	int r = exporter_new(s, id, out_fd, progress, err, &ex);

	if (r < 0)
		return r;
	r = export_walk(ex, layer_fd, "", 0);
	if (r == -ENOMEM)
		r = strata_fail(err, ENOMEM, "diff '%s': out of memory", id);
	if (r == 0)
		r = exporter_finish(ex);
	exporter_free(ex);
	return r;
}

_public_ int strata_diff_export(struct strata *s, const char *id, const char *parent, int out_fd,
				const struct strata_progress *progress, unsigned flags,
				struct strata_error **err)
{
	_cleanup_close_ int lock = -1, layer_fd = -1;
	int r;

	bool fast;
	r = diff_is_parent(s, "diff", id, parent, &fast, err);
	if (r < 0)
		return r;
	if (!fast)
		return naive_diff_export(s, id, parent, out_fd, progress, err);
	r = open_layer(s, "diff", id, parent, &lock, &layer_fd, err);
	if (r < 0)
		return r;
	/* A 64 KiB pipe wakes its reader sixteen times a MiB: ask for a larger one. */
	struct stat ost;
	if (fstat(out_fd, &ost) == 0 && S_ISFIFO(ost.st_mode))
		(void)fcntl(out_fd, F_SETPIPE_SZ, 1024 * 1024);
	if (!(flags & STRATA_DIFF_REGENERATE)) {
		int rec = tarsplit_open(s, id);
		if (rec >= 0) {
			_cleanup_free_ char *bad = NULL;
			r = tarsplit_assemble(rec, layer_fd, out_fd, progress, &bad);
			if (r < 0 && bad)
				return strata_fail(err, EBADMSG,
						   "diff '%s': file '%s' changed since the layer was applied (size or checksum differs from its tar-split record)",
						   id, bad);
			if (r < 0)
				return strata_fail(err, r, "diff '%s': cannot rebuild the tar from its tar-split record: %s",
						   id, strerror(-r));
			return 0;
		}
		if (rec != -ENOENT)
			return strata_fail(err, rec, "diff '%s': cannot open its tar-split record: %s",
					   id, strerror(-rec));
	}
	return export_fresh(s, id, layer_fd, out_fd, progress, err);
}
