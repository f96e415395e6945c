/* SPDX-License-Identifier: Apache-2.0 */
/* Opening a store: the aufs layout on disk, stale-entry cleanup, status. */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "fsutil.h"
#include "engine.h"
#include "ids.h"
#include "strata-private.h"

/* Modes of the seed: the root and its three directories are 0710. */
#define ROOT_MODE 0710
#define STATE_MODE 0700

static int open_dir_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? -errno : fd;
}

/* Like mkdir -p for an absolute path; only the last component gets @mode and owner. */
static int mkdir_parents(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	_cleanup_free_ char *p = strdup(path);
	int r;

	if (!p)
		return -ENOMEM;
	for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*slash = '/';
	}
	r = mkdirat_exact(AT_FDCWD, p, mode, uid, gid);
	return r == -EEXIST ? 0 : r;
}

static int fix_mode(int dfd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if ((st.st_uid != uid || st.st_gid != gid) &&
	    fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if ((st.st_mode & 07777) != mode && fchmodat(dfd, name, mode, 0) < 0)
		return -errno;
	return 0;
}

/* Deletes "<id>-removing" directories that an interrupted remove left in @fd. */
static void remove_stale(int fd)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	if (!(d = opendir_at(fd, ".")))
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if (!str_has_suffix(de->d_name, REMOVING_SUFFIX))
			continue;
		struct stat st;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		/* Best effort, as Docker: what cannot go now goes at the next open. */
		(void)rm_rf_at(fd, de->d_name);
	}
}

int store_ensure_state(struct strata *s, struct strata_error **err)
{
	static const struct {
		const char *name;
		size_t off;
	} subdirs[] = {
		{ "tmp", offsetof(struct strata, tmp_fd) },
		{ "locks", offsetof(struct strata, locks_fd) },
		{ "mounts", offsetof(struct strata, mounts_fd) },
	};
	int r;

	if (s->state_fd < 0) {
		r = mkdirat_exact(s->root_fd, STATE_DIR, STATE_MODE, (uid_t)-1, (gid_t)-1);
		if (r < 0 && r != -EEXIST)
			return strata_fail(err, r, "cannot create '%s/" STATE_DIR "': %s", s->root,
					   strerror(-r));
		r = open_dir_at(s->root_fd, STATE_DIR);
		if (r < 0)
			return strata_fail(err, r, "cannot open '%s/" STATE_DIR "': %s", s->root,
					   strerror(-r));
		s->state_fd = r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		int *fdp = (int *)((char *)s + subdirs[i].off);
		if (*fdp >= 0)
			continue;
		r = mkdirat_exact(s->state_fd, subdirs[i].name, STATE_MODE, (uid_t)-1, (gid_t)-1);
		if (r < 0 && r != -EEXIST)
			return strata_fail(err, r, "cannot create '%s/" STATE_DIR "/%s': %s",
					   s->root, subdirs[i].name, strerror(-r));
		r = open_dir_at(s->state_fd, subdirs[i].name);
		if (r < 0)
			return strata_fail(err, r, "cannot open '%s/" STATE_DIR "/%s': %s", s->root,
					   subdirs[i].name, strerror(-r));
		*fdp = r;
	}
	return 0;
}

static int resolve_root(const char *root, char **ret, struct strata_error **err)
{
	char buf[PATH_MAX];
	_cleanup_free_ char *abs = NULL;

	if (isempty(root))
		return strata_fail(err, EINVAL, "root: empty path");
	if (root[0] != '/') {
		if (!getcwd(buf, sizeof(buf)))
			return strata_fail(err, errno, "root '%s': cannot resolve: %m", root);
		if (asprintf(&abs, "%s/%s", buf, root) < 0)
			return -ENOMEM;
	} else if (!(abs = strdup(root)))
		return -ENOMEM;
	/* Canonical when it exists: the paths we hand out must be the kernel's. */
	if (realpath(abs, buf)) {
		free(abs);
		if (!(abs = strdup(buf)))
			return -ENOMEM;
	} else {
		size_t n = strlen(abs);
		while (n > 1 && abs[n - 1] == '/')
			abs[--n] = '\0';
	}
	if (strlen(abs) >= PATH_MAX - 2 * NAME_MAX - 16)
		return strata_fail(err, ENAMETOOLONG, "root '%s': path too long", root);
	*ret = TAKE_PTR(abs);
	return 0;
}

_public_ int strata_open(const struct strata_options *opts, struct strata **ret,
			 struct strata_error **err)
{
	static const char *const dirs[] = { "mnt", "diff", "layers" };
	const char *root = opts && opts->root ? opts->root : STRATA_DEFAULT_ROOT;
	unsigned flags = opts ? opts->flags : 0;
	struct strata *s;
	struct statfs sfs;
	bool created = false;
	int r;

	if (!ret)
		return strata_fail(err, EINVAL, "open: no place for the handle");
	s = calloc(1, sizeof(*s));
	if (!s)
		return strata_fail(err, ENOMEM, "open: out of memory");
	s->flags = flags;
	s->root_fd = s->layers_fd = s->diff_fd = s->mnt_fd = -1;
	s->state_fd = s->tmp_fd = s->locks_fd = s->mounts_fd = -1;
	s->root_uid = geteuid();
	s->root_gid = getegid();

	r = resolve_root(root, &s->root, err);
	if (r < 0)
		goto fail;

	struct stat st;
	if (lstat(s->root, &st) < 0) {
		if (errno != ENOENT) {
			r = strata_fail(err, errno, "root '%s': %m", s->root);
			goto fail;
		}
		r = mkdir_parents(s->root, ROOT_MODE, geteuid(), s->root_gid);
		if (r < 0) {
			r = strata_fail(err, r, "root '%s': cannot create: %s", s->root,
					strerror(-r));
			goto fail;
		}
		created = true;
	} else if (!S_ISDIR(st.st_mode)) {
		r = strata_fail(err, ENOTDIR, "root '%s': not a directory", s->root);
		goto fail;
	}
	s->root_fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->root_fd < 0) {
		r = strata_fail(err, errno, "root '%s': %m", s->root);
		goto fail;
	}
	{
		/* Recorded maps decide the owner of what we create below. */
		int sfd = open_dir_at(s->root_fd, STATE_DIR);
		if (sfd >= 0)
			s->state_fd = sfd;
		r = idmap_setup(s, opts, err);
		if (r < 0)
			goto fail;
	}
	if ((flags & STRATA_OPEN_FIX_MODES) &&
	    (r = fix_mode(AT_FDCWD, s->root, ROOT_MODE, geteuid(), s->root_gid)) < 0) {
		r = strata_fail(err, r, "root '%s': cannot set mode: %s", s->root, strerror(-r));
		goto fail;
	}

	bool readonly = (flags & STRATA_OPEN_READONLY) && !created;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		int *fdp = i == 0 ? &s->mnt_fd : i == 1 ? &s->diff_fd : &s->layers_fd;
		if (!readonly) {
			r = mkdirat_exact(s->root_fd, dirs[i], ROOT_MODE, geteuid(), s->root_gid);
			if (r == -EEXIST && (flags & STRATA_OPEN_FIX_MODES))
				r = fix_mode(s->root_fd, dirs[i], ROOT_MODE, geteuid(),
					     s->root_gid);
			if (r < 0 && r != -EEXIST) {
				r = strata_fail(err, r, "root '%s': cannot create '%s': %s",
						s->root, dirs[i], strerror(-r));
				goto fail;
			}
		}
		*fdp = open_dir_at(s->root_fd, dirs[i]);
		if (*fdp < 0 && !(readonly && *fdp == -ENOENT)) {
			r = strata_fail(err, *fdp, "root '%s': cannot open '%s': %s", s->root,
					dirs[i], strerror(-*fdp));
			goto fail;
		}
	}

	if (!readonly) {
		/* Writable: check now, so that every command fails early and alike. */
		if (faccessat(s->root_fd, "layers", W_OK, AT_EACCESS) < 0) {
			r = strata_fail(err, errno, "root '%s': not writable: %m", s->root);
			goto fail;
		}
		r = store_ensure_state(s, err);
		if (r < 0)
			goto fail;
		remove_stale(s->mnt_fd);
		remove_stale(s->diff_fd);
	} else if (s->state_fd >= 0) {
		s->mounts_fd = open_dir_at(s->state_fd, "mounts");
	}

	r = engine_select(s, opts ? opts->engine : NULL, err);
	if (r < 0)
		goto fail;

	if (fstatfs(s->root_fd, &sfs) == 0)
		s->backing_fs = strdup(fsmagic_name((unsigned long)sfs.f_type));
	else
		s->backing_fs = strdup("<unknown>");
	*ret = s;
	return 0;
fail:
	strata_close(s);
	return r;
}

_public_ void strata_close(struct strata *s)
{
	if (!s)
		return;
	int *fds[] = { &s->root_fd, &s->layers_fd, &s->diff_fd,  &s->mnt_fd,
		       &s->state_fd, &s->tmp_fd,   &s->locks_fd, &s->mounts_fd };
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(s->root);
	free(s->backing_fs);
	idmap_set_clear(&s->idmap);
	free(s);
}

_public_ const char *strata_root(const struct strata *s)
{
	return s ? s->root : NULL;
}

_public_ void strata_kv_free(struct strata_kv *kv, size_t n)
{
	if (!kv)
		return;
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

_public_ void strata_strv_free(char **v)
{
	strv_free(v);
}
