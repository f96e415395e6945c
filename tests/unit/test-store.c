/* SPDX-License-Identifier: Apache-2.0 */
/* The store library: layout, create/remove, chains, counts, and concurrent callers. */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "strata-private.h"
#include "tap.h"

static char base[256];

static struct strata *open_store(const char *root, unsigned flags)
{
	struct strata_options o = { .root = root, .flags = flags };
	struct strata *s = NULL;
	struct strata_error *err = NULL;

	if (strata_open(&o, &s, &err) < 0) {
		printf("# open %s: %s\n", root, strata_error_message(err));
		strata_error_free(err);
		return NULL;
	}
	return s;
}

static bool path_exists(const char *fmt, const char *a, const char *b)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), fmt, a, b);
	return lstat(p, &st) == 0;
}

static mode_t path_mode(const char *root, const char *rel)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return lstat(p, &st) == 0 ? st.st_mode & 07777 : 0;
}

static void test_layout(void)
{
	char root[300];
	snprintf(root, sizeof(root), "%s/layout/root", base);
	struct strata *s = open_store(root, 0);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(path_mode(root, "."), 0710);
	CHECK_INT(path_mode(root, "layers"), 0710);
	CHECK_INT(path_mode(root, "diff"), 0710);
	CHECK_INT(path_mode(root, "mnt"), 0710);

	struct strata_kv *kv;
	size_t n;
	CHECK_INT(strata_status(s, &kv, &n, NULL), 0);
	CHECK(n >= 4);
	CHECK_STR(kv[0].key, "Root Dir");
	CHECK_STR(kv[0].value, root);
	CHECK_STR(kv[1].key, "Backing Filesystem");
	CHECK_STR(kv[2].key, "Dirs");
	CHECK_STR(kv[2].value, "0");
	CHECK_STR(kv[3].key, "Dirperm1 Supported");
	strata_kv_free(kv, n);
	strata_close(s);
}

static void test_create_chain(void)
{
	char root[300];
	struct strata_error *err = NULL;
	snprintf(root, sizeof(root), "%s/chain", base);
	struct strata *s = open_store(root, 0);
	if (!s)
		return;

	CHECK_INT(strata_layer_create(s, "A", NULL, NULL, 0, NULL), 0);
	CHECK_INT(strata_layer_create(s, "B", "A", NULL, 0, NULL), 0);
	CHECK_INT(strata_layer_create_rw(s, "C", "B", NULL, 0, NULL), 0);

	_cleanup_free_ char *data = NULL;
	size_t len;
	CHECK_INT(read_file_at(s->layers_fd, "C", &data, &len), 0);
	CHECK_STR(data, "B\nA\n");
	free(data);
	CHECK_INT(read_file_at(s->layers_fd, "A", &data, &len), 0);
	CHECK_INT(len, 0);
	CHECK_INT(path_mode(root, "diff/C"), 0755);
	CHECK_INT(path_mode(root, "mnt/C"), 0755);
	CHECK_INT(path_mode(root, "layers/C"), 0644);

	char **ids = NULL;
	CHECK_INT(strata_layer_parents(s, "C", &ids, NULL), 0);
	CHECK(ids && ids[0] && ids[1] && !ids[2]);
	if (ids && ids[0] && ids[1]) {
		CHECK_STR(ids[0], "B");
		CHECK_STR(ids[1], "A");
	}
	strata_strv_free(ids);

	/* Bad input is refused before anything is written. */
	CHECK_INT(strata_layer_create(s, "C", "B", NULL, 0, &err), -EEXIST);
	CHECK(err && strstr(strata_error_message(err), "'C'"));
	strata_error_free(err), err = NULL;
	CHECK_INT(strata_layer_create(s, "D", "nope", NULL, 0, &err), -ENOENT);
	CHECK(err && strstr(strata_error_message(err), "parent 'nope' does not exist"));
	strata_error_free(err), err = NULL;
	CHECK(!path_exists("%s/diff/%s", root, "D"));
	CHECK(!path_exists("%s/mnt/%s", root, "D"));
	CHECK(!path_exists("%s/layers/%s", root, "D"));
	CHECK_INT(strata_layer_create(s, "../evil", NULL, NULL, 0, &err), -EINVAL);
	CHECK(err && strstr(strata_error_message(err), "'../evil'"));
	strata_error_free(err), err = NULL;
	CHECK(!path_exists("%s/%s", base, "evil"));
	struct strata_kv opt = { "size", "10G" };
	CHECK_INT(strata_layer_create(s, "E", NULL, &opt, 1, &err), -EINVAL);
	CHECK(err && strstr(strata_error_message(err), "--storage-opt is not supported"));
	strata_error_free(err), err = NULL;
	CHECK(!path_exists("%s/diff/%s", root, "E"));

	/* Remove refuses a parent, names the children, and --force overrides. */
	CHECK_INT(strata_layer_create(s, "B2", "A", NULL, 0, NULL), 0);
	CHECK_INT(strata_layer_remove(s, "A", 0, &err), -ENOTEMPTY);
	CHECK_STR(strata_error_message(err), "rm 'A': layer has children 'B', 'B2'");
	strata_error_free(err), err = NULL;
	CHECK_INT(strata_layer_remove(s, "C", 0, NULL), 0);
	CHECK(!path_exists("%s/diff/%s", root, "C"));
	CHECK(!path_exists("%s/diff/%s", root, "C-removing"));
	CHECK(!path_exists("%s/mnt/%s", root, "C"));
	CHECK(!path_exists("%s/layers/%s", root, "C"));
	CHECK_INT(strata_layer_remove(s, "C", 0, &err), -ENOENT);
	strata_error_free(err), err = NULL;
	CHECK_INT(strata_layer_remove(s, "A", STRATA_REMOVE_FORCE, NULL), 0);
	CHECK_INT(strata_layer_exists(s, "A"), 0);
	CHECK_INT(strata_layer_exists(s, "B"), 1);
	CHECK_INT(strata_layer_exists(s, "../B"), -EINVAL);

	struct strata_layer_info *v;
	size_t n;
	CHECK_INT(strata_layer_list(s, &v, &n, NULL), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(v[0].id, "B");
		CHECK_STR(v[0].parent, "A");
		CHECK_INT(v[0].depth, 1);
		CHECK_STR(v[1].id, "B2");
	}
	strata_layer_info_free(v, n);
	strata_close(s);
}

static void test_counts(void)
{
	char root[300];
	struct strata_error *err = NULL;
	char *path = NULL;
	snprintf(root, sizeof(root), "%s/counts", base);
	struct strata *s = open_store(root, 0);
	if (!s)
		return;
	CHECK_INT(strata_layer_create(s, "base", NULL, NULL, 0, NULL), 0);
	CHECK_INT(strata_layer_create(s, "kid", "base", NULL, 0, NULL), 0);
	CHECK_INT(strata_mount_get(s, "base", NULL, &path, NULL), 0);
	char want[400];
	snprintf(want, sizeof(want), "%s/diff/base", root);
	CHECK_STR(path, want);
	free(path);
	CHECK_INT(strata_mount_get(s, "base", NULL, &path, NULL), 0);
	free(path);
	CHECK_INT(strata_mount_count(s, "base"), 2);

	/* Another handle (another process, as far as the store knows) sees the count. */
	struct strata *s2 = open_store(root, 0);
	CHECK_INT(strata_mount_count(s2, "base"), 2);
	CHECK_INT(strata_mount_put(s2, "base", NULL), 0);
	strata_close(s2);
	CHECK_INT(strata_mount_count(s, "base"), 1);
	CHECK_INT(strata_mount_put(s, "base", NULL), 0);
	CHECK_INT(strata_mount_put(s, "base", &err), -EINVAL);
	CHECK(err && strstr(strata_error_message(err), "not mounted"));
	strata_error_free(err), err = NULL;
	CHECK_INT(strata_mount_count(s, "base"), 0);
	CHECK_INT(strata_mount_get(s, "ghost", NULL, &path, &err), -ENOENT);
	strata_error_free(err), err = NULL;
	CHECK_INT(strata_mount_count(s, "ghost"), 0);

	/* Remove after mount leaves nothing, count included. */
	CHECK_INT(strata_mount_get(s, "base", NULL, &path, NULL), 0);
	free(path);
	CHECK_INT(strata_layer_remove(s, "base", STRATA_REMOVE_FORCE, NULL), 0);
	CHECK(!path_exists("%s/.strata/mounts/%s", root, "base"));
	CHECK(!path_exists("%s/mnt/%s", root, "base"));
	CHECK(!path_exists("%s/diff/%s", root, "base"));

	CHECK_INT(strata_layer_create(s, "b2", NULL, NULL, 0, NULL), 0);
	CHECK_INT(strata_mount_get(s, "b2", NULL, &path, NULL), 0);
	free(path);
	CHECK_INT(strata_cleanup(s, NULL), 0);
	CHECK_INT(strata_mount_count(s, "b2"), 0);
	strata_close(s);
}

static void test_stale_cleanup(void)
{
	char root[300], p[400];
	snprintf(root, sizeof(root), "%s/stale", base);
	struct strata *s = open_store(root, 0);
	if (!s)
		return;
	strata_close(s);
	snprintf(p, sizeof(p), "%s/diff/123-removing/sub", root);
	CHECK_INT(mkdir(p, 0755) == 0 || (mkdir(p, 0755) < 0 && errno == ENOENT), 1);
	snprintf(p, sizeof(p), "%s/diff/123-removing", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/diff/123-removing/file", root);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	snprintf(p, sizeof(p), "%s/mnt/123-removing", root);
	mkdir(p, 0755);

	/* A read-only open leaves them; a normal one deletes them. */
	s = open_store(root, STRATA_OPEN_READONLY);
	strata_close(s);
	CHECK(path_exists("%s/diff/%s", root, "123-removing"));
	s = open_store(root, 0);
	strata_close(s);
	CHECK(!path_exists("%s/diff/%s", root, "123-removing"));
	CHECK(!path_exists("%s/mnt/%s", root, "123-removing"));
}

static void test_bad_roots(void)
{
	char root[300];
	struct strata_error *err = NULL;
	struct strata *s = NULL;

	snprintf(root, sizeof(root), "%s/a-file", base);
	close(open(root, O_CREAT | O_WRONLY, 0644));
	struct strata_options o = { .root = root };
	CHECK_INT(strata_open(&o, &s, &err), -ENOTDIR);
	CHECK(err && strstr(strata_error_message(err), "not a directory"));
	strata_error_free(err), err = NULL;

	o.root = "";
	CHECK_INT(strata_open(&o, &s, &err), -EINVAL);
	strata_error_free(err), err = NULL;
}

#define WORKERS 16
#define ROUNDS 40

/* Each worker creates layers on a shared parent and its own chain, lists, removes. */
static int worker(const char *root, int w)
{
	struct strata *s = open_store(root, 0);
	char id[64], parent[64];
	int bad = 0;

	if (!s)
		return 1;
	for (int i = 0; i < ROUNDS; i++) {
		snprintf(id, sizeof(id), "w%d-%d", w, i);
		snprintf(parent, sizeof(parent), "w%d-%d", w, i - 1);
		const char *p = i == 0 ? "shared" : (i % 3 ? parent : "shared");
		if (strata_layer_create(s, id, p, NULL, 0, NULL) < 0)
			bad++;
		struct strata_layer_info *v;
		size_t n;
		if (strata_layer_list(s, &v, &n, NULL) < 0)
			bad++;
		else
			strata_layer_info_free(v, n);
		/* Everyone tries to remove the shared parent: it must always refuse. */
		if (strata_layer_remove(s, "shared", 0, NULL) != -ENOTEMPTY)
			bad++;
		if (i % 4 == 3) {
			char leaf[80];
			snprintf(leaf, sizeof(leaf), "%s-leaf", id);
			if (strata_layer_create(s, leaf, id, NULL, 0, NULL) < 0)
				bad++;
			if (strata_layer_remove(s, id, 0, NULL) != -ENOTEMPTY)
				bad++;
			if (strata_layer_remove(s, leaf, 0, NULL) < 0)
				bad++;
		}
	}
	strata_close(s);
	return bad ? 1 : 0;
}

static void test_concurrency(void)
{
	char root[300];
	pid_t pids[WORKERS];
	snprintf(root, sizeof(root), "%s/conc", base);
	struct strata *s = open_store(root, 0);
	if (!s)
		return;
	CHECK_INT(strata_layer_create(s, "shared", NULL, NULL, 0, NULL), 0);
	for (int w = 0; w < WORKERS; w++) {
		pids[w] = fork();
		if (pids[w] == 0)
			_exit(worker(root, w));
	}
	int failed = 0;
	for (int w = 0; w < WORKERS; w++) {
		int st;
		waitpid(pids[w], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			failed++;
	}
	CHECK_INT(failed, 0);

	/* Consistent: every layer has its dirs and a chain of existing layers; no debris. */
	struct strata_layer_info *v;
	size_t n;
	CHECK_INT(strata_layer_list(s, &v, &n, NULL), 0);
	CHECK_INT(n, 1 + WORKERS * ROUNDS);
	int broken = 0;
	for (size_t i = 0; i < n; i++) {
		char **chain = NULL;
		if (!path_exists("%s/diff/%s", root, v[i].id) ||
		    !path_exists("%s/mnt/%s", root, v[i].id))
			broken++;
		if (strata_layer_parents(s, v[i].id, &chain, NULL) < 0)
			broken++;
		else
			for (char **p = chain; *p; p++)
				if (strata_layer_exists(s, *p) != 1)
					broken++;
		strata_strv_free(chain);
	}
	CHECK_INT(broken, 0);
	strata_layer_info_free(v, n);
	int entries = 0;
	DIR *d = opendir(root);
	char p[400];
	snprintf(p, sizeof(p), "%s/diff", root);
	closedir(d);
	d = opendir(p);
	for (struct dirent *de; d && (de = readdir(d));)
		if (de->d_name[0] != '.')
			entries++;
	if (d)
		closedir(d);
	CHECK_INT(entries, 1 + WORKERS * ROUNDS);
	strata_close(s);
}

static void test_idmap(void)
{
	struct strata_idmap u[] = { { 0, 100000, 1000 }, { 1000, 5000, 10 } };
	struct idmap_set m = { .uid = u, .n_uid = 2 };
	uint32_t out = 0;

	CHECK_INT(idmap_set_to_host(&m, false, 0, &out), 0);
	CHECK_INT(out, 100000);
	CHECK_INT(idmap_set_to_host(&m, false, 999, &out), 0);
	CHECK_INT(out, 100999);
	CHECK_INT(idmap_set_to_host(&m, false, 1005, &out), 0);
	CHECK_INT(out, 5005);
	CHECK_INT(idmap_set_to_host(&m, false, 1010, &out), -ERANGE);
	CHECK_INT(idmap_set_to_container(&m, false, 100500, &out), 0);
	CHECK_INT(out, 500);
	CHECK_INT(idmap_set_to_container(&m, false, 42, &out), -ERANGE);
	/* No gid maps: identity. */
	CHECK_INT(idmap_set_to_host(&m, true, 4242, &out), 0);
	CHECK_INT(out, 4242);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/strata-unit-XXXXXX");
	if (!mkdtemp(base))
		tap_skip_all("no temporary directory");
	test_idmap();
	test_layout();
	test_create_chain();
	test_counts();
	test_stale_cleanup();
	test_bad_roots();
	test_concurrency();
	rm_rf_at(AT_FDCWD, base);
	return tap_done();
}
