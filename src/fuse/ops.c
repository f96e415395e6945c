// SPDX-License-Identifier: Apache-2.0
/*
 * The only file that talks to libfuse: each handler takes the namespace lock as its
 * operation needs, calls a function that returns 0 or -errno, and replies exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "sfs.h"

#define FS(req) ((struct sfs_fs *)fuse_req_userdata(req))
#define NODE(fs, ino) sfs_node_get(fs, ino)
#define FILE_OF(fi) ((struct sfs_file *)(uintptr_t)(fi)->fh)

static void rdlock(struct sfs_fs *fs)
{
	pthread_rwlock_rdlock(&fs->ns_lock);
}

/* Every change to names or attributes but a write's takes the lock for writing. */
static void wrlock(struct sfs_fs *fs)
{
	pthread_rwlock_wrlock(&fs->ns_lock);
	sfs_changed(fs);
}

static void unlock(struct sfs_fs *fs)
{
	pthread_rwlock_unlock(&fs->ns_lock);
}

static void reply_entry_or_err(fuse_req_t req, int r, const struct fuse_entry_param *e)
{
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, e);
}

/* Whether the caller of @req is of group @gid (shown ids), by its groups at the time. */
static bool caller_in_group(fuse_req_t req, gid_t gid)
{
	gid_t small[32], *list = small;
	int n, cap = (int)ARRAY_SIZE(small);

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	for (;;) {
		n = fuse_req_getgroups(req, cap, list);
		if (n <= cap || n < 0)
			break;
		if (list != small)
			free(list);
		cap = n;
		list = malloc((size_t)cap * sizeof(*list));
		if (!list)
			return false;
	}
	bool in = false;
	for (int i = 0; i < n && !in; i++)
		in = list[i] == gid;
	if (list != small)
		free(list);
	return in;
}

/*
 * What dropping the set-id bits of a change of data needs to know of its caller, who may not
 * keep them: whether it is of the file's group (in_group, -1 when no setgid bit depends on
 * it), for the group the file had (gid, as shown). Asked before the namespace lock is taken:
 * it reads /proc.
 */
struct kill_ask {
	gid_t gid;
	int in_group;
};

/* The group of @st as @fs shows it. */
static gid_t shown_gid(struct sfs_fs *fs, const struct stat *st)
{
	struct stat shown = *st;

	sfs_stat_shown(fs, &shown);
	return shown.st_gid;
}

static struct kill_ask kill_ask(struct sfs_fs *fs, fuse_req_t req, const struct stat *st)
{
	struct kill_ask a = { .gid = shown_gid(fs, st), .in_group = -1 };

	if ((st->st_mode & (S_ISGID | S_IXGRP)) == S_ISGID)
		a.in_group = caller_in_group(req, a.gid);
	return a;
}

/*
 * The mode such a change leaves of a file now @st, as the VFS has it: no setuid; no setgid
 * where the group may execute, or where the caller is not of the file's group (@ask's
 * answer, unless the group changed since: then asked again).
 */
static mode_t killed_mode(struct sfs_fs *fs, fuse_req_t req, const struct stat *st,
			  const struct kill_ask *ask)
{
	mode_t m = st->st_mode & ~(mode_t)S_ISUID;

	if (!(m & S_ISGID))
		return m;
	gid_t gid = shown_gid(fs, st);
	bool keep = !(m & S_IXGRP) && (gid == ask->gid && ask->in_group >= 0 ?
					       ask->in_group :
					       caller_in_group(req, gid));
	return keep ? m : m & ~(mode_t)S_ISGID;
}

static bool has_setid(int fd, struct stat *st)
{
	return fstat(fd, st) == 0 && S_ISREG(st->st_mode) && (st->st_mode & (S_ISUID | S_ISGID));
}

/*
 * Drops the set-id bits of file @ino, open at @fd, as killed_mode() says, before a change of
 * its data. The kernel's copy of the mode is dropped at once, before the change is replied
 * to, so that no exec after it finds the bits. -errno if they could not go: then the change
 * must not be made, as the kernel refuses a write whose set-id bits it cannot drop.
 */
static int kill_suidgid(struct sfs_fs *fs, fuse_req_t req, fuse_ino_t ino, int fd)
{
	struct stat st;
	int r = 0;

	if (!has_setid(fd, &st))
		return 0;
	struct kill_ask ask = kill_ask(fs, req, &st);
	/* read and written back under the lock a chmod takes, so as not to undo one */
	wrlock(fs);
	if (has_setid(fd, &st)) {
		mode_t m = killed_mode(fs, req, &st, &ask);
		if (m != st.st_mode)
			r = fchmod(fd, m & 07777) < 0 ? -errno : 1;
	}
	unlock(fs);
	if (r > 0)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
	return r < 0 ? r : 0;
}

static void sfs_op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* the kernel clears setuid bits itself, through SETATTR */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want |= FUSE_CAP_SPLICE_READ;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/*
	 * Always READDIRPLUS: in auto mode the kernel asks for attributes only in the first
	 * call on a directory, and a walk then looks up every later entry one by one. Which
	 * replies carry attributes is ours to say, by the process that reads them: see
	 * sfs_walker().
	 */
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	/*
	 * POSIX ACLs are the kernel's to enforce, as for a local file system: without this it
	 * checks the mode bits alone, and a user that an ACL entry shuts out would get in. They
	 * are the branches' system.posix_acl_* attributes, copied up with the rest; the
	 * backing file system keeps them and the mode in step, and makes new objects inherit
	 * default ACLs.
	 */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* ... and a directory's default ACL overrides the umask: applied here, see sfs_create_obj() */
	if (conn->capable & FUSE_CAP_DONT_MASK) {
		conn->want |= FUSE_CAP_DONT_MASK;
		((struct sfs_fs *)userdata)->dont_mask = true;
	}
	/* O_TRUNC must reach us as a SETATTR: OPEN may never be sent */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* locks are the kernel's: it keeps them for the mount, as for a local file system */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	conn->max_write = 1 << 20;
	conn->max_readahead = 1 << 20;
}

static void sfs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_entry_param e;

	rdlock(fs);
	int r = sfs_lookup(fs, NODE(fs, parent), name, NULL, &e);
	if (r == 0 && e.ino)
		sfs_readdir_looked_up(fs, NODE(fs, parent), name, fuse_req_ctx(req)->pid);
	unlock(fs);
	reply_entry_or_err(req, r, &e);
}

static void sfs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct sfs_fs *fs = FS(req);

	sfs_node_forget(fs, NODE(fs, ino), nlookup);
	fuse_reply_none(req);
}

static void sfs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct sfs_fs *fs = FS(req);

	for (size_t i = 0; i < count; i++)
		sfs_node_forget(fs, NODE(fs, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void sfs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_node *node = NODE(fs, ino);
	struct stat st;
	int r;

	if (fi && fi->fh) {
		int fd = sfs_file_fd(fs, FILE_OF(fi));
		r = fd < 0 ? fd : fstat(fd, &st) < 0 ? -errno : 0;
		if (r == 0)
			sfs_node_attr(node, &st);
	} else {
		rdlock(fs);
		r = sfs_getattr(fs, node, &st);
		unlock(fs);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	double timeout = sfs_attr_timeout(fs, node, &st);
	sfs_stat_shown(fs, &st);
	fuse_reply_attr(req, &st, timeout);
}

static void sfs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			   struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_node *node = NODE(fs, ino);
	struct stat st, a = *attr;
	int r;

	/*
	 * A truncate by a caller without CAP_FSETID drops set-id bits, which the kernel leaves
	 * to us under FUSE_HANDLE_KILLPRIV_V2 (FATTR_KILL_SUIDGID, which libfuse passes as
	 * KILL_SUID): the mode goes first, in the same change, so that a mode that cannot go
	 * leaves the file as it was.
	 */
	bool kill = (to_set & FUSE_SET_ATTR_KILL_SUID) && (to_set & FUSE_SET_ATTR_SIZE) &&
		    !(to_set & FUSE_SET_ATTR_MODE);
	struct kill_ask ask;
	if (kill) {
		rdlock(fs);
		r = sfs_getattr(fs, node, &st);
		unlock(fs);
		kill = r == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID));
		if (kill)
			ask = kill_ask(fs, req, &st);
	}
	wrlock(fs);
	if (kill && sfs_getattr(fs, node, &st) == 0) {
		a.st_mode = killed_mode(fs, req, &st, &ask);
		if (a.st_mode != st.st_mode)
			to_set |= FUSE_SET_ATTR_MODE;
	}
	r = sfs_setattr(fs, node, &a, to_set, fi ? FILE_OF(fi) : NULL, &st);
	unlock(fs);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	/* once replied to, the kernel may forget the node: hold it for the invalidation */
	bool inval = !S_ISDIR(st.st_mode) && st.st_nlink > 1;
	if (inval)
		sfs_node_ref(fs, node);
	double timeout = sfs_attr_timeout(fs, node, &st);
	sfs_stat_shown(fs, &st);
	fuse_reply_attr(req, &st, timeout);
	if (inval) {
		sfs_inval_aliases(fs, node);
		sfs_node_unref(fs, node);
	}
}

static void sfs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = FS(req);
	char buf[PATH_MAX + 1];

	rdlock(fs);
	int r = sfs_readlink(fs, NODE(fs, ino), buf, sizeof(buf));
	unlock(fs);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, buf);
}

static void create_common(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			  dev_t rdev, const char *target)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_entry_param e;

	wrlock(fs);
	int r = sfs_create_obj(fs, NODE(fs, parent), name, mode, rdev, target, fuse_req_ctx(req),
			       &e, 0, NULL);
	unlock(fs);
	reply_entry_or_err(req, r, &e);
}

static void sfs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 dev_t rdev)
{
	create_common(req, parent, name, mode, rdev, NULL);
}

static void sfs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	create_common(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void sfs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			   const char *name)
{
	create_common(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void sfs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);

	wrlock(fs);
	int r = sfs_unlink(fs, NODE(fs, parent), name, /* is_dir= */ false);
	unlock(fs);
	fuse_reply_err(req, -r);
}

static void sfs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfs_fs *fs = FS(req);

	wrlock(fs);
	int r = sfs_unlink(fs, NODE(fs, parent), name, /* is_dir= */ true);
	unlock(fs);
	fuse_reply_err(req, -r);
}

static void sfs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			  fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct sfs_fs *fs = FS(req);

	wrlock(fs);
	int r = sfs_rename(fs, NODE(fs, parent), name, NODE(fs, newparent), newname, flags);
	unlock(fs);
	fuse_reply_err(req, r < 0 ? -r : 0);
	if (r == 1) {
		/* two names of one inode: the kernel moved its dentry; make it look both up again.
		 * This blocks until the rename syscall has dropped its directory locks. */
		fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
		fuse_lowlevel_notify_inval_entry(fs->se, newparent, newname, strlen(newname));
	}
}

static void sfs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
			const char *newname)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_entry_param e;

	wrlock(fs);
	int r = sfs_link(fs, NODE(fs, ino), NODE(fs, newparent), newname, &e);
	unlock(fs);
	reply_entry_or_err(req, r, &e);
}

/* We are the only writer: the page cache stays valid across opens, unless another name of
 * the inode (a hard link, another kernel inode) may write behind it. */
static void set_open_flags(struct sfs_fs *fs, struct sfs_file *f, struct fuse_file_info *fi)
{
	struct stat st;

	fi->fh = (uintptr_t)f;
	fi->keep_cache = fstat(f->fd, &st) == 0 && st.st_nlink <= 1;
	fi->noflush = 1;
}

/*
 * The fd for a request on an open file: its handle's, or, when the kernel skips OPEN, the
 * node's. A write copies the file up first (aufs copies at the first write, not at open).
 */
static int req_fd(struct sfs_fs *fs, fuse_ino_t ino, struct fuse_file_info *fi, bool write,
		  bool *ret_close)
{
	struct sfs_node *node = NODE(fs, ino);
	int r;

	*ret_close = false;
	if (fi && fi->fh)
		return sfs_file_fd(fs, FILE_OF(fi));
	if (write) {
		if (!fs->rw)
			return -EROFS;
		wrlock(fs);
		r = sfs_copy_up(fs, node, /* with_data= */ true);
		unlock(fs);
		if (r < 0)
			return r;
	}
	rdlock(fs);
	r = sfs_node_fd(fs, node, write, ret_close);
	unlock(fs);
	return r;
}

static void closep_if(int fd, bool yes)
{
	if (yes && fd >= 0)
		close(fd);
}

/*
 * Whether a write by node (no handle) must make the other kernel inodes of a hard link drop
 * their cache. If so, takes a reference on the node, which the kernel may forget as soon as
 * the write is replied to: after_node_write() drops it.
 */
static bool before_node_write(struct sfs_fs *fs, struct sfs_node *node, struct fuse_file_info *fi,
			      int fd)
{
	struct stat st;

	if ((fi && fi->fh) || fstat(fd, &st) < 0 || st.st_nlink <= 1)
		return false;
	sfs_node_ref(fs, node);
	return true;
}

static void after_node_write(struct sfs_fs *fs, struct sfs_node *node)
{
	sfs_inval_aliases(fs, node);
	sfs_node_unref(fs, node);
}

static void sfs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_file *f = NULL;

	if (fs->no_open) {
		/* the kernel stops sending OPEN, FLUSH and RELEASE and keeps the page cache */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);

	if (writes)
		wrlock(fs);
	else
		rdlock(fs);
	int r = sfs_open(fs, NODE(fs, ino), fi->flags, &f);
	unlock(fs);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	set_open_flags(fs, f, fi);
	if (fuse_reply_open(req, fi) == -ENOENT)
		sfs_release(fs, f); /* the opener was interrupted */
}

static void sfs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			  struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_entry_param e;
	struct sfs_file *f = NULL;
	int fd = -1;

	/*
	 * Without handles, a created file is better made by MKNOD: the kernel then skips the
	 * OPEN and the RELEASE, two of a create's four round trips. Only root may: an open
	 * of a new 0444 file for writing succeeds, and later writes go through an fd the
	 * daemon opens itself.
	 */
	if (fs->no_open && fs->is_root) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	wrlock(fs);
	int r = sfs_create_obj(fs, NODE(fs, parent), name, S_IFREG | (mode & 07777), 0, NULL,
			       fuse_req_ctx(req), &e, fi->flags, &fd);
	if (r == 0) {
		r = sfs_file_from_fd(fs, NODE(fs, e.ino), fd, fi->flags, &f);
		if (r < 0) {
			close(fd);
			sfs_node_forget(fs, NODE(fs, e.ino), 1);
		}
	}
	unlock(fs);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	set_open_flags(fs, f, fi);
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		sfs_release(fs, f);
}

static void sfs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	bool tmp;
	int fd = req_fd(fs, ino, fi, false, &tmp);

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	closep_if(fd, tmp);
}

static void sfs_op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf,
			     off_t off, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));
	bool tmp;
	int fd = req_fd(fs, ino, fi, true, &tmp);

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	/*
	 * Set-id bits go before the write, as on a local file system, where the kernel says so
	 * (FUSE_HANDLE_KILLPRIV_V2); should it not have said, for any write by a caller other
	 * than root.
	 */
	int kills = sfs_devio_write_kills(ino, off);
	if (kills < 0)
		kills = !fi->writepage && fuse_req_ctx(req)->uid != 0;
	int r = kills ? kill_suidgid(fs, req, ino, fd) : 0;
	if (r < 0) {
		fuse_reply_err(req, -r);
		closep_if(fd, tmp);
		return;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fd;
	out.buf[0].pos = off;
	ssize_t n = fuse_buf_copy(&out, in_buf, 0);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		closep_if(fd, tmp);
		return;
	}
	sfs_changed(fs); /* the file's size and times */
	struct sfs_node *node = NODE(fs, ino);
	bool inval = before_node_write(fs, node, fi, fd);
	closep_if(fd, tmp);
	fuse_reply_write(req, (size_t)n);
	if (inval)
		after_node_write(fs, node);
}

static void sfs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_file *f = FILE_OF(fi);
	struct sfs_node *node = f->node;
	struct stat st;
	bool inval = (f->flags & O_ACCMODE) != O_RDONLY && fstat(f->fd, &st) == 0 &&
		     st.st_nlink > 1;

	if (inval)
		sfs_node_ref(fs, node);
	sfs_release(fs, f);
	fuse_reply_err(req, 0);
	if (inval) {
		sfs_inval_aliases(fs, node);
		sfs_node_unref(fs, node);
	}
}

static void sfs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	bool tmp;
	if (FS(req)->nosync) {
		fuse_reply_err(req, 0);
		return;
	}
	int fd = req_fd(FS(req), ino, fi, false, &tmp);
	int r = fd < 0 ? fd : (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;

	closep_if(fd, tmp);
	fuse_reply_err(req, -r);
}

static void sfs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			     off_t length, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	bool tmp;
	int fd = req_fd(fs, ino, fi, true, &tmp);
	/*
	 * fallocate drops set-id bits as a write does, in every mode; the kernel does not say
	 * here whether the caller may keep them: only root may.
	 */
	int r = fd < 0 ? fd : fuse_req_ctx(req)->uid != 0 ? kill_suidgid(fs, req, ino, fd) : 0;
	if (r == 0 && fallocate(fd, mode, offset, length) < 0)
		r = -errno;

	sfs_changed(fs);
	closep_if(fd, tmp);
	fuse_reply_err(req, -r);
}

static void sfs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			 struct fuse_file_info *fi)
{
	bool tmp;
	int fd = req_fd(FS(req), ino, fi, false, &tmp);
	off_t r = fd < 0 ? fd : lseek(fd, off, whence);

	if (r < 0)
		fuse_reply_err(req, fd < 0 ? -fd : errno);
	else
		fuse_reply_lseek(req, r);
	closep_if(fd, tmp);
}

static void dirhandle_free(struct sfs_fs *fs, struct sfs_dirhandle *dh)
{
	sfs_listing_put(fs, dh->l);
	pthread_mutex_destroy(&dh->lock);
	free(dh);
}

static void sfs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);

	if (fs->no_opendir) {
		/* the kernel stops sending OPENDIR and RELEASEDIR, and caches listings itself;
		 * our listings keep offsets stable across changes without a handle */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct sfs_node *node = NODE(fs, ino);
	struct sfs_dirhandle *dh = calloc(1, sizeof(*dh));
	int r;

	if (!dh) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rdlock(fs);
	r = node->type == S_IFDIR ? sfs_listing_get(fs, node, &dh->l) : -ENOTDIR;
	unlock(fs);
	if (r < 0) {
		free(dh);
		fuse_reply_err(req, -r);
		return;
	}
	pthread_mutex_init(&dh->lock, NULL);
	fi->fh = (uintptr_t)dh;
	/* the kernel drops its copy when the directory changes through us */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dirhandle_free(fs, dh);
}

/*
 * The listing a READDIR on @dh reads: the one of its last read, unless the directory changed
 * since. Caller holds ns_lock, so the directory's version is stable.
 */
static int dirhandle_listing(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_dirhandle *dh,
			     struct sfs_listing **ret)
{
	int r = 0;

	pthread_mutex_lock(&dh->lock);
	if (dh->l->version != dir->dversion) {
		struct sfs_listing *l;
		r = sfs_listing_get(fs, dir, &l);
		if (r == 0) {
			sfs_listing_put(fs, dh->l);
			dh->l = l;
		}
	}
	if (r == 0) {
		sfs_listing_ref(fs, dh->l);
		*ret = dh->l;
	}
	pthread_mutex_unlock(&dh->lock);
	return r;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_node *dir = NODE(fs, ino);
	struct sfs_dirhandle *dh = (struct sfs_dirhandle *)(uintptr_t)fi->fh;
	struct sfs_listing *l;
	_cleanup_free_ char *buf = malloc(size);
	size_t pos = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rdlock(fs);
	int r = dh ? dirhandle_listing(fs, dir, dh, &l) : sfs_listing_get(fs, dir, &l);
	if (r < 0) {
		unlock(fs);
		fuse_reply_err(req, -r);
		return;
	}
	/* Under ns_lock nothing changes the directory: a current listing says where names are. */
	bool current = l->version == dir->dversion;
	/* attributes for a listing's first entries, and all of them for a process that walks */
	bool walker = plus && sfs_walker(fs, fuse_req_ctx(req)->pid, dir, off);
	size_t attrs_to = !plus ? 0 : walker ? l->n : SFS_ATTRS_FIRST;
	bool attrs = (size_t)off < attrs_to;
	struct sfs_lookahead *ahead = attrs ? sfs_lookahead_take(fs, l, off) : NULL;
	/* the entries of this reply and of the next ones with attributes are looked up alongside */
	if (attrs)
		sfs_prefetch(fs, dir, l, off < 2 ? 2 : (size_t)off, attrs_to);

	size_t i;
	for (i = off; i < l->n; i++) {
		struct sfs_dirent *d = &l->ents[i];
		size_t n;

		if (!d->name)
			continue;

		if (plus) {
			struct fuse_entry_param e = { 0 };
			bool looked = false;
			if (i >= 2 && i < attrs_to &&
			    sfs_lookup_pre(fs, dir, d->name, current ? d : NULL,
					   sfs_lookahead_at(ahead, i), &e) == 0 &&
			    e.ino)
				looked = true;
			if (!looked) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->ino;
				e.attr.st_mode = DTTOIF(d->type);
			}
			n = fuse_add_direntry_plus(req, buf + pos, size - pos, d->name, &e, i + 1);
			if (n > size - pos) {
				if (looked)
					sfs_node_forget(fs, NODE(fs, e.ino), 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = d->ino, .st_mode = DTTOIF(d->type) };
			n = fuse_add_direntry(req, buf + pos, size - pos, d->name, &st, i + 1);
			if (n > size - pos)
				break;
		}
		pos += n;
	}
	sfs_lookahead_free(ahead);
	if (i > attrs_to && plus) /* names went without attributes: see sfs_readdir_looked_up() */
		__atomic_store_n(&l->bare, true, __ATOMIC_RELAXED);
	bool more = i < attrs_to && i < l->n;
	if (more)
		sfs_node_ref(fs, dir); /* the kernel may forget it once it has the reply */
	unlock(fs);
	fuse_reply_buf(req, buf, pos);
	/* ... and while the kernel takes these in, look them up */
	if (more) {
		rdlock(fs);
		sfs_lookahead_make(fs, dir, l, i, i - off < attrs_to - i ? i - off : attrs_to - i);
		unlock(fs);
		sfs_node_unref(fs, dir);
	}
	sfs_listing_put(fs, l);
}

static void sfs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void sfs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void sfs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfs_dirhandle *dh = (struct sfs_dirhandle *)(uintptr_t)fi->fh;

	if (dh)
		dirhandle_free(FS(req), dh);
	fuse_reply_err(req, 0);
}

static void sfs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			    struct fuse_file_info *fi)
{
	struct sfs_fs *fs = FS(req);
	struct sfs_node *node = NODE(fs, ino);
	char path[PATH_MAX];
	int r = 0;

	rdlock(fs);
	if (fs->rw && !fs->nosync && node->bindex == 0) {
		r = sfs_node_path(node, path, sizeof(path));
		if (r == 0) {
			_cleanup_close_ int fd =
				openat(fs->br[0].fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			r = fd < 0 ? -errno : fsync(fd) < 0 ? -errno : 0;
		}
	}
	unlock(fs);
	fuse_reply_err(req, -r);
}

static void sfs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sfs_fs *fs = FS(req);
	struct statvfs sv;

	if (fstatvfs(fs->br[0].fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* room for the whiteout prefix */
	if (sv.f_namemax > WH_PREFIX_LEN)
		sv.f_namemax -= WH_PREFIX_LEN;
	fuse_reply_statfs(req, &sv);
}

static void sfs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			    size_t size, int flags)
{
	struct sfs_fs *fs = FS(req);

	struct sfs_node *node = NODE(fs, ino);

	int r = 0;

	wrlock(fs);
	/* an access ACL set by a caller outside the file's group: the setgid bit goes first */
	if (!strcmp(name, "system.posix_acl_access") && sfs_devio_setxattr_kills_sgid(ino)) {
		struct stat st;
		r = sfs_getattr(fs, node, &st);
		if (r == 0 && (st.st_mode & S_ISGID)) {
			struct stat a = { .st_mode = st.st_mode & ~(mode_t)S_ISGID };
			r = sfs_setattr(fs, node, &a, FUSE_SET_ATTR_MODE, NULL, &st);
		}
	}
	if (r == 0)
		r = sfs_setxattr(fs, node, name, value, size, flags);
	unlock(fs);
	fuse_reply_err(req, -r);
}

static void sfs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfs_fs *fs = FS(req);

	wrlock(fs);
	int r = sfs_removexattr(fs, NODE(fs, ino), name);
	unlock(fs);
	fuse_reply_err(req, -r);
}

static void reply_xattr(fuse_req_t req, int r, const char *buf, size_t size)
{
	if (r < 0)
		fuse_reply_err(req, -r);
	else if (size == 0)
		fuse_reply_xattr(req, r);
	else
		fuse_reply_buf(req, buf, r);
}

static void sfs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfs_fs *fs = FS(req);
	_cleanup_free_ char *buf = size ? malloc(size) : NULL;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rdlock(fs);
	int r = sfs_getxattr(fs, NODE(fs, ino), name, buf, size);
	unlock(fs);
	reply_xattr(req, r, buf, size);
}

static void sfs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sfs_fs *fs = FS(req);
	_cleanup_free_ char *buf = size ? malloc(size) : NULL;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rdlock(fs);
	int r = sfs_listxattr(fs, NODE(fs, ino), buf, size);
	unlock(fs);
	reply_xattr(req, r, buf, size);
}

const struct fuse_lowlevel_ops sfs_ops = {
	.init = sfs_op_init,
	.lookup = sfs_op_lookup,
	.forget = sfs_op_forget,
	.forget_multi = sfs_op_forget_multi,
	.getattr = sfs_op_getattr,
	.setattr = sfs_op_setattr,
	.readlink = sfs_op_readlink,
	.mknod = sfs_op_mknod,
	.mkdir = sfs_op_mkdir,
	.symlink = sfs_op_symlink,
	.unlink = sfs_op_unlink,
	.rmdir = sfs_op_rmdir,
	.rename = sfs_op_rename,
	.link = sfs_op_link,
	.open = sfs_op_open,
	.create = sfs_op_create,
	.read = sfs_op_read,
	.write_buf = sfs_op_write_buf,
	.release = sfs_op_release,
	.fsync = sfs_op_fsync,
	.fallocate = sfs_op_fallocate,
	.lseek = sfs_op_lseek,
	.opendir = sfs_op_opendir,
	.readdir = sfs_op_readdir,
	.readdirplus = sfs_op_readdirplus,
	.releasedir = sfs_op_releasedir,
	.fsyncdir = sfs_op_fsyncdir,
	.statfs = sfs_op_statfs,
	.setxattr = sfs_op_setxattr,
	.getxattr = sfs_op_getxattr,
	.listxattr = sfs_op_listxattr,
	.removexattr = sfs_op_removexattr,
};
