// SPDX-License-Identifier: Apache-2.0
/* Changes to names: create, link, unlink, rmdir and rename, with whiteouts and opaque dirs. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fsutil.h"
#include "sfs.h"

static bool is_ovl_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

/* Leaves a whiteout for @name in the rw branch's @dirpath (which holds no @name). */
int sfs_whiteout(struct sfs_fs *fs, const char *dirpath, const char *name)
{
	char p[PATH_MAX];
	int r;

	if (fs->wh_format == SFS_WH_OVERLAY) {
		r = sfs_join(p, sizeof(p), dirpath, "", name);
		if (r < 0)
			return r;
		r = sfs_do_mknodat(fs->br[0].fd, p, S_IFCHR | 0, makedev(0, 0));
	} else {
		r = sfs_join(p, sizeof(p), dirpath, WH_PREFIX, name);
		if (r < 0)
			return r;
		r = fs->wh_base_dfd >= 0 ? sfs_do_linkat(fs->wh_base_dfd, WH_BASE, fs->br[0].fd, p) :
					    -ENOENT;
		if (r < 0 && r != -EEXIST) /* EMLINK, or the base went away */
			r = sfs_do_mknodat(fs->br[0].fd, p, S_IFREG | 0444, 0);
	}
	return r == -EEXIST ? 0 : r;
}

static int make_opaque(struct sfs_fs *fs, const char *path)
{
	char p[PATH_MAX];
	int r;

	if (fs->wh_format == SFS_WH_OVERLAY) {
		if (snprintf(p, sizeof(p), "%s/%s", fs->br[0].path, path) >= (int)sizeof(p))
			return -ENAMETOOLONG;
		if (lsetxattr(p, fs->is_root ? "trusted.overlay.opaque" : "user.overlay.opaque",
			      "y", 1, 0) < 0)
			return -errno;
		return 0;
	}
	r = sfs_join(p, sizeof(p), path, "", "/" WH_OPAQUE);
	if (r < 0)
		return r;
	/* the marker is no change the view shows: the directory keeps its times */
	struct stat st;
	bool keep = fstatat(fs->br[0].fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
	r = sfs_do_mknodat(fs->br[0].fd, p, S_IFREG | 0444, 0);
	if (r == -EEXIST)
		return 0;
	if (r == 0 && keep)
		utimensat(fs->br[0].fd, path, (const struct timespec[2]){ st.st_atim, st.st_mtim },
			  AT_SYMLINK_NOFOLLOW);
	return r;
}

/* Whether the rw branch has a whiteout of either format for @dirpath/@name. */
static bool upper_aufs_whiteout(struct sfs_fs *fs, const char *dirpath, const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	if (sfs_join(p, sizeof(p), dirpath, WH_PREFIX, name) < 0)
		return false;
	return fstatat(fs->br[0].fd, p, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static bool upper_ovl_whiteout(struct sfs_fs *fs, const char *path)
{
	struct stat st;

	return fstatat(fs->br[0].fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_ovl_whiteout(&st);
}

static void remove_aufs_whiteout(struct sfs_fs *fs, const char *dirpath, const char *name)
{
	char p[PATH_MAX];

	if (sfs_join(p, sizeof(p), dirpath, WH_PREFIX, name) == 0)
		sfs_do_unlinkat(fs->br[0].fd, p, 0);
}

/* Index in @dir->layers of the first branch below the rw one. */
static int first_lower(struct sfs_node *dir)
{
	return dir->nlayers > 0 && dir->layers[0] == 0 ? 1 : 0;
}

/* Whether a lower branch shows @name in @dir: removing or moving it then needs a whiteout. */
static int name_below(struct sfs_fs *fs, struct sfs_node *dir, const char *name)
{
	struct sfs_lookup lk;
	int r = sfs_lookup_name(fs, dir, name, first_lower(dir), &lk);

	if (r < 0)
		return r;
	r = lk.found;
	sfs_lookup_clear(&lk);
	return r;
}

/* A node for @dir/@name with one kernel-less reference (drop with sfs_node_forget(.., 1)). */
static int get_node(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		    struct sfs_node **ret)
{
	struct sfs_node *n = sfs_node_find_get(fs, dir, name);
	struct sfs_lookup lk;
	int r;

	if (!n) {
		r = sfs_lookup_name(fs, dir, name, 0, &lk);
		if (r < 0)
			return r;
		if (!lk.found)
			return -ENOENT;
		n = sfs_node_attach(fs, dir, name, &lk);
		sfs_lookup_clear(&lk);
		if (!n)
			return -ENOMEM;
	}
	*ret = n;
	return 0;
}

static int attach_upper(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
			const char *path, struct fuse_entry_param *e)
{
	struct sfs_lookup lk = { .found = true, .bindex = 0 };
	struct sfs_node *n;

	if (fstatat(fs->br[0].fd, path, &lk.st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(lk.st.st_mode)) {
		lk.layers = malloc(sizeof(int));
		if (!lk.layers)
			return -ENOMEM;
		lk.layers[0] = 0;
		lk.nlayers = 1;
	}
	n = sfs_node_attach(fs, dir, name, &lk);
	sfs_lookup_clear(&lk);
	if (!n)
		return -ENOMEM;
	/* as sfs_getattr() has it, without asking the branch again */
	struct stat st = lk.st;
	sfs_node_attr(n, &st);
	sfs_fill_entry(fs, n, &st, e);
	return 0;
}

/*
 * The owner a new object of @mode gets: the caller's, with the group of a setgid parent.
 * chown clears the setuid and setgid bits of a non-directory, so they are set again; the
 * kernel has already dropped a setgid bit the caller may not have.
 */
static int set_owner(struct sfs_fs *fs, const char *dirpath, const char *path, mode_t mode,
		     const struct fuse_ctx *ctx)
{
	struct stat dst;
	int r;

	if (!fs->is_root || !ctx)
		return 0;
	uid_t uid;
	gid_t gid;
	/* a caller whose ids have no stored form cannot own anything, as on an idmapped mount */
	if (sfs_id_stored(&fs->uidmap, ctx->uid, &uid) || sfs_id_stored(&fs->gidmap, ctx->gid, &gid))
		return -EOVERFLOW;
	/* made by us with the caller's ids already: a setgid parent's group is what chown keeps */
	if (uid == geteuid() && gid == getegid())
		return 0;
	if (fstatat(fs->br[0].fd, dirpath, &dst, 0) == 0 && (dst.st_mode & S_ISGID))
		gid = (gid_t)-1;
	r = sfs_do_fchownat(fs->br[0].fd, path, uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return r;
	if (S_ISDIR(mode) || S_ISLNK(mode) || !(mode & (S_ISUID | S_ISGID)))
		return 0;
	return sfs_do_fchmodat(fs->br[0].fd, path, mode & 07777);
}

/* Whether the rw branch's directory at @dirpath has a default ACL. */
static bool has_default_acl(struct sfs_fs *fs, const char *dirpath)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s/%s", fs->br[0].path, dirpath) >= (int)sizeof(p))
		return false;
	return lgetxattr(p, "system.posix_acl_default", NULL, 0) > 0;
}

/*
 * Creates @name in @dir: a file (opened with @oflags, fd in @ret_fd), directory, symlink
 * (@link_target) or special file. Caller holds ns_lock for writing.
 */
int sfs_create_obj(struct sfs_fs *fs, struct sfs_node *dir, const char *name, mode_t mode,
		   dev_t rdev, const char *link_target, struct fuse_ctx const *ctx,
		   struct fuse_entry_param *e, int oflags, int *ret_fd)
{
	char dpath[PATH_MAX], path[PATH_MAX];
	int r;

	r = sfs_check_name(fs, name);
	if (r < 0)
		return r;
	if (!fs->rw)
		return -EROFS;
	/*
	 * The kernel asks only for a name it holds a negative entry for, which came from our
	 * LOOKUP; we are the only writer, so no branch has gained the name since. Only a
	 * node we know proves otherwise.
	 */
	struct sfs_node *old = sfs_node_find(fs, dir, name);
	if (old)
		return -EEXIST;
	r = sfs_copy_up(fs, dir, true);
	if (r < 0)
		return r;
	r = sfs_node_path(dir, dpath, sizeof(dpath));
	if (r < 0)
		return r;
	r = sfs_join(path, sizeof(path), dpath, "", name);
	if (r < 0)
		return r;

	/*
	 * The caller's umask, as a local file system applies it: not under a directory with a
	 * default ACL, which alone decides (the branch's file system applies it).
	 */
	if (fs->dont_mask && ctx && !S_ISLNK(mode) && !has_default_acl(fs, dpath))
		mode &= ~(mode_t)(ctx->umask & 0777);

	bool aufs_wh = upper_aufs_whiteout(fs, dpath, name);
	bool ovl_wh = false;
	int fd = -1;
	for (;;) {
		switch (mode & S_IFMT) {
		case S_IFREG:
			if (!ret_fd) {
				/* nothing to open (MKNOD): made as mknod(2) makes it */
				r = sfs_do_mknodat(fs->br[0].fd, path, mode, 0);
				break;
			}
			fd = sfs_do_openat(fs->br[0].fd, path,
					   (oflags & ~(O_TRUNC | O_NOCTTY)) | O_CREAT | O_EXCL |
						   O_NOFOLLOW,
					   mode & 07777);
			r = fd < 0 ? fd : 0;
			break;
		case S_IFDIR:
			r = sfs_do_mkdirat(fs->br[0].fd, path, mode & 07777);
			break;
		case S_IFLNK:
			r = sfs_do_symlinkat(link_target, fs->br[0].fd, path);
			break;
		default:
			r = sfs_do_mknodat(fs->br[0].fd, path, mode, rdev);
			break;
		}
		/* only an overlay whiteout can be in the way: it goes, and comes back on failure */
		if (r != -EEXIST || aufs_wh || ovl_wh || !upper_ovl_whiteout(fs, path))
			break;
		r = sfs_do_unlinkat(fs->br[0].fd, path, 0);
		if (r < 0)
			return r;
		ovl_wh = true;
	}
	if (r < 0)
		goto out_restore;
	r = set_owner(fs, dpath, path, mode, ctx);
	if (r == 0 && S_ISDIR(mode) && (aufs_wh || ovl_wh))
		r = make_opaque(fs, path);
	if (r < 0)
		goto out_remove;
	if (aufs_wh)
		remove_aufs_whiteout(fs, dpath, name);
	sfs_dir_changed(fs, dir);
	r = attach_upper(fs, dir, name, path, e);
	if (r < 0)
		goto out_remove;
	if (ret_fd)
		*ret_fd = fd;
	else if (fd >= 0)
		close(fd);
	return 0;

out_remove:
	if (fd >= 0)
		close(fd);
	if (S_ISDIR(mode))
		rm_rf_at(fs->br[0].fd, path);
	else
		unlinkat(fs->br[0].fd, path, 0);
out_restore:
	if (ovl_wh)
		sfs_whiteout(fs, dpath, name);
	return r;
}

int sfs_link(struct sfs_fs *fs, struct sfs_node *node, struct sfs_node *dir, const char *name,
	     struct fuse_entry_param *e)
{
	char opath[PATH_MAX], dpath[PATH_MAX], path[PATH_MAX];
	struct sfs_lookup lk;
	int r;

	r = sfs_check_name(fs, name);
	if (r < 0)
		return r;
	if (!fs->rw)
		return -EROFS;
	if (node->type == S_IFDIR)
		return -EPERM;
	r = sfs_lookup_name(fs, dir, name, 0, &lk);
	if (r < 0)
		return r;
	bool exists = lk.found;
	sfs_lookup_clear(&lk);
	if (exists)
		return -EEXIST;
	/* the name the kernel linked from is gone: link the rw branch's file through its fd */
	bool orphan = !node->hashed;
	if (orphan && (node->opath_fd < 0 || node->bindex != 0 || node->plnk))
		return -ENOENT;
	r = orphan ? 0 : sfs_copy_up(fs, node, true);
	if (r == 0)
		r = sfs_copy_up(fs, dir, true);
	if (r < 0)
		return r;
	if (orphan)
		snprintf(opath, sizeof(opath), "/proc/self/fd/%d", node->opath_fd);
	else
		r = sfs_node_path(node, opath, sizeof(opath));
	if (r == 0)
		r = sfs_node_path(dir, dpath, sizeof(dpath));
	if (r == 0)
		r = sfs_join(path, sizeof(path), dpath, "", name);
	if (r < 0)
		return r;
	if (upper_ovl_whiteout(fs, path)) {
		r = sfs_do_unlinkat(fs->br[0].fd, path, 0);
		if (r < 0)
			return r;
	}
	if (orphan)
		r = linkat(AT_FDCWD, opath, fs->br[0].fd, path, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	else
		r = sfs_do_linkat(fs->br[0].fd, opath, fs->br[0].fd, path);
	if (r < 0)
		return r;
	remove_aufs_whiteout(fs, dpath, name);
	sfs_dir_changed(fs, dir);
	if (orphan)
		sfs_node_move(fs, node, dir, name); /* a name again */
	/* the kernel expects the linked inode back: it then updates that inode's link count */
	struct stat st;
	r = sfs_getattr(fs, node, &st);
	if (r < 0)
		return r;
	pthread_mutex_lock(&fs->table_lock);
	node->nlookup++;
	pthread_mutex_unlock(&fs->table_lock);
	sfs_fill_entry(fs, node, &st, e);
	return 0;
}

/* Moves an upper directory out of the way into the scratch dir and removes it there. */
static int remove_upper_dir(struct sfs_fs *fs, const char *path)
{
	char tmp[NAME_MAX];
	int r;

	sfs_make_temp(fs, tmp, sizeof(tmp));
	r = sfs_do_renameat(fs->br[0].fd, path, fs->work_fd, tmp, 0);
	if (r < 0)
		return r;
	return rm_rf_at(fs->work_fd, tmp);
}

static void forget_upper_ino(struct sfs_fs *fs, const char *path)
{
	struct stat st;

	if (fstatat(fs->br[0].fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink <= 1)
		sfs_ino_forget_upper(fs, st.st_ino);
}

/* UNLINK and RMDIR. Caller holds ns_lock for writing. */
int sfs_unlink(struct sfs_fs *fs, struct sfs_node *dir, const char *name, bool is_dir)
{
	char dpath[PATH_MAX], path[PATH_MAX];
	struct sfs_node *node;
	int r;

	if (wh_is_whiteout(name))
		return -EPERM;
	if (!fs->rw)
		return -EROFS;
	r = get_node(fs, dir, name, &node);
	if (r < 0)
		return r;
	if (is_dir && node->type != S_IFDIR) {
		r = -ENOTDIR;
		goto out;
	}
	if (!is_dir && node->type == S_IFDIR) {
		r = -EISDIR;
		goto out;
	}
	if (is_dir) {
		r = sfs_dir_is_empty(fs, node);
		if (r == 0)
			r = -ENOTEMPTY;
		if (r < 0)
			goto out;
	}
	r = sfs_copy_up(fs, dir, true);
	if (r < 0)
		goto out;
	r = sfs_node_path(dir, dpath, sizeof(dpath));
	if (r == 0)
		r = sfs_join(path, sizeof(path), dpath, "", name);
	if (r < 0)
		goto out;
	bool in_upper = node->bindex == 0 && !node->plnk;
	r = in_upper ? name_below(fs, dir, name) : 1;
	if (r < 0)
		goto out;
	bool need_wh = r;
	r = 0;

	sfs_node_pin(fs, node);
	if (fs->wh_format == SFS_WH_AUFS) {
		/* whiteout first: a crash in between leaves the name hidden, never half gone */
		if (need_wh) {
			r = sfs_whiteout(fs, dpath, name);
			if (r < 0)
				goto out;
		}
		if (in_upper) {
			forget_upper_ino(fs, path);
			r = is_dir ? remove_upper_dir(fs, path) : sfs_do_unlinkat(fs->br[0].fd, path, 0);
		}
	} else {
		if (in_upper) {
			forget_upper_ino(fs, path);
			r = is_dir ? remove_upper_dir(fs, path) : sfs_do_unlinkat(fs->br[0].fd, path, 0);
		}
		if (r == 0 && need_wh)
			r = sfs_whiteout(fs, dpath, name);
	}
	if (r < 0)
		goto out;
	sfs_node_unhash(fs, node);
	sfs_dir_changed(fs, dir);
out:
	sfs_node_forget(fs, node, 1);
	return r;
}

static bool same_object(struct sfs_node *a, struct sfs_node *b)
{
	return a == b || (a->type != S_IFDIR && a->ino == b->ino);
}

/*
 * Makes @node whole in the rw branch before it takes another name: a directory with lower
 * content has its tree copied up, and then must not merge with what is below, at either
 * name (*@opaque).
 */
static int copy_up_to_move(struct sfs_fs *fs, struct sfs_node *node, bool *opaque)
{
	*opaque = node->type == S_IFDIR && (node->bindex != 0 || node->nlayers > 1);
	return *opaque ? sfs_copy_up_tree(fs, node) : sfs_copy_up(fs, node, true);
}

/* Whether directory @node, given the name @dir/@name, must be opaque there. */
static int opaque_at(struct sfs_fs *fs, struct sfs_node *node, bool copied_tree,
		     struct sfs_node *dir, const char *name)
{
	if (node->type != S_IFDIR)
		return 0;
	return copied_tree ? 1 : name_below(fs, dir, name);
}

/* Where a rename's two names are in the branches. */
struct move_paths {
	char odir[PATH_MAX], ndir[PATH_MAX], old[PATH_MAX], new[PATH_MAX];
};

static int move_paths(struct move_paths *mp, struct sfs_node *odir, const char *oname,
		      struct sfs_node *ndir, const char *nname)
{
	int r = sfs_node_path(odir, mp->odir, sizeof(mp->odir));

	if (r == 0)
		r = sfs_node_path(ndir, mp->ndir, sizeof(mp->ndir));
	if (r == 0)
		r = sfs_join(mp->old, sizeof(mp->old), mp->odir, "", oname);
	if (r == 0)
		r = sfs_join(mp->new, sizeof(mp->new), mp->ndir, "", nname);
	return r;
}

/*
 * RENAME_EXCHANGE: both objects are made whole in the rw branch and swap names there. Both
 * names stay in the view, so no whiteout is made; a directory becomes opaque where it would
 * otherwise merge with what is below its new name.
 */
static int rename_exchange(struct sfs_fs *fs, struct sfs_node *odir, const char *oname,
			   struct sfs_node *ndir, const char *nname)
{
	struct move_paths mp;
	struct sfs_node *a = NULL, *b = NULL;
	bool a_tree = false, b_tree = false;
	int a_opq = 0, b_opq = 0;
	int r;

	r = get_node(fs, odir, oname, &a);
	if (r < 0)
		return r;
	r = get_node(fs, ndir, nname, &b);
	if (r < 0)
		goto out;
	if (a == b)
		goto out;
	if (same_object(a, b))
		goto swap; /* two names of one inode: the branches stay as they are */
	r = copy_up_to_move(fs, a, &a_tree);
	if (r == 0)
		r = copy_up_to_move(fs, b, &b_tree);
	if (r == 0)
		r = sfs_copy_up(fs, odir, true);
	if (r == 0)
		r = sfs_copy_up(fs, ndir, true);
	if (r == 0)
		r = move_paths(&mp, odir, oname, ndir, nname);
	if (r == 0 && (a_opq = opaque_at(fs, a, a_tree, ndir, nname)) < 0)
		r = a_opq;
	if (r == 0 && (b_opq = opaque_at(fs, b, b_tree, odir, oname)) < 0)
		r = b_opq;
	if (r == 0 && a_opq)
		r = make_opaque(fs, mp.old);
	if (r == 0 && b_opq)
		r = make_opaque(fs, mp.new);
	if (r == 0)
		r = sfs_do_renameat(fs->br[0].fd, mp.old, fs->br[0].fd, mp.new, RENAME_EXCHANGE);
	if (r < 0)
		goto out;
swap:
	/* the kernel swapped its dentries: each node takes the other's name */
	sfs_node_move(fs, a, ndir, nname); /* unhashes b */
	sfs_node_move(fs, b, odir, oname);
	sfs_dir_changed(fs, odir);
	sfs_dir_changed(fs, ndir);
out:
	if (b)
		sfs_node_forget(fs, b, 1);
	sfs_node_forget(fs, a, 1);
	return r;
}

/*
 * RENAME, never EXDEV: a lower directory's subtree is copied up first. Returns 1 when both
 * names are links of one inode: nothing changes, but the kernel, which sees two inodes,
 * believes the source name gone.
 */
int sfs_rename(struct sfs_fs *fs, struct sfs_node *odir, const char *oname,
	       struct sfs_node *ndir, const char *nname, unsigned flags)
{
	struct move_paths mp;
	struct sfs_node *src = NULL, *dst = NULL;
	int r;

	if (wh_is_whiteout(oname))
		return -EPERM;
	r = sfs_check_name(fs, nname);
	if (r < 0)
		return r;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE))
		return -EINVAL;
	if (!fs->rw)
		return -EROFS;
	if (flags & RENAME_EXCHANGE)
		return rename_exchange(fs, odir, oname, ndir, nname);
	r = get_node(fs, odir, oname, &src);
	if (r < 0)
		return r;
	r = get_node(fs, ndir, nname, &dst);
	if (r == -ENOENT) {
		dst = NULL;
		r = 0;
	}
	if (r < 0)
		goto out;
	if (dst) {
		if (flags & RENAME_NOREPLACE) {
			r = -EEXIST;
			goto out;
		}
		if (same_object(src, dst)) {
			r = 1; /* POSIX: nothing to do; the kernel must be told (see ops.c) */
			goto out;
		}
		if (src->type == S_IFDIR && dst->type != S_IFDIR) {
			r = -ENOTDIR;
			goto out;
		}
		if (src->type != S_IFDIR && dst->type == S_IFDIR) {
			r = -EISDIR;
			goto out;
		}
		if (dst->type == S_IFDIR) {
			r = sfs_dir_is_empty(fs, dst);
			if (r == 0)
				r = -ENOTEMPTY;
			if (r < 0)
				goto out;
		}
	}

	bool tree;
	r = copy_up_to_move(fs, src, &tree);
	if (r == 0)
		r = sfs_copy_up(fs, ndir, true);
	if (r == 0)
		r = move_paths(&mp, odir, oname, ndir, nname);
	if (r < 0)
		goto out;

	r = opaque_at(fs, src, tree, ndir, nname);
	if (r < 0)
		goto out;
	if (r) {
		r = make_opaque(fs, mp.old);
		if (r < 0)
			goto out;
	}
	r = name_below(fs, odir, oname);
	if (r < 0)
		goto out;
	bool need_wh = r;

	if (dst)
		sfs_node_pin(fs, dst);
	if (dst && dst->bindex == 0 && !dst->plnk) {
		forget_upper_ino(fs, mp.new);
		if (dst->type == S_IFDIR) {
			r = remove_upper_dir(fs, mp.new);
			if (r < 0)
				goto out;
		}
	}
	bool aufs_wh = upper_aufs_whiteout(fs, mp.ndir, nname);
	if (upper_ovl_whiteout(fs, mp.new) && src->type == S_IFDIR) {
		r = sfs_do_unlinkat(fs->br[0].fd, mp.new, 0);
		if (r < 0)
			goto out;
	}
	r = sfs_do_renameat(fs->br[0].fd, mp.old, fs->br[0].fd, mp.new, 0);
	if (r < 0)
		goto out;
	if (aufs_wh)
		remove_aufs_whiteout(fs, mp.ndir, nname);
	if (need_wh) {
		r = sfs_whiteout(fs, mp.odir, oname);
		if (r < 0) {
			/* put it back rather than let the lower name show through */
			sfs_do_renameat(fs->br[0].fd, mp.new, fs->br[0].fd, mp.old, 0);
			goto out;
		}
	}
	if (dst)
		sfs_node_unhash(fs, dst);
	sfs_node_move(fs, src, ndir, nname);
	sfs_dir_changed(fs, odir);
	sfs_dir_changed(fs, ndir);
out:
	if (dst)
		sfs_node_forget(fs, dst, 1);
	sfs_node_forget(fs, src, 1);
	return r;
}

int sfs_readlink(struct sfs_fs *fs, struct sfs_node *node, char *buf, size_t size)
{
	char path[PATH_MAX];
	int dfd, r;

	r = sfs_backing_at(fs, node, &dfd, path, sizeof(path));
	if (r < 0)
		return r;
	ssize_t n = readlinkat(dfd, path, buf, size - 1); /* "" reads an O_PATH fd's link */
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}
