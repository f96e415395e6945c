/* SPDX-License-Identifier: Apache-2.0 */
/* uid/gid maps as Docker's idtools applies them: to the host on apply, back on export. */
#include <errno.h>

#include "layerio.h"

int idmap_to_host(const struct strata_idmap *m, size_t n, uint32_t id, uint32_t *ret)
{
	if (n == 0) {
		*ret = id;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (id >= m[i].container_id && (uint64_t)id < (uint64_t)m[i].container_id + m[i].size) {
			*ret = m[i].host_id + (id - m[i].container_id);
			return 0;
		}
	return -ERANGE;
}

int idmap_to_container(const struct strata_idmap *m, size_t n, uint32_t id, uint32_t *ret)
{
	if (n == 0) {
		*ret = id;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (id >= m[i].host_id && (uint64_t)id < (uint64_t)m[i].host_id + m[i].size) {
			*ret = m[i].container_id + (id - m[i].host_id);
			return 0;
		}
	return -ERANGE;
}

void idmap_root_pair(const struct idmap *m, uint32_t *ret_uid, uint32_t *ret_gid)
{
	/* Docker: container root unmappable means host root. */
	if (idmap_to_host(m->uid, m->n_uid, 0, ret_uid) < 0)
		*ret_uid = 0;
	if (idmap_to_host(m->gid, m->n_gid, 0, ret_gid) < 0)
		*ret_gid = 0;
}

int idmap_pair_to_host(const struct idmap *m, uint32_t *uid, uint32_t *gid)
{
	uint32_t ru, rg;
	int r;

	idmap_root_pair(m, &ru, &rg);
	if (*uid != ru && (r = idmap_to_host(m->uid, m->n_uid, *uid, uid)) < 0)
		return r;
	if (*gid != rg && (r = idmap_to_host(m->gid, m->n_gid, *gid, gid)) < 0)
		return r;
	return 0;
}

int idmap_pair_to_container(const struct idmap *m, uint32_t *uid, uint32_t *gid)
{
	int r = idmap_to_container(m->uid, m->n_uid, *uid, uid);
	if (r < 0)
		return r;
	return idmap_to_container(m->gid, m->n_gid, *gid, gid);
}
