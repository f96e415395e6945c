/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel aufs engine's mount data, through the one fake we accept: the
 * mount system call. Every call must fit a page, and the branches must come out
 * in exactly the order of the layer chain, for deep stacks and for root paths
 * that put the page boundary inside a "=ro+wh" suffix.
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
		} else {
			if (label) {
				char lt[200];
				snprintf(lt, sizeof(lt), ",context=\"%s\"", label);
				size_t ll = strlen(lt);
				if (len < ll || strcmp(end - ll, lt)) {
					printf("# remount %d lacks the label\n", i);
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
		}
	}
	if (next != n_ro) {
		printf("# %zu of %zu branches mounted\n", next, n_ro);
		return false;
	}
	return true;
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
