/* SPDX-License-Identifier: Apache-2.0 */
/* Names from a tar, cleaned lexically, and opens below a layer that cannot leave it. */
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "layerio.h"

int tar_path_clean(const char *name, char *buf, size_t size)
{
	size_t len = 0;

	if (size == 0)
		return -ENAMETOOLONG;
	for (const char *p = name; *p;) {
		while (*p == '/')
			p++;
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			/* Climbing above the layer is an escape, never clamped to its root. */
			if (len == 0)
				return -EXDEV;
			while (len > 0 && buf[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* the separator */
		} else {
			if (len + (len > 0) + n + 1 > size)
				return -ENAMETOOLONG;
			if (len > 0)
				buf[len++] = '/';
			memcpy(buf + len, p, n);
			len += n;
		}
		p = end;
	}
	buf[len] = '\0';
	return (int)len;
}

static int openat2_state; /* 0 unknown, 1 works, -1 not there */

static int open_below(int layer_fd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
	int fd;

	if (!*path)
		path = ".";
	if (openat2_state >= 0) {
		struct open_how how = {
			.flags = (uint64_t)(flags | O_CLOEXEC),
			.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
			.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve,
		};
		do
			fd = (int)syscall(SYS_openat2, layer_fd, path, &how, sizeof(how));
		while (fd < 0 && errno == EAGAIN);
		if (fd >= 0 || errno != ENOSYS) {
			openat2_state = 1;
			return fd < 0 ? -errno : fd;
		}
		openat2_state = -1;
	}
	/* No openat2(): walk the components without following any symlink. */
	_cleanup_free_ char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	_cleanup_close_ int cur = fcntl(layer_fd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	char *save = NULL;
	char *comp = strtok_r(copy, "/", &save);
	while (comp) {
		char *next = strtok_r(NULL, "/", &save);
		if (!strcmp(comp, ".."))
			return -EXDEV;
		if (!next) {
			fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
			return fd < 0 ? -errno : fd;
		}
		int nfd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			return -errno;
		close(cur);
		cur = nfd;
		comp = next;
	}
	fd = openat(cur, ".", flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

int layer_openat(int layer_fd, const char *path, int flags, mode_t mode)
{
	return open_below(layer_fd, path, flags, mode, 0);
}

int layer_openat_nolinks(int layer_fd, const char *path, int flags, mode_t mode)
{
	return open_below(layer_fd, path, flags, mode, RESOLVE_NO_SYMLINKS);
}

int chmod_nofollow_at(int dfd, const char *name, mode_t mode)
{
	struct stat st;
	char proc[64];

	/*
	 * fchmodat() follows a symlink, and fchmod() needs an fd that a fifo or
	 * a device would not give without opening it: go through an O_PATH fd
	 * of the name itself, checked not to be a symlink.
	 */
	_cleanup_close_ int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return chmod(proc, mode) < 0 ? -errno : 0;
}
