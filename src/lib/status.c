/* SPDX-License-Identifier: Apache-2.0 */
/* Status and per-layer metadata, as key and value pairs. */
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "strata-private.h"

struct kv_list {
	struct strata_kv *v;
	size_t n;
	int error;
};

static void kv_add(struct kv_list *l, const char *key, const char *fmt, ...) _printf_(3, 4);
static void kv_add(struct kv_list *l, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *value = NULL;

	if (l->error)
		return;
	struct strata_kv *nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv) {
		l->error = -ENOMEM;
		return;
	}
	l->v = nv;
	va_start(ap, fmt);
	int r = vasprintf(&value, fmt, ap);
	va_end(ap);
	char *k = strdup(key);
	if (r < 0 || !k) {
		free(k);
		if (r >= 0)
			free(value);
		l->error = -ENOMEM;
		return;
	}
	l->v[l->n++] = (struct strata_kv){ k, value };
}

static int kv_finish(struct kv_list *l, struct strata_kv **ret, size_t *ret_n,
		     struct strata_error **err, const char *op)
{
	if (l->error) {
		strata_kv_free(l->v, l->n);
		return strata_fail(err, l->error, "%s: out of memory", op);
	}
	*ret = l->v;
	*ret_n = l->n;
	return 0;
}

_public_ int strata_status(struct strata *s, struct strata_kv **ret_kv, size_t *ret_n,
			   struct strata_error **err)
{
	struct strata_layer_info *layers = NULL;
	struct kv_list l = { 0 };
	size_t n = 0, mounted = 0;
	int r;

	r = strata_layer_list(s, &layers, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (layers[i].mounts)
			mounted++;
	strata_layer_info_free(layers, n);

	kv_add(&l, "Root Dir", "%s", s->root);
	kv_add(&l, "Backing Filesystem", "%s", s->backing_fs ? s->backing_fs : "<unknown>");
	kv_add(&l, "Dirs", "%zu", n);
	bool dirperm1 = s->engine && s->engine->dirperm1 && s->engine->dirperm1(s);
	kv_add(&l, "Dirperm1 Supported", "%s", dirperm1 ? "true" : "false");
	kv_add(&l, "Engine", "%s", s->engine ? s->engine->name : "none");
	kv_add(&l, "Mounted", "%zu", mounted);
	kv_add(&l, "Dead Mounts", "%d", mount_count_dead(s));
	return kv_finish(&l, ret_kv, ret_n, err, "status");
}

_public_ int strata_layer_metadata(struct strata *s, const char *id, struct strata_kv **ret_kv,
				   size_t *ret_n, struct strata_error **err)
{
	_cleanup_strv_free_ char **chain = NULL;
	struct kv_list l = { 0 };
	size_t depth = 0;
	int r;

	r = strata_check_id("metadata", id, err);
	if (r < 0)
		return r;
	r = layer_read_parents(s, id, &chain);
	if (r == -ENOENT)
		return strata_fail(err, ENOENT, "metadata '%s': no such layer", id);
	if (r < 0)
		return strata_fail(err, r, "metadata '%s': %s", id, strerror(-r));
	for (char **p = chain; *p; p++)
		depth++;
	int mounts = strata_mount_count(s, id);

	kv_add(&l, "ID", "%s", id);
	kv_add(&l, "Parent", "%s", chain[0] ? chain[0] : "");
	kv_add(&l, "Depth", "%zu", depth);
	kv_add(&l, "DiffDir", "%s/diff/%s", s->root, id);
	kv_add(&l, "MountDir", "%s/mnt/%s", s->root, id);
	kv_add(&l, "Mounts", "%d", mounts > 0 ? mounts : 0);
	return kv_finish(&l, ret_kv, ret_n, err, "metadata");
}
