// SPDX-License-Identifier: Apache-2.0
/* Lookup across branches: whiteouts hide, non-directories end the search, directories merge. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "sfs.h"

/* A name the merged view may hold: no whiteout's, and short enough to be whited out. */
int sfs_check_name(struct sfs_fs *fs, const char *name)
{
	if (wh_is_whiteout(name))
		return -EPERM;
	if (strlen(name) > fs->name_max)
		return -ENAMETOOLONG;
	return 0;
}

/* @dir/@prefix@name into @buf, or @prefix@name where @dir is the root ("."). */
int sfs_join(char *buf, size_t size, const char *dir, const char *prefix, const char *name)
{
	int n;

	if (!strcmp(dir, "."))
		n = snprintf(buf, size, "%s%s", prefix, name);
	else
		n = snprintf(buf, size, "%s/%s%s", dir, prefix, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

bool sfs_is_whiteout_at(struct sfs_fs *fs, int bindex, const char *dirpath, const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	if (!fs->br[bindex].wh || sfs_join(p, sizeof(p), dirpath, WH_PREFIX, name) < 0)
		return false;
	return fstatat(fs->br[bindex].fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

bool sfs_is_opaque_at(struct sfs_fs *fs, int bindex, const char *path)
{
	char p[PATH_MAX];
	struct stat st;
	char v[4];

	if (!fs->br[bindex].wh || sfs_join(p, sizeof(p), path, "", "/" WH_OPAQUE) < 0)
		return false;
	if (fstatat(fs->br[bindex].fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return true;
	if (snprintf(p, sizeof(p), "%s/%s", fs->br[bindex].path, path) >= (int)sizeof(p))
		return false;
	ssize_t n = lgetxattr(p, "trusted.overlay.opaque", v, sizeof(v));
	if (n < 0 && errno == ENODATA)
		n = lgetxattr(p, "user.overlay.opaque", v, sizeof(v));
	return n == 1 && v[0] == 'y';
}

/*
 * sfs_lookup_name(), where @known_top says that a current listing found @name in layer
 * @from with no whiteout of it there: that layer's whiteout need not be looked for.
 */
static int lookup_name(struct sfs_fs *fs, struct sfs_node *dir, const char *name, int from,
		       bool known_top, struct sfs_lookup *lk)
{
	char dpath[PATH_MAX], cpath[PATH_MAX];
	struct stat st;
	int r;

	*lk = (struct sfs_lookup){ .bindex = -1 };
	r = sfs_node_path(dir, dpath, sizeof(dpath));
	if (r < 0)
		return r;
	r = sfs_join(cpath, sizeof(cpath), dpath, "", name);
	if (r < 0)
		return r;

	for (int i = from; i < dir->nlayers; i++) {
		int b = dir->layers[i];
		struct sfs_branch *br = &fs->br[b];

		if (!(known_top && i == from) && sfs_is_whiteout_at(fs, b, dpath, name))
			break;
		if (fstatat(br->fd, cpath, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			r = -errno;
			goto fail;
		}
		if (br->wh && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0))
			break; /* an overlay whiteout */
		if (!S_ISDIR(st.st_mode)) {
			if (lk->found) {
				lk->below = true;
				break; /* a directory above hides it */
			}
			lk->found = true;
			lk->bindex = b;
			lk->st = st;
			break;
		}
		if (!lk->found) {
			lk->found = true;
			lk->bindex = b;
			lk->st = st;
		} else {
			lk->below = true;
		}
		int *nl = realloc(lk->layers, (lk->nlayers + 1) * sizeof(int));
		if (!nl) {
			r = -ENOMEM;
			goto fail;
		}
		lk->layers = nl;
		lk->layers[lk->nlayers++] = b;
		if (sfs_is_opaque_at(fs, b, cpath))
			break;
	}

	/* a lower hard link whose sibling was copied up reads the copy */
	if (lk->found && !S_ISDIR(lk->st.st_mode) && lk->bindex > 0 && lk->st.st_nlink > 1 &&
	    fs->rw) {
		char key[64];
		struct stat pst;

		/* never made by a lookup: reading must not change the rw branch */
		int pfd = __atomic_load_n(&fs->plnk_fd, __ATOMIC_ACQUIRE);
		sfs_plnk_key(fs, lk->bindex, &lk->st, key, sizeof(key));
		if (pfd >= 0 && fstatat(pfd, key, &pst, AT_SYMLINK_NOFOLLOW) == 0)
			lk->plnk = strdup(key);
	}
	return 0;
fail:
	sfs_lookup_clear(lk);
	return r;
}

/*
 * Looks @name up in @dir's branches from layer index @from down. On success @lk says where
 * the topmost object is and, for a directory, which branches merge into it. Caller holds
 * ns_lock. A name that is not there is success with lk->found false.
 */
int sfs_lookup_name(struct sfs_fs *fs, struct sfs_node *dir, const char *name, int from,
		    struct sfs_lookup *lk)
{
	return lookup_name(fs, dir, name, from, /* known_top= */ false, lk);
}

/*
 * Another name of a hard-linked file in the rw branch is another kernel inode, which may
 * change it behind this one's back: no caching there. Lower files change only by copy-up,
 * after which the kernel is told (sfs_inval_aliases).
 */
double sfs_attr_timeout(struct sfs_fs *fs, struct sfs_node *node, const struct stat *st)
{
	return (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && node->bindex == 0) ? 0 : fs->timeout;
}

void sfs_fill_entry(struct sfs_fs *fs, struct sfs_node *node, const struct stat *st,
		    struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = sfs_node_id(fs, node);
	e->attr = *st;
	sfs_stat_shown(fs, &e->attr);
	e->entry_timeout = fs->timeout;
	e->attr_timeout = sfs_attr_timeout(fs, node, st);
}

/* LOOKUP: on success the kernel holds one more reference on the node in @e. */
/*
 * The lookup of a name that a current listing of @dir describes (@d): the topmost branch is
 * known, and for a directory the branches that merge into it, short of opaque ones. Only
 * what the listing cannot tell is asked of the branches.
 */
static int lookup_listed(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
			 const struct sfs_dirent *d, struct sfs_lookup *lk)
{
	char dpath[PATH_MAX], cpath[PATH_MAX];
	int from = -1, r;

	for (int i = 0; i < dir->nlayers; i++)
		if (dir->layers[i] == d->br) {
			from = i;
			break;
		}
	if (from < 0)
		return lookup_name(fs, dir, name, 0, /* known_top= */ false, lk);
	if (d->type != DT_DIR)
		return lookup_name(fs, dir, name, from, /* known_top= */ true, lk);

	*lk = (struct sfs_lookup){ .bindex = -1 };
	r = sfs_node_path(dir, dpath, sizeof(dpath));
	if (r == 0)
		r = sfs_join(cpath, sizeof(cpath), dpath, "", name);
	if (r < 0)
		return r;
	if (fstatat(fs->br[d->br].fd, cpath, &lk->st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISDIR(lk->st.st_mode))
		return lookup_name(fs, dir, name, 0, /* known_top= */ false, lk);
	if (!(lk->layers = malloc((d->nlower + 1) * sizeof(int))))
		return -ENOMEM;
	lk->found = true;
	lk->bindex = d->br;
	lk->layers[lk->nlayers++] = d->br;
	if (sfs_is_opaque_at(fs, d->br, cpath))
		return 0;
	for (int i = 0; i < d->nlower; i++) {
		lk->below = true;
		lk->layers[lk->nlayers++] = d->lower[i];
		if (sfs_is_opaque_at(fs, d->lower[i], cpath))
			return 0;
	}
	if (d->lower_nondir)
		lk->below = true;
	return 0;
}

int sfs_lookup_where(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		     const struct sfs_dirent *hint, struct sfs_lookup *lk)
{
	/* A current listing of the directory says where the name is, or that it is not. */
	struct sfs_listing *l = NULL;
	bool listed = !hint && sfs_listing_find(fs, dir, name, &l, &hint);
	int r = 0;

	if (listed && !hint)
		*lk = (struct sfs_lookup){ .bindex = -1 };
	else if (hint)
		r = lookup_listed(fs, dir, name, hint, lk);
	else
		r = lookup_name(fs, dir, name, 0, /* known_top= */ false, lk);
	sfs_listing_put(fs, l);
	return r;
}

int sfs_lookup(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
	       const struct sfs_dirent *hint, struct fuse_entry_param *e)
{
	return sfs_lookup_pre(fs, dir, name, hint, NULL, e);
}

int sfs_lookup_pre(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		   const struct sfs_dirent *hint, struct sfs_lookup *pre,
		   struct fuse_entry_param *e)
{
	struct sfs_lookup lk;
	struct sfs_node *node;
	struct stat st;
	int r;

	r = sfs_check_name(fs, name);
	if (r < 0)
		return r;
	if (dir->type != S_IFDIR)
		return -ENOTDIR;

	/* a node the kernel already knows is kept current by every change made through us */
	node = sfs_node_find_get(fs, dir, name);
	if (!node) {
		if (pre) {
			lk = *pre;
			*pre = (struct sfs_lookup){ .bindex = -1 };
		} else {
			r = sfs_lookup_where(fs, dir, name, hint, &lk);
			if (r < 0)
				return r;
		}
		if (!lk.found) {
			memset(e, 0, sizeof(*e));
			e->entry_timeout = fs->timeout;
			return 0;
		}
		node = sfs_node_attach(fs, dir, name, &lk);
		if (!node) {
			sfs_lookup_clear(&lk);
			return -ENOMEM;
		}
		/* The node is what the lookup just found: its attributes are those. */
		if (node->bindex == lk.bindex && !node->plnk) {
			st = lk.st;
			sfs_node_attr(node, &st);
			sfs_lookup_clear(&lk);
			sfs_fill_entry(fs, node, &st, e);
			return 0;
		}
		sfs_lookup_clear(&lk);
	}
	r = sfs_getattr(fs, node, &st);
	if (r < 0) {
		sfs_node_forget(fs, node, 1);
		return r;
	}
	sfs_fill_entry(fs, node, &st, e);
	return 0;
}
