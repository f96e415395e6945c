/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Changes of a layer against its parent, as `docker diff` prints them.
 *
 * Direct parent (Docker's isParent): walk diff/<id> in lexical order as Docker's
 * archive.Changes does — a whiteout is a delete, a path the lower layers have is
 * a modify, an unchanged directory is skipped, and the parent of every add or
 * delete is a modify (moby PR 13590). Where Docker is plainly wrong we are not:
 * the lower view is the merged one (a path deleted in a middle layer and added
 * again is an add), and below an opaque directory nothing of the lower layers
 * shows: its entries are adds, and what it hides is deleted at its own path.
 *
 * Any other parent: both stacks mounted and the two trees compared
 * (ChangesDirs), output sorted.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "changes.h"
#include "hashset.h"
#include "naive.h"
#include "whiteout.h"

/* ---- the change list ---- */

static int add_change(struct change_list *l, const char *path, enum strata_change_kind kind)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct strata_change *nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	l->v[l->n++] = (struct strata_change){ p, kind };
	return 0;
}

void change_list_clear(struct change_list *l)
{
	strata_changes_free(l->v, l->n);
	*l = (struct change_list){ 0 };
}

_public_ void strata_changes_free(struct strata_change *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i].path);
	free(v);
}

/* ---- directory listing ---- */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory @fd (not . and ..), sorted bytewise as Go's ReadDir. */
int list_dir_sorted(int fd, char ***ret, size_t *ret_n)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;

	if (dfd < 0)
		return -errno;
	if (!(d = fdopendir(dfd))) {
		close(dfd);
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nv = realloc(v, ncap * sizeof(char *));
			if (!nv)
				goto oom;
			v = nv;
			cap = ncap;
		}
		if (!(v[n] = strdup(de->d_name)))
			goto oom;
		v[++n] = NULL;
	}
	if (errno) {
		int r = -errno;
		closedir(d);
		strv_free(v);
		return r;
	}
	closedir(d);
	if (!v && !(v = calloc(1, sizeof(char *))))
		return -ENOMEM;
	qsort(v, n, sizeof(char *), cmp_name);
	*ret = v;
	*ret_n = n;
	return 0;
oom:
	closedir(d);
	strv_free(v);
	return -ENOMEM;
}

/* ---- the layered walk ---- */

/* The lower layers' part of one directory of the merged view: their dir fds, nearest first. */
struct lower_ctx {
	int *fd;
	size_t n;
};

static void lower_ctx_clear(struct lower_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		close(c->fd[i]);
	free(c->fd);
	*c = (struct lower_ctx){ 0 };
}

static bool has_entry(int dfd, const char *name)
{
	struct stat st;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static bool has_whiteout(int dfd, const char *name)
{
	char wh[NAME_MAX + 8];
	if (strlen(name) + WH_PREFIX_LEN > NAME_MAX)
		return false;
	snprintf(wh, sizeof(wh), WH_PREFIX "%s", name);
	return has_entry(dfd, wh);
}

/*
 * Looks @name up in the lower view of @ctx's directory: 1 and its stat when
 * present, 0 when absent (never there, whited out, or hidden by an opaque dir).
 */
static int lower_lookup(const struct lower_ctx *ctx, const char *name, struct stat *ret)
{
	for (size_t i = 0; i < ctx->n; i++) {
		if (fstatat(ctx->fd[i], name, ret, AT_SYMLINK_NOFOLLOW) == 0)
			return 1;
		if (has_whiteout(ctx->fd[i], name))
			return 0;
	}
	return 0;
}

/* The lower view of directory @name inside @ctx's directory. */
static int lower_ctx_child(const struct lower_ctx *ctx, const char *name, struct lower_ctx *ret)
{
	struct lower_ctx c = { calloc(ctx->n ? ctx->n : 1, sizeof(int)), 0 };

	if (!c.fd)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->n; i++) {
		struct stat st;
		if (fstatat(ctx->fd[i], name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (has_whiteout(ctx->fd[i], name))
				break;
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			break; /* A non-directory hides everything below it. */
		int fd = openat(ctx->fd[i], name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			break;
		c.fd[c.n++] = fd;
		if (has_entry(fd, WH_OPAQUE))
			break;
	}
	*ret = c;
	return 0;
}

/* The names the lower view of a directory shows, sorted: what an opaque dir hides. */
static int lower_names(const struct lower_ctx *ctx, char ***ret, size_t *ret_n)
{
	struct strset seen = { 0 }, gone = { 0 };
	char **out = calloc(1, sizeof(char *));
	size_t n = 0;
	int r = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->n && r == 0; i++) {
		char **names;
		size_t k;
		r = list_dir_sorted(ctx->fd[i], &names, &k);
		if (r < 0)
			break;
		for (size_t j = 0; j < k && r == 0; j++) {
			const char *nm = names[j];
			if (wh_is_meta(nm))
				continue;
			if (wh_is_whiteout(nm)) {
				r = strset_add(&gone, nm + WH_PREFIX_LEN);
				continue;
			}
			if (strset_has(&seen, nm) || strset_has(&gone, nm))
				continue;
			r = strset_add(&seen, nm);
			if (r == 0) {
				char **nv = realloc(out, (n + 2) * sizeof(char *));
				if (!nv || !(nv[n] = strdup(nm))) {
					if (nv)
						out = nv;
					r = -ENOMEM;
					break;
				}
				out = nv;
				out[++n] = NULL;
			}
		}
		strv_free(names);
	}
	strset_clear(&seen);
	strset_clear(&gone);
	if (r < 0) {
		strv_free(out);
		return r;
	}
	qsort(out, n, sizeof(char *), cmp_name);
	*ret = out;
	*ret_n = n;
	return 0;
}

struct layered {
	struct change_list *out;
	struct strset changed_dirs;
};

/* Docker's sameFsTime: equal, or equal seconds with either nanosecond part 0. */
static bool same_fs_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec &&
	       (a->tv_nsec == b->tv_nsec || a->tv_nsec == 0 || b->tv_nsec == 0);
}

/* Emits a change, with the PR 13590 parent rule for adds and deletes. */
static int emit(struct layered *w, const char *path, enum strata_change_kind kind)
{
	int r;

	if (kind != STRATA_CHANGE_MODIFY) {
		const char *slash = strrchr(path, '/');
		if (slash && slash != path) {
			_cleanup_free_ char *parent = strndup(path, (size_t)(slash - path));
			if (!parent)
				return -ENOMEM;
			if (!strset_has(&w->changed_dirs, parent)) {
				if ((r = add_change(w->out, parent, STRATA_CHANGE_MODIFY)) < 0 ||
				    (r = strset_add(&w->changed_dirs, parent)) < 0)
					return r;
			}
		}
	}
	return add_change(w->out, path, kind);
}

static char *join_path(const char *dir, const char *name)
{
	char *p;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int walk_layer_dir(struct layered *w, int dfd, const char *rel, const struct lower_ctx *ctx,
			  const struct lower_ctx *hidden, unsigned depth);

/*
 * The names of @hidden's view that are gone from directory @dfd of the layer:
 * neither there again nor whited out there (that whiteout is the delete).
 */
static int hidden_gone(int dfd, const struct lower_ctx *hidden, char ***ret, size_t *ret_n)
{
	char **names;
	size_t n, k = 0;
	int r;

	if (hidden->n == 0) {
		if (!(*ret = calloc(1, sizeof(char *))))
			return -ENOMEM;
		*ret_n = 0;
		return 0;
	}
	r = lower_names(hidden, &names, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (has_entry(dfd, names[i]) || has_whiteout(dfd, names[i]))
			free(names[i]);
		else
			names[k++] = names[i];
	}
	names[k] = NULL;
	*ret = names;
	*ret_n = k;
	return 0;
}

/* One entry @name of directory @dfd (path @rel) of the layer. */
static int walk_entry(struct layered *w, int dfd, const char *rel, const char *name,
		      const struct lower_ctx *ctx, const struct lower_ctx *hidden, unsigned depth)
{
	_cleanup_free_ char *path = join_path(rel, name);
	struct stat st, lst;
	int r = 0;

	if (!path)
		return -ENOMEM;
	if (wh_is_meta(name)) {
		/*
		 * aufs metadata and our scratch space (.wh..wh.plnk, ...), and the
		 * opaque marker, which the walk of its directory has acted on.
		 */
		return 0;
	}
	if (wh_is_whiteout(name)) {
		_cleanup_free_ char *p = join_path(rel, name + WH_PREFIX_LEN);
		return p ? emit(w, p, STRATA_CHANGE_DELETE) : -ENOMEM;
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;

	enum strata_change_kind kind = STRATA_CHANGE_ADD;
	bool skip = false;
	if (lower_lookup(ctx, name, &lst) > 0) {
		kind = STRATA_CHANGE_MODIFY;
		if (S_ISDIR(st.st_mode) && S_ISDIR(lst.st_mode) && st.st_size == lst.st_size &&
		    st.st_mode == lst.st_mode && same_fs_time(&st.st_mtim, &lst.st_mtim))
			skip = true;
	}
	if (!skip) {
		if (S_ISDIR(st.st_mode) && (r = strset_add(&w->changed_dirs, path)) < 0)
			return r;
		r = emit(w, path, kind);
		if (r < 0)
			return r;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;

	_cleanup_close_ int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct lower_ctx child = { 0 }, child_hidden = { 0 };
	if (cfd < 0)
		return -errno;
	r = lower_ctx_child(ctx, name, &child);
	if (r == 0)
		r = lower_ctx_child(hidden, name, &child_hidden);
	if (r == 0)
		r = walk_layer_dir(w, cfd, path, &child, &child_hidden, depth + 1);
	lower_ctx_clear(&child);
	lower_ctx_clear(&child_hidden);
	return r;
}

/*
 * Walks directory @dfd of the layer, path @rel. @ctx is the lower view that
 * tells a modify from an add; @hidden is the lower view that an opaque
 * directory at or above this one hides (empty when there is none): what of it
 * the layer does not have again is deleted, reported at its own path and in
 * walk order among the layer's entries, as the merged mount no longer shows it.
 */
static int walk_layer_dir(struct layered *w, int dfd, const char *rel, const struct lower_ctx *ctx,
			  const struct lower_ctx *hidden, unsigned depth)
{
	static const struct lower_ctx nothing = { 0 };
	_cleanup_strv_free_ char **names = NULL, **gone = NULL;
	size_t n, n_gone, i = 0, j = 0;
	int r;

	if (depth > 4096)
		return -ELOOP;
	if (ctx->n > 0 && has_entry(dfd, WH_OPAQUE)) {
		/* Nothing below shows through: the entries here are all this layer's. */
		hidden = ctx;
		ctx = &nothing;
	}
	r = list_dir_sorted(dfd, &names, &n);
	if (r == 0)
		r = hidden_gone(dfd, hidden, &gone, &n_gone);
	while (r == 0 && (i < n || j < n_gone)) {
		if (j < n_gone && (i == n || strcmp(gone[j], names[i]) < 0)) {
			_cleanup_free_ char *p = join_path(rel, gone[j++]);
			r = p ? emit(w, p, STRATA_CHANGE_DELETE) : -ENOMEM;
			continue;
		}
		r = walk_entry(w, dfd, rel, names[i++], ctx, hidden, depth);
	}
	return r;
}

int changes_layered(int layer_fd, const int *lower_fds, size_t n_lower, struct change_list *out)
{
	struct layered w = { .out = out };
	struct lower_ctx root = { calloc(n_lower ? n_lower : 1, sizeof(int)), 0 };
	int r;

	if (!root.fd)
		return -ENOMEM;
	for (size_t i = 0; i < n_lower; i++) {
		int fd = fcntl(lower_fds[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			lower_ctx_clear(&root);
			return -errno;
		}
		root.fd[root.n++] = fd;
		if (has_entry(fd, WH_OPAQUE))
			break;
	}
	r = walk_layer_dir(&w, layer_fd, "", &root, &(struct lower_ctx){ 0 }, 0);
	lower_ctx_clear(&root);
	strset_clear(&w.changed_dirs);
	return r;
}

/* ---- two trees (ChangesDirs) ---- */

static bool cap_equal(int dfd_a, int dfd_b, const char *name)
{
	char a[256], b[256];
	char pa[64], pb[64];
	ssize_t na, nb;
	int fa = openat(dfd_a, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int fb = openat(dfd_b, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fa < 0 || fb < 0) {
		if (fa >= 0)
			close(fa);
		if (fb >= 0)
			close(fb);
		return true;
	}
	snprintf(pa, sizeof(pa), "/proc/self/fd/%d", fa);
	snprintf(pb, sizeof(pb), "/proc/self/fd/%d", fb);
	na = getxattr(pa, "security.capability", a, sizeof(a));
	nb = getxattr(pb, "security.capability", b, sizeof(b));
	close(fa);
	close(fb);
	if (na < 0 && nb < 0)
		return true;
	return na == nb && memcmp(a, b, (size_t)na) == 0;
}

static bool link_equal(int dfd_a, int dfd_b, const char *name)
{
	char a[PATH_MAX], b[PATH_MAX];
	ssize_t na = readlinkat(dfd_a, name, a, sizeof(a));
	ssize_t nb = readlinkat(dfd_b, name, b, sizeof(b));
	return na == nb && (na < 0 || memcmp(a, b, (size_t)na) == 0);
}

/* Docker's statDifferent, plus the link target. */
static bool stat_different(const struct stat *a, const struct stat *b)
{
	if (a->st_mode != b->st_mode || a->st_uid != b->st_uid || a->st_gid != b->st_gid ||
	    a->st_rdev != b->st_rdev)
		return true;
	if (!S_ISDIR(a->st_mode) &&
	    (!same_fs_time(&a->st_mtim, &b->st_mtim) || a->st_size != b->st_size))
		return true;
	return false;
}

/* All of directory @fd's contents, as adds under @rel. */
static int add_all(struct change_list *out, int fd, const char *rel, unsigned depth)
{
	char **names;
	size_t n;
	int r = depth > 4096 ? -ELOOP : list_dir_sorted(fd, &names, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *path = join_path(rel, names[i]);
		struct stat st;
		if (!path) {
			r = -ENOMEM;
			break;
		}
		r = add_change(out, path, STRATA_CHANGE_ADD);
		if (r == 0 && fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode)) {
			int cfd = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd >= 0) {
				r = add_all(out, cfd, path, depth + 1);
				close(cfd);
			}
		}
	}
	strv_free(names);
	return r;
}

/* Compares directory @nfd (new) with @ofd (old, -1: empty). */
static int compare_dirs(struct change_list *out, int nfd, int ofd, const char *rel, unsigned depth)
{
	char **nn = NULL, **on = NULL;
	size_t n_new = 0, n_old = 0;
	size_t mark = out->n;
	int r;

	if (depth > 4096)
		return -ELOOP;
	r = list_dir_sorted(nfd, &nn, &n_new);
	if (r == 0 && ofd >= 0)
		r = list_dir_sorted(ofd, &on, &n_old);
	size_t i = 0, j = 0;
	while (r == 0 && (i < n_new || j < n_old)) {
		int c = i >= n_new ? 1 : j >= n_old ? -1 : strcmp(nn[i], on[j]);
		const char *name = c <= 0 ? nn[i] : on[j];
		_cleanup_free_ char *path = join_path(rel, name);
		if (!path) {
			r = -ENOMEM;
			break;
		}
		if (c > 0) {
			/* Only in old: deleted (its subtree goes with it, unreported). */
			r = add_change(out, path, STRATA_CHANGE_DELETE);
			j++;
			continue;
		}
		struct stat ns, os;
		if (fstatat(nfd, name, &ns, AT_SYMLINK_NOFOLLOW) < 0) {
			i++, j += c == 0;
			continue;
		}
		if (c < 0) {
			r = add_change(out, path, STRATA_CHANGE_ADD);
			if (r == 0 && S_ISDIR(ns.st_mode)) {
				int cfd = openat(nfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (cfd >= 0) {
					r = add_all(out, cfd, path, depth + 1);
					close(cfd);
				}
			}
			i++;
			continue;
		}
		i++, j++;
		if (fstatat(ofd, name, &os, AT_SYMLINK_NOFOLLOW) < 0) {
			r = add_change(out, path, STRATA_CHANGE_ADD);
			continue;
		}
		/* The same inode on the same device: nothing below can differ. */
		if (ns.st_ino == os.st_ino && ns.st_dev == os.st_dev)
			continue;
		if (stat_different(&ns, &os) || !cap_equal(nfd, ofd, name) ||
		    (S_ISLNK(ns.st_mode) && !link_equal(nfd, ofd, name)))
			r = add_change(out, path, STRATA_CHANGE_MODIFY);
		if (r == 0 && S_ISDIR(ns.st_mode)) {
			int cn = openat(nfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int co = S_ISDIR(os.st_mode) ? openat(ofd, name, O_RDONLY | O_DIRECTORY |
							       O_NOFOLLOW | O_CLOEXEC)
						     : -1;
			if (cn >= 0)
				r = compare_dirs(out, cn, co, path, depth + 1);
			if (cn >= 0)
				close(cn);
			if (co >= 0)
				close(co);
		}
	}
	strv_free(nn);
	strv_free(on);
	/* Something changed beneath a directory that is not itself a change: it is modified. */
	if (r == 0 && out->n > mark && *rel) {
		bool listed = mark > 0 && !strcmp(out->v[mark - 1].path, rel);
		if (!listed)
			r = add_change(out, rel, STRATA_CHANGE_MODIFY);
	}
	return r;
}

static int cmp_change(const void *a, const void *b)
{
	const struct strata_change *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	return c ? c : (int)x->kind - (int)y->kind;
}

void changes_sort(struct change_list *l)
{
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_change);
}

int changes_dirs(int new_fd, int old_fd, struct change_list *out)
{
	int r = compare_dirs(out, new_fd, old_fd, "", 0);
	if (r == 0)
		changes_sort(out);
	return r;
}

/* Opens diff/<id> of each layer in @ids as directory fds. */
static int open_diff_dirs(struct strata *s, char **ids, int **ret, size_t *ret_n)
{
	size_t n = 0;
	while (ids[n])
		n++;
	int *fds = calloc(n ? n : 1, sizeof(int));
	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		fds[i] = openat(s->diff_fd, ids[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fds[i] < 0) {
			int r = -errno;
			while (i--)
				close(fds[i]);
			free(fds);
			return r;
		}
	}
	*ret = fds;
	*ret_n = n;
	return 0;
}

static int changes_naive(struct strata *s, const char *id, const char *parent,
			 struct change_list *out, struct strata_error **err)
{
	struct naive n;
	int r = naive_open(s, "changes", id, parent, &n, err);

	if (r < 0)
		return r;
	*out = n.changes;
	n.changes = (struct change_list){ 0 };
	r = naive_close(&n, err);
	if (r < 0)
		change_list_clear(out);
	return r;
}

_public_ int strata_changes(struct strata *s, const char *id, const char *parent,
			    struct strata_change **ret, size_t *ret_n, struct strata_error **err)
{
	_cleanup_strv_free_ char **chain = NULL;
	struct change_list out = { 0 };
	bool direct;
	int r;

	r = layer_resolve_parent(s, "changes", id, &parent, &chain, &direct, err);
	if (r < 0)
		return r;
	if (direct) {
		_cleanup_close_ int fd = openat(s->diff_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
								O_CLOEXEC);
		int *lower = NULL;
		size_t n = 0;
		if (fd < 0)
			return strata_fail(err, errno, "changes '%s': cannot open '%s/diff/%s': %m", id,
					   s->root, id);
		r = open_diff_dirs(s, chain, &lower, &n);
		if (r < 0)
			return strata_fail(err, r, "changes '%s': cannot open its parents: %s", id,
					   strerror(-r));
		r = changes_layered(fd, lower, n, &out);
		for (size_t i = 0; i < n; i++)
			close(lower[i]);
		free(lower);
		if (r < 0) {
			change_list_clear(&out);
			return strata_fail(err, r, "changes '%s': %s", id, strerror(-r));
		}
	} else {
		r = changes_naive(s, id, parent, &out, err);
		if (r < 0) {
			change_list_clear(&out);
			return r;
		}
	}
	*ret = out.v;
	*ret_n = out.n;
	return 0;
}
