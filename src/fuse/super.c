// SPDX-License-Identifier: Apache-2.0
/* Branches: parsing the aufs and overlay spellings, opening them, the scratch directory. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fsutil.h"
#include "sfs.h"

/* Where the copy-up temporaries live in a br= rw branch (aufs keeps its orphans there). */
#define SFS_WORK_DIR WH_ORPHAN_DIR
/* in the scratch directory while a volatile mount uses the rw branch */
#define SFS_VOLATILE_MARK "volatile"

static void seterr(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int add_branch(struct sfs_fs *fs, const char *dir, size_t dirlen, const char *perm,
		      char *err, size_t errlen)
{
	_cleanup_free_ char *raw = strndup(dir, dirlen);
	_cleanup_free_ char *real = NULL;
	struct sfs_branch *nb, *b;
	struct stat st;
	bool rw = false, wh = false;

	if (!raw)
		return -ENOMEM;
	if (!*raw) {
		seterr(err, errlen, "empty branch in the branch list");
		return -EINVAL;
	}
	if (!perm) {
		/* aufs: without a permission, the first branch is rw and the rest ro */
		rw = fs->nbr == 0;
		wh = rw;
	} else if (!strcmp(perm, "rw") || !strcmp(perm, "rw+nolwh")) {
		rw = wh = true;
	} else if (!strcmp(perm, "ro") || !strcmp(perm, "rr")) {
		wh = false;
	} else if (!strcmp(perm, "ro+wh") || !strcmp(perm, "rr+wh")) {
		wh = true;
	} else {
		seterr(err, errlen, "branch '%s': unknown permission '%s'", raw, perm);
		return -EINVAL;
	}
	if (rw && fs->nbr > 0) {
		seterr(err, errlen, "branch '%s': only the top branch may be rw", raw);
		return -EINVAL;
	}
	real = realpath(raw, NULL);
	if (!real) {
		int r = -errno;
		seterr(err, errlen, "branch '%s': %s", raw, strerror(errno));
		return r;
	}
	_cleanup_close_ int fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;
		seterr(err, errlen, "branch '%s': %s", raw, strerror(errno));
		return r;
	}
	if (rw && access(real, W_OK) < 0) {
		int r = -errno;
		seterr(err, errlen, "branch '%s': not writable: %s", raw, strerror(errno));
		return r;
	}
	nb = realloc(fs->br, (fs->nbr + 1) * sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	fs->br = nb;
	b = &fs->br[fs->nbr++];
	*b = (struct sfs_branch){ .path = TAKE_PTR(real), .fd = TAKE_FD(fd), .rw = rw, .wh = wh,
				  .dev = st.st_dev };
	return 0;
}

/* One "dir[=perm]" element; the permission is after the last '='. */
static int add_branch_spec(struct sfs_fs *fs, const char *s, size_t len, char *err, size_t errlen)
{
	const char *eq = memrchr(s, '=', len);
	char perm[32];

	if (eq && (size_t)(s + len - eq - 1) < sizeof(perm)) {
		size_t plen = s + len - eq - 1;
		memcpy(perm, eq + 1, plen);
		perm[plen] = 0;
		return add_branch(fs, s, eq - s, perm, err, errlen);
	}
	return add_branch(fs, s, len, NULL, err, errlen);
}

/*
 * Branch elements separated by @sep. A file (@sep '\n') may have blank and '#' lines; in an
 * option an empty element is a mistake (a doubled ':'), which would silently drop a branch.
 */
static int parse_list(struct sfs_fs *fs, const char *spec, char sep, char *err, size_t errlen)
{
	const char *p = spec;
	unsigned idx = 0;

	for (;;) {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int r;

		if (!*p && (sep == '\n' || p == spec))
			break; /* the end of a file, or an empty option (no branches, said later) */
		idx++;
		while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' '))
			len--;
		if (len == 0 && sep != '\n') {
			seterr(err, errlen, "option 'br': element %u of '%s' is empty", idx, spec);
			return -EINVAL;
		}
		if (len > 0 && p[0] != '#') {
			r = add_branch_spec(fs, p, len, err, errlen);
			if (r < 0)
				return r;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

static int open_work_dir(struct sfs_fs *fs, const char *workdir, char *err, size_t errlen)
{
	int r;

	if (workdir) {
		_cleanup_free_ char *real = realpath(workdir, NULL);
		struct stat st;

		if (!real || stat(real, &st) < 0) {
			seterr(err, errlen, "workdir '%s': %s", workdir, strerror(errno));
			return -errno;
		}
		if (st.st_dev != fs->br[0].dev) {
			seterr(err, errlen, "workdir '%s': not on the file system of upperdir",
			       workdir);
			return -EXDEV;
		}
		r = mkdirat_exact(AT_FDCWD, real, 0700, geteuid(), getegid());
		(void)r;
		fs->work_path = TAKE_PTR(real);
		/* overlayfs keeps its own "work" inside: use a subdirectory of ours */
		r = asprintf(&real, "%s/strata", fs->work_path);
		if (r < 0)
			return -ENOMEM;
		free(fs->work_path);
		fs->work_path = TAKE_PTR(real);
	} else {
		if (asprintf(&fs->work_path, "%s/%s", fs->br[0].path, SFS_WORK_DIR) < 0)
			return -ENOMEM;
	}
	r = mkdirat_exact(AT_FDCWD, fs->work_path, 0700, geteuid(), getegid());
	if (r < 0 && r != -EEXIST) {
		seterr(err, errlen, "scratch directory '%s': %s", fs->work_path, strerror(-r));
		return r;
	}
	fs->work_fd = open(fs->work_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fs->work_fd < 0) {
		seterr(err, errlen, "scratch directory '%s': %s", fs->work_path, strerror(errno));
		return -errno;
	}
	/*
	 * A volatile mount syncs nothing: if it did not end cleanly, files it wrote may be
	 * empty or cut short on disk. Like overlayfs, refuse the branch until someone who
	 * knows removes the mark (and, likely, the branch).
	 */
	struct stat st;
	if (fstatat(fs->work_fd, SFS_VOLATILE_MARK, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		seterr(err, errlen,
		       "rw branch '%s': a volatile mount of it did not end cleanly, its files "
		       "may be incomplete (remove '%s/%s' to use it anyway)",
		       fs->br[0].path, fs->work_path, SFS_VOLATILE_MARK);
		return -EINVAL;
	}
	/* leftovers of a crash: temporaries never renamed into place */
	_cleanup_closedir_ DIR *d = fdopendir(dup(fs->work_fd));
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rm_rf_at(fs->work_fd, de->d_name);
	}
	return 0;
}

/* Before a volatile mount serves its first request: the rw branch is marked. */
int sfs_volatile_begin(struct sfs_fs *fs)
{
	if (!fs->nosync || !fs->rw || fs->work_fd < 0)
		return 0;
	if (mkdirat(fs->work_fd, SFS_VOLATILE_MARK, 0700) < 0 || fsync(fs->work_fd) < 0) {
		fprintf(stderr, "strata-fuse: scratch directory '%s': %s\n", fs->work_path,
			strerror(errno));
		return -errno;
	}
	fs->volatile_marked = true;
	return 0;
}

/* At a clean end of a volatile mount: once the rw branch's file system is synced, its mark goes. */
int sfs_volatile_end(struct sfs_fs *fs)
{
	if (!fs->volatile_marked)
		return 0;
	/* the scratch directory is on the rw branch's file system, and no O_PATH fd */
	if (syncfs(fs->work_fd) < 0 || unlinkat(fs->work_fd, SFS_VOLATILE_MARK, AT_REMOVEDIR) < 0) {
		fprintf(stderr, "strata-fuse: rw branch '%s': %s: it stays marked volatile\n",
			fs->br[0].path, strerror(errno));
		return -errno;
	}
	return 0;
}

int sfs_setup(struct sfs_fs *fs, const char *brspec, const char *brfile, const char *lowerdir,
	      const char *upperdir, const char *workdir, char *err, size_t errlen)
{
	int r;

	if (!!brspec + !!brfile + !!(lowerdir || upperdir) > 1) {
		seterr(err, errlen, "option 'br', 'brfile' and 'lowerdir' exclude each other");
		return -EINVAL;
	}
	if (brspec) {
		r = parse_list(fs, brspec, ':', err, errlen);
	} else if (brfile) {
		_cleanup_free_ char *data = NULL;
		size_t len;

		r = read_file_at(AT_FDCWD, brfile, &data, &len);
		if (r < 0) {
			seterr(err, errlen, "option 'brfile': '%s': %s", brfile, strerror(-r));
			return r;
		}
		r = parse_list(fs, data, '\n', err, errlen);
	} else if (lowerdir) {
		if (upperdir) {
			if (!workdir) {
				seterr(err, errlen, "option 'upperdir' needs 'workdir'");
				return -EINVAL;
			}
			r = add_branch(fs, upperdir, strlen(upperdir), "rw", err, errlen);
			if (r < 0)
				return r;
		}
		/* overlay's lower layers all honour whiteouts */
		const char *p = lowerdir;
		r = 0;
		while (*p && r == 0) {
			const char *end = strchr(p, ':');
			size_t len = end ? (size_t)(end - p) : strlen(p);
			r = add_branch(fs, p, len, "ro+wh", err, errlen);
			p = end ? end + 1 : p + len;
		}
	} else if (upperdir) {
		seterr(err, errlen, "option 'upperdir' needs 'lowerdir'");
		return -EINVAL;
	} else {
		seterr(err, errlen, "no branches: give -o br=DIR=rw:DIR=ro+wh..., brfile=PATH "
				    "or lowerdir=...");
		return -EINVAL;
	}
	if (r < 0)
		return r;
	if (fs->nbr == 0) {
		seterr(err, errlen, "no branches given");
		return -EINVAL;
	}

	fs->rw = fs->br[0].rw;
	fs->single_fs = true;
	for (int i = 0; i < fs->nbr; i++) {
		fs->br[i].fsidx = i;
		for (int j = 0; j < i; j++) {
			if (fs->br[j].dev == fs->br[i].dev) {
				fs->br[i].fsidx = fs->br[j].fsidx;
				break;
			}
		}
		if (fs->br[i].fsidx != 0)
			fs->single_fs = false;
	}
	/* a name must leave room for its whiteout in the top branch, as statfs tells */
	struct statvfs sv;
	fs->name_max = NAME_MAX - WH_PREFIX_LEN;
	if (fstatvfs(fs->br[0].fd, &sv) == 0 && sv.f_namemax > WH_PREFIX_LEN)
		fs->name_max = sv.f_namemax - WH_PREFIX_LEN;
	fs->work_fd = -1;
	fs->plnk_fd = -1;
	fs->wh_base_dfd = -1;
	if (fs->rw) {
		r = open_work_dir(fs, upperdir ? workdir : NULL, err, errlen);
		if (r < 0)
			return r;
		/*
		 * As aufs does, whiteouts are hard links of one empty file: making one is then a
		 * link, not an inode. It lives at the branch root, or in the workdir for the
		 * overlay spelling, whose upper layer holds nothing but the view's files.
		 */
		sfs_plnk_open(fs);
		int dfd = upperdir ? fs->work_fd : fs->br[0].fd;
		if (mknodat(dfd, WH_BASE, S_IFREG | 0444, 0) == 0 || errno == EEXIST)
			fs->wh_base_dfd = dfd;
	}
	return 0;
}

int sfs_do_mkdirat(int dfd, const char *path, mode_t mode)
{
	return mkdirat(dfd, path, mode) < 0 ? -errno : 0;
}

int sfs_do_mknodat(int dfd, const char *path, mode_t mode, dev_t rdev)
{
	return mknodat(dfd, path, mode, rdev) < 0 ? -errno : 0;
}

int sfs_do_symlinkat(const char *target, int dfd, const char *path)
{
	return symlinkat(target, dfd, path) < 0 ? -errno : 0;
}

int sfs_do_linkat(int odfd, const char *opath, int ndfd, const char *npath)
{
	return linkat(odfd, opath, ndfd, npath, 0) < 0 ? -errno : 0;
}

int sfs_do_unlinkat(int dfd, const char *path, int flags)
{
	return unlinkat(dfd, path, flags) < 0 ? -errno : 0;
}

int sfs_do_renameat(int odfd, const char *opath, int ndfd, const char *npath, unsigned flags)
{
	return renameat2(odfd, opath, ndfd, npath, flags) < 0 ? -errno : 0;
}

int sfs_do_openat(int dfd, const char *path, int flags, mode_t mode)
{
	int fd = openat(dfd, path, flags | O_CLOEXEC, mode);
	return fd < 0 ? -errno : fd;
}

int sfs_do_fchownat(int dfd, const char *path, uid_t uid, gid_t gid, int flags)
{
	return fchownat(dfd, path, uid, gid, flags) < 0 ? -errno : 0;
}

int sfs_do_fchmodat(int dfd, const char *path, mode_t mode)
{
	return fchmodat(dfd, path, mode, 0) < 0 ? -errno : 0;
}
