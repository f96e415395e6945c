// SPDX-License-Identifier: Apache-2.0
/* Extended attributes: read from the topmost object, changed after a copy-up. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "sfs.h"

/* Attributes that describe the union itself (overlay whiteout metadata), never shown. */
bool sfs_xattr_hidden(const char *name)
{
	return !strncmp(name, "trusted.overlay.", 16) || !strncmp(name, "user.overlay.", 13);
}

/*
 * A path that reaches what backs @node, for the l*xattr() calls. For an unlinked node that is
 * /proc/self/fd/N of its O_PATH fd, which the plain calls must follow (it leads to the object
 * itself, a symlink too, never through it): returns 1 then, else 0, or -errno.
 */
static int abs_path(struct sfs_fs *fs, struct sfs_node *node, char *buf, size_t size)
{
	char rel[PATH_MAX];
	const char *base;
	int dfd, r;

	r = sfs_backing_at(fs, node, &dfd, rel, sizeof(rel));
	if (r < 0)
		return r;
	if (!rel[0]) {
		snprintf(buf, size, "/proc/self/fd/%d", dfd);
		return 1;
	}
	if (node->plnk) {
		if (snprintf(buf, size, "/proc/self/fd/%d/%s", fs->plnk_fd, rel) >= (int)size)
			return -ENAMETOOLONG;
		return 0;
	}
	base = fs->br[node->bindex].path;
	if (snprintf(buf, size, "%s/%s", base, rel) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

int sfs_getxattr(struct sfs_fs *fs, struct sfs_node *node, const char *name, char *buf,
		 size_t size)
{
	char path[PATH_MAX];
	int r;

	if (sfs_xattr_hidden(name))
		return -ENODATA;
	r = abs_path(fs, node, path, sizeof(path));
	if (r < 0)
		return r;
	ssize_t n = r ? getxattr(path, name, buf, size) : lgetxattr(path, name, buf, size);
	if (n < 0)
		return -errno;
	if (size)
		sfs_idmap_acl(fs, name, buf, (size_t)n, /* to_shown= */ true);
	return (int)n;
}

int sfs_listxattr(struct sfs_fs *fs, struct sfs_node *node, char *buf, size_t size)
{
	char path[PATH_MAX];
	int r;

	r = abs_path(fs, node, path, sizeof(path));
	if (r < 0)
		return r;
	bool follow = r;
	ssize_t n = follow ? listxattr(path, NULL, 0) : llistxattr(path, NULL, 0);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	_cleanup_free_ char *all = malloc(n);
	if (!all)
		return -ENOMEM;
	n = follow ? listxattr(path, all, n) : llistxattr(path, all, n);
	if (n < 0)
		return -errno;
	size_t out = 0;
	for (char *p = all; p < all + n; p += strlen(p) + 1) {
		size_t l = strlen(p) + 1;
		if (sfs_xattr_hidden(p))
			continue;
		if (size) {
			if (out + l > size)
				return -ERANGE;
			memcpy(buf + out, p, l);
		}
		out += l;
	}
	return (int)out;
}

int sfs_setxattr(struct sfs_fs *fs, struct sfs_node *node, const char *name, const char *value,
		 size_t size, int flags)
{
	char path[PATH_MAX];
	int r;

	if (sfs_xattr_hidden(name))
		return -EPERM;
	if (!fs->rw)
		return -EROFS;
	/* the ids of an ACL as the branch stores them */
	_cleanup_free_ char *stored = NULL;
	if (size && sfs_idmap_acl_name(fs, name)) {
		if (!(stored = malloc(size)))
			return -ENOMEM;
		memcpy(stored, value, size);
		r = sfs_idmap_acl(fs, name, stored, size, /* to_shown= */ false);
		if (r < 0)
			return r;
		value = stored;
	}
	r = sfs_copy_up(fs, node, true);
	if (r < 0)
		return r;
	r = abs_path(fs, node, path, sizeof(path));
	if (r < 0)
		return r;
	if (r)
		r = setxattr(path, name, value, size, flags);
	else
		r = lsetxattr(path, name, value, size, flags);
	return r < 0 ? -errno : 0;
}

int sfs_removexattr(struct sfs_fs *fs, struct sfs_node *node, const char *name)
{
	char path[PATH_MAX];
	int r;

	if (sfs_xattr_hidden(name))
		return -ENODATA;
	if (!fs->rw)
		return -EROFS;
	r = sfs_copy_up(fs, node, true);
	if (r < 0)
		return r;
	r = abs_path(fs, node, path, sizeof(path));
	if (r < 0)
		return r;
	r = r ? removexattr(path, name) : lremovexattr(path, name);
	return r < 0 ? -errno : 0;
}

/*
 * Copies every attribute of the object at path @src to the one at @dst, neither followed if a
 * symlink (but @src when @src_follow, for a /proc/self/fd link); for objects that cannot be
 * opened. Ones the destination refuses are skipped, as Linux refuses user.* on symlinks.
 */
int sfs_copy_xattrs_path(const char *src, bool src_follow, const char *dst)
{
	ssize_t n = src_follow ? listxattr(src, NULL, 0) : llistxattr(src, NULL, 0);

	if (n <= 0)
		return n < 0 && errno != ENOTSUP ? -errno : 0;
	_cleanup_free_ char *names = malloc(n);
	if (!names)
		return -ENOMEM;
	n = src_follow ? listxattr(src, names, n) : llistxattr(src, names, n);
	if (n < 0)
		return -errno;
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (sfs_xattr_hidden(p))
			continue;
		ssize_t vl = src_follow ? getxattr(src, p, NULL, 0) : lgetxattr(src, p, NULL, 0);
		if (vl < 0)
			continue;
		_cleanup_free_ char *v = malloc(vl ? vl : 1);
		if (!v)
			return -ENOMEM;
		vl = src_follow ? getxattr(src, p, v, vl) : lgetxattr(src, p, v, vl);
		if (vl < 0)
			continue;
		if (lsetxattr(dst, p, v, vl, 0) < 0 && errno != ENOTSUP && errno != EPERM)
			return -errno;
	}
	return 0;
}

/* Copies every attribute of @src_fd to @dst_fd; ones the destination refuses are skipped. */
int sfs_copy_xattrs(int src_fd, int dst_fd)
{
	ssize_t n = flistxattr(src_fd, NULL, 0);

	if (n <= 0)
		return n < 0 && errno != ENOTSUP ? -errno : 0;
	_cleanup_free_ char *names = malloc(n);
	if (!names)
		return -ENOMEM;
	n = flistxattr(src_fd, names, n);
	if (n < 0)
		return -errno;
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		if (sfs_xattr_hidden(p))
			continue;
		ssize_t vl = fgetxattr(src_fd, p, NULL, 0);
		if (vl < 0)
			continue;
		_cleanup_free_ char *v = malloc(vl ? vl : 1);
		if (!v)
			return -ENOMEM;
		vl = fgetxattr(src_fd, p, v, vl);
		if (vl < 0)
			continue;
		if (fsetxattr(dst_fd, p, v, vl, 0) < 0 && errno != ENOTSUP && errno != EPERM)
			return -errno;
	}
	return 0;
}
