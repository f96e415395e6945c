/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mount counts (Docker's RefCounter), kept in .strata/mounts/<id> so that every
 * process that opens the store shares them, and Get/Put on top of them.
 * A count is read and written only under the id's exclusive lock.
 */
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "fsutil.h"
#include "ids.h"
#include "strata-private.h"

int refs_get_locked(struct strata *s, const char *id)
{
	_cleanup_free_ char *data = NULL;
	char *end;
	long v;
	int r;

	if (s->mounts_fd < 0)
		return 0;
	r = read_file_at(s->mounts_fd, id, &data, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	errno = 0;
	v = strtol(data, &end, 10);
	if (errno || end == data || v < 0 || v > INT_MAX)
		return 0; /* A torn or foreign file counts as "not held". */
	return (int)v;
}

int refs_set_locked(struct strata *s, const char *id, int count)
{
	char buf[32];
	int n;

	if (s->mounts_fd < 0 || s->tmp_fd < 0)
		return -EROFS;
	if (count <= 0) {
		if (unlinkat(s->mounts_fd, id, 0) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", count);
	return write_file_atomic_at(s->tmp_fd, s->mounts_fd, id, buf, (size_t)n, 0600);
}

_public_ int strata_mount_count(struct strata *s, const char *id)
{
	int fd, r;

	if (!id_valid(id))
		return -EINVAL;
	if (s->locks_fd < 0)
		return refs_get_locked(s, id);
	fd = store_lock(s, id, LOCK_SH);
	if (fd < 0)
		return fd;
	r = refs_get_locked(s, id);
	close(fd);
	return r;
}

_public_ int strata_mount_get(struct strata *s, const char *id, const char *mount_label,
			      char **ret_path, struct strata_error **err)
{
	_cleanup_strv_free_ char **parents = NULL;
	_cleanup_close_ int lock = -1;
	int r, count;

	r = strata_check_id("mount", id, err);
	if (r < 0)
		return r;
	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	lock = store_lock(s, id, LOCK_EX);
	if (lock < 0)
		return strata_fail(err, lock, "mount '%s': cannot lock: %s", id, strerror(-lock));
	r = layer_read_parents(s, id, &parents);
	if (r == -ENOENT)
		return strata_fail(err, ENOENT, "mount '%s': no such layer", id);
	if (r < 0)
		return strata_fail(err, r, "mount '%s': cannot read its parents: %s", id,
				   strerror(-r));
	if (parents[0])
		return strata_fail(err, EOPNOTSUPP,
				   "mount '%s': no union mount engine for a layer with parents", id);
	count = refs_get_locked(s, id);
	if (count < 0)
		return strata_fail(err, count, "mount '%s': cannot read its count: %s", id,
				   strerror(-count));
	char *path = layer_diff_path(s, id);
	if (!path)
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);
	r = refs_set_locked(s, id, count + 1);
	if (r < 0) {
		free(path);
		return strata_fail(err, r, "mount '%s': cannot store its count: %s", id,
				   strerror(-r));
	}
	*ret_path = path;
	return 0;
}

_public_ int strata_mount_put(struct strata *s, const char *id, struct strata_error **err)
{
	_cleanup_close_ int lock = -1;
	int r, count;

	r = strata_check_id("unmount", id, err);
	if (r < 0)
		return r;
	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	lock = store_lock(s, id, LOCK_EX);
	if (lock < 0)
		return strata_fail(err, lock, "unmount '%s': cannot lock: %s", id,
				   strerror(-lock));
	if (!layer_exists(s, id))
		return strata_fail(err, ENOENT, "unmount '%s': no such layer", id);
	count = refs_get_locked(s, id);
	if (count < 0)
		return strata_fail(err, count, "unmount '%s': cannot read its count: %s", id,
				   strerror(-count));
	if (count == 0)
		return strata_fail(err, EINVAL, "unmount '%s': layer is not mounted", id);
	r = refs_set_locked(s, id, count - 1);
	if (r < 0)
		return strata_fail(err, r, "unmount '%s': cannot store its count: %s", id,
				   strerror(-r));
	return 0;
}

_public_ int strata_cleanup(struct strata *s, struct strata_error **err)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r, ret = 0;

	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	int fd = fcntl(s->mounts_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return strata_fail(err, errno, "cleanup: cannot read '%s/" STATE_DIR "/mounts': %m",
				   s->root);
	}
	while ((de = readdir(d))) {
		if (!id_valid(de->d_name))
			continue;
		_cleanup_close_ int lock = store_lock(s, de->d_name, LOCK_EX);
		if (lock < 0) {
			if (!ret)
				ret = strata_fail(err, lock, "cleanup '%s': cannot lock: %s",
						  de->d_name, strerror(-lock));
			continue;
		}
		r = refs_set_locked(s, de->d_name, 0);
		if (r < 0 && !ret)
			ret = strata_fail(err, r, "cleanup '%s': %s", de->d_name, strerror(-r));
	}
	return ret;
}
