/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel aufs engine's mount data, through the one fake we accept: the
 * mount system call. The data must be byte for byte what Docker's aufsMount
 * passes: golden strings for small stacks, and for deep ones every call but the
 * last filled greedily up to page - offset - len(label) (offset 54, or 63 with
 * dirperm1), "append:<ro>=ro+wh," batches, the label after each, and the
 * branches in exactly the order of the layer chain, also for root paths that
 * put the page boundary inside a "=ro+wh" suffix.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "engine.h"
#include "fsutil.h"
#include "tap.h"

#define MAX_CALLS 64

static struct call {
	unsigned long flags;
	char *data;
} calls[MAX_CALLS];
static int n_calls;
static long page;
static struct strata *golden_store;

static int fake_mount(const char *source, const char *target, const char *fstype,
		      unsigned long flags, const void *data)
{
	if (n_calls < MAX_CALLS)
		calls[n_calls++] = (struct call){ flags, strdup(data) };
	return strcmp(source, "none") || strcmp(fstype, "aufs") ? -EINVAL : 0;
}

static void reset_calls(void)
{
	for (int i = 0; i < n_calls; i++)
		free(calls[i].data);
	n_calls = 0;
}

/*
 * Replays the recorded calls as aufs would read them and checks the branches
 * against @rw and @ro. Returns true when all is right; says why otherwise.
 */
/* Calls, over all stacks checked, that filled their room exactly or missed by one byte. */
static int exact_fills, near_misses;

/* Docker's room for branches in one call: page - len(label) - offset. */
static size_t room(bool dirperm1, const char *label)
{
	return (size_t)page - (label ? strlen(label) : 0) - (dirperm1 ? 63 : 54);
}

/*
 * Call @i put @bp bytes of branches in the room: they must fit, and unless it is
 * the last call, the next branch (@ro[@next], as the next call's format would
 * have written it into this one) must not have.
 */
static bool greedy(int i, size_t bp, char **ro, size_t n_ro, size_t next, bool dirperm1,
		   const char *label)
{
	size_t cap = room(dirperm1, label);

	if (bp > cap) {
		printf("# call %d: %zu bytes of branches, room for %zu\n", i, bp, cap);
		return false;
	}
	if (bp == cap)
		exact_fills++;
	if (i == n_calls - 1) {
		if (next != n_ro) {
			printf("# last call %d leaves branches out\n", i);
			return false;
		}
		return true;
	}
	if (next >= n_ro) {
		printf("# call %d: another call after all branches\n", i);
		return false;
	}
	/* Call 0 would have taken ":<ro>=ro+wh", a remount "append:<ro>=ro+wh,". */
	size_t more = strlen(ro[next]) + (i == 0 ? strlen(":=ro+wh") : strlen("append:=ro+wh,"));
	if (bp + more <= cap) {
		printf("# call %d not full: %zu + %zu bytes fit in %zu\n", i, bp, more, cap);
		return false;
	}
	if (bp + more == cap + 1)
		near_misses++;
	return true;
}

static bool replay(const char *rw, char **ro, size_t n_ro, bool dirperm1, const char *label)
{
	char want_tail[256];
	size_t next = 0;

	snprintf(want_tail, sizeof(want_tail), ",dio,xino=/dev/shm/aufs.xino%s", dirperm1 ? ",dirperm1" : "");
	if (label) {
		size_t l = strlen(want_tail);
		snprintf(want_tail + l, sizeof(want_tail) - l, ",context=\"%s\"", label);
	}
	for (int i = 0; i < n_calls; i++) {
		char *d = calls[i].data;
		size_t len = strlen(d);
		if (len + 1 > (size_t)page) {
			printf("# call %d: %zu bytes do not fit a page\n", i, len);
			return false;
		}
		if ((i == 0) != (calls[i].flags == 0) || (i > 0 && calls[i].flags != MS_REMOUNT)) {
			printf("# call %d: flags %lu\n", i, calls[i].flags);
			return false;
		}
		char *end = d + len;
		if (i == 0) {
			size_t tl = strlen(want_tail);
			if (len < tl || strcmp(end - tl, want_tail)) {
				printf("# first call does not end in '%s': %s\n", want_tail, d);
				return false;
			}
			end -= tl;
			*end = '\0';
			char head[4200];
			snprintf(head, sizeof(head), "br:%s=rw", rw);
			if (strncmp(d, head, strlen(head))) {
				printf("# first call does not begin with the rw branch\n");
				return false;
			}
			for (char *p = d + strlen(head); *p;) {
				if (*p != ':' || next >= n_ro) {
					printf("# unexpected text at branch %zu: %.40s\n", next, p);
					return false;
				}
				p++;
				size_t bl = strlen(ro[next]);
				if (strncmp(p, ro[next], bl) || strncmp(p + bl, "=ro+wh", 6)) {
					printf("# branch %zu out of order\n", next);
					return false;
				}
				p += bl + 6;
				next++;
			}
			if (!greedy(i, strlen(d), ro, n_ro, next, dirperm1, label))
				return false;
		} else {
			if (label) {
				char lt[200];
				snprintf(lt, sizeof(lt), ",context=\"%s\"", label);
				size_t ll = strlen(lt);
				/* The batch keeps its trailing comma: ",,context=". */
				if (len < ll + 1 || strcmp(end - ll, lt) || end[-ll - 1] != ',') {
					printf("# remount %d lacks ',,context=...': %s\n", i, d);
					return false;
				}
				end -= ll;
				*end = '\0';
			}
			for (char *p = d; *p;) {
				if (strncmp(p, "append:", 7) || next >= n_ro) {
					printf("# remount %d: unexpected text: %.40s\n", i, p);
					return false;
				}
				p += 7;
				size_t bl = strlen(ro[next]);
				if (strncmp(p, ro[next], bl) || strncmp(p + bl, "=ro+wh,", 7)) {
					printf("# remount %d: branch %zu out of order\n", i, next);
					return false;
				}
				p += bl + 7;
				next++;
			}
			if (!*d) {
				printf("# remount %d adds no branch\n", i);
				return false;
			}
			if (!greedy(i, strlen(d), ro, n_ro, next, dirperm1, label))
				return false;
		}
	}
	if (next != n_ro) {
		printf("# %zu of %zu branches mounted\n", next, n_ro);
		return false;
	}
	return true;
}

/* Mounts @rw over @ro and checks each call's flags and data against @want (NULL-ended). */
static void check_golden(const char *what, const char *rw, char **ro, bool dirperm1,
			 const char *label, const char *const *want)
{
	struct strata_error *err = NULL;
	int n_want = 0;

	aufs_dirperm1_override = dirperm1;
	reset_calls();
	int r = engine_aufs.mount(golden_store, "top", "/nonexistent/target", rw, ro, label, &err);
	if (r < 0)
		printf("# %s: %s\n", what, strata_error_message(err));
	strata_error_free(err);
	tap_result(r == 0, __FILE__, __LINE__, what);
	while (want[n_want])
		n_want++;
	CHECK_INT(n_calls, n_want);
	for (int i = 0; i < n_calls && i < n_want; i++) {
		CHECK_INT(calls[i].flags, i == 0 ? 0 : MS_REMOUNT);
		CHECK_STR(calls[i].data, want[i]);
	}
}

/* Docker's own example, and its variants with dirperm1 and an SELinux label. */
static void test_golden_small(void)
{
	static const char label[] = "system_u:object_r:container_file_t:s0:c1,c2";
	char *ro[] = { "/var/lib/docker/aufs/diff/B", "/var/lib/docker/aufs/diff/A", NULL };
	const char *rw = "/var/lib/docker/aufs/diff/C";
#define BR "br:/var/lib/docker/aufs/diff/C=rw:/var/lib/docker/aufs/diff/B=ro+wh:" \
	   "/var/lib/docker/aufs/diff/A=ro+wh"
#define CTX ",context=\"system_u:object_r:container_file_t:s0:c1,c2\""

	check_golden("3 layers", rw, ro, false, NULL,
		     (const char *const[]){ BR ",dio,xino=/dev/shm/aufs.xino", NULL });
	check_golden("3 layers, dirperm1", rw, ro, true, NULL,
		     (const char *const[]){ BR ",dio,xino=/dev/shm/aufs.xino,dirperm1", NULL });
	check_golden("3 layers, label", rw, ro, false, label,
		     (const char *const[]){ BR ",dio,xino=/dev/shm/aufs.xino" CTX, NULL });
	check_golden("3 layers, dirperm1 and label", rw, ro, true, label,
		     (const char *const[]){ BR ",dio,xino=/dev/shm/aufs.xino,dirperm1" CTX, NULL });
	/* A label with quotes is quoted as Go's %q does it. */
	check_golden("3 layers, label with a quote", rw, ro, false, "a\"b\\c",
		     (const char *const[]){ BR ",dio,xino=/dev/shm/aufs.xino,context=\"a\\\"b\\\\c\"",
					    NULL });
	/* A base layer alone: just the writable branch. */
	check_golden("1 layer", rw, (char *[]){ NULL }, false, NULL,
		     (const char *const[]){ "br:/var/lib/docker/aufs/diff/C=rw,dio,xino=/dev/shm/aufs.xino",
					    NULL });
#undef BR
#undef CTX
}

/*
 * Two read-only branches of half a page each: the second cannot join the first
 * call, and goes in an "append:" remount that keeps its trailing comma, with
 * the label after it (",,context=").
 */
static void test_golden_remount(void)
{
	size_t half = (size_t)page / 2 + 10;
	_cleanup_free_ char *a = malloc(half + 1), *b = malloc(half + 1);
	_cleanup_free_ char *first = NULL, *second = NULL, *first_l = NULL, *second_l = NULL;

	memset(a, 'a', half);
	memset(b, 'b', half);
	a[0] = b[0] = '/';
	a[half] = b[half] = '\0';
	char *ro[] = { a, b, NULL };
	if (asprintf(&first, "br:/rw=rw:%s=ro+wh,dio,xino=/dev/shm/aufs.xino", a) < 0 ||
	    asprintf(&second, "append:%s=ro+wh,", b) < 0 ||
	    asprintf(&first_l, "br:/rw=rw:%s=ro+wh,dio,xino=/dev/shm/aufs.xino,dirperm1,context=\"L\"",
		     a) < 0 ||
	    asprintf(&second_l, "append:%s=ro+wh,,context=\"L\"", b) < 0)
		abort();
	check_golden("2 half-page branches", "/rw", ro, false, NULL,
		     (const char *const[]){ first, second, NULL });
	check_golden("2 half-page branches, dirperm1 and label", "/rw", ro, true, "L",
		     (const char *const[]){ first_l, second_l, NULL });
}

static char **make_chain(const char *root, size_t n)
{
	char **v = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		/* 64 hex characters, as Docker's cache ids. */
		if (asprintf(&v[i], "%s/diff/%032zx%032zx", root, n - i, i) < 0)
			abort();
	}
	return v;
}

static void check_stack(struct strata *s, const char *root, size_t n, bool dirperm1,
			const char *label)
{
	char rw[4096], what[256];
	snprintf(rw, sizeof(rw), "%s/diff/%064x", root, 0);
	char **ro = make_chain(root, n);
	aufs_dirperm1_override = dirperm1;
	reset_calls();
	struct strata_error *err = NULL;
	int r = engine_aufs.mount(s, "top", "/nonexistent/target", rw, ro, label, &err);
	snprintf(what, sizeof(what), "%zu layers, root length %zu, dirperm1 %d, label %s: mount",
		 n, strlen(root), dirperm1, label ? "yes" : "no");
	tap_result(r == 0, __FILE__, __LINE__, what);
	if (r < 0)
		printf("# %s\n", strata_error_message(err));
	strata_error_free(err);
	snprintf(what, sizeof(what), "%zu layers, root length %zu, dirperm1 %d, label %s: data",
		 n, strlen(root), dirperm1, label ? "yes" : "no");
	tap_result(replay(rw, ro, n, dirperm1, label), __FILE__, __LINE__, what);
	strv_free(ro);
}

int main(void)
{
	char base[] = "/tmp/strata-aufs-XXXXXX";
	struct strata *s = NULL;
	struct strata_options o = { 0 };
	char root[4096];

	page = sysconf(_SC_PAGESIZE);
	if (!mkdtemp(base))
		tap_skip_all("no temporary directory");
	snprintf(root, sizeof(root), "%s/root", base);
	o.root = root;
	if (strata_open(&o, &s, NULL) < 0)
		tap_skip_all("cannot open a store");
	aufs_mount_syscall = fake_mount;
	golden_store = s;

	test_golden_small();
	test_golden_remount();

	static const size_t depths[] = { 1, 42, 126, 500 };
	for (size_t i = 0; i < ARRAY_SIZE(depths); i++)
		for (int dp = 0; dp < 2; dp++)
			check_stack(s, "/var/lib/docker/aufs", depths[i], dp, NULL);
	check_stack(s, "/var/lib/docker/aufs", 126, false, "system_u:object_r:container_file_t:s0:c1,c2");

	/* Docker's MatchingPathLength case: each ro entry is 77 + len(root) bytes. */
	int matching = 0;
	for (size_t extra = 1; extra < 400 && matching < 12; extra++) {
		char r2[4096];
		snprintf(r2, sizeof(r2), "/tmp/aufs-tests/%0*d/aufs", (int)extra, 0);
		size_t path_len = 77 + strlen(r2);
		if (4095 % path_len != 0 && 4095 % path_len <= path_len - 2)
			continue;
		matching++;
		check_stack(s, r2, 126, false, NULL);
		check_stack(s, r2, 126, true, NULL);
	}
	CHECK(matching > 0);

	/*
	 * Root paths of every length over a range, with and without dirperm1 and a
	 * label: somewhere a call fills its room to the byte, and somewhere the next
	 * branch misses it by one, so an offset one off either way fails.
	 */
	exact_fills = near_misses = 0;
	for (size_t extra = 1; extra <= 160; extra++) {
		char r2[4096];
		snprintf(r2, sizeof(r2), "/var/lib/%0*d/aufs", (int)extra, 0);
		check_stack(s, r2, 126, extra % 2, extra % 3 ? NULL : "system_u:object_r:s0:c7,c9");
	}
	CHECK(exact_fills > 0);
	CHECK(near_misses > 0);
	printf("# %d calls filled exactly, %d missed by one byte\n", exact_fills, near_misses);

	/* A branch that cannot fit a page alone is an error, never an endless loop. */
	char huge[5000];
	memset(huge, 'x', sizeof(huge) - 1);
	huge[0] = '/';
	huge[sizeof(huge) - 1] = '\0';
	char *ro[] = { "/a=short", huge, NULL };
	struct strata_error *err = NULL;
	reset_calls();
	aufs_dirperm1_override = 0;
	CHECK_INT(engine_aufs.mount(s, "top", "/nonexistent", "/rw", ro, NULL, &err), -ENAMETOOLONG);
	CHECK(err && strstr(strata_error_message(err), "too long"));
	strata_error_free(err);

	reset_calls();
	strata_close(s);
	rm_rf_at(AT_FDCWD, base);
	return tap_done();
}
