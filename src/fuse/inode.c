// SPDX-License-Identifier: Apache-2.0
/* The node table (FUSE nodeids), stable inode numbers, getattr and setattr. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sfs.h"

static size_t name_hash(const struct sfs_node *parent, const char *name)
{
	uint64_t h = 1469598103934665603ULL ^ (uintptr_t)parent;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29));
}

void sfs_table_init(struct sfs_fs *fs)
{
	pthread_rwlock_init(&fs->ns_lock, NULL);
	pthread_mutex_init(&fs->table_lock, NULL);
	pthread_mutex_init(&fs->dcache_lock, NULL);
	pthread_cond_init(&fs->ahead_cond, NULL);
	pthread_mutex_init(&fs->ino_lock, NULL);
	pthread_mutex_init(&fs->fd_lock, NULL);
	fs->root.rfd = fs->root.wfd = -1;
	fs->table_size = 1024;
	fs->table = calloc(fs->table_size, sizeof(*fs->table));
	if (!fs->table)
		abort();
}

struct sfs_node *sfs_node_get(struct sfs_fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct sfs_node *)(uintptr_t)ino;
}

fuse_ino_t sfs_node_id(struct sfs_fs *fs, struct sfs_node *node)
{
	return node == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)node;
}

int sfs_node_top(struct sfs_node *node)
{
	return node->bindex;
}

/* Path of @node relative to a branch root; "." for the root. Caller holds ns_lock. */
int sfs_node_path(struct sfs_node *node, char *buf, size_t size)
{
	size_t len = 0;

	if (!node->parent) {
		if (node->name)
			return -ESTALE; /* only the root has neither */
		snprintf(buf, size, ".");
		return 0;
	}
	if (!node->hashed)
		return -ENOENT;
	/* measure, then fill from the end */
	for (struct sfs_node *n = node; n->parent; n = n->parent)
		len += strlen(n->name) + 1;
	if (len > size)
		return -ENAMETOOLONG;
	buf[len - 1] = 0;
	size_t pos = len - 1;
	for (struct sfs_node *n = node; n->parent; n = n->parent) {
		size_t l = strlen(n->name);
		pos -= l;
		memcpy(buf + pos, n->name, l);
		if (pos > 0)
			buf[--pos] = '/';
	}
	return 0;
}

int sfs_child_path(struct sfs_node *parent, const char *name, char *buf, size_t size)
{
	int r;

	if (!parent->parent) {
		if (strlen(name) >= size)
			return -ENAMETOOLONG;
		strcpy(buf, name);
		return 0;
	}
	r = sfs_node_path(parent, buf, size);
	if (r < 0)
		return r;
	size_t l = strlen(buf);
	if (l + 1 + strlen(name) >= size)
		return -ENAMETOOLONG;
	buf[l] = '/';
	strcpy(buf + l + 1, name);
	return 0;
}

static void table_insert_locked(struct sfs_fs *fs, struct sfs_node *node)
{
	if (fs->table_count * 2 >= fs->table_size) {
		size_t nsize = fs->table_size * 2;
		struct sfs_node **nt = calloc(nsize, sizeof(*nt));
		if (nt) {
			for (size_t i = 0; i < fs->table_size; i++) {
				struct sfs_node *n = fs->table[i], *next;
				for (; n; n = next) {
					next = n->hnext;
					size_t h = name_hash(n->parent, n->name) & (nsize - 1);
					n->hnext = nt[h];
					nt[h] = n;
				}
			}
			free(fs->table);
			fs->table = nt;
			fs->table_size = nsize;
		}
	}
	size_t h = name_hash(node->parent, node->name) & (fs->table_size - 1);
	node->hnext = fs->table[h];
	fs->table[h] = node;
	node->hashed = true;
	fs->table_count++;
}

static void table_remove_locked(struct sfs_fs *fs, struct sfs_node *node)
{
	if (!node->hashed)
		return;
	size_t h = name_hash(node->parent, node->name) & (fs->table_size - 1);
	for (struct sfs_node **p = &fs->table[h]; *p; p = &(*p)->hnext) {
		if (*p == node) {
			*p = node->hnext;
			break;
		}
	}
	node->hnext = NULL;
	node->hashed = false;
	fs->table_count--;
}

static struct sfs_node *find_locked(struct sfs_fs *fs, struct sfs_node *parent, const char *name)
{
	size_t h = name_hash(parent, name) & (fs->table_size - 1);

	for (struct sfs_node *n = fs->table[h]; n; n = n->hnext)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

/* The hashed node of @parent/@name or NULL; no reference taken: the caller holds ns_lock. */
struct sfs_node *sfs_node_find(struct sfs_fs *fs, struct sfs_node *parent, const char *name)
{
	pthread_mutex_lock(&fs->table_lock);
	struct sfs_node *n = find_locked(fs, parent, name);
	pthread_mutex_unlock(&fs->table_lock);
	return n;
}

/* Like sfs_node_find() but takes a kernel reference (nlookup) on what it finds. */
struct sfs_node *sfs_node_find_get(struct sfs_fs *fs, struct sfs_node *parent, const char *name)
{
	pthread_mutex_lock(&fs->table_lock);
	struct sfs_node *n = find_locked(fs, parent, name);
	if (n)
		n->nlookup++;
	pthread_mutex_unlock(&fs->table_lock);
	return n;
}

static void node_free(struct sfs_node *node)
{
	free(node->name);
	free(node->layers);
	free(node->plnk);
	if (node->opath_fd >= 0)
		close(node->opath_fd);
	free(node);
}

/* Frees @node and then any parent that it kept alive. Caller holds table_lock. */
static void maybe_free_locked(struct sfs_fs *fs, struct sfs_node *node)
{
	while (node && node != &fs->root && node->nlookup == 0 && node->refs == 0) {
		struct sfs_node *parent = node->parent;

		table_remove_locked(fs, node);
		/* the node's reference to its listing; open handles may hold more */
		sfs_listing_put(fs, node->listing);
		node->listing = NULL;
		if (node->rfd >= 0 || node->wfd >= 0) {
			pthread_mutex_lock(&fs->fd_lock);
			fs->fd_count -= (node->rfd >= 0) + (node->wfd >= 0);
			pthread_mutex_unlock(&fs->fd_lock);
			if (node->rfd >= 0)
				close(node->rfd);
			if (node->wfd >= 0)
				close(node->wfd);
		}
		node_free(node);
		if (!parent)
			break;
		parent->refs--;
		node = parent;
	}
}

struct sfs_node *sfs_node_attach(struct sfs_fs *fs, struct sfs_node *parent, const char *name,
				 struct sfs_lookup *lk)
{
	struct sfs_node *n;

	pthread_mutex_lock(&fs->table_lock);
	n = find_locked(fs, parent, name);
	if (n) {
		n->nlookup++;
		pthread_mutex_unlock(&fs->table_lock);
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		pthread_mutex_unlock(&fs->table_lock);
		return NULL;
	}
	n->opath_fd = -1;
	n->rfd = n->wfd = -1;
	n->parent = parent;
	parent->refs++;
	n->nlookup = 1;
	n->type = lk->st.st_mode & S_IFMT;
	n->bindex = lk->bindex;
	n->ino = sfs_ino_of(fs, lk->bindex, &lk->st);
	n->layers = TAKE_PTR(lk->layers);
	n->nlayers = lk->nlayers;
	n->plnk = TAKE_PTR(lk->plnk);
	table_insert_locked(fs, n);
	pthread_mutex_unlock(&fs->table_lock);
	return n;
}

void sfs_node_unhash(struct sfs_fs *fs, struct sfs_node *node)
{
	pthread_mutex_lock(&fs->table_lock);
	table_remove_locked(fs, node);
	pthread_mutex_unlock(&fs->table_lock);
}

/* Caller holds ns_lock for writing. */
void sfs_node_move(struct sfs_fs *fs, struct sfs_node *node, struct sfs_node *newparent,
		   const char *newname)
{
	char *nn = strdup(newname);

	pthread_mutex_lock(&fs->table_lock);
	struct sfs_node *old = find_locked(fs, newparent, newname);
	if (old && old != node)
		table_remove_locked(fs, old);
	table_remove_locked(fs, node);
	struct sfs_node *oldparent = node->parent;
	newparent->refs++;
	node->parent = newparent;
	if (nn) {
		free(node->name);
		node->name = nn;
		table_insert_locked(fs, node);
	}
	oldparent->refs--;
	maybe_free_locked(fs, oldparent);
	pthread_mutex_unlock(&fs->table_lock);
}

void sfs_node_ref(struct sfs_fs *fs, struct sfs_node *node)
{
	pthread_mutex_lock(&fs->table_lock);
	node->refs++;
	pthread_mutex_unlock(&fs->table_lock);
}

void sfs_node_unref(struct sfs_fs *fs, struct sfs_node *node)
{
	pthread_mutex_lock(&fs->table_lock);
	node->refs--;
	maybe_free_locked(fs, node);
	pthread_mutex_unlock(&fs->table_lock);
}

void sfs_node_forget(struct sfs_fs *fs, struct sfs_node *node, uint64_t n)
{
	if (node == &fs->root)
		return;
	pthread_mutex_lock(&fs->table_lock);
	node->nlookup = node->nlookup > n ? node->nlookup - n : 0;
	maybe_free_locked(fs, node);
	pthread_mutex_unlock(&fs->table_lock);
}

/*
 * @node's name is about to go while the kernel may still use the inode (another hard link,
 * an open file or directory): keep an O_PATH fd on what backs it, for fstat and xattrs.
 * Caller holds ns_lock for writing.
 */
void sfs_node_pin(struct sfs_fs *fs, struct sfs_node *node)
{
	char path[PATH_MAX];
	int dfd;

	if (node->opath_fd >= 0)
		return;
	if (sfs_backing_at(fs, node, &dfd, path, sizeof(path)) == 0)
		node->opath_fd = openat(dfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * Hard links looked up by different names are different kernel inodes: after @node's data
 * changed, drop what the kernel cached for the others. Caller holds no lock; called after
 * the reply, so no request of the kernel waits on us.
 */
void sfs_inval_aliases(struct sfs_fs *fs, struct sfs_node *node)
{
	fuse_ino_t *ids = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&fs->table_lock);
	for (size_t i = 0; i < fs->table_size; i++) {
		for (struct sfs_node *x = fs->table[i]; x; x = x->hnext) {
			if (x == node || x->ino != node->ino || x->type != node->type)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				fuse_ino_t *nv = realloc(ids, cap * sizeof(*ids));
				if (!nv)
					goto out;
				ids = nv;
			}
			ids[n++] = sfs_node_id(fs, x);
		}
	}
out:
	pthread_mutex_unlock(&fs->table_lock);
	/* a node freed meanwhile only makes the kernel answer ENOENT */
	for (size_t i = 0; i < n; i++)
		fuse_lowlevel_notify_inval_inode(fs->se, ids[i], 0, 0);
	free(ids);
}

void sfs_lookup_clear(struct sfs_lookup *lk)
{
	free(lk->layers);
	free(lk->plnk);
	lk->layers = NULL;
	lk->plnk = NULL;
}

/* The map from an upper inode to the number its object showed before copy-up. */
static size_t ino_slot(uint64_t key, size_t size)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 17) & (size - 1);
}

static uint64_t ino_lookup_locked(struct sfs_fs *fs, uint64_t key)
{
	if (!fs->ino_size)
		return 0;
	for (size_t i = ino_slot(key, fs->ino_size);; i = (i + 1) & (fs->ino_size - 1)) {
		if (fs->ino_keys[i] == key)
			return fs->ino_vals[i];
		if (fs->ino_keys[i] == 0)
			return 0;
	}
}

void sfs_ino_remember(struct sfs_fs *fs, uint64_t upper_ino, uint64_t ino)
{
	if (upper_ino == ino || upper_ino == 0)
		return;
	pthread_mutex_lock(&fs->ino_lock);
	if ((fs->ino_count + 1) * 2 > fs->ino_size) {
		size_t nsize = fs->ino_size ? fs->ino_size * 2 : 256;
		uint64_t *nk = calloc(nsize, sizeof(*nk)), *nv = calloc(nsize, sizeof(*nv));
		if (!nk || !nv) {
			free(nk);
			free(nv);
			pthread_mutex_unlock(&fs->ino_lock);
			return;
		}
		for (size_t i = 0; i < fs->ino_size; i++) {
			if (!fs->ino_keys[i] || fs->ino_vals[i] == 0)
				continue;
			size_t j = ino_slot(fs->ino_keys[i], nsize);
			while (nk[j])
				j = (j + 1) & (nsize - 1);
			nk[j] = fs->ino_keys[i];
			nv[j] = fs->ino_vals[i];
		}
		free(fs->ino_keys);
		free(fs->ino_vals);
		fs->ino_keys = nk;
		fs->ino_vals = nv;
		fs->ino_size = nsize;
	}
	size_t i = ino_slot(upper_ino, fs->ino_size);
	while (fs->ino_keys[i] && fs->ino_keys[i] != upper_ino)
		i = (i + 1) & (fs->ino_size - 1);
	if (!fs->ino_keys[i])
		fs->ino_count++;
	fs->ino_keys[i] = upper_ino;
	fs->ino_vals[i] = ino;
	pthread_mutex_unlock(&fs->ino_lock);
}

/* The upper inode is gone: a new object may get its number. A value of 0 reads as unmapped. */
void sfs_ino_forget_upper(struct sfs_fs *fs, uint64_t upper_ino)
{
	pthread_mutex_lock(&fs->ino_lock);
	if (fs->ino_size) {
		for (size_t i = ino_slot(upper_ino, fs->ino_size); fs->ino_keys[i];
		     i = (i + 1) & (fs->ino_size - 1)) {
			if (fs->ino_keys[i] == upper_ino) {
				fs->ino_vals[i] = 0;
				break;
			}
		}
	}
	pthread_mutex_unlock(&fs->ino_lock);
}

uint64_t sfs_ino_of(struct sfs_fs *fs, int bindex, const struct stat *st)
{
	uint64_t ino = st->st_ino;

	if (bindex == 0 && fs->rw && fs->ino_size) {
		pthread_mutex_lock(&fs->ino_lock);
		uint64_t m = ino_lookup_locked(fs, ino);
		pthread_mutex_unlock(&fs->ino_lock);
		if (m)
			return m;
	}
	if (!fs->single_fs)
		ino = (ino & ((1ULL << 48) - 1)) | ((uint64_t)fs->br[bindex].fsidx << 48);
	return ino;
}

/* The directory fd and path of the object that backs @node now. Caller holds ns_lock. */
int sfs_backing_at(struct sfs_fs *fs, struct sfs_node *node, int *ret_dfd, char *buf,
		   size_t size)
{
	if (!node->hashed && node->opath_fd >= 0) {
		/* "" with AT_EMPTY_PATH, or /proc/self/fd/N, reaches it */
		*ret_dfd = node->opath_fd;
		buf[0] = 0;
		return 0;
	}
	if (node->plnk) {
		*ret_dfd = fs->plnk_fd;
		snprintf(buf, size, "%s", node->plnk);
		return 0;
	}
	*ret_dfd = fs->br[node->bindex].fd;
	return sfs_node_path(node, buf, size);
}

int sfs_getattr(struct sfs_fs *fs, struct sfs_node *node, struct stat *st)
{
	char path[PATH_MAX];
	int dfd, r;

	r = sfs_backing_at(fs, node, &dfd, path, sizeof(path));
	if (r < 0)
		return r;
	if (fstatat(dfd, path, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		return -errno;
	sfs_node_attr(node, st);
	return 0;
}

/*
 * What the view shows of a node whose backing object is @st. A directory that merges
 * branches has as many subdirectories as the merge has, which its topmost branch's link
 * count does not tell: it counts 1, as on overlayfs, which tools such as find take as
 * "unknown" (a link count too small would have them skip subdirectories they think leaves).
 */
void sfs_node_attr(const struct sfs_node *node, struct stat *st)
{
	st->st_ino = node->ino;
	if (S_ISDIR(st->st_mode) && node->nlayers > 1)
		st->st_nlink = 1;
}

int sfs_setattr(struct sfs_fs *fs, struct sfs_node *node, struct stat *attr, int to_set,
		struct sfs_file *f, struct stat *ret_st)
{
	char path[PATH_MAX];
	int dfd, r;

	if (!fs->rw)
		return -EROFS;
	bool trunc0 = (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == 0 &&
		      !(to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_CTIME | FUSE_SET_ATTR_MTIME |
				   FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_ATIME_NOW |
				   FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_KILL_SUID));
	r = sfs_copy_up(fs, node, /* with_data= */ !trunc0);
	if (r < 0)
		return r;
	r = sfs_backing_at(fs, node, &dfd, path, sizeof(path));
	if (r < 0)
		return r;
	int nofollow = AT_SYMLINK_NOFOLLOW;
	if (!path[0]) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", dfd);
		dfd = AT_FDCWD;
		nofollow = 0;
	}

	if (to_set & FUSE_SET_ATTR_MODE) {
		if (node->type == S_IFLNK)
			return -EOPNOTSUPP;
		r = sfs_do_fchmodat(dfd, path, attr->st_mode & 07777);
		if (r < 0)
			return r;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (uid_t)-1;
		gid_t gid = (gid_t)-1;
		if (((to_set & FUSE_SET_ATTR_UID) && sfs_id_stored(&fs->uidmap, attr->st_uid, &uid)) ||
		    ((to_set & FUSE_SET_ATTR_GID) && sfs_id_stored(&fs->gidmap, attr->st_gid, &gid)))
			return -EINVAL;
		r = sfs_do_fchownat(dfd, path, uid, gid, nofollow);
		if (r < 0)
			return r;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int fd = f ? sfs_file_fd_locked(fs, f) : -1;
		if (fd >= 0 && (f->flags & O_ACCMODE) != O_RDONLY) {
			if (ftruncate(fd, attr->st_size) < 0)
				return -errno;
		} else {
			if (node->type == S_IFDIR)
				return -EISDIR;
			_cleanup_close_ int wfd = sfs_do_openat(
				dfd, path, O_WRONLY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0), 0);
			if (wfd < 0)
				return wfd;
			if (ftruncate(wfd, attr->st_size) < 0)
				return -errno;
		}
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if (utimensat(dfd, path, ts, nofollow) < 0)
			return -errno;
	}
	return sfs_getattr(fs, node, ret_st);
}
