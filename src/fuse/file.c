// SPDX-License-Identifier: Apache-2.0
/* Open files: copy-up on open for write, and handles that follow their file to the rw branch. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfs.h"

static int open_backing(struct sfs_fs *fs, struct sfs_node *node, int flags)
{
	char path[PATH_MAX];
	int dfd, r;

	r = sfs_backing_at(fs, node, &dfd, path, sizeof(path));
	if (r < 0)
		return r;
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY);
	if (!path[0]) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
		return sfs_do_openat(AT_FDCWD, proc, flags & ~O_NOFOLLOW, 0);
	}
	return sfs_do_openat(dfd, path, flags | O_NOFOLLOW, 0);
}

/* Whether opening with @flags changes the file: it must be in the rw branch first. */
static bool open_writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

int sfs_file_from_fd(struct sfs_fs *fs, struct sfs_node *node, int fd, int flags,
		     struct sfs_file **ret)
{
	struct sfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->fd = fd;
	f->old_fd = -1;
	f->flags = flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY);
	f->gen = __atomic_load_n(&node->gen, __ATOMIC_ACQUIRE);
	f->node = node;
	sfs_node_ref(fs, node);
	*ret = f;
	return 0;
}

/*
 * OPEN. Caller holds ns_lock, for writing when the open writes (copy-up may happen).
 */
int sfs_open(struct sfs_fs *fs, struct sfs_node *node, int flags, struct sfs_file **ret)
{
	int r;

	if (open_writes(flags)) {
		if (!fs->rw)
			return -EROFS;
		if (node->type == S_IFDIR)
			return -EISDIR;
		r = sfs_copy_up(fs, node, /* with_data= */ !(flags & O_TRUNC));
		if (r < 0)
			return r;
	}
	int fd = open_backing(fs, node, flags);
	if (fd < 0)
		return fd;
	r = sfs_file_from_fd(fs, node, fd, flags, ret);
	if (r < 0)
		close(fd);
	return r;
}

void sfs_release(struct sfs_fs *fs, struct sfs_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	if (f->old_fd >= 0)
		close(f->old_fd);
	pthread_mutex_destroy(&f->lock);
	sfs_node_unref(fs, f->node);
	free(f);
}

static int reopen_locked(struct sfs_fs *fs, struct sfs_file *f, unsigned gen)
{
	int fd = open_backing(fs, f->node, f->flags);

	if (fd < 0)
		return fd;
	/* a read in flight may still use the old fd: it stays open until release */
	if (f->old_fd >= 0)
		close(f->old_fd);
	f->old_fd = f->fd;
	f->fd = fd;
	f->gen = gen;
	return 0;
}

/*
 * The fd to use for @f: after a copy-up of its file, the handle reopens the copy, so every
 * handle sees the rw branch's data from then on. Takes ns_lock for reading if it reopens.
 */
int sfs_file_fd(struct sfs_fs *fs, struct sfs_file *f)
{
	unsigned gen = __atomic_load_n(&f->node->gen, __ATOMIC_ACQUIRE);
	int r = 0;

	if (_likely_(gen == f->gen))
		return f->fd;
	pthread_rwlock_rdlock(&fs->ns_lock);
	pthread_mutex_lock(&f->lock);
	if (f->gen != gen)
		r = reopen_locked(fs, f, gen);
	int fd = f->fd;
	pthread_mutex_unlock(&f->lock);
	pthread_rwlock_unlock(&fs->ns_lock);
	return r < 0 ? r : fd;
}

/*
 * The fd through which requests without a handle read (@write false) or write @node. It
 * stays valid while the node lives: after a copy-up the new file is dup'ed over the same
 * number, so a request still using it reads the old file or the new, never a closed fd.
 * Caller holds ns_lock.
 */
int sfs_node_fd(struct sfs_fs *fs, struct sfs_node *node, bool write, bool *ret_close)
{
	int *slot = write ? &node->wfd : &node->rfd;
	unsigned *sgen = write ? &node->wfd_gen : &node->rfd_gen;
	unsigned gen = __atomic_load_n(&node->gen, __ATOMIC_ACQUIRE);
	int fd;

	*ret_close = false;
	pthread_mutex_lock(&fs->fd_lock);
	fd = *slot;
	bool fresh = fd >= 0 && *sgen == gen;
	pthread_mutex_unlock(&fs->fd_lock);
	if (fresh)
		return fd;

	int nfd = open_backing(fs, node, write ? O_RDWR : O_RDONLY);
	if (nfd < 0)
		return nfd;
	pthread_mutex_lock(&fs->fd_lock);
	if (*slot < 0) {
		if (fs->fd_count >= fs->fd_max) {
			/* too many cached: this one is for the request alone */
			pthread_mutex_unlock(&fs->fd_lock);
			*ret_close = true;
			return nfd;
		}
		fs->fd_count++;
		*slot = nfd;
		*sgen = gen;
	} else {
		if (*sgen != gen) {
			dup3(nfd, *slot, O_CLOEXEC);
			*sgen = gen;
		}
		close(nfd);
	}
	fd = *slot;
	pthread_mutex_unlock(&fs->fd_lock);
	return fd;
}

/* Same, for a caller that holds ns_lock already. */
int sfs_file_fd_locked(struct sfs_fs *fs, struct sfs_file *f)
{
	unsigned gen = __atomic_load_n(&f->node->gen, __ATOMIC_ACQUIRE);
	int r = 0;

	if (gen == f->gen)
		return f->fd;
	pthread_mutex_lock(&f->lock);
	if (f->gen != gen)
		r = reopen_locked(fs, f, gen);
	int fd = f->fd;
	pthread_mutex_unlock(&f->lock);
	return r < 0 ? r : fd;
}
