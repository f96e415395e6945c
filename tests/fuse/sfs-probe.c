// SPDX-License-Identifier: Apache-2.0
/* What coreutils cannot do, for the strata-fuse suites: one check per subcommand, exit 0 if it holds. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s (errno %s)\n", __FILE__, __LINE__, \
				#c, strerror(errno));                                              \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

/* telldir/seekdir: every offset returns to the same entry, even after the directory changes. */
static int seekdir_stable(const char *dir)
{
	DIR *d = opendir(dir);
	CHECK(d);
	long offs[4096];
	char names[4096][256];
	int n = 0;
	struct dirent *de;
	for (;;) {
		long off = telldir(d);
		if (!(de = readdir(d)))
			break;
		CHECK(n < 4096);
		offs[n] = off;
		snprintf(names[n], sizeof(names[n]), "%s", de->d_name);
		n++;
	}
	/* change the directory behind the open stream */
	char p[4096];
	snprintf(p, sizeof(p), "%s/zz-added-while-open", dir);
	int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	for (int i = n - 1; i >= 0; i -= 3) {
		seekdir(d, offs[i]);
		de = readdir(d);
		CHECK(de);
		if (strcmp(de->d_name, names[i])) {
			fprintf(stderr, "seekdir to %d gave '%s', not '%s'\n", i, de->d_name, names[i]);
			return 1;
		}
	}
	closedir(d);
	unlink(p);
	printf("%d\n", n);
	return 0;
}

static bool dir_has(DIR *d, const char *name)
{
	struct dirent *de;
	bool found = false;

	while ((de = readdir(d)))
		if (!strcmp(de->d_name, name))
			found = true;
	return found;
}

/*
 * A directory stream sees a name made and another removed after it was opened, once it is
 * rewound, and so does a stream opened afterwards. @dir must hold no "rw-new" and an "rw-old".
 */
static int rewind_sees(const char *dir)
{
	char pnew[4096], pold[4096];
	snprintf(pnew, sizeof(pnew), "%s/rw-new", dir);
	snprintf(pold, sizeof(pold), "%s/rw-old", dir);
	DIR *d = opendir(dir);
	CHECK(d);
	CHECK(!dir_has(d, "rw-new"));
	rewinddir(d);
	CHECK(dir_has(d, "rw-old"));
	int fd = open(pnew, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	CHECK(unlink(pold) == 0);
	rewinddir(d);
	CHECK(dir_has(d, "rw-new"));
	rewinddir(d);
	CHECK(!dir_has(d, "rw-old"));
	DIR *d2 = opendir(dir);
	CHECK(d2);
	CHECK(dir_has(d2, "rw-new"));
	rewinddir(d2);
	CHECK(!dir_has(d2, "rw-old"));
	closedir(d2);
	/* and back */
	fd = open(pold, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	close(fd);
	CHECK(unlink(pnew) == 0);
	rewinddir(d);
	CHECK(!dir_has(d, "rw-new"));
	rewinddir(d);
	CHECK(dir_has(d, "rw-old"));
	closedir(d);
	return 0;
}

/*
 * A file opened for reading and writing, then unlinked, can still be written, truncated and
 * given xattrs; a read-only handle of it sees the writes. @path holds "a\n".
 */
static int unlinked_rw(const char *path)
{
	char buf[64] = { 0 };
	int rw = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rw >= 0);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	CHECK(unlink(path) == 0);
	CHECK(flistxattr(rw, buf, sizeof(buf)) >= 0);
	CHECK(pwrite(rw, "written", 7, 0) == 7);
	CHECK(ftruncate(rw, 5) == 0);
	CHECK(fsetxattr(rw, "user.k", "v", 1, 0) == 0);
	CHECK(fgetxattr(rw, "user.k", buf, sizeof(buf)) == 1 && buf[0] == 'v');
	CHECK(flistxattr(rw, buf, sizeof(buf)) == 7 && !strcmp(buf, "user.k"));
	struct stat st;
	CHECK(fstat(rw, &st) == 0 && st.st_size == 5 && st.st_nlink == 0);
	memset(buf, 0, sizeof(buf));
	CHECK(pread(ro, buf, sizeof(buf) - 1, 0) == 5);
	CHECK(!strcmp(buf, "writt"));
	close(ro);
	close(rw);
	return 0;
}

/* A write through a removed name of a hard-linked file shows through its other name. */
static int unlinked_link(const char *dir)
{
	char p1[4096], p2[4096], buf[64] = { 0 };
	snprintf(p1, sizeof(p1), "%s/hl1", dir);
	snprintf(p2, sizeof(p2), "%s/hl2", dir);
	int rw = open(p1, O_RDWR | O_CLOEXEC);
	CHECK(rw >= 0);
	CHECK(unlink(p1) == 0);
	CHECK(pwrite(rw, "HL", 2, 0) == 2);
	int fd = open(p2, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(read(fd, buf, sizeof(buf) - 1) == 3);
	CHECK(!strcmp(buf, "HL\n"));
	struct stat a, b;
	CHECK(fstat(rw, &a) == 0 && fstat(fd, &b) == 0);
	CHECK(a.st_ino == b.st_ino && b.st_nlink == 1);
	close(fd);
	close(rw);
	return 0;
}

/* O_EXCL on an existing name (lower or upper) fails with EEXIST. */
static int excl(const char *path)
{
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd < 0 && errno == EEXIST);
	return 0;
}

/*
 * A new file made read-only by its own mode still takes the writes of the open that made
 * it, which is what a 0444 file written by tar or an installer needs; a second exclusive
 * create of the name fails.
 */
static int create_ro(const char *path)
{
	char buf[16] = { 0 };
	struct stat st;
	int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0444);
	CHECK(fd >= 0);
	CHECK(write(fd, "fresh", 5) == 5);
	CHECK(pread(fd, buf, sizeof(buf) - 1, 0) == 5 && !strcmp(buf, "fresh"));
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0444 && st.st_size == 5);
	CHECK(close(fd) == 0);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd < 0 && errno == EEXIST);
	return 0;
}

/* A handle opened read-only before a copy-up reads the copied-up data after it. */
static int handle_follows(const char *path)
{
	char buf[64] = { 0 };
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(ro >= 0);
	CHECK(read(ro, buf, 1) == 1);
	int rw = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(rw >= 0);
	CHECK(write(rw, "changed\n", 8) == 8);
	close(rw);
	memset(buf, 0, sizeof(buf));
	CHECK(pread(ro, buf, sizeof(buf) - 1, 0) == 8);
	CHECK(!strcmp(buf, "changed\n"));
	close(ro);
	return 0;
}

/* A shared writable mapping writes through to the file. */
static int mmap_shared(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, 8192) == 0);
	char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m != MAP_FAILED);
	memcpy(m + 4096, "mapped", 6);
	CHECK(msync(m, 8192, MS_SYNC) == 0);
	munmap(m, 8192);
	close(fd);
	char buf[8] = { 0 };
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(pread(fd, buf, 6, 4096) == 6);
	CHECK(!memcmp(buf, "mapped", 6));
	close(fd);
	return 0;
}

/* A sparse file: SEEK_DATA and SEEK_HOLE find the data at 1 MiB. */
static int seek_hole(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, "data", 4, 1 << 20) == 4);
	CHECK(fsync(fd) == 0);
	off_t d = lseek(fd, 0, SEEK_DATA);
	CHECK(d >= 0 && d <= (1 << 20) && d > 0);
	off_t h = lseek(fd, 0, SEEK_HOLE);
	CHECK(h == 0);
	close(fd);
	return 0;
}

/* flock and POSIX locks conflict between processes. */
static int locks(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(flock(fd, LOCK_EX) == 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	CHECK(fcntl(fd, F_SETLK, &fl) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		int fd2 = open(path, O_RDWR | O_CLOEXEC);
		if (fd2 < 0)
			_exit(2);
		if (flock(fd2, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
			_exit(3);
		struct flock f2 = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 10 };
		if (fcntl(fd2, F_SETLK, &f2) == 0)
			_exit(4);
		_exit(0);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(fd);
	return 0;
}

/* O_APPEND writes land at the end even when the offset says otherwise. */
static int append(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(write(fd, "1", 1) == 1);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(write(fd, "2", 1) == 1);
	close(fd);
	return 0;
}

/* utimensat keeps nanoseconds. */
static int utimes_ns(const char *path)
{
	struct timespec ts[2] = { { 1000000000, 123456789 }, { 1100000000, 987654321 } };
	CHECK(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) == 0);
	struct stat st;
	CHECK(lstat(path, &st) == 0);
	CHECK(st.st_mtim.tv_sec == 1100000000 && st.st_mtim.tv_nsec == 987654321);
	CHECK(st.st_atim.tv_sec == 1000000000 && st.st_atim.tv_nsec == 123456789);
	return 0;
}

/* Prints the errno name of creating @path, or "ok". */
static int create_errno(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd >= 0) {
		printf("ok\n");
		close(fd);
	} else {
		printf("%s\n", strerrorname_np(errno));
	}
	return 0;
}

/* fallocate extends a file. */
static int falloc(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(posix_fallocate(fd, 0, 65536) == 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && st.st_size == 65536);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const char *);
	} cmds[] = {
		{ "seekdir", seekdir_stable },	 { "excl", excl },
		{ "create-ro", create_ro },	     { "follow", handle_follows },
		{ "mmap", mmap_shared },	 { "seekhole", seek_hole },  { "locks", locks },
		{ "append", append },		 { "utimes-ns", utimes_ns }, { "create-errno", create_errno },
		{ "fallocate", falloc },	 { "rewind", rewind_sees },  { "unlinked-rw", unlinked_rw },
		{ "unlinked-link", unlinked_link },
	};

	if (argc != 3) {
		fprintf(stderr, "usage: sfs-probe COMMAND PATH\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argv[2]);
	fprintf(stderr, "sfs-probe: unknown command '%s'\n", argv[1]);
	return 2;
}
