// SPDX-License-Identifier: Apache-2.0
/*
 * Copy-up: a lower object is copied to a temporary name in the scratch directory with its
 * data, mode, owner, times and xattrs, then renamed into place in the rw branch, so a crash
 * never leaves a half-copied file visible. Parents first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "hashset.h"
#include "sfs.h"

int sfs_make_temp(struct sfs_fs *fs, char *buf, size_t size)
{
	make_temp_name(buf, size, "cu");
	return 0;
}

void sfs_plnk_key(struct sfs_fs *fs, int bindex, const struct stat *st, char *buf, size_t size)
{
	snprintf(buf, size, "%lx_%lx", (unsigned long)st->st_dev, (unsigned long)st->st_ino);
}

static pthread_mutex_t plnk_lock = PTHREAD_MUTEX_INITIALIZER;

static int plnk_dir(struct sfs_fs *fs, bool create);

/* Opens the pseudo-link directory, making it on first use. */
int sfs_plnk_dir(struct sfs_fs *fs)
{
	return plnk_dir(fs, /* create= */ true);
}

/* Opens the pseudo-link directory if an earlier mount left one. */
void sfs_plnk_open(struct sfs_fs *fs)
{
	plnk_dir(fs, /* create= */ false);
}

static int plnk_dir(struct sfs_fs *fs, bool create)
{
	char path[PATH_MAX];
	int r = 0;

	if (__atomic_load_n(&fs->plnk_fd, __ATOMIC_ACQUIRE) >= 0)
		return 0;
	if (!fs->rw)
		return -EROFS;
	pthread_mutex_lock(&plnk_lock);
	if (fs->plnk_fd < 0) {
		size_t l = strlen(fs->work_path);
		if (l >= strlen(WH_ORPHAN_DIR) && !strcmp(fs->work_path + l - strlen(WH_ORPHAN_DIR),
							  WH_ORPHAN_DIR))
			snprintf(path, sizeof(path), "%s/%s", fs->br[0].path, WH_PLINK_DIR);
		else
			snprintf(path, sizeof(path), "%s-plnk", fs->work_path);
		if (!create && access(path, F_OK) < 0) {
			r = -ENOENT;
		} else if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			r = -errno;
		} else {
			int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				r = -errno;
			else
				__atomic_store_n(&fs->plnk_fd, fd, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&plnk_lock);
	return r;
}

static int copy_range_rw(int src, int dst, off_t off, off_t len)
{
	char buf[128 * 1024];

	while (len > 0) {
		ssize_t n = pread(src, buf, len < (off_t)sizeof(buf) ? (size_t)len : sizeof(buf), off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(dst, buf + done, n - done, off + done);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			done += w;
		}
		off += n;
		len -= n;
	}
	return 0;
}

static int copy_range(int src, int dst, off_t off, off_t len)
{
	while (len > 0) {
		loff_t in = off, out = off;
		ssize_t n = copy_file_range(src, &in, dst, &out, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			    errno == EOPNOTSUPP)
				return copy_range_rw(src, dst, off, len);
			return -errno;
		}
		if (n == 0)
			break;
		off += n;
		len -= n;
	}
	return 0;
}

/* Copies @size bytes, leaving holes where the source has them. */
static int copy_data(int src, int dst, off_t size)
{
	off_t off = 0;
	int r;

	while (off < size) {
		off_t data = lseek(src, off, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* a hole up to the end */
			return copy_range(src, dst, off, size - off);
		}
		off_t hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			hole = size;
		r = copy_range(src, dst, data, hole - data);
		if (r < 0)
			return r;
		off = hole;
	}
	if (ftruncate(dst, size) < 0)
		return -errno;
	return 0;
}

/*
 * Owner, xattrs, mode and times of @src (described by @st) onto @fd, in this order: chown
 * clears security.capability and the setuid and setgid bits, so the attributes and the mode
 * come after it, and the times last, since each change before them touches ctime only.
 */
static int copy_meta_fd(struct sfs_fs *fs, int src, int fd, const struct stat *st)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	int r;

	if (fs->is_root && fchown(fd, st->st_uid, st->st_gid) < 0)
		return -errno;
	r = sfs_copy_xattrs(src, fd);
	if (r < 0)
		return r;
	if (fchmod(fd, st->st_mode & 07777) < 0)
		return -errno;
	if (futimens(fd, ts) < 0)
		return -errno;
	return 0;
}

/*
 * Makes a copy of the object at @dfd/@path (described by @st) as @tmp in the scratch dir.
 * An empty @path stands for the object of the O_PATH fd @dfd itself.
 */
static int copy_to_temp(struct sfs_fs *fs, int dfd, const char *path, const struct stat *st,
			const char *tmp, bool with_data)
{
	int r;

	switch (st->st_mode & S_IFMT) {
	case S_IFREG: {
		_cleanup_close_ int src = -1;
		if (!path[0]) {
			char proc[64];
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
			src = open(proc, O_RDONLY | O_CLOEXEC);
		} else {
			src = openat(dfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (src < 0)
			return -errno;
		_cleanup_close_ int dst = sfs_do_openat(fs->work_fd, tmp,
							O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (dst < 0)
			return dst;
		if (with_data) {
			r = copy_data(src, dst, st->st_size);
			if (r < 0)
				return r;
		}
		r = copy_meta_fd(fs, src, dst, st);
		if (r < 0)
			return r;
		if (with_data && !fs->nosync && fsync(dst) < 0)
			return -errno;
		return 0;
	}
	case S_IFDIR: {
		_cleanup_close_ int src = openat(dfd, path,
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (src < 0)
			return -errno;
		r = sfs_do_mkdirat(fs->work_fd, tmp, 0700);
		if (r < 0)
			return r;
		_cleanup_close_ int dst = openat(fs->work_fd, tmp,
						 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dst < 0)
			return -errno;
		return copy_meta_fd(fs, src, dst, st);
	}
	case S_IFLNK: {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(dfd, path, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = 0;
		r = sfs_do_symlinkat(target, fs->work_fd, tmp);
		if (r < 0)
			return r;
		break;
	}
	default:
		r = sfs_do_mknodat(fs->work_fd, tmp, st->st_mode, st->st_rdev);
		if (r < 0)
			return r;
		break;
	}
	/* symlinks and special files: no fd to work on; the same order as copy_meta_fd() */
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	char spath[PATH_MAX], dpath[PATH_MAX];
	if (fs->is_root) {
		r = sfs_do_fchownat(fs->work_fd, tmp, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
		if (r < 0)
			return r;
	}
	int ns = snprintf(spath, sizeof(spath), "/proc/self/fd/%d%s%s", dfd, path[0] ? "/" : "",
			  path);
	int nd = snprintf(dpath, sizeof(dpath), "/proc/self/fd/%d/%s", fs->work_fd, tmp);
	if (ns >= (int)sizeof(spath) || nd >= (int)sizeof(dpath))
		return -ENAMETOOLONG;
	r = sfs_copy_xattrs_path(spath, /* src_follow= */ !path[0], dpath);
	if (r < 0)
		return r;
	if (!S_ISLNK(st->st_mode)) {
		r = sfs_do_fchmodat(fs->work_fd, tmp, st->st_mode & 07777);
		if (r < 0)
			return r;
	}
	if (utimensat(fs->work_fd, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

static void remove_temp(struct sfs_fs *fs, const char *tmp)
{
	if (unlinkat(fs->work_fd, tmp, 0) < 0 && errno == EISDIR)
		rm_rf_at(fs->work_fd, tmp);
}

static int after_copy_up(struct sfs_fs *fs, struct sfs_node *node, const char *path)
{
	struct stat st;

	if (fstatat(fs->br[0].fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
		sfs_ino_remember(fs, st.st_ino, node->ino);
	node->bindex = 0;
	free(node->plnk);
	node->plnk = NULL;
	__atomic_add_fetch(&node->gen, 1, __ATOMIC_RELEASE);
	return 0;
}

static int copy_up_dir(struct sfs_fs *fs, struct sfs_node *node, const char *path)
{
	char tmp[NAME_MAX];
	struct stat st;
	int r;

	if (fstatat(fs->br[node->bindex].fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	sfs_make_temp(fs, tmp, sizeof(tmp));
	r = copy_to_temp(fs, fs->br[node->bindex].fd, path, &st, tmp, false);
	if (r == 0)
		r = sfs_do_renameat(fs->work_fd, tmp, fs->br[0].fd, path, 0);
	if (r < 0) {
		remove_temp(fs, tmp);
		return r;
	}
	int *nl = realloc(node->layers, (node->nlayers + 1) * sizeof(int));
	if (!nl)
		return -ENOMEM;
	memmove(nl + 1, nl, node->nlayers * sizeof(int));
	nl[0] = 0;
	node->layers = nl;
	node->nlayers++;
	return after_copy_up(fs, node, path);
}

/* The other names of a lower hard link that the kernel knows read the copy from now on. */
static void plnk_siblings(struct sfs_fs *fs, struct sfs_node *node, const char *key)
{
	pthread_mutex_lock(&fs->table_lock);
	for (size_t i = 0; i < fs->table_size; i++) {
		for (struct sfs_node *x = fs->table[i]; x; x = x->hnext) {
			if (x == node || x->ino != node->ino || x->type != node->type || x->plnk ||
			    x->bindex == 0)
				continue;
			x->plnk = strdup(key);
			__atomic_add_fetch(&x->gen, 1, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&fs->table_lock);
}

static void plnk_clear(struct sfs_fs *fs, const char *key)
{
	pthread_mutex_lock(&fs->table_lock);
	for (size_t i = 0; i < fs->table_size; i++) {
		for (struct sfs_node *x = fs->table[i]; x; x = x->hnext) {
			if (x->plnk && !strcmp(x->plnk, key)) {
				free(x->plnk);
				x->plnk = NULL;
				__atomic_add_fetch(&x->gen, 1, __ATOMIC_RELEASE);
			}
		}
	}
	pthread_mutex_unlock(&fs->table_lock);
}

/*
 * The names of a read-only branch's hard-linked files, by inode: a copy-up of one of them
 * links the others to the copy. One scan of the branch makes the index, the first time a
 * copy-up needs it, and it serves for the life of the mount: such a branch does not change.
 * A slot's name holds the inode's paths, each ended by a NUL, and then an empty one.
 */

/* Appends @path to the paths of @sl, which is marked used from its second path on. */
static int links_add(struct inode_slot *sl, const char *path)
{
	size_t len = 0, plen = strlen(path) + 1;

	if (sl->name) {
		const char *p = sl->name;
		while (*p)
			p += strlen(p) + 1;
		len = (size_t)(p - sl->name);
		sl->used = true;
	}
	char *n = realloc(sl->name, len + plen + 1);
	if (!n)
		return -ENOMEM;
	memcpy(n + len, path, plen);
	n[len + plen] = '\0';
	sl->name = n;
	return 0;
}

/* The regular files under @path (@len bytes of a PATH_MAX buffer) of branch @dfd into @all. */
static int links_scan(int dfd, char *path, size_t len, struct inode_set *all)
{
	int fd = openat(dfd, len ? path : ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* what cannot be read here, lookups cannot show either */
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		size_t nlen = strlen(de->d_name), at = len;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    wh_is_whiteout(de->d_name) || len + 1 + nlen >= PATH_MAX)
			continue;
		if (len)
			path[at++] = '/';
		memcpy(path + at, de->d_name, nlen + 1);
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat st;
			type = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 ?
				       IFTODT(st.st_mode) :
				       DT_UNKNOWN;
		}
		if (type == DT_DIR) {
			r = links_scan(dfd, path, at + nlen, all);
		} else if (type == DT_REG) {
			struct inode_slot *sl = inode_set_get(all, 0, de->d_ino);
			r = sl ? links_add(sl, path) : -ENOMEM;
		}
		path[len] = '\0';
	}
	return r;
}

static int links_index(struct sfs_fs *fs, int bindex)
{
	struct sfs_branch *br = &fs->br[bindex];
	struct inode_set all = { 0 };
	char path[PATH_MAX] = "";

	if (br->links)
		return 0;
	struct inode_set *links = calloc(1, sizeof(*links));
	int r = links ? links_scan(br->fd, path, 0, &all) : -ENOMEM;
	/* only the inodes of more than one name are kept */
	for (size_t i = 0; r == 0 && i < all.cap; i++) {
		struct inode_slot *sl = &all.slots[i];
		if (!sl->taken || !sl->used)
			continue;
		struct inode_slot *k = inode_set_get(links, 0, sl->ino);
		if (!k) {
			r = -ENOMEM;
			break;
		}
		k->name = TAKE_PTR(sl->name);
	}
	inode_set_clear(&all);
	if (r < 0) {
		if (links)
			inode_set_clear(links);
		free(links);
		return r;
	}
	br->links = links;
	return 0;
}

/* Paths in branch @bindex of regular files that are inode @st, but @skip. */
static int find_links(struct sfs_fs *fs, int bindex, const struct stat *st, const char *skip,
		      char ***paths, size_t *n)
{
	int r = links_index(fs, bindex);
	if (r < 0)
		return r;
	struct inode_slot *sl = inode_set_get(fs->br[bindex].links, 0, st->st_ino);
	if (!sl)
		return -ENOMEM;
	for (const char *p = sl->name; p && *p; p += strlen(p) + 1) {
		struct stat cst;
		if (!strcmp(p, skip) ||
		    fstatat(fs->br[bindex].fd, p, &cst, AT_SYMLINK_NOFOLLOW) < 0 ||
		    cst.st_ino != st->st_ino || cst.st_dev != st->st_dev)
			continue;
		char **nv = realloc(*paths, (*n + 1) * sizeof(char *));
		if (!nv)
			return -ENOMEM;
		*paths = nv;
		if (!(nv[*n] = strdup(p)))
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

/* The node for a path of the merged view, with a reference (sfs_node_forget(.., 1)). */
static int node_at(struct sfs_fs *fs, const char *path, struct sfs_node **ret)
{
	char buf[PATH_MAX];
	struct sfs_node *cur = &fs->root, *prev = NULL;
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		struct sfs_node *n;
		if (cur->type != S_IFDIR) {
			n = NULL;
		} else if (!(n = sfs_node_find_get(fs, cur, c))) {
			struct sfs_lookup lk;
			if (sfs_lookup_name(fs, cur, c, 0, &lk) == 0 && lk.found)
				n = sfs_node_attach(fs, cur, c, &lk);
			sfs_lookup_clear(&lk);
		}
		if (prev)
			sfs_node_forget(fs, prev, 1);
		if (!n)
			return -ENOENT;
		prev = cur = n;
	}
	*ret = cur;
	return cur == &fs->root ? -EISDIR : 0;
}

/*
 * Copies up the other names of the lower inode @st of branch @bindex that the merged view
 * shows: they become links of the copy at @path.
 */
static int link_siblings(struct sfs_fs *fs, int bindex, const struct stat *st, const char *path)
{
	char **paths = NULL;
	size_t n = 0;
	int r;

	r = find_links(fs, bindex, st, path, &paths, &n);
	for (size_t i = 0; i < n; i++) {
		struct sfs_node *sib;
		if (r == 0 && node_at(fs, paths[i], &sib) == 0) {
			if (sib->type == S_IFREG && sib->bindex == bindex && sib->plnk)
				r = sfs_copy_up(fs, sib, true);
			sfs_node_forget(fs, sib, 1);
		}
		free(paths[i]);
	}
	free(paths);
	return r;
}

static int copy_up_file(struct sfs_fs *fs, struct sfs_node *node, const char *path,
			bool with_data)
{
	char tmp[NAME_MAX], key[64];
	struct stat st;
	int r;

	if (node->plnk) {
		/* another name of this inode was copied up: become one more link to it */
		r = sfs_do_linkat(fs->plnk_fd, node->plnk, fs->br[0].fd, path);
		if (r < 0)
			return r;
		return after_copy_up(fs, node, path);
	}
	int dfd = fs->br[node->bindex].fd;
	if (fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	bool hardlinked = S_ISREG(st.st_mode) && st.st_nlink > 1;
	if (hardlinked) {
		r = sfs_plnk_dir(fs);
		if (r < 0)
			return r;
		sfs_plnk_key(fs, node->bindex, &st, key, sizeof(key));
		with_data = true; /* the other names will read this copy */
	}
	sfs_make_temp(fs, tmp, sizeof(tmp));
	r = copy_to_temp(fs, dfd, path, &st, tmp, with_data);
	if (r < 0)
		goto out_remove;
	if (hardlinked) {
		r = sfs_do_renameat(fs->work_fd, tmp, fs->plnk_fd, key, RENAME_NOREPLACE);
		if (r < 0 && r != -EEXIST)
			goto out_remove;
		if (r == -EEXIST)
			remove_temp(fs, tmp);
		r = sfs_do_linkat(fs->plnk_fd, key, fs->br[0].fd, path);
		if (r < 0)
			return r;
		plnk_siblings(fs, node, key);
		int b = node->bindex;
		after_copy_up(fs, node, path);
		/* the rw branch must hold one inode for all the names, as a layer tar needs */
		r = link_siblings(fs, b, &st, path);
		if (r == 0) {
			sfs_do_unlinkat(fs->plnk_fd, key, 0);
			plnk_clear(fs, key);
		}
		return r;
	} else {
		r = sfs_do_renameat(fs->work_fd, tmp, fs->br[0].fd, path, 0);
		if (r < 0)
			goto out_remove;
	}
	return after_copy_up(fs, node, path);
out_remove:
	remove_temp(fs, tmp);
	return r;
}

/*
 * A removed name of a lower hard link (@st) still open: if the inode has another name in the
 * merged view, that name is copied up, and @node becomes one more link to the copy. -ENOENT
 * if no other name shows. Its names come from the branch's index, as for link_siblings().
 */
static int copy_up_orphan_link(struct sfs_fs *fs, struct sfs_node *node, const struct stat *st)
{
	char **paths = NULL, path[PATH_MAX];
	size_t n = 0;
	int r;

	r = find_links(fs, node->bindex, st, "", &paths, &n);
	if (r == 0)
		r = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		struct sfs_node *sib;
		/* the removed name is still in the branch, but no longer in the view */
		if (r == -ENOENT && node_at(fs, paths[i], &sib) == 0) {
			if (sib->type == S_IFREG && sib->ino == node->ino) {
				r = sfs_copy_up(fs, sib, /* with_data= */ true);
				if (r == 0)
					r = sfs_node_path(sib, path, sizeof(path));
			}
			sfs_node_forget(fs, sib, 1);
		}
		free(paths[i]);
	}
	free(paths);
	if (r < 0)
		return r;
	int fd = openat(fs->br[0].fd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(node->opath_fd);
	node->opath_fd = fd;
	node->bindex = 0;
	__atomic_add_fetch(&node->gen, 1, __ATOMIC_RELEASE);
	return 0;
}

/*
 * A non-directory that was unlinked from a lower branch while still open: it has no name to
 * copy up to, so the copy stays nameless, held by the node's O_PATH fd like the lower file was,
 * and gone with the node.
 */
static int copy_up_orphan(struct sfs_fs *fs, struct sfs_node *node, bool with_data)
{
	char tmp[NAME_MAX];
	struct stat st;
	int r;

	if (node->type == S_IFDIR)
		return -ENOENT; /* a removed directory: nothing can be made in it either */
	if (node->opath_fd < 0)
		return -ESTALE;
	if (node->plnk) {
		/* what it was pinned at is already the rw branch's copy of the hard link */
		free(node->plnk);
		node->plnk = NULL;
		node->bindex = 0;
		return 0;
	}
	if (fstat(node->opath_fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
		r = copy_up_orphan_link(fs, node, &st);
		if (r != -ENOENT)
			return r;
	}
	sfs_make_temp(fs, tmp, sizeof(tmp));
	r = copy_to_temp(fs, node->opath_fd, "", &st, tmp, with_data);
	if (r < 0)
		goto out_remove;
	int fd = openat(fs->work_fd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out_remove;
	}
	sfs_do_unlinkat(fs->work_fd, tmp, 0);
	close(node->opath_fd);
	node->opath_fd = fd;
	node->bindex = 0;
	__atomic_add_fetch(&node->gen, 1, __ATOMIC_RELEASE);
	return 0;
out_remove:
	remove_temp(fs, tmp);
	return r;
}

/*
 * Makes @node live in the rw branch. With @with_data false a regular file's data is not
 * copied (the caller truncates it to zero next). Caller holds ns_lock for writing.
 */
int sfs_copy_up(struct sfs_fs *fs, struct sfs_node *node, bool with_data)
{
	char path[PATH_MAX];
	int r;

	if (!fs->rw)
		return -EROFS;
	if (node->bindex == 0 && !node->plnk)
		return 0;
	if (!node->parent)
		return 0;
	if (!node->hashed)
		return copy_up_orphan(fs, node, with_data);
	r = sfs_copy_up(fs, node->parent, true);
	if (r < 0)
		return r;
	r = sfs_node_path(node, path, sizeof(path));
	if (r < 0)
		return r;
	/* a copy-up is no change of the parent: keep its times, as overlayfs does */
	char ppath[PATH_MAX];
	struct stat pst;
	bool keep_times = sfs_node_path(node->parent, ppath, sizeof(ppath)) == 0 &&
			  fstatat(fs->br[0].fd, ppath, &pst, AT_SYMLINK_NOFOLLOW) == 0;
	if (node->type == S_IFDIR)
		r = copy_up_dir(fs, node, path);
	else
		r = copy_up_file(fs, node, path, with_data);
	if (r == 0 && keep_times) {
		struct timespec ts[2] = { pst.st_atim, pst.st_mtim };
		utimensat(fs->br[0].fd, ppath, ts, AT_SYMLINK_NOFOLLOW);
	}
	/* The name is the rw branch's now: the parent's listing no longer says where it is. */
	if (r == 0)
		sfs_dir_changed(fs, node->parent);
	return r;
}

/*
 * Copies up @dir and everything it shows, so that the rw branch alone holds the subtree;
 * every directory node of it then merges only the rw branch. Caller holds ns_lock for writing.
 */
int sfs_copy_up_tree(struct sfs_fs *fs, struct sfs_node *dir)
{
	struct sfs_listing *l;
	int r;

	r = sfs_copy_up(fs, dir, true);
	if (r < 0)
		return r;
	if (dir->nlayers <= 1)
		return 0;
	r = sfs_listing_get(fs, dir, &l);
	if (r < 0)
		return r;
	for (size_t i = 2; i < l->n && r >= 0; i++) {
		if (!l->ents[i].name)
			continue;
		struct sfs_node *child = sfs_node_find_get(fs, dir, l->ents[i].name);
		if (!child) {
			struct sfs_lookup lk;
			r = sfs_lookup_name(fs, dir, l->ents[i].name, 0, &lk);
			if (r < 0)
				break;
			if (!lk.found)
				continue;
			child = sfs_node_attach(fs, dir, l->ents[i].name, &lk);
			sfs_lookup_clear(&lk);
			if (!child) {
				r = -ENOMEM;
				break;
			}
		}
		if (child->type == S_IFDIR)
			r = sfs_copy_up_tree(fs, child);
		else
			r = sfs_copy_up(fs, child, true);
		sfs_node_forget(fs, child, 1);
	}
	sfs_listing_put(fs, l);
	if (r < 0)
		return r;
	dir->nlayers = 1; /* layers[0] is the rw branch now */
	/*
	 * Its listing still says which branches the subdirectories merged, which a rename of
	 * the tree would apply at the new place: the next one is built from the rw branch.
	 */
	sfs_dir_changed(fs, dir);
	return 0;
}
