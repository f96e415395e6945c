// SPDX-License-Identifier: Apache-2.0
/*
 * The session's reads and writes of /dev/fuse, for two things libfuse 3.14 cannot do.
 *
 * FUSE_HANDLE_KILLPRIV_V2. Without it the kernel asks for a file's security.capability
 * attribute before every write(), to know whether the write must drop it: a GETXATTR round
 * trip per write, since a FUSE mount may not remember that a file has none. With it, the
 * server drops set-id bits itself (and the backing file system a capability, when the server
 * writes), the mount remembers, and a write is one round trip. libfuse 3.14 does not know
 * the flag: the INIT reply is given it here when the kernel offers it.
 *
 * The kernel then says in each WRITE whether the writer may keep the file's set-id bits
 * (FUSE_WRITE_KILL_SUIDGID), a flag libfuse drops before the write handler sees the request:
 * the request as read is kept for the thread that handles it (libfuse's loops read a request
 * and handle it on one thread), see sfs_devio_write_kills().
 *
 * FUSE_SETXATTR_EXT, for the same reason: with it, the SETXATTR of an access ACL says whether
 * the file's setgid bit must go, as it goes on a local file system when the caller is not of
 * the file's group. Its request carries a longer header than the one a libfuse built with
 * protocol headers older than 7.33 reads (Debian's 3.14): it is given the short one, and the
 * flag is kept aside. A libfuse of newer headers asks for it itself, or not at all, and
 * reads the header its own way: the flag is only read then.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sfs.h"

static __thread const void *cur_req;
static __thread size_t cur_len;
static __thread uint32_t cur_setxattr_flags; /* of the SETXATTR in cur_req */

/*
 * The kernel orders a reply before the requests it lets come (a FORGET or RELEASE after the
 * last READ of a node); ThreadSanitizer cannot see it, and would report the handlers of such
 * requests as racing. Told here: every reply happens before every request read after it.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char kernel_order;
#define AFTER_KERNEL() __tsan_acquire(&kernel_order)
#define BEFORE_KERNEL() __tsan_release(&kernel_order)
#else
#define AFTER_KERNEL() ((void)0)
#define BEFORE_KERNEL() ((void)0)
#endif

static ssize_t devio_read(int fd, void *buf, size_t len, void *userdata)
{
	struct sfs_fs *fs = userdata;
	ssize_t n = read(fd, buf, len);

	AFTER_KERNEL();
	cur_req = NULL;
	if (n < (ssize_t)sizeof(struct fuse_in_header))
		return n;
	const struct fuse_in_header *in = buf;
	size_t init_len = sizeof(*in) + offsetof(struct fuse_init_in, flags2);
	if (in->opcode == FUSE_INIT && (size_t)n >= init_len) {
		const struct fuse_init_in *init = (const void *)(in + 1);
		if (init->major == FUSE_KERNEL_VERSION) {
			__atomic_store_n(&fs->init_offered, init->flags, __ATOMIC_RELAXED);
			__atomic_store_n(&fs->init_unique, in->unique, __ATOMIC_RELEASE);
		}
	} else if (in->opcode == FUSE_SETXATTR &&
		   (size_t)n >= sizeof(*in) + sizeof(struct fuse_setxattr_in) &&
		   __atomic_load_n(&fs->setxattr_ext, __ATOMIC_ACQUIRE) != SFS_XATTR_EXT_NONE) {
		char *arg = (char *)(in + 1);
		const size_t compat = offsetof(struct fuse_setxattr_in, setxattr_flags);
		cur_setxattr_flags = ((const struct fuse_setxattr_in *)arg)->setxattr_flags;
		if (__atomic_load_n(&fs->setxattr_ext, __ATOMIC_RELAXED) == SFS_XATTR_EXT_OURS) {
			/* to the layout libfuse reads: the name right after size and flags */
			memmove(arg + compat, arg + sizeof(struct fuse_setxattr_in),
				(size_t)n - sizeof(*in) - sizeof(struct fuse_setxattr_in));
			n -= (ssize_t)(sizeof(struct fuse_setxattr_in) - compat);
			((struct fuse_in_header *)buf)->len = (uint32_t)n;
		}
	}
	cur_req = buf;
	cur_len = (size_t)n;
	return n;
}

static ssize_t devio_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct sfs_fs *fs = userdata;
	const struct fuse_out_header *out = iov[0].iov_base;
	uint64_t init = __atomic_load_n(&fs->init_unique, __ATOMIC_ACQUIRE);

	BEFORE_KERNEL();
	if (init && out->unique == init && out->error == 0 && count == 2 &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
		/* the INIT reply: a copy with the flag, the same length */
		struct fuse_init_out io = { 0 };
		size_t n = iov[1].iov_len < sizeof(io) ? iov[1].iov_len : sizeof(io);
		memcpy(&io, iov[1].iov_base, n);
		uint32_t offered = __atomic_load_n(&fs->init_offered, __ATOMIC_RELAXED);
		io.flags |= offered & FUSE_HANDLE_KILLPRIV_V2;
		if (io.flags & FUSE_HANDLE_KILLPRIV_V2)
			io.flags &= ~(uint32_t)FUSE_HANDLE_KILLPRIV;
		/* before the reply: a request may be read as soon as it is written */
		if (io.flags & FUSE_SETXATTR_EXT) {
			__atomic_store_n(&fs->setxattr_ext, SFS_XATTR_EXT_LIBFUSE, __ATOMIC_RELEASE);
		} else if ((offered & FUSE_SETXATTR_EXT) && io.minor < 33) {
			io.flags |= FUSE_SETXATTR_EXT;
			__atomic_store_n(&fs->setxattr_ext, SFS_XATTR_EXT_OURS, __ATOMIC_RELEASE);
		}
		struct iovec v[3] = { iov[0], { &io, n } };
		int nv = 2;
		if (iov[1].iov_len > n)
			v[nv++] = (struct iovec){ (char *)iov[1].iov_base + n, iov[1].iov_len - n };
		__atomic_store_n(&fs->init_unique, 0, __ATOMIC_RELAXED);
		return writev(fd, v, nv);
	}
	return writev(fd, iov, count);
}

static ssize_t devio_splice_send(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
				 unsigned int flags, void *userdata)
{
	(void)userdata;
	BEFORE_KERNEL();
	return splice(fdin, offin, fdout, offout, len, flags);
}

/*
 * Puts these in the session's path to /dev/fuse. Replies that carry file data still go by
 * splice; requests are read into memory (no splice of a WRITE's data into a pipe), which the
 * flag's lookup needs.
 */
int sfs_devio_attach(struct sfs_fs *fs)
{
	static const struct fuse_custom_io io = {
		.read = devio_read,
		.writev = devio_writev,
		.splice_send = devio_splice_send,
	};
	int r = fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se));

	return r < 0 ? r : 0;
}

/*
 * Whether the WRITE of @ino at @off this thread is handling says that the writer may not
 * keep the file's set-id bits: 1 it may not, 0 it may, -1 unknown (not that request).
 */
int sfs_devio_write_kills(fuse_ino_t ino, off_t off)
{
	const struct fuse_in_header *in = cur_req;

	if (!in || cur_len < sizeof(*in) + sizeof(struct fuse_write_in) ||
	    in->opcode != FUSE_WRITE || in->nodeid != ino)
		return -1;
	const struct fuse_write_in *w = (const void *)(in + 1);
	if ((off_t)w->offset != off)
		return -1;
	return !!(w->write_flags & FUSE_WRITE_KILL_SUIDGID);
}

/*
 * Whether the SETXATTR of @ino this thread is handling says that the caller may not keep the
 * file's setgid bit (FUSE_SETXATTR_ACL_KILL_SGID: an access ACL set by a caller outside the
 * file's group, without CAP_FSETID), which the kernel says only under FUSE_SETXATTR_EXT.
 */
bool sfs_devio_setxattr_kills_sgid(fuse_ino_t ino)
{
	const struct fuse_in_header *in = cur_req;

	return in && in->opcode == FUSE_SETXATTR && in->nodeid == ino &&
	       (cur_setxattr_flags & FUSE_SETXATTR_ACL_KILL_SGID);
}
