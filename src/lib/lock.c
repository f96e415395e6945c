/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-id locks shared by every process that opens the store: a flock on
 * .strata/locks/<id>. Remove unlinks the file while holding it exclusively, so a
 * waiter re-checks, after it gets the lock, that its fd is still the file at
 * that name, and otherwise starts over.
 */
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "strata-private.h"

int store_lock(struct strata *s, const char *id, int op)
{
	if (s->locks_fd < 0)
		return -EROFS;
	for (;;) {
		_cleanup_close_ int fd = openat(s->locks_fd, id,
						O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		struct stat a, b;

		if (fd < 0)
			return -errno;
		while (flock(fd, op) < 0)
			if (errno != EINTR)
				return -errno;
		if (fstat(fd, &a) < 0)
			return -errno;
		if (fstatat(s->locks_fd, id, &b, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		if (a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			return TAKE_FD(fd);
	}
}

void store_unlock_unknown(struct strata *s, const char *id, int fd)
{
	/* exclusive at once, or someone else holds it (a shared lock may be let go first) */
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 && s->locks_fd >= 0)
		(void)unlinkat(s->locks_fd, id, 0);
	close(fd);
}

void store_unlock_remove(struct strata *s, const char *id, int fd)
{
	if (s->locks_fd >= 0)
		(void)unlinkat(s->locks_fd, id, 0);
	close(fd);
}
