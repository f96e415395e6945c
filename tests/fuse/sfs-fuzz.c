// SPDX-License-Identifier: Apache-2.0
/*
 * Differential test for strata-fuse: random layer stacks, their flattening into a plain
 * directory, and random operation sequences run against the mount and the plain directory
 * alike, comparing every result and the final trees.
 *
 *   sfs-fuzz gen DIR SEED NLAYERS   layers DIR/l1..lN (l1 on top), DIR/ref flattened, DIR/up
 *   sfs-fuzz ops A B SEED NOPS      the same random operations on trees A and B
 *   sfs-fuzz flatten OUT L1 L2 ...  applies layers (top first) into OUT, aufs style
 *   sfs-fuzz cmp A B                compares two trees
 *   sfs-fuzz cmp-changed MNT B      the same, for a mount after changes (see cmp_nlink)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define WH ".wh."
#define OPQ ".wh..wh..opq"

static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static const char *const NAMES[] = { "a", "b", "c", "d", "e", "f" };

static void rand_path(char *buf, size_t size, int maxdepth)
{
	int depth = 1 + (int)rnd(maxdepth);
	buf[0] = 0;
	for (int i = 0; i < depth; i++) {
		size_t l = strlen(buf);
		snprintf(buf + l, size - l, "%s%s", i ? "/" : "", NAMES[rnd(6)]);
	}
}

static void rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		struct dirent *de;
		char p[4096];
		while (d && (de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
			rm_rf(p);
		}
		if (d)
			closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void mkdir_p_parent(const char *path)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		mkdir(p, 0755);
		*s = '/';
	}
}

static void write_rand(int fd, size_t len)
{
	char buf[4096];
	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = 'a' + rnd(26);
		if (write(fd, buf, n) != (ssize_t)n)
			return;
		len -= n;
	}
}

/* Some owner, setuid bit and xattrs, and a time, for a new file of a layer. */
static void gen_meta(int fd)
{
	if (rnd(4) == 0 && fchown(fd, 100 + rnd(3), 100 + rnd(3)) == 0 && rnd(2) == 0)
		fchmod(fd, 04755);
	if (rnd(3) == 0)
		fsetxattr(fd, "user.a", NAMES[rnd(6)], 1, 0);
	if (rnd(4) == 0)
		fsetxattr(fd, "user.b", "", 0, 0);
	struct timespec ts[2] = { { 1000000000 + rnd(1000000), rnd(1000000000) } };
	ts[1] = ts[0];
	futimens(fd, ts);
}

static void gen_layer(const char *dir)
{
	char rel[256], p[4096], q[4096];
	int n = 5 + rnd(20);

	mkdir(dir, 0755);
	for (int i = 0; i < n; i++) {
		rand_path(rel, sizeof(rel), 3);
		snprintf(p, sizeof(p), "%s/%s", dir, rel);
		mkdir_p_parent(p);
		/* never a name and its whiteout in one directory of one layer */
		char *slash = strrchr(p, '/');
		snprintf(q, sizeof(q), "%.*s/" WH "%s", (int)(slash - p), p, slash + 1);
		switch (rnd(8)) {
		case 0:
		case 1:
		case 2: {
			rm_rf(q);
			rm_rf(p);
			int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644 | (rnd(4) == 0 ? 0111 : 0));
			if (fd >= 0) {
				if (rnd(5) == 0)
					lseek(fd, 100000, SEEK_SET); /* a hole */
				write_rand(fd, rnd(3000));
				gen_meta(fd);
				close(fd);
			}
			break;
		}
		case 3:
			rm_rf(q);
			if (mkdir(p, 0755) < 0 && errno == EEXIST) {
				struct stat st;
				if (lstat(p, &st) == 0 && !S_ISDIR(st.st_mode)) {
					unlink(p);
					mkdir(p, 0755);
				}
			}
			break;
		case 4:
			rm_rf(p);
			close(open(q, O_CREAT | O_WRONLY, 0444));
			break;
		case 5: {
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
				snprintf(q, sizeof(q), "%s/" OPQ, p);
				close(open(q, O_CREAT | O_WRONLY, 0444));
			}
			break;
		}
		case 6:
			rm_rf(q);
			rm_rf(p);
			symlink(NAMES[rnd(6)], p);
			break;
		case 7: {
			/* a hard link next to an existing file */
			struct stat st;
			if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
				snprintf(q, sizeof(q), "%s", p);
				char *s = strrchr(q, '/');
				s[1] = NAMES[rnd(6)][0];
				s[2] = 0;
				char w[4096];
				snprintf(w, sizeof(w), "%.*s/" WH "%s", (int)(s - q), q, s + 1);
				struct stat st2;
				if (lstat(q, &st2) < 0 && lstat(w, &st2) < 0)
					link(p, q);
			}
			break;
		}
		}
	}
}

/*
 * Every directory and symlink of a generated layer gets an old time, after its entries are
 * made: a directory the operations leave alone keeps it in both trees, and one they change
 * gets the clock's time in both.
 */
#define OLD_TIMES 1500000000
static void age_dirs(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[4096];

	if (!d)
		return;
	/* SFS_FUZZ_SHARED: a tree that users other than root may change too */
	static const mode_t dir_modes[] = { 0777, 01777, 02777, 0755 };
	bool shared = getenv("SFS_FUZZ_SHARED");
	static unsigned k;

	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			age_dirs(p);
		else if (shared && de->d_type == DT_REG && strncmp(de->d_name, WH, 4) && ++k % 2)
			chmod(p, 0666);
		if (de->d_type == DT_LNK) {
			/* symlinks too: a time of the clock is not compared to the nanosecond */
			struct timespec lt[2] = { { 1050000000, 0 }, { 1050000000, 0 } };
			utimensat(AT_FDCWD, p, lt, AT_SYMLINK_NOFOLLOW);
		}
	}
	closedir(d);
	/* not from rnd(): the layers and operations of a seed stay what they were */
	k++;
	if (shared)
		chmod(dir, dir_modes[k % 4]);
	struct timespec ts[2] = { { 1100000000 + k * 7919 % 1000000, k * 104729 % 1000000000 } };
	ts[1] = ts[0];
	utimensat(AT_FDCWD, dir, ts, 0);
}

/* Owner, user.* xattrs, mode and times of @src (described by @st) onto @dst, not followed. */
static void copy_meta(const char *src, const char *dst, const struct stat *st)
{
	char names[4096], v[4096];

	lchown(dst, st->st_uid, st->st_gid);
	ssize_t n = llistxattr(src, names, sizeof(names));
	for (char *p = names; n > 0 && p < names + n; p += strlen(p) + 1) {
		ssize_t vl = lgetxattr(src, p, v, sizeof(v));
		if (!strncmp(p, "user.", 5) && vl >= 0)
			lsetxattr(dst, p, v, vl, 0);
	}
	if (!S_ISLNK(st->st_mode))
		chmod(dst, st->st_mode & 07777);
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW);
}

static int copy_file(const char *src, const char *dst, const struct stat *st)
{
	int in = open(src, O_RDONLY), out = open(dst, O_CREAT | O_WRONLY | O_TRUNC, st->st_mode & 07777);
	char buf[65536];
	ssize_t n;

	if (in < 0 || out < 0)
		return -1;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			return -1;
	close(in);
	close(out);
	copy_meta(src, dst, st);
	return 0;
}

/* Hard links of the layer being applied: (dev, ino) -> first copy, to link the others to. */
static struct {
	dev_t dev;
	ino_t ino;
	char path[4096];
} links[256];
static int nlinks;

/* Applies one aufs layer directory onto @dst. */
static void apply(const char *src, const char *dst)
{
	char sp[4096], dp[4096];
	DIR *d = opendir(src);
	struct dirent *de;

	if (!d)
		return;
	snprintf(sp, sizeof(sp), "%s/" OPQ, src);
	char v[4];
	if (access(sp, F_OK) == 0 || lgetxattr(src, "trusted.overlay.opaque", v, sizeof(v)) == 1) {
		DIR *dd = opendir(dst);
		while (dd && (de = readdir(dd))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(dp, sizeof(dp), "%s/%s", dst, de->d_name);
			rm_rf(dp);
		}
		if (dd)
			closedir(dd);
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, WH, 4) || !strncmp(de->d_name, ".wh..wh.", 8))
			continue;
		snprintf(dp, sizeof(dp), "%s/%s", dst, de->d_name + 4);
		rm_rf(dp);
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat st, dst_st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strncmp(de->d_name, WH, 4))
			continue;
		/* a whiteout hides a name of its own layer too, as aufs looks them up */
		snprintf(sp, sizeof(sp), "%s/" WH "%s", src, de->d_name);
		if (lstat(sp, &st) == 0)
			continue;
		snprintf(sp, sizeof(sp), "%s/%s", src, de->d_name);
		snprintf(dp, sizeof(dp), "%s/%s", dst, de->d_name);
		if (lstat(sp, &st) < 0)
			continue;
		if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
			rm_rf(dp); /* an overlay whiteout */
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (lstat(dp, &dst_st) == 0 && !S_ISDIR(dst_st.st_mode))
				rm_rf(dp);
			mkdir(dp, st.st_mode & 07777);
			lchown(dp, st.st_uid, st.st_gid);
			chmod(dp, st.st_mode & 07777);
			apply(sp, dp);
			/* the merged view shows the topmost layer's directory, times too */
			utimensat(AT_FDCWD, dp, (struct timespec[2]){ st.st_atim, st.st_mtim }, 0);
		} else {
			rm_rf(dp);
			/* hard links, of symlinks too */
			if (st.st_nlink > 1) {
				int k;
				for (k = 0; k < nlinks; k++)
					if (links[k].dev == st.st_dev && links[k].ino == st.st_ino)
						break;
				if (k < nlinks && link(links[k].path, dp) == 0)
					continue;
				if (nlinks < 256) {
					links[nlinks].dev = st.st_dev;
					links[nlinks].ino = st.st_ino;
					snprintf(links[nlinks].path, sizeof(links[nlinks].path), "%s", dp);
					nlinks++;
				}
			}
			if (S_ISREG(st.st_mode)) {
				copy_file(sp, dp, &st);
			} else if (S_ISLNK(st.st_mode)) {
				char t[4096];
				ssize_t n = readlink(sp, t, sizeof(t) - 1);
				if (n >= 0) {
					t[n] = 0;
					if (symlink(t, dp) == 0)
						copy_meta(sp, dp, &st);
				}
			} else if (mknod(dp, st.st_mode, st.st_rdev) == 0) {
				copy_meta(sp, dp, &st);
			}
		}
	}
	closedir(d);
}

/* The user.* xattrs of @path, not followed, as "name=value;" sorted by name. */
static void user_xattrs(const char *path, char *out, size_t size)
{
	char names[4096], v[1024];
	const char *sorted[64];
	int n = 0;

	out[0] = 0;
	ssize_t l = llistxattr(path, names, sizeof(names));
	for (char *p = names; l > 0 && p < names + l && n < 64; p += strlen(p) + 1)
		if (!strncmp(p, "user.", 5))
			sorted[n++] = p;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
			const char *t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (int i = 0; i < n; i++) {
		ssize_t vl = lgetxattr(path, sorted[i], v, sizeof(v) - 1);
		v[vl < 0 ? 0 : vl] = 0;
		size_t k = strlen(out);
		snprintf(out + k, size - k, "%s=%s;", sorted[i], v);
	}
}

/* Inodes seen in each tree, to check that names are links of one inode in both or neither. */
static struct seen {
	ino_t ino;
	char *rel;
} *seen[2];
static size_t nseen[2];
static size_t rootlen[2];
/*
 * Whether link counts must agree. Not for a mount after changes: a lower inode keeps the link
 * count of its branch when one of its names is removed through the mount, as in aufs.
 */
static bool cmp_nlink = true;

/* The first name of @st's inode in tree @t, or @rel if it is the first. */
static const char *first_name(int t, const struct stat *st, const char *rel)
{
	for (size_t i = 0; i < nseen[t]; i++)
		if (seen[t][i].ino == st->st_ino)
			return seen[t][i].rel;
	struct seen *ns = realloc(seen[t], (nseen[t] + 1) * sizeof(*ns));
	if (!ns)
		abort();
	seen[t] = ns;
	ns[nseen[t]].ino = st->st_ino;
	ns[nseen[t]].rel = strdup(rel);
	return ns[nseen[t]++].rel;
}

/* Owner for all; size, mtime, link count, link identity and user.* xattrs for the rest. */
static int cmp_meta(const char *a, const char *b, const struct stat *sa, const struct stat *sb)
{
	if (sa->st_uid != sb->st_uid || sa->st_gid != sb->st_gid) {
		fprintf(stderr, "cmp: '%s' owner %u:%u, '%s' owner %u:%u\n", a, sa->st_uid,
			sa->st_gid, b, sb->st_uid, sb->st_gid);
		return 1;
	}
	if (S_ISDIR(sa->st_mode)) {
		/* one left alone where the other changed */
		if ((sa->st_mtim.tv_sec < OLD_TIMES || sb->st_mtim.tv_sec < OLD_TIMES) &&
		    (sa->st_mtim.tv_sec != sb->st_mtim.tv_sec ||
		     sa->st_mtim.tv_nsec != sb->st_mtim.tv_nsec)) {
			fprintf(stderr, "cmp: directory '%s' mtime %ld.%09ld, '%s' mtime %ld.%09ld\n",
				a, (long)sa->st_mtim.tv_sec, sa->st_mtim.tv_nsec, b,
				(long)sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec);
			return 1;
		}
		return 0;
	}
	if (sa->st_size != sb->st_size) {
		fprintf(stderr, "cmp: '%s' size %ld, '%s' size %ld\n", a, (long)sa->st_size, b,
			(long)sb->st_size);
		return 1;
	}
	/*
	 * Writes are followed by the same explicit times in both trees; where that is refused
	 * (a user who may write a file but not set its times), both carry the clock's time,
	 * which cannot agree to the nanosecond, and only one side having it is wrong.
	 */
	bool both_now = sa->st_mtim.tv_sec >= OLD_TIMES && sb->st_mtim.tv_sec >= OLD_TIMES;
	if (!both_now && (sa->st_mtim.tv_sec != sb->st_mtim.tv_sec ||
			  sa->st_mtim.tv_nsec != sb->st_mtim.tv_nsec)) {
		fprintf(stderr, "cmp: '%s' mtime %ld.%09ld, '%s' mtime %ld.%09ld\n", a,
			(long)sa->st_mtim.tv_sec, sa->st_mtim.tv_nsec, b, (long)sb->st_mtim.tv_sec,
			sb->st_mtim.tv_nsec);
		return 1;
	}
	if (cmp_nlink && sa->st_nlink != sb->st_nlink) {
		fprintf(stderr, "cmp: '%s' nlink %lu, '%s' nlink %lu\n", a,
			(unsigned long)sa->st_nlink, b, (unsigned long)sb->st_nlink);
		return 1;
	}
	const char *fa = first_name(0, sa, a + rootlen[0]), *fb = first_name(1, sb, b + rootlen[1]);
	if (strcmp(fa, fb)) {
		fprintf(stderr, "cmp: '%s' is a link of '%s', '%s' of '%s'\n", a, fa, b, fb);
		return 1;
	}
	char xa[4096], xb[4096];
	user_xattrs(a, xa, sizeof(xa));
	user_xattrs(b, xb, sizeof(xb));
	if (strcmp(xa, xb)) {
		fprintf(stderr, "cmp: '%s' xattrs '%s', '%s' xattrs '%s'\n", a, xa, b, xb);
		return 1;
	}
	return 0;
}

static int cmp_tree(const char *a, const char *b)
{
	struct stat sa, sb;
	int bad = 0;

	if (lstat(a, &sa) < 0 || lstat(b, &sb) < 0) {
		fprintf(stderr, "cmp: '%s' or '%s' missing\n", a, b);
		return 1;
	}
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT) ||
	    (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777))) {
		fprintf(stderr, "cmp: '%s' mode %o, '%s' mode %o\n", a, sa.st_mode, b, sb.st_mode);
		return 1;
	}
	if (cmp_meta(a, b, &sa, &sb))
		return 1;
	if (S_ISREG(sa.st_mode)) {
		int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
		char ba[65536], bb[65536];
		ssize_t na, nb;
		do {
			na = read(fa, ba, sizeof(ba));
			nb = read(fb, bb, sizeof(bb));
			if (na != nb || (na > 0 && memcmp(ba, bb, na))) {
				fprintf(stderr, "cmp: '%s' and '%s' differ\n", a, b);
				bad = 1;
				break;
			}
		} while (na > 0);
		close(fa);
		close(fb);
		return bad;
	}
	if (S_ISLNK(sa.st_mode)) {
		char ta[4096] = { 0 }, tb[4096] = { 0 };
		if (readlink(a, ta, sizeof(ta) - 1) < 0 || readlink(b, tb, sizeof(tb) - 1) < 0 ||
		    strcmp(ta, tb)) {
			fprintf(stderr, "cmp: links '%s' and '%s' differ\n", a, b);
			return 1;
		}
		return 0;
	}
	if (!S_ISDIR(sa.st_mode))
		return 0;
	struct dirent **la, **lb;
	int n = scandir(a, &la, NULL, alphasort), m = scandir(b, &lb, NULL, alphasort);
	if (n != m) {
		fprintf(stderr, "cmp: '%s' has %d entries, '%s' %d\n", a, n, b, m);
		return 1;
	}
	for (int i = 0; i < n && !bad; i++) {
		char pa[4096], pb[4096];
		if (strcmp(la[i]->d_name, lb[i]->d_name)) {
			fprintf(stderr, "cmp: '%s/%s' vs '%s/%s'\n", a, la[i]->d_name, b, lb[i]->d_name);
			bad = 1;
			break;
		}
		if (!strcmp(la[i]->d_name, ".") || !strcmp(la[i]->d_name, ".."))
			continue;
		snprintf(pa, sizeof(pa), "%s/%s", a, la[i]->d_name);
		snprintf(pb, sizeof(pb), "%s/%s", b, lb[i]->d_name);
		bad = cmp_tree(pa, pb);
	}
	for (int i = 0; i < n; i++)
		free(la[i]);
	for (int i = 0; i < m; i++)
		free(lb[i]);
	free(la);
	free(lb);
	return bad;
}

/* Compares the trees at @a and @b. */
static int cmp_top(const char *a, const char *b)
{
	for (int t = 0; t < 2; t++) {
		for (size_t i = 0; i < nseen[t]; i++)
			free(seen[t][i].rel);
		nseen[t] = 0;
	}
	rootlen[0] = strlen(a);
	rootlen[1] = strlen(b);
	return cmp_tree(a, b);
}

/* One random operation on tree @root; returns 0 or an errno, and a digest of what it read. */
struct opres {
	int err;
	char out[8192];
};

/* Files kept open across operations, per tree, as programs do. */
#define NSLOTS 4
static int slots[2][NSLOTS] = { { -1, -1, -1, -1 }, { -1, -1, -1, -1 } };

/*
 * Times both trees give a file they just wrote: what the clock says differs between them,
 * while what a copy-up must keep does not.
 */
static void op_times(uint32_t arg, struct timespec ts[2])
{
	ts[0] = (struct timespec){ 1200000000 + arg % 100000, arg % 1000000000 };
	ts[1] = ts[0];
}

static void do_op(int t, const char *root, int op, const char *r1, const char *r2, uint32_t arg,
		  struct opres *res)
{
	char p1[4096], p2[4096];
	struct timespec ts[2];
	struct stat st;
	int fd, *slot = &slots[t][arg % NSLOTS];

	snprintf(p1, sizeof(p1), "%s/%s", root, r1);
	snprintf(p2, sizeof(p2), "%s/%s", root, r2);
	op_times(arg, ts);
	res->err = 0;
	res->out[0] = 0;
	errno = 0;
	switch (op) {
	case 0: { /* create or rewrite */
		int flags = O_CREAT | O_WRONLY | ((arg & 1) ? O_TRUNC : 0) | ((arg & 2) ? O_EXCL : 0) |
			    ((arg & 4) ? O_APPEND : 0);
		fd = open(p1, flags, (arg & 8) ? 06750 : 0640);
		if (fd < 0)
			break;
		char buf[512];
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = 'A' + (arg + i) % 26;
		if (write(fd, buf, arg % sizeof(buf)) < 0 || futimens(fd, ts) < 0)
			res->err = errno;
		close(fd);
		return;
	}
	case 1: /* write in the middle */
		fd = open(p1, O_WRONLY);
		if (fd < 0)
			break;
		if (pwrite(fd, "XYZ", 3, arg % 200) < 0 || futimens(fd, ts) < 0)
			res->err = errno;
		close(fd);
		return;
	case 2:
		if (truncate(p1, arg % 5000) == 0 && utimensat(AT_FDCWD, p1, ts, 0) == 0)
			return;
		break;
	case 3:
		if (unlink(p1) == 0)
			return;
		break;
	case 4:
		if (mkdir(p1, 0750) == 0)
			return;
		break;
	case 5:
		if (rmdir(p1) == 0)
			return;
		break;
	case 6:
		if (rename(p1, p2) == 0)
			return;
		break;
	case 7: { /* renameat2: every other one plain, then exchange and no-replace */
		unsigned flags = (arg & 1) ? 0 : (arg & 2) ? RENAME_EXCHANGE : RENAME_NOREPLACE;
		if (renameat2(AT_FDCWD, p1, AT_FDCWD, p2, flags) == 0)
			return;
		break;
	}
	case 8:
		if (symlink(NAMES[arg % 6], p1) == 0 &&
		    utimensat(AT_FDCWD, p1, ts, AT_SYMLINK_NOFOLLOW) == 0)
			return;
		break;
	case 9:
		if (link(p1, p2) == 0)
			return;
		break;
	case 10:
		if (chmod(p1, 0600 | (arg & 0177) | ((arg >> 8) & 06000)) == 0)
			return;
		break;
	case 11: { /* read */
		fd = open(p1, O_RDONLY | O_NOFOLLOW);
		if (fd < 0)
			break;
		ssize_t n = read(fd, res->out, sizeof(res->out) - 1);
		if (n < 0)
			res->err = errno;
		else
			res->out[n] = 0;
		close(fd);
		return;
	}
	case 12: { /* list */
		struct dirent **l;
		int n = scandir(p1, &l, NULL, alphasort);
		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			size_t len = strlen(res->out);
			snprintf(res->out + len, sizeof(res->out) - len, "%s/", l[i]->d_name);
			free(l[i]);
		}
		free(l);
		return;
	}
	case 14:
		if (lchown(p1, 100 + arg % 3, 100 + (arg / 3) % 3) == 0)
			return;
		break;
	case 15: {
		char v[2] = { NAMES[arg % 6][0], 0 };
		if (lsetxattr(p1, (arg & 8) ? "user.a" : "user.c", v, 1, 0) == 0)
			return;
		break;
	}
	case 16:
		if (lremovexattr(p1, (arg & 8) ? "user.a" : "user.b") == 0)
			return;
		break;
	case 17:
		if (utimensat(AT_FDCWD, p1, ts, AT_SYMLINK_NOFOLLOW) == 0)
			return;
		break;
	case 18: /* keep a file open: reading, or reading and writing */
		if (*slot >= 0)
			close(*slot);
		*slot = open(p1, (arg & 16) ? O_RDWR : O_RDONLY);
		if (*slot >= 0)
			return;
		break;
	case 19:
		if (pwrite(*slot, "KEPT", 4, arg % 300) == 4 && futimens(*slot, ts) == 0)
			return;
		break;
	case 20: {
		ssize_t n = pread(*slot, res->out, sizeof(res->out) - 1, 0);
		if (n < 0)
			break;
		res->out[n] = 0;
		return;
	}
	case 21:
		if (ftruncate(*slot, arg % 3000) == 0 && futimens(*slot, ts) == 0)
			return;
		break;
	case 22:
		if (fstat(*slot, &st) < 0)
			break;
		snprintf(res->out, sizeof(res->out), "%o %ld %u:%u", st.st_mode,
			 S_ISDIR(st.st_mode) ? 0L : (long)st.st_size, st.st_uid, st.st_gid);
		return;
	case 23:
		if (*slot >= 0)
			close(*slot);
		*slot = -1;
		return;
	default: /* stat */
		if (lstat(p1, &st) < 0)
			break;
		snprintf(res->out, sizeof(res->out), "%o %ld", st.st_mode,
			 S_ISDIR(st.st_mode) ? 0L : (long)st.st_size);
		return;
	}
	res->err = errno;
}

static int run_ops(const char *a, const char *b, int nops)
{
	static const char *const opnames[] = {
		"write",     "pwrite",	 "truncate", "unlink",	    "mkdir",	   "rmdir",
		"rename",    "renameat2", "symlink",  "link",	    "chmod",	   "read",
		"readdir",   "stat",	 "chown",    "setxattr",    "removexattr", "utimes",
		"keep-open", "fd-write", "fd-read",  "fd-truncate", "fd-stat",	   "fd-close",
	};
	static struct opres ra, rb;
	char r1[256], r2[256];
	int bad = 0;

	/* as root: every 20th operation the kernel forgets what it can, so that names are looked
	 * up again, through the listings of directories kept open (not from rnd(): the
	 * operations of a seed stay what they were) */
	int drop = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);

	for (int i = 0; i < nops && !bad; i++) {
		if (drop >= 0 && i % 20 == 19 && pwrite(drop, "2", 1, 0) < 0) {
			close(drop);
			drop = -1;
		}
		int op = rnd(24);
		rand_path(r1, sizeof(r1), 3);
		rand_path(r2, sizeof(r2), 3);
		uint32_t arg = rnd(1u << 30);
		do_op(0, a, op, r1, r2, arg, &ra);
		do_op(1, b, op, r1, r2, arg, &rb);
		if (getenv("SFS_FUZZ_TRACE"))
			fprintf(stderr, "%d %s %s %s (%u) -> %s\n", i, opnames[op], r1, r2, arg,
				strerrorname_np(ra.err));
		if (ra.err != rb.err || strcmp(ra.out, rb.out)) {
			fprintf(stderr, "op %d: %s %s %s (%u): '%s' gives %s [%s], '%s' gives %s [%s]\n",
				i, opnames[op], r1, r2, arg, a, strerrorname_np(ra.err), ra.out, b,
				strerrorname_np(rb.err), rb.out);
			bad = 1;
		}
	}
	for (int t = 0; t < 2; t++)
		for (int k = 0; k < NSLOTS; k++)
			if (slots[t][k] >= 0)
				close(slots[t][k]);
	if (drop >= 0)
		close(drop);
	cmp_nlink = false;
	/* run as a user who may not see all of the trees: they are compared by root after */
	if (getenv("SFS_FUZZ_NO_CMP"))
		return bad;
	return bad || cmp_top(a, b);
}

/*
 * Whether @rel of layer @i (of the stack at @root) is hidden in the merged view: by a whiteout
 * of it or of a parent (in its own layer too), or, in a layer above, by an object at its place
 * or a non-directory or opaque directory at a parent's.
 */
static bool hidden_above(const char *root, int i, const char *rel)
{
	char p[4096], q[4096];
	struct stat st;

	for (int j = 1; j <= i; j++) {
		for (const char *c = rel; c; c = strchr(c + 1, '/')) {
			const char *end = strchr(c == rel ? c : c + 1, '/');
			int plen = end ? (int)(end - rel) : (int)strlen(rel);
			const char *name = c == rel ? c : c + 1;
			int dlen = c == rel ? 0 : (int)(c - rel);
			snprintf(q, sizeof(q), "%s/l%d/%.*s%s" WH "%.*s", root, j, dlen, rel,
				 dlen ? "/" : "", (int)(plen - (name - rel)), name);
			if (lstat(q, &st) == 0)
				return true;
			if (j == i)
				continue;
			snprintf(p, sizeof(p), "%s/l%d/%.*s", root, j, plen, rel);
			if (lstat(p, &st) < 0)
				continue;
			if (!end || !S_ISDIR(st.st_mode))
				return true;
			snprintf(q, sizeof(q), "%s/" OPQ, p);
			if (lstat(q, &st) == 0)
				return true;
		}
	}
	return false;
}

static struct {
	ino_t ino;
	char rel[256];
} lnk[1024];
static int nlnk;

static void collect_links(const char *layer, const char *rel)
{
	char p[4096], r[300];
	snprintf(p, sizeof(p), "%s%s%s", layer, *rel ? "/" : "", rel);
	DIR *d = opendir(p);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		snprintf(p, sizeof(p), "%s/%s", layer, r);
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode))
			collect_links(layer, r);
		else if (st.st_nlink > 1 && nlnk < 1024) {
			lnk[nlnk].ino = st.st_ino;
			snprintf(lnk[nlnk].rel, sizeof(lnk[nlnk].rel), "%s", r);
			nlnk++;
		}
	}
	closedir(d);
}

/*
 * A hard link of a layer whose other name the view hides shows the branch's link count, as
 * aufs and overlayfs show it, which the flattened tree cannot: such hidden names become
 * copies, which changes nothing the view shows.
 */
static void unlink_hidden_links(const char *root, int n)
{
	char layer[4096], p[4096], src[4096];

	for (int i = 1; i <= n; i++) {
		snprintf(layer, sizeof(layer), "%s/l%d", root, i);
		nlnk = 0;
		collect_links(layer, "");
		for (int a = 0; a < nlnk; a++) {
			if (!hidden_above(root, i, lnk[a].rel))
				continue;
			int b;
			for (b = 0; b < nlnk; b++)
				if (b != a && lnk[b].ino == lnk[a].ino && !hidden_above(root, i, lnk[b].rel))
					break;
			if (b == nlnk)
				continue; /* no name of it shows */
			struct stat st;
			snprintf(p, sizeof(p), "%s/%s", layer, lnk[a].rel);
			snprintf(src, sizeof(src), "%s/%s", layer, lnk[b].rel);
			if (lstat(src, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			unlink(p);
			copy_file(src, p, &st);
			lnk[a].ino = 0;
		}
	}
}

int main(int argc, char **argv)
{
	umask(0);
	if (argc >= 5 && !strcmp(argv[1], "gen")) {
		char p[4096];
		int n = atoi(argv[4]);
		rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)atoll(argv[3]) * 2654435761ULL;
		mkdir(argv[2], 0755);
		for (int i = n; i >= 1; i--) {
			snprintf(p, sizeof(p), "%s/l%d", argv[2], i);
			gen_layer(p);
			age_dirs(p);
		}
		unlink_hidden_links(argv[2], n);
		mode_t top = getenv("SFS_FUZZ_SHARED") ? 0777 : 0755;
		snprintf(p, sizeof(p), "%s/up", argv[2]);
		mkdir(p, top);
		snprintf(p, sizeof(p), "%s/ref", argv[2]);
		mkdir(p, top);
		for (int i = n; i >= 1; i--) {
			char l[4096];
			snprintf(l, sizeof(l), "%s/l%d", argv[2], i);
			nlinks = 0;
			apply(l, p);
		}
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "ops")) {
		rng = 0xD1B54A32D192ED03ULL ^ (uint64_t)atoll(argv[4]) * 2654435761ULL;
		return run_ops(argv[2], argv[3], atoi(argv[5]));
	}
	if (argc >= 4 && !strcmp(argv[1], "flatten")) {
		mkdir(argv[2], getenv("SFS_FUZZ_SHARED") ? 0777 : 0755);
		for (int i = argc - 1; i >= 3; i--) {
			nlinks = 0;
			apply(argv[i], argv[2]);
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "cmp"))
		return cmp_top(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "cmp-changed")) {
		cmp_nlink = false;
		return cmp_top(argv[2], argv[3]);
	}
	fprintf(stderr, "usage: sfs-fuzz gen|ops|flatten|cmp ...\n");
	return 2;
}
