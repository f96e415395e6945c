/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's uid/gid maps (Docker's idtools.IdentityMapping): container ids
 * [C, C+S) are host ids [H, H+S). Kept in .strata/idmap, one range a line:
 * "uid C H S" or "gid C H S". With no maps every id is itself.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <string.h>

#include "fsutil.h"
#include "strata-private.h"

int idmap_set_to_host(const struct idmap_set *m, bool gid, uint32_t id, uint32_t *ret)
{
	const struct strata_idmap *v = gid ? m->gid : m->uid;
	size_t n = gid ? m->n_gid : m->n_uid;

	if (n == 0) {
		*ret = id;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (id >= v[i].container_id && id - v[i].container_id < v[i].size) {
			*ret = v[i].host_id + (id - v[i].container_id);
			return 0;
		}
	return -ERANGE;
}

int idmap_set_to_container(const struct idmap_set *m, bool gid, uint32_t id, uint32_t *ret)
{
	const struct strata_idmap *v = gid ? m->gid : m->uid;
	size_t n = gid ? m->n_gid : m->n_uid;

	if (n == 0) {
		*ret = id;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (id >= v[i].host_id && id - v[i].host_id < v[i].size) {
			*ret = v[i].container_id + (id - v[i].host_id);
			return 0;
		}
	return -ERANGE;
}

static int add_range(struct strata_idmap **v, size_t *n, const struct strata_idmap *r)
{
	struct strata_idmap *nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = *r;
	*v = nv;
	return 0;
}

void idmap_set_clear(struct idmap_set *m)
{
	free(m->uid);
	free(m->gid);
	*m = (struct idmap_set){ 0 };
}

static int idmap_parse(const char *text, struct idmap_set *ret)
{
	struct idmap_set m = { 0 };
	const char *p = text;

	while (*p) {
		char kind[4];
		unsigned long c, h, s;
		int used = 0;
		if (sscanf(p, "%3s %lu %lu %lu%n", kind, &c, &h, &s, &used) != 4) {
			idmap_set_clear(&m);
			return -EINVAL;
		}
		struct strata_idmap r = { (uint32_t)c, (uint32_t)h, (uint32_t)s };
		bool gid = !strcmp(kind, "gid");
		if ((!gid && strcmp(kind, "uid")) ||
		    add_range(gid ? &m.gid : &m.uid, gid ? &m.n_gid : &m.n_uid, &r) < 0) {
			idmap_set_clear(&m);
			return -EINVAL;
		}
		p += used;
		while (*p == '\n' || *p == ' ')
			p++;
	}
	*ret = m;
	return 0;
}

static char *idmap_format(const struct idmap_set *m)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	for (size_t i = 0; i < m->n_uid; i++)
		fprintf(f, "uid %u %u %u\n", m->uid[i].container_id, m->uid[i].host_id,
			m->uid[i].size);
	for (size_t i = 0; i < m->n_gid; i++)
		fprintf(f, "gid %u %u %u\n", m->gid[i].container_id, m->gid[i].host_id,
			m->gid[i].size);
	fclose(f);
	return out;
}

static int check_ranges(const struct strata_idmap *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].size == 0 || v[i].container_id > UINT32_MAX - v[i].size ||
		    v[i].host_id > UINT32_MAX - v[i].size)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (v[i].container_id < v[j].container_id + v[j].size &&
			    v[j].container_id < v[i].container_id + v[i].size)
				return -EINVAL;
	}
	return 0;
}

int idmap_setup(struct strata *s, const struct strata_options *o, struct strata_error **err)
{
	_cleanup_free_ char *recorded = NULL, *want = NULL;
	struct idmap_set given = { 0 };
	bool asked = o && (o->n_uid_maps || o->n_gid_maps);
	int r;

	if (s->state_fd >= 0 && read_file_at(s->state_fd, "idmap", &recorded, NULL) == 0 &&
	    idmap_parse(recorded, &s->idmap) < 0)
		return strata_fail(err, EINVAL, "root '%s': cannot parse " STATE_DIR "/idmap",
				   s->root);
	if (asked) {
		if (check_ranges(o->uid_maps, o->n_uid_maps) < 0 ||
		    check_ranges(o->gid_maps, o->n_gid_maps) < 0)
			return strata_fail(err, EINVAL, "id maps: empty, overflowing or overlapping ranges");
		for (size_t i = 0; i < o->n_uid_maps; i++)
			if (add_range(&given.uid, &given.n_uid, &o->uid_maps[i]) < 0)
				goto oom;
		for (size_t i = 0; i < o->n_gid_maps; i++)
			if (add_range(&given.gid, &given.n_gid, &o->gid_maps[i]) < 0)
				goto oom;
		want = idmap_format(&given);
		if (!want)
			goto oom;
		if (!recorded || strcmp(recorded, want)) {
			bool has_layers = false;
			int lfd = openat(s->root_fd, "layers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
			for (struct dirent *de; d && (de = readdir(d));)
				if (de->d_name[0] != '.' && de->d_type != DT_DIR)
					has_layers = true;
			if (d)
				closedir(d);
			else if (lfd >= 0)
				close(lfd);
			if (has_layers) {
				idmap_set_clear(&given);
				return strata_fail(err, EBUSY,
						   "root '%s': id maps cannot change while the store has layers",
						   s->root);
			}
			r = store_ensure_state(s, err);
			if (r < 0) {
				idmap_set_clear(&given);
				return r;
			}
			r = write_file_atomic_at(s->tmp_fd, s->state_fd, "idmap", want, strlen(want),
						 0644);
			if (r < 0) {
				idmap_set_clear(&given);
				return strata_fail(err, r, "root '%s': cannot record id maps: %s",
						   s->root, strerror(-r));
			}
		}
		idmap_set_clear(&s->idmap);
		s->idmap = given;
	}
	/* Layer directories belong to the container's root, as Docker's RootPair. */
	uint32_t uid, gid;
	if (s->idmap.n_uid && idmap_set_to_host(&s->idmap, false, 0, &uid) == 0)
		s->root_uid = uid;
	if (s->idmap.n_gid && idmap_set_to_host(&s->idmap, true, 0, &gid) == 0)
		s->root_gid = gid;
	return 0;
oom:
	idmap_set_clear(&given);
	return strata_fail(err, ENOMEM, "id maps: out of memory");
}
