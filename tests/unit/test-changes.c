/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Changes: Docker's layered algorithm on aufs layers and the two-tree
 * comparison, with moby's acceptance vectors and the cases where Docker is
 * wrong and we are not.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "changes.h"
#include "fsutil.h"
#include "naive.h"
#include "tap.h"

static char base[64];

static void mkdirs(const char *fmt, ...)
{
	char p[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

static void put(const char *content, const char *fmt, ...)
{
	char p[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		write_all(fd, content, strlen(content));
		close(fd);
	}
}

static void set_mtime(time_t t, const char *fmt, ...)
{
	char p[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p, sizeof(p), fmt, ap);
	va_end(ap);
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW);
}

/* The changes as "K /path" lines, sorted or in walk order. */
static char *render(struct change_list *l, bool sort)
{
	static const char k[] = "CAD";
	char *out = NULL;
	size_t len = 0;
	if (sort)
		changes_sort(l);
	FILE *f = open_memstream(&out, &len);
	for (size_t i = 0; i < l->n; i++)
		fprintf(f, "%c %s\n", k[l->v[i].kind], l->v[i].path);
	fclose(f);
	return out;
}

static char *layered(const char *layer, const char **lowers, size_t n)
{
	struct change_list l = { 0 };
	int fds[16];
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", base, layer);
	int lfd = open(p, O_RDONLY | O_DIRECTORY);
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s", base, lowers[i]);
		fds[i] = open(p, O_RDONLY | O_DIRECTORY);
	}
	int r = changes_layered(lfd, fds, n, &l);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
	if (r < 0)
		printf("# changes_layered: %s\n", strerror(-r));
	char *s = render(&l, false);
	change_list_clear(&l);
	return s;
}

static char *dirs(const char *new_dir, const char *old_dir)
{
	struct change_list l = { 0 };
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", base, new_dir);
	int nfd = open(p, O_RDONLY | O_DIRECTORY);
	int ofd = -1;
	if (old_dir) {
		snprintf(p, sizeof(p), "%s/%s", base, old_dir);
		ofd = open(p, O_RDONLY | O_DIRECTORY);
	}
	int r = changes_dirs(nfd, ofd, &l);
	if (r < 0)
		printf("# changes_dirs: %s\n", strerror(-r));
	close(nfd);
	if (ofd >= 0)
		close(ofd);
	char *s = render(&l, false);
	change_list_clear(&l);
	return s;
}

/* moby TestChangesWithChanges, aufs style. */
static void test_with_changes(void)
{
	mkdirs("%s/c1/lower/dir1/subfolder", base);
	put("a", "%s/c1/lower/dir1/file1-1", base);
	put("b", "%s/c1/lower/dir1/file1-2", base);
	mkdirs("%s/c1/rw/dir1/subfolder", base);
	put("changed", "%s/c1/rw/dir1/file1-1", base);
	put("", "%s/c1/rw/dir1/.wh.file1-2", base);
	put("new", "%s/c1/rw/dir1/subfolder/newFile", base);
	set_mtime(1000, "%s/c1/lower/dir1/subfolder", base);
	set_mtime(2000, "%s/c1/rw/dir1/subfolder", base);
	const char *low[] = { "c1/lower" };
	char *got = layered("c1/rw", low, 1);
	CHECK_STR(got, "C /dir1\nD /dir1/file1-2\nC /dir1/file1-1\nC /dir1/subfolder\n"
		       "A /dir1/subfolder/newFile\n");
	free(got);
}

/* moby TestChangesWithChangesGH13590: the parent of an add is a modify, once. */
static void test_gh13590(void)
{
	mkdirs("%s/g/lower/dir1/dir2/dir3", base);
	put("x", "%s/g/lower/dir1/dir2/dir3/file.txt", base);
	set_mtime(1000, "%s/g/lower/dir1/dir2/dir3", base);
	set_mtime(1000, "%s/g/lower/dir1/dir2", base);
	set_mtime(1000, "%s/g/lower/dir1", base);
	mkdirs("%s/g/rw/dir1/dir2/dir3", base);
	put("y", "%s/g/rw/dir1/dir2/dir3/file1.txt", base);
	set_mtime(2000, "%s/g/rw/dir1/dir2/dir3", base);
	set_mtime(1000, "%s/g/rw/dir1/dir2", base);
	set_mtime(1000, "%s/g/rw/dir1", base);
	const char *low[] = { "g/lower" };
	char *got = layered("g/rw", low, 1);
	CHECK_STR(got, "C /dir1/dir2/dir3\nA /dir1/dir2/dir3/file1.txt\n");
	free(got);

	/* Modifying the file only: just the file. */
	mkdirs("%s/g/rw2/dir1/dir2/dir3", base);
	put("z", "%s/g/rw2/dir1/dir2/dir3/file.txt", base);
	set_mtime(1000, "%s/g/rw2/dir1/dir2/dir3", base);
	set_mtime(1000, "%s/g/rw2/dir1/dir2", base);
	set_mtime(1000, "%s/g/rw2/dir1", base);
	got = layered("g/rw2", low, 1);
	CHECK_STR(got, "C /dir1/dir2/dir3/file.txt\n");
	free(got);
}

/* Where Docker is wrong: deleted in a middle layer and added again is an add. */
static void test_middle_delete(void)
{
	mkdirs("%s/m/l1/etc", base);
	put("1", "%s/m/l1/etc/conf", base);
	mkdirs("%s/m/l2/etc", base);
	put("", "%s/m/l2/etc/.wh.conf", base);
	mkdirs("%s/m/rw/etc", base);
	put("3", "%s/m/rw/etc/conf", base);
	set_mtime(1000, "%s/m/l1/etc", base);
	set_mtime(1000, "%s/m/l2/etc", base);
	set_mtime(1000, "%s/m/rw/etc", base);
	const char *low[] = { "m/l2", "m/l1" };
	char *got = layered("m/rw", low, 2);
	CHECK_STR(got, "C /etc\nA /etc/conf\n");
	free(got);
	/* A whole directory whited out below: what is under it again is new. */
	mkdirs("%s/m/l3", base);
	put("", "%s/m/l3/.wh.etc", base);
	const char *low2[] = { "m/l3", "m/l1" };
	got = layered("m/rw", low2, 2);
	CHECK_STR(got, "A /etc\nA /etc/conf\n");
	free(got);
}

/* Where Docker is wrong: a nested opaque marker deletes what it hides, not "/dir/.wh..opq". */
static void test_opaque(void)
{
	mkdirs("%s/o/lower/var/cache", base);
	put("1", "%s/o/lower/var/cache/a", base);
	put("2", "%s/o/lower/var/cache/b", base);
	put("", "%s/o/lower/var/cache/.wh.gone", base);
	mkdirs("%s/o/rw/var/cache", base);
	put("", "%s/o/rw/var/cache/.wh..wh..opq", base);
	put("new b", "%s/o/rw/var/cache/b", base);
	put("c", "%s/o/rw/var/cache/c", base);
	set_mtime(1000, "%s/o/lower/var", base);
	set_mtime(1000, "%s/o/rw/var", base);
	const char *low[] = { "o/lower" };
	char *got = layered("o/rw", low, 1);
	CHECK_STR(got, "C /var/cache\nD /var/cache/a\nA /var/cache/b\nA /var/cache/c\n");
	free(got);
	/* aufs metadata at the root is never a change, nor anything inside it. */
	mkdirs("%s/o/rw/.wh..wh.plnk", base);
	put("", "%s/o/rw/.wh..wh.plnk/123.456", base);
	put("", "%s/o/rw/.wh..wh.aufs", base);
	got = layered("o/rw", low, 1);
	CHECK_STR(got, "C /var/cache\nD /var/cache/a\nA /var/cache/b\nA /var/cache/c\n");
	free(got);
}

/*
 * Below an opaque directory nothing of the lower layers shows: its entries are
 * adds, and what it hides is deleted at the path that is gone, however deep,
 * as the merged mount shows it.
 */
static void test_opaque_nested(void)
{
	mkdirs("%s/on/lower/dir/sub/keep", base);
	put("1", "%s/on/lower/dir/sub/old", base);
	put("2", "%s/on/lower/dir/sub/keep/x", base);
	put("3", "%s/on/lower/dir/0gone", base);
	mkdirs("%s/on/rw/dir/sub/keep", base);
	put("", "%s/on/rw/dir/.wh..wh..opq", base);
	put("4", "%s/on/rw/dir/sub/new", base);
	put("5", "%s/on/rw/dir/sub/keep/y", base);
	set_mtime(1000, "%s/on/lower/dir", base);
	set_mtime(2000, "%s/on/rw/dir", base);
	const char *low[] = { "on/lower" };
	char *got = layered("on/rw", low, 1);
	CHECK_STR(got, "C /dir\nD /dir/0gone\nA /dir/sub\nA /dir/sub/keep\nD /dir/sub/keep/x\n"
		       "A /dir/sub/keep/y\nA /dir/sub/new\nD /dir/sub/old\n");
	free(got);

	/* The same with the directory's own times unchanged: it comes first all the same. */
	set_mtime(1000, "%s/on/rw/dir", base);
	got = layered("on/rw", low, 1);
	CHECK_STR(got, "C /dir\nD /dir/0gone\nA /dir/sub\nA /dir/sub/keep\nD /dir/sub/keep/x\n"
		       "A /dir/sub/keep/y\nA /dir/sub/new\nD /dir/sub/old\n");
	free(got);

	/* At the root: Docker skips the marker, we delete what it hides. */
	mkdirs("%s/or/lower/etc", base);
	put("1", "%s/or/lower/etc/conf", base);
	put("2", "%s/or/lower/bin", base);
	mkdirs("%s/or/rw/etc", base);
	put("", "%s/or/rw/.wh..wh..opq", base);
	put("3", "%s/or/rw/etc/new", base);
	const char *low2[] = { "or/lower" };
	got = layered("or/rw", low2, 1);
	CHECK_STR(got, "D /bin\nA /etc\nD /etc/conf\nA /etc/new\n");
	free(got);
	/* Other aufs metadata below the root is no change, nor what is in it. */
	put("", "%s/or/rw/etc/.wh..wh.x", base);
	mkdirs("%s/or/rw/etc/.wh..wh.plnk", base);
	put("", "%s/or/rw/etc/.wh..wh.plnk/1.2", base);
	got = layered("or/rw", low2, 1);
	CHECK_STR(got, "D /bin\nA /etc\nD /etc/conf\nA /etc/new\n");
	free(got);
}

/* graphtest DriverTestChanges on aufs: 21 changes. */
static void test_driver_changes(void)
{
	mkdirs("%s/d/base/directory-0", base);
	mkdirs("%s/d/upper/directory-0", base);
	char name[64];
	for (int j = 0; j < 20; j++) {
		snprintf(name, sizeof(name), "file-%d", j);
		put("seed3", "%s/d/base/directory-0/%s", base, name);
	}
	for (int j = 0; j < 20; j++) {
		if (j % 3 == 0)
			put("seed6", "%s/d/upper/directory-0/file-%d", base, j);
		else if (j % 3 == 1)
			put("new", "%s/d/upper/directory-0/file-6-%d", base, j);
		else
			put("", "%s/d/upper/directory-0/.wh.file-%d", base, j);
	}
	set_mtime(1000, "%s/d/base/directory-0", base);
	set_mtime(2000, "%s/d/upper/directory-0", base);
	const char *low[] = { "d/base" };
	struct change_list l = { 0 };
	char p[512];
	snprintf(p, sizeof(p), "%s/d/upper", base);
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/%s", base, low[0]);
	int lfd = open(p, O_RDONLY | O_DIRECTORY);
	CHECK_INT(changes_layered(fd, &lfd, 1, &l), 0);
	CHECK_INT(l.n, 21);
	int c = 0, a = 0, d = 0;
	for (size_t i = 0; i < l.n; i++)
		c += l.v[i].kind == STRATA_CHANGE_MODIFY, a += l.v[i].kind == STRATA_CHANGE_ADD,
			d += l.v[i].kind == STRATA_CHANGE_DELETE;
	CHECK_INT(c, 8);
	CHECK_INT(a, 7);
	CHECK_INT(d, 6);
	change_list_clear(&l);
	close(fd);
	close(lfd);
}

/* moby TestChangesDirsEmpty and TestChangesDirsMutated, on plain trees. */
static void test_dirs(void)
{
	mkdirs("%s/t/old/dir1", base);
	mkdirs("%s/t/old/dir2", base);
	mkdirs("%s/t/old/dir3", base);
	for (int i = 1; i <= 5; i++)
		put("content", "%s/t/old/file%d", base, i);
	char p[512], q[512];
	snprintf(p, sizeof(p), "%s/t/old/symlink1", base);
	symlink("file1", p);
	snprintf(p, sizeof(p), "%s/t/old/symlink2", base);
	symlink("file2", p);
	for (int i = 1; i <= 5; i++)
		set_mtime(1000, "%s/t/old/file%d", base, i);

	snprintf(p, sizeof(p), "cp -a %s/t/old %s/t/new", base, base);
	CHECK_INT(system(p), 0);
	char *got = dirs("t/new", "t/old");
	CHECK_STR(got, "");
	free(got);

	snprintf(p, sizeof(p), "%s/t/new/dir1", base);
	rm_rf_at(AT_FDCWD, p);
	snprintf(p, sizeof(p), "%s/t/new/dir2", base);
	chmod(p, 0700);
	mkdirs("%s/t/new/dirnew", base);
	set_mtime(3000, "%s/t/new/dir3", base);
	snprintf(p, sizeof(p), "%s/t/new/file1", base);
	unlink(p);
	put("modified", "%s/t/new/file2", base);
	set_mtime(1000, "%s/t/new/file2", base);
	snprintf(p, sizeof(p), "%s/t/new/file3", base);
	chmod(p, 0600);
	set_mtime(2000, "%s/t/new/file4", base);
	put("contenT", "%s/t/new/file5", base); /* same size and time, other bytes: unseen */
	snprintf(p, sizeof(p), "%s/t/new/file5", base);
	chown(p, 1, 1);
	set_mtime(1000, "%s/t/new/file5", base);
	put("new", "%s/t/new/filenew", base);
	snprintf(p, sizeof(p), "%s/t/new/symlink1", base);
	unlink(p);
	snprintf(p, sizeof(p), "%s/t/new/symlink2", base);
	unlink(p);
	symlink("file1", p);
	snprintf(q, sizeof(q), "%s/t/new/symlinknew", base);
	symlink("file2", q);
	got = dirs("t/new", "t/old");
	CHECK_STR(got, "D /dir1\nC /dir2\nA /dirnew\nD /file1\nC /file2\nC /file3\nC /file4\n"
		       "C /file5\nA /filenew\nD /symlink1\nC /symlink2\nA /symlinknew\n");
	free(got);

	/* Against nothing: everything is an add, subtrees included. */
	mkdirs("%s/t/new/dirnew/deep", base);
	got = dirs("t/new/dirnew", NULL);
	CHECK_STR(got, "A /deep\n");
	free(got);
}

/* An opaque directory's deletes come in walk order among its entries, parents first. */
static void test_opaque_order(void)
{
	mkdirs("%s/oo/lower/dir", base);
	put("1", "%s/oo/lower/dir/a", base);
	put("2", "%s/oo/lower/dir/b", base);
	mkdirs("%s/oo/rw/dir", base);
	put("", "%s/oo/rw/dir/.wh..wh..opq", base);
	put("3", "%s/oo/rw/dir/0first", base);
	put("4", "%s/oo/rw/dir/c", base);
	set_mtime(1000, "%s/oo/lower/dir", base);
	set_mtime(1000, "%s/oo/rw/dir", base);
	const char *low[] = { "oo/lower" };
	char *got = layered("oo/rw", low, 1);
	CHECK_STR(got, "C /dir\nA /dir/0first\nD /dir/a\nD /dir/b\nA /dir/c\n");
	free(got);
	/* And the same on every run. */
	char *again = layered("oo/rw", low, 1);
	CHECK_STR(again, "C /dir\nA /dir/0first\nD /dir/a\nD /dir/b\nA /dir/c\n");
	free(again);
}

/* A whiteout inside an opaque directory is one delete, not two. */
static void test_opaque_whiteout(void)
{
	mkdirs("%s/ow/lower/dir", base);
	put("1", "%s/ow/lower/dir/x", base);
	put("2", "%s/ow/lower/dir/y", base);
	mkdirs("%s/ow/rw/dir", base);
	put("", "%s/ow/rw/dir/.wh..wh..opq", base);
	put("", "%s/ow/rw/dir/.wh.x", base);
	set_mtime(1000, "%s/ow/lower/dir", base);
	set_mtime(2000, "%s/ow/rw/dir", base);
	struct change_list l = { 0 };
	char p[512];
	snprintf(p, sizeof(p), "%s/ow/rw", base);
	int fd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/ow/lower", base);
	int lfd = open(p, O_RDONLY | O_DIRECTORY);
	CHECK_INT(changes_layered(fd, &lfd, 1, &l), 0);
	close(fd);
	close(lfd);
	char *got = render(&l, /* sort= */ true);
	CHECK_STR(got, "C /dir\nD /dir/x\nD /dir/y\n");
	free(got);
	change_list_clear(&l);
}

/* The size of the changes of tree @new_dir against @old_dir (NULL: nothing), as ChangesSize. */
static int64_t size_of(const char *new_dir, const char *old_dir)
{
	struct change_list l = { 0 };
	char p[512];
	int64_t size = -1;
	snprintf(p, sizeof(p), "%s/%s", base, new_dir);
	int nfd = open(p, O_RDONLY | O_DIRECTORY);
	int ofd = -1;
	if (old_dir) {
		snprintf(p, sizeof(p), "%s/%s", base, old_dir);
		ofd = open(p, O_RDONLY | O_DIRECTORY);
	}
	int r = changes_dirs(nfd, ofd, &l);
	if (r == 0)
		r = changes_size(nfd, &l, &size);
	if (r < 0)
		printf("# changes size: %s\n", strerror(-r));
	close(nfd);
	if (ofd >= 0)
		close(ofd);
	change_list_clear(&l);
	return size;
}

/*
 * moby TestChangesSizeWithHardlinks: 100 files of 4 bytes, each with a hard
 * link, against an empty tree: 400, each inode counted once. With
 * TestChangesSizeWithNoChanges and TestChangesSizeWithOnlyDeleteChanges.
 */
static void test_changes_size(void)
{
	char p[512], q[512];
	mkdirs("%s/sz/empty", base);
	mkdirs("%s/sz/links", base);
	for (int i = 0; i < 100; i++) {
		snprintf(p, sizeof(p), "%s/sz/links/file-%d", base, i);
		snprintf(q, sizeof(q), "%s/sz/links/file-%d-link", base, i);
		put("fooo", "%s", p);
		chmod(p, 0700);
		link(p, q);
	}
	CHECK_INT(size_of("sz/links", "sz/empty"), 400);
	CHECK_INT(size_of("sz/links", NULL), 400);
	/* A link into a tree compared is still the same inode: counted once across directories. */
	mkdirs("%s/sz/links/sub", base);
	snprintf(p, sizeof(p), "%s/sz/links/file-0", base);
	snprintf(q, sizeof(q), "%s/sz/links/sub/again", base);
	link(p, q);
	CHECK_INT(size_of("sz/links", NULL), 400);

	/* No changes: 0. Only deletes: 0. */
	CHECK_INT(size_of("sz/empty", "sz/empty"), 0);
	CHECK_INT(size_of("sz/empty", "sz/links"), 0);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/strata-changes-XXXXXX");
	if (!mkdtemp(base))
		tap_skip_all("no temporary directory");
	test_with_changes();
	test_gh13590();
	test_middle_delete();
	test_opaque();
	test_opaque_nested();
	test_opaque_whiteout();
	test_opaque_order();
	test_driver_changes();
	test_dirs();
	test_changes_size();
	rm_rf_at(AT_FDCWD, base);
	return tap_done();
}
