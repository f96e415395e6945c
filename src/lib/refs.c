/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mount counts (Docker's RefCounter), kept in .strata/mounts/<id> so that every
 * process that opens the store shares them, and Get/Put on top of them.
 * A count is read and written only under the id's exclusive lock.
 *
 * A base layer is never mounted: Get returns its diff dir and only counts. A
 * layer with parents is mounted at mnt/<id> by the store's engine on the first
 * Get and unmounted by the last Put. What the kernel says wins over the count:
 * a mount left from an earlier run is adopted, a dead FUSE mount (its daemon
 * killed) is detached and made again.
 */
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "engine.h"
#include "fsutil.h"
#include "layerio.h"
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

enum mount_state { MS_NONE, MS_OURS, MS_DEAD, MS_FOREIGN };

/* True when @m is our engine's mount of layer @id, not some other layer's or program's. */
static bool mount_is_ours(const struct strata_engine *e, const char *id, const struct mount_entry *m)
{
	if (!e || strcmp(m->fstype, e->fstype))
		return false;
	if (!e->source_prefix)
		return true;
	size_t n = strlen(e->source_prefix);
	return m->source && !strncmp(m->source, e->source_prefix, n) && !strcmp(m->source + n, id);
}

/* What is at @target: nothing, our engine's live mount of @id, a dead FUSE mount, or something else. */
static enum mount_state probe_target(struct strata *s, const char *id, const char *target)
{
	struct mount_entry m = { 0 };
	struct statfs sfs;
	enum mount_state state = MS_NONE;

	/* statfs, not stat: the kernel answers stat from its attribute cache even for a dead FUSE mount. */
	if (statfs(target, &sfs) < 0 && errno == ENOTCONN)
		return MS_DEAD;
	if (mountinfo_find(target, &m) > 0) {
		state = mount_is_ours(s->engine, id, &m) ? MS_OURS : MS_FOREIGN;
	}
	mount_entry_clear(&m);
	return state;
}

/*
 * Lazily detaches the dead mount of @id so that the mount point can be used again, and
 * lets the engine drop what it kept for it.
 */
static int detach_dead(struct strata *s, const char *id, const char *target)
{
	if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL)
		return -errno;
	if (s->engine->forget)
		s->engine->forget(s, id);
	return 0;
}

static int engine_mount_locked(struct strata *s, const char *op, const char *id,
			       const char *target, char **parents, const char *label,
			       struct strata_error **err)
{
	_cleanup_free_ char *rw = layer_diff_path(s, id);
	_cleanup_strv_free_ char **ro = NULL;
	size_t n = 0;

	if (!s->engine)
		return strata_fail(err, EOPNOTSUPP, "%s '%s': no union mount engine", op, id);
	while (parents[n])
		n++;
	if (!rw || !(ro = calloc(n + 1, sizeof(char *))))
		return strata_fail(err, ENOMEM, "%s '%s': out of memory", op, id);
	for (size_t i = 0; i < n; i++)
		if (!(ro[i] = layer_diff_path(s, parents[i])))
			return strata_fail(err, ENOMEM, "%s '%s': out of memory", op, id);
	return s->engine->mount(s, id, target, rw, ro, label, err);
}

_public_ int strata_mount_get(struct strata *s, const char *id, const char *mount_label,
			      char **ret_path, struct strata_error **err)
{
	return mount_get(s, id, mount_label, /* for_write= */ true, ret_path, err);
}

int mount_get(struct strata *s, const char *id, const char *mount_label, bool for_write,
	      char **ret_path, struct strata_error **err)
{
	_cleanup_strv_free_ char **parents = NULL;
	_cleanup_close_ int lock = -1;
	_cleanup_free_ char *path = NULL;
	bool mounted_now = false;
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
	if (r == -ENOENT) {
		store_unlock_unknown(s, id, TAKE_FD(lock));
		return strata_fail(err, ENOENT, "mount '%s': no such layer", id);
	}
	if (r < 0)
		return strata_fail(err, r, "mount '%s': cannot read its parents: %s", id,
				   strerror(-r));
	count = refs_get_locked(s, id);
	if (count < 0)
		return strata_fail(err, count, "mount '%s': cannot read its count: %s", id,
				   strerror(-count));
	path = parents[0] ? layer_mnt_path(s, id) : layer_diff_path(s, id);
	if (!path)
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);

	if (parents[0]) {
		switch (probe_target(s, id, path)) {
		case MS_OURS:
			if (count == 0)
				count = 1; /* Left from an earlier run: adopt it, as Docker does. */
			break;
		case MS_DEAD:
			r = detach_dead(s, id, path);
			if (r < 0)
				return strata_fail(err, r, "mount '%s': cannot detach the dead mount at '%s': %s",
						   id, path, strerror(-r));
			__attribute__((fallthrough)); /* mount afresh */
		case MS_NONE:
			r = engine_mount_locked(s, "mount", id, path, parents, mount_label, err);
			if (r < 0)
				return r;
			mounted_now = true;
			break;
		case MS_FOREIGN:
			return strata_fail(err, EBUSY, "mount '%s': '%s' is already a mount point of another kind",
					   id, path);
		}
	}
	if (for_write) {
		/* Its files may change from now on: the byte-exact record would lie. */
		r = tarsplit_remove(s, id);
		if (r < 0) {
			if (mounted_now)
				(void)s->engine->unmount(s, id, path, NULL);
			return strata_fail(err, r, "mount '%s': cannot drop its tar-split record: %s",
					   id, strerror(-r));
		}
	}
	r = refs_set_locked(s, id, count + 1);
	if (r < 0) {
		if (mounted_now)
			(void)s->engine->unmount(s, id, path, NULL);
		return strata_fail(err, r, "mount '%s': cannot store its count: %s", id,
				   strerror(-r));
	}
	*ret_path = TAKE_PTR(path);
	return 0;
}

/* Takes down whatever is mounted at mnt/<id>. The caller holds the id's lock. */
static int unmount_locked(struct strata *s, const char *op, const char *id, const char *target,
			  struct strata_error **err)
{
	int r;

	switch (probe_target(s, id, target)) {
	case MS_NONE:
		return 0;
	case MS_DEAD:
		r = detach_dead(s, id, target);
		if (r < 0)
			return strata_fail(err, r, "%s '%s': cannot detach the dead mount at '%s': %s",
					   op, id, target, strerror(-r));
		return 0;
	case MS_OURS:
		return s->engine->unmount(s, id, target, err);
	case MS_FOREIGN:
		r = unmount_retry(target, 0);
		if (r < 0)
			return strata_fail(err, r, "%s '%s': cannot unmount '%s': %s", op, id, target,
					   strerror(-r));
		return 0;
	}
	return 0;
}

int mount_release_all_locked(struct strata *s, const char *id, struct strata_error **err)
{
	_cleanup_free_ char *target = layer_mnt_path(s, id);
	int r;

	if (!target)
		return strata_fail(err, ENOMEM, "rm '%s': out of memory", id);
	r = unmount_locked(s, "rm", id, target, err);
	if (r < 0)
		return r;
	return refs_set_locked(s, id, 0);
}

_public_ int strata_mount_put(struct strata *s, const char *id, struct strata_error **err)
{
	_cleanup_strv_free_ char **parents = NULL;
	_cleanup_close_ int lock = -1;
	_cleanup_free_ char *target = NULL;
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
	r = layer_read_parents(s, id, &parents);
	if (r == -ENOENT) {
		store_unlock_unknown(s, id, TAKE_FD(lock));
		return strata_fail(err, ENOENT, "unmount '%s': no such layer", id);
	}
	if (r < 0)
		return strata_fail(err, r, "unmount '%s': cannot read its parents: %s", id,
				   strerror(-r));
	count = refs_get_locked(s, id);
	if (count < 0)
		return strata_fail(err, count, "unmount '%s': cannot read its count: %s", id,
				   strerror(-count));
	if (!(target = layer_mnt_path(s, id)))
		return strata_fail(err, ENOMEM, "unmount '%s': out of memory", id);

	enum mount_state state = parents[0] ? probe_target(s, id, target) : MS_NONE;
	if (count == 0) {
		/* Not ours to count, but left mounted by an earlier run: take it down. */
		if (state == MS_OURS || state == MS_DEAD)
			return unmount_locked(s, "unmount", id, target, err);
		return strata_fail(err, EINVAL, "unmount '%s': layer is not mounted", id);
	}
	if (parents[0]) {
		if (count == 1 || state == MS_DEAD) {
			r = unmount_locked(s, "unmount", id, target, err);
			if (r < 0)
				return r; /* Still mounted: the count stays. */
		}
		if (count > 1 && state == MS_DEAD) {
			/* Others still use it: give them their view back. */
			r = engine_mount_locked(s, "unmount", id, target, parents, NULL, err);
			if (r < 0)
				return r;
		}
	}
	r = refs_set_locked(s, id, count - 1);
	if (r < 0)
		return strata_fail(err, r, "unmount '%s': cannot store its count: %s", id,
				   strerror(-r));
	return 0;
}

int mount_count_dead(struct strata *s)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int n = 0;

	if (s->mnt_fd < 0 || !(d = opendir_at(s->mnt_fd, ".")))
		return 0;
	while ((de = readdir(d))) {
		struct statfs sfs;
		if (de->d_name[0] == '.')
			continue;
		int mfd = openat(s->mnt_fd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (mfd < 0) {
			n += errno == ENOTCONN;
			continue;
		}
		if (fstatfs(mfd, &sfs) < 0 && errno == ENOTCONN)
			n++;
		close(mfd);
	}
	return n;
}

_public_ int strata_cleanup(struct strata *s, struct strata_error **err)
{
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_strv_free_ char **rest = NULL;
	struct dirent *de;
	int r, ret = 0;

	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	/* First every layer's own mount, through its engine and under its lock. */
	if (!(d = opendir_at(s->mnt_fd, ".")))
		return strata_fail(err, errno, "cleanup: cannot read '%s/mnt': %m", s->root);
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
		_cleanup_free_ char *target = layer_mnt_path(s, de->d_name);
		if (!target)
			return strata_fail(err, ENOMEM, "cleanup: out of memory");
		r = unmount_locked(s, "cleanup", de->d_name, target, ret ? NULL : err);
		if (r < 0 && !ret)
			ret = r;
	}
	/* Then every count, mounted or not: nobody holds a layer after a cleanup. */
	closedir(TAKE_PTR(d));
	if ((d = opendir_at(s->mounts_fd, "."))) {
		while ((de = readdir(d))) {
			if (!id_valid(de->d_name))
				continue;
			_cleanup_close_ int lock = store_lock(s, de->d_name, LOCK_EX);
			if (lock >= 0)
				(void)refs_set_locked(s, de->d_name, 0);
		}
	}
	/* Last, anything else mounted below the root (Docker's RecursiveUnmount), deepest first. */
	r = mountinfo_list_under(s->root, &rest);
	for (char **p = rest; r == 0 && *p; p++) {
		if (!strcmp(*p, s->root))
			continue; /* The root itself is the user's, not ours. */
		int u = unmount_retry(*p, MNT_DETACH);
		if (u < 0 && !ret)
			ret = strata_fail(err, u, "cleanup: cannot unmount '%s': %s", *p, strerror(-u));
	}
	return ret;
}
