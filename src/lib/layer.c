/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Layers: create, remove, list, parent chains. A layer exists exactly when
 * layers/<id> does; that file is written last on create and removed first on
 * remove, so a crash never leaves a half layer that looks whole.
 *
 * Locking: create holds the new id LOCK_EX and its parent LOCK_SH; remove
 * holds the id LOCK_EX. So a child cannot appear on a parent being removed.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "ids.h"
#include "layerio.h"
#include "strata-private.h"

#define LAYER_DIR_MODE 0755
#define LAYERS_FILE_MODE 0644

char *layer_diff_path(struct strata *s, const char *id)
{
	char *p;
	return asprintf(&p, "%s/diff/%s", s->root, id) < 0 ? NULL : p;
}

char *layer_mnt_path(struct strata *s, const char *id)
{
	char *p;
	return asprintf(&p, "%s/mnt/%s", s->root, id) < 0 ? NULL : p;
}

int layer_exists(struct strata *s, const char *id)
{
	struct stat st;

	if (s->layers_fd < 0)
		return 0;
	return fstatat(s->layers_fd, id, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Splits a layers file into its non-empty lines. */
static int parse_chain(char *data, char ***ret)
{
	size_t n = 0, cap = 8;
	char **v = calloc(cap, sizeof(char *));

	if (!v)
		return -ENOMEM;
	for (char *line = data, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		size_t len = strlen(line);
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		if (!len)
			continue;
		if (!id_valid(line)) {
			/* A damaged or crafted chain must not name a branch outside the store. */
			strv_free(v);
			return -EBADMSG;
		}
		if (n + 2 > cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof(char *));
			if (!nv)
				goto oom;
			v = nv;
		}
		if (!(v[n++] = strdup(line)))
			goto oom;
		v[n] = NULL;
	}
	v[n] = NULL;
	*ret = v;
	return 0;
oom:
	strv_free(v);
	return -ENOMEM;
}

int layer_read_parents(struct strata *s, const char *id, char ***ret)
{
	_cleanup_free_ char *data = NULL;
	int r;

	if (s->layers_fd < 0)
		return -ENOENT;
	r = read_file_at(s->layers_fd, id, &data, NULL);
	if (r < 0)
		return r == -ELOOP ? -EINVAL : r;
	return parse_chain(data, ret);
}

/* Renames @name in @dfd to "<name>-removing", then deletes it (Docker's atomicRemove). */
static int atomic_remove(int dfd, const char *name)
{
	char target[NAME_MAX + 16];
	struct stat st;
	int r;

	snprintf(target, sizeof(target), "%s" REMOVING_SUFFIX, name);
	if (renameat(dfd, name, dfd, target) < 0) {
		if (errno == ENOENT)
			; /* Nothing there, or only an earlier "-removing" left: finish it. */
		else if (errno == EEXIST || errno == ENOTEMPTY) {
			if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
				/* Both exist: finish the old one, then move this one. */
				r = rm_rf_at(dfd, target);
				if (r < 0)
					return r;
				if (renameat(dfd, name, dfd, target) < 0)
					return -errno;
			}
		} else
			return -errno;
	}
	return rm_rf_at(dfd, target);
}

static int layer_create(struct strata *s, const char *op, const char *id, const char *parent,
			const struct strata_kv *storage_opts, size_t n_storage_opts,
			struct strata_error **err)
{
	_cleanup_close_ int lock = -1, parent_lock = -1;
	_cleanup_free_ char *chain = NULL;
	_cleanup_free_ char *parent_chain = NULL;
	size_t chain_len = 0;
	bool made_diff = false, made_mnt = false;
	int r;

	r = strata_check_id(op, id, err);
	if (r < 0)
		return r;
	if (isempty(parent))
		parent = NULL;
	if (parent) {
		const char *why;
		if (id_check(parent, &why) < 0)
			return strata_fail(err, EINVAL, "%s '%s': invalid parent id: %s", op, id,
					   why);
		if (!strcmp(parent, id))
			return strata_fail(err, EINVAL, "%s '%s': a layer cannot be its own parent",
					   op, id);
	}
	if (n_storage_opts > 0)
		return strata_fail(err, EINVAL, "%s '%s': --storage-opt is not supported (option '%s')",
				   op, id, strempty(storage_opts[0].key));
	r = store_ensure_state(s, err);
	if (r < 0)
		return r;

	/* Two locks: always in id order, so crossed creates cannot deadlock. */
	for (int pass = 0; pass < 2; pass++) {
		bool parent_first = parent && strcmp(parent, id) < 0;
		bool take_parent = parent && (pass == 0) == parent_first;
		if (take_parent) {
			parent_lock = store_lock(s, parent, LOCK_SH);
			if (parent_lock < 0)
				return strata_fail(err, parent_lock,
						   "%s '%s': cannot lock parent '%s': %s", op, id,
						   parent, strerror(-parent_lock));
		} else if (lock < 0) {
			lock = store_lock(s, id, LOCK_EX);
			if (lock < 0)
				return strata_fail(err, lock, "%s '%s': cannot lock: %s", op, id,
						   strerror(-lock));
		}
	}
	if (layer_exists(s, id))
		return strata_fail(err, EEXIST, "%s '%s': layer already exists", op, id);
	if (parent) {
		r = read_file_at(s->layers_fd, parent, &parent_chain, NULL);
		if (r == -ENOENT)
			return strata_fail(err, ENOENT, "%s '%s': parent '%s' does not exist", op,
					   id, parent);
		if (r < 0)
			return strata_fail(err, r, "%s '%s': cannot read parent '%s': %s", op, id,
					   parent, strerror(-r));
		/* The chain is the parent, then the parent's own chain verbatim. */
		size_t plen = strlen(parent_chain);
		bool nl = plen && parent_chain[plen - 1] != '\n';
		chain_len = strlen(parent) + 1 + plen + nl;
		if (!(chain = malloc(chain_len + 1)))
			return strata_fail(err, ENOMEM, "%s '%s': out of memory", op, id);
		snprintf(chain, chain_len + 1, "%s\n%s%s", parent, parent_chain, nl ? "\n" : "");
	}

	/* A diff/<id> or mnt/<id> without a layers file is debris of an interrupted create. */
	for (int i = 0; i < 2; i++) {
		int dfd = i == 0 ? s->diff_fd : s->mnt_fd;
		r = mkdirat_exact(dfd, id, LAYER_DIR_MODE, s->root_uid, s->root_gid);
		if (r == -EEXIST || r == -ENOTDIR) {
			r = atomic_remove(dfd, id);
			if (r == 0)
				r = mkdirat_exact(dfd, id, LAYER_DIR_MODE, s->root_uid,
						  s->root_gid);
		}
		if (r < 0) {
			r = strata_fail(err, r, "%s '%s': cannot create '%s/%s/%s': %s", op, id,
					s->root, i == 0 ? "diff" : "mnt", id, strerror(-r));
			goto undo;
		}
		if (i == 0)
			made_diff = true;
		else
			made_mnt = true;
	}
	r = write_file_atomic_at(s->tmp_fd, s->layers_fd, id, chain ? chain : "", chain_len,
				 LAYERS_FILE_MODE);
	if (r < 0) {
		r = strata_fail(err, r, "%s '%s': cannot write '%s/layers/%s': %s", op, id, s->root,
				id, strerror(-r));
		goto undo;
	}
	return 0;
undo:
	if (made_mnt)
		(void)unlinkat(s->mnt_fd, id, AT_REMOVEDIR);
	if (made_diff)
		(void)unlinkat(s->diff_fd, id, AT_REMOVEDIR);
	return r;
}

_public_ int strata_layer_create(struct strata *s, const char *id, const char *parent,
				 const struct strata_kv *storage_opts, size_t n_storage_opts,
				 struct strata_error **err)
{
	return layer_create(s, "create", id, parent, storage_opts, n_storage_opts, err);
}

_public_ int strata_layer_create_rw(struct strata *s, const char *id, const char *parent,
				    const struct strata_kv *storage_opts, size_t n_storage_opts,
				    struct strata_error **err)
{
	return layer_create(s, "create-rw", id, parent, storage_opts, n_storage_opts, err);
}

_public_ int strata_layer_exists(struct strata *s, const char *id)
{
	if (!id_valid(id))
		return -EINVAL;
	return layer_exists(s, id);
}

/* Calls @fn for every layer id in layers/, in directory order. */
static int for_each_layer(struct strata *s, int (*fn)(struct strata *s, const char *id, void *u),
			  void *userdata)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int r;

	if (s->layers_fd < 0)
		return 0;
	if (!(d = opendir_at(s->layers_fd, ".")))
		return -errno;
	while ((errno = 0, de = readdir(d))) {
		/* Docker counts every non-directory; ids we could not have made are not layers to us. */
		if (de->d_type == DT_DIR || !id_valid(de->d_name))
			continue;
		r = fn(s, de->d_name, userdata);
		if (r < 0)
			return r;
	}
	return errno ? -errno : 0;
}

struct children_scan {
	const char *id;
	char **names;
	size_t n;
};

static int collect_child(struct strata *s, const char *id, void *u)
{
	struct children_scan *c = u;
	_cleanup_strv_free_ char **chain = NULL;

	if (!strcmp(id, c->id) || layer_read_parents(s, id, &chain) < 0 || !chain[0])
		return 0;
	if (strcmp(chain[0], c->id))
		return 0;
	char **nv = realloc(c->names, (c->n + 2) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	c->names = nv;
	if (!(c->names[c->n] = strdup(id)))
		return -ENOMEM;
	c->names[++c->n] = NULL;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

_public_ int strata_layer_remove(struct strata *s, const char *id, unsigned flags,
				 struct strata_error **err)
{
	_cleanup_close_ int lock = -1;
	struct stat st;
	int r;

	r = strata_check_id("rm", id, err);
	if (r < 0)
		return r;
	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	lock = store_lock(s, id, LOCK_EX);
	if (lock < 0)
		return strata_fail(err, lock, "rm '%s': cannot lock: %s", id, strerror(-lock));
	if (!layer_exists(s, id) && fstatat(s->diff_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
	    fstatat(s->mnt_fd, id, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		store_unlock_unknown(s, id, TAKE_FD(lock));
		return strata_fail(err, ENOENT, "rm '%s': no such layer", id);
	}

	if (!(flags & STRATA_REMOVE_FORCE)) {
		struct children_scan c = { .id = id };
		r = for_each_layer(s, collect_child, &c);
		if (r < 0) {
			strv_free(c.names);
			return strata_fail(err, r, "rm '%s': cannot read the layers: %s", id,
					   strerror(-r));
		}
		if (c.n > 0) {
			qsort(c.names, c.n, sizeof(char *), cmp_str);
			_cleanup_free_ char *list = NULL;
			size_t len = 0;
			FILE *f = open_memstream(&list, &len);
			for (size_t i = 0; f && i < c.n; i++)
				fprintf(f, "%s'%s'", i ? ", " : "", c.names[i]);
			if (f)
				fclose(f);
			strv_free(c.names);
			return strata_fail(err, ENOTEMPTY, "rm '%s': layer has children %s", id,
					   list ? list : "");
		}
		strv_free(c.names);
	}

	/* Docker unmounts whatever the count says: other users lose the layer. */
	r = mount_release_all_locked(s, id, err);
	if (r < 0)
		return r;
	if (unlinkat(s->layers_fd, id, 0) < 0 && errno != ENOENT)
		return strata_fail(err, errno, "rm '%s': cannot remove '%s/layers/%s': %m", id,
				   s->root, id);
	(void)fsync(s->layers_fd);
	r = atomic_remove(s->diff_fd, id);
	if (r < 0)
		return strata_fail(err, r, "rm '%s': cannot remove '%s/diff/%s': %s", id, s->root,
				   id, strerror(-r));
	r = atomic_remove(s->mnt_fd, id);
	if (r < 0)
		return strata_fail(err, r, "rm '%s': cannot remove '%s/mnt/%s': %s", id, s->root,
				   id, strerror(-r));
	r = tarsplit_remove(s, id);
	if (r < 0)
		return strata_fail(err, r, "rm '%s': cannot remove its tar-split record: %s", id,
				   strerror(-r));
	store_unlock_remove(s, id, TAKE_FD(lock));
	return 0;
}

_public_ int strata_layer_parents(struct strata *s, const char *id, char ***ret_ids,
				  struct strata_error **err)
{
	int r = strata_check_id("parents", id, err);
	if (r < 0)
		return r;
	r = layer_read_parents(s, id, ret_ids);
	if (r == -ENOENT)
		return strata_fail(err, ENOENT, "parents '%s': no such layer", id);
	if (r < 0)
		return strata_fail(err, r, "parents '%s': %s", id, strerror(-r));
	return 0;
}

struct list_acc {
	struct strata_layer_info *v;
	size_t n, cap;
};

static int collect_info(struct strata *s, const char *id, void *u)
{
	struct list_acc *a = u;
	_cleanup_strv_free_ char **chain = NULL;
	int r;

	r = layer_read_parents(s, id, &chain);
	if (r == -ENOENT)
		return 0; /* Removed while we listed. */
	if (r < 0)
		return r;
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		struct strata_layer_info *nv = realloc(a->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = ncap;
	}
	struct strata_layer_info *i = &a->v[a->n];
	*i = (struct strata_layer_info){ 0 };
	if (!(i->id = strdup(id)))
		return -ENOMEM;
	a->n++;
	if (chain[0] && !(i->parent = strdup(chain[0])))
		return -ENOMEM;
	for (char **p = chain; *p; p++)
		i->depth++;
	r = refs_get_locked(s, id); /* A racy read is fine for a listing. */
	i->mounts = r > 0 ? (unsigned)r : 0;
	return 0;
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct strata_layer_info *)a)->id,
		      ((const struct strata_layer_info *)b)->id);
}

_public_ int strata_layer_list(struct strata *s, struct strata_layer_info **ret, size_t *ret_n,
			       struct strata_error **err)
{
	struct list_acc a = { 0 };
	int r = for_each_layer(s, collect_info, &a);

	if (r < 0) {
		strata_layer_info_free(a.v, a.n);
		return strata_fail(err, r, "ls: cannot read '%s/layers': %s", s->root, strerror(-r));
	}
	if (a.n)
		qsort(a.v, a.n, sizeof(*a.v), cmp_info);
	for (size_t i = 0; i < a.n; i++) {
		if (!a.v[i].parent)
			continue;
		struct strata_layer_info key = { .id = a.v[i].parent };
		struct strata_layer_info *p = bsearch(&key, a.v, a.n, sizeof(*a.v), cmp_info);
		if (p)
			p->children++;
	}
	*ret = a.v;
	*ret_n = a.n;
	return 0;
}

_public_ void strata_layer_info_free(struct strata_layer_info *info, size_t n)
{
	if (!info)
		return;
	for (size_t i = 0; i < n; i++) {
		free(info[i].id);
		free(info[i].parent);
	}
	free(info);
}

int layer_resolve_parent(struct strata *s, const char *op, const char *id, const char **parent,
			 char ***ret_chain, bool *ret_direct, struct strata_error **err)
{
	char **chain = NULL;
	int r;

	r = strata_check_id(op, id, err);
	if (r < 0)
		return r;
	r = layer_read_parents(s, id, &chain);
	if (r == -ENOENT)
		return strata_fail(err, ENOENT, "%s '%s': no such layer", op, id);
	if (r < 0)
		return strata_fail(err, r, "%s '%s': cannot read its parents: %s", op, id,
				   strerror(-r));
	if (!*parent)
		*parent = chain[0] ? chain[0] : "";
	/* Docker's isParent: a base layer always; otherwise only its own direct parent. */
	*ret_direct = !chain[0] || !strcmp(*parent, chain[0]);
	if (!*ret_direct && **parent) {
		/* The other layer will be mounted: it must be one. */
		r = strata_check_id(op, *parent, err);
		if (r == 0 && !layer_exists(s, *parent))
			r = strata_fail(err, ENOENT, "%s '%s': no such parent layer '%s'", op, id,
					*parent);
		if (r < 0) {
			strv_free(chain);
			return r;
		}
	}
	*ret_chain = chain;
	return 0;
}
