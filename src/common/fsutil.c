/* SPDX-License-Identifier: Apache-2.0 */
/* File-system helpers on directory fds. */
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "macro.h"

int mkdirat_exact(int dfd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	if (mkdirat(dfd, name, 0700) < 0) {
		if (errno != EEXIST)
			return -errno;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		return S_ISDIR(st.st_mode) ? -EEXIST : -ENOTDIR;
	}
	/* Owner first: chown clears setgid/sticky bits on some file systems. */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
		return -errno;
	if (fchmodat(dfd, name, mode, 0) < 0)
		return -errno;
	return 0;
}

ssize_t read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_file_at(int dfd, const char *name, char **ret_data, size_t *ret_len)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		if (cap - len < 4096) {
			size_t ncap = cap ? cap * 2 : 4096;
			char *n = realloc(buf, ncap + 1);
			if (!n)
				return -ENOMEM;
			buf = n;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (!buf && !(buf = malloc(1)))
		return -ENOMEM;
	buf[len] = '\0';
	*ret_data = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

void make_temp_name(char *buf, size_t size, const char *prefix)
{
	static atomic_uint counter;
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)(uintptr_t)&r ^ (uint32_t)getpid();
	snprintf(buf, size, "%s.%d.%u.%08x", prefix, (int)getpid(), atomic_fetch_add(&counter, 1),
		 r);
}

int write_file_atomic_at(int tmp_dfd, int dfd, const char *name, const void *data, size_t len,
			 mode_t mode)
{
	char tmp[NAME_MAX];
	_cleanup_close_ int fd = -1;
	int r;

	do {
		make_temp_name(tmp, sizeof(tmp), "new");
		fd = openat(tmp_dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    mode);
	} while (fd < 0 && errno == EEXIST);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(tmp_dfd, tmp, dfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(tmp_dfd, tmp, 0);
		return r;
	}
	if (fsync(dfd) < 0)
		return -errno;
	return 0;
}

/* Removes the contents of the directory open as @fd, which lives on device @dev. */
static int rm_rf_children(int fd, dev_t dev)
{
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	struct dirent *de;
	int ret = 0;

	if (!d) {
		close(fd);
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		struct stat st;
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) {
			if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && !ret)
				ret = -errno;
			continue;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT && !ret)
				ret = -errno;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && !ret)
				ret = -errno;
			continue;
		}
		if (st.st_dev != dev || is_mount_point_at(dirfd(d), de->d_name) > 0) {
			if (!ret)
				ret = -EBUSY;
			continue;
		}
		/*
		 * Images hold 0555 directories: without root, their owner must open them up
		 * first. Root need not, and does not: whoever holds the directory open sees
		 * its mode unchanged while it goes.
		 */
		if ((st.st_mode & 0700) != 0700 && st.st_uid == geteuid() && geteuid() != 0)
			(void)fchmodat(dirfd(d), de->d_name, (st.st_mode & 07777) | 0700, 0);
		int cfd = openat(dirfd(d), de->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			if (errno != ENOENT && !ret)
				ret = -errno;
			continue;
		}
		r = rm_rf_children(cfd, dev);
		if (r < 0 && !ret)
			ret = r;
		if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && !ret)
			ret = -errno;
	}
	if (errno && !ret)
		ret = -errno;
	return ret;
}

DIR *opendir_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

int is_mount_point_at(int dfd, const char *name)
{
	struct statx a, b;

	if (statx(dfd, name, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &a) < 0)
		return -errno;
	if (a.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return !!(a.stx_attributes & STATX_ATTR_MOUNT_ROOT);
	/* Old kernels: compare with the parent. */
	_cleanup_free_ char *parent = NULL;
	if (asprintf(&parent, "%s/..", name) < 0)
		return -ENOMEM;
	if (statx(dfd, parent, 0, STATX_MNT_ID, &b) < 0)
		return -errno;
	return a.stx_dev_major != b.stx_dev_major || a.stx_dev_minor != b.stx_dev_minor ||
	       ((a.stx_mask & b.stx_mask & STATX_MNT_ID) && a.stx_mnt_id != b.stx_mnt_id);
}

int rm_rf_at(int dfd, const char *name)
{
	struct stat st;
	int r;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	r = is_mount_point_at(dfd, name);
	if (r > 0)
		return -EBUSY;
	/* an empty directory simply goes */
	if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return 0;
	if ((st.st_mode & 0700) != 0700 && st.st_uid == geteuid() && geteuid() != 0)
		(void)fchmodat(dfd, name, (st.st_mode & 07777) | 0700, 0);
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = rm_rf_children(fd, st.st_dev);
	if (r < 0)
		return r;
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}
