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
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
	fchmod(out, st->st_mode & 07777);
	close(in);
	close(out);
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
			chmod(dp, st.st_mode & 07777);
			apply(sp, dp);
		} else {
			rm_rf(dp);
			if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
				int k;
				for (k = 0; k < nlinks; k++)
					if (links[k].dev == st.st_dev && links[k].ino == st.st_ino)
						break;
				if (k < nlinks && link(links[k].path, dp) == 0)
					continue;
				copy_file(sp, dp, &st);
				if (nlinks < 256) {
					links[nlinks].dev = st.st_dev;
					links[nlinks].ino = st.st_ino;
					snprintf(links[nlinks].path, sizeof(links[nlinks].path), "%s", dp);
					nlinks++;
				}
			} else if (S_ISREG(st.st_mode)) {
				copy_file(sp, dp, &st);
			} else if (S_ISLNK(st.st_mode)) {
				char t[4096];
				ssize_t n = readlink(sp, t, sizeof(t) - 1);
				if (n >= 0) {
					t[n] = 0;
					symlink(t, dp);
				}
			} else {
				mknod(dp, st.st_mode, st.st_rdev);
			}
		}
	}
	closedir(d);
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
	if (S_ISREG(sa.st_mode)) {
		if (sa.st_size != sb.st_size) {
			fprintf(stderr, "cmp: '%s' size %ld, '%s' size %ld\n", a, (long)sa.st_size, b,
				(long)sb.st_size);
			return 1;
		}
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

/* One random operation on tree @root; returns 0 or an errno, and a digest of what it read. */
struct opres {
	int err;
	char out[8192];
};

static void do_op(const char *root, int op, const char *r1, const char *r2, uint32_t arg,
		  struct opres *res)
{
	char p1[4096], p2[4096];
	struct stat st;
	int fd;

	snprintf(p1, sizeof(p1), "%s/%s", root, r1);
	snprintf(p2, sizeof(p2), "%s/%s", root, r2);
	res->err = 0;
	res->out[0] = 0;
	errno = 0;
	switch (op) {
	case 0: { /* create or rewrite */
		int flags = O_CREAT | O_WRONLY | ((arg & 1) ? O_TRUNC : 0) | ((arg & 2) ? O_EXCL : 0) |
			    ((arg & 4) ? O_APPEND : 0);
		fd = open(p1, flags, 0640);
		if (fd < 0)
			break;
		char buf[512];
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = 'A' + (arg + i) % 26;
		if (write(fd, buf, arg % sizeof(buf)) < 0)
			res->err = errno;
		close(fd);
		return;
	}
	case 1: /* write in the middle */
		fd = open(p1, O_WRONLY);
		if (fd < 0)
			break;
		if (pwrite(fd, "XYZ", 3, arg % 200) < 0)
			res->err = errno;
		close(fd);
		return;
	case 2:
		if (truncate(p1, arg % 5000) == 0)
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
	case 7:
		if (rename(p1, p2) == 0)
			return;
		break;
	case 8:
		if (symlink(NAMES[arg % 6], p1) == 0)
			return;
		break;
	case 9:
		if (link(p1, p2) == 0)
			return;
		break;
	case 10:
		if (chmod(p1, 0600 | (arg & 0177)) == 0)
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
	static const char *const opnames[] = { "write", "pwrite", "truncate", "unlink", "mkdir",
					       "rmdir", "rename", "rename", "symlink", "link",
					       "chmod", "read", "readdir", "stat" };
	static struct opres ra, rb;
	char r1[256], r2[256];

	for (int i = 0; i < nops; i++) {
		int op = rnd(14);
		rand_path(r1, sizeof(r1), 3);
		rand_path(r2, sizeof(r2), 3);
		uint32_t arg = rnd(1u << 30);
		do_op(a, op, r1, r2, arg, &ra);
		do_op(b, op, r1, r2, arg, &rb);
		if (getenv("SFS_FUZZ_TRACE"))
			fprintf(stderr, "%d %s %s %s -> %s\n", i, opnames[op], r1, r2,
				strerrorname_np(ra.err));
		if (ra.err != rb.err || strcmp(ra.out, rb.out)) {
			fprintf(stderr, "op %d: %s %s %s (%u): '%s' gives %s [%s], '%s' gives %s [%s]\n",
				i, opnames[op], r1, r2, arg, a, strerrorname_np(ra.err), ra.out, b,
				strerrorname_np(rb.err), rb.out);
			return 1;
		}
	}
	return cmp_tree(a, b);
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
		}
		snprintf(p, sizeof(p), "%s/up", argv[2]);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/ref", argv[2]);
		mkdir(p, 0755);
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
		mkdir(argv[2], 0755);
		for (int i = argc - 1; i >= 3; i--) {
			nlinks = 0;
			apply(argv[i], argv[2]);
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "cmp"))
		return cmp_tree(argv[2], argv[3]);
	fprintf(stderr, "usage: sfs-fuzz gen|ops|flatten|cmp ...\n");
	return 2;
}
