// SPDX-License-Identifier: Apache-2.0
/*
 * uidmapping= and gidmapping=: owners as the branches store them and as the mount shows
 * them, in the syntax container tools give fuse-overlayfs. Triples STORED:SHOWN:COUNT say
 * that the ids STORED to STORED+COUNT-1 of the branches show as SHOWN to SHOWN+COUNT-1:
 * layers keep the ids of the image, and a container in a user namespace sees its own.
 * A stored id outside every triple shows as the overflow id, as an unmapped id does in a
 * user namespace; a shown id outside them (a chown, a new file's owner, an ACL entry) can
 * not be stored, and the call fails as on an idmapped mount.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sfs.h"

static uint32_t overflow_id(const char *path)
{
	unsigned long v = 65534;
	FILE *f = fopen(path, "re");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1 || v > UINT32_MAX)
			v = 65534;
		fclose(f);
	}
	return (uint32_t)v;
}

static bool overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
	return a < b + (uint64_t)blen && b < a + (uint64_t)alen;
}

int sfs_idmap_parse(struct sfs_idmap *m, const char *spec, bool uid, char *err, size_t errlen)
{
	const char *what = uid ? "uidmapping" : "gidmapping";
	const char *p = spec;

	m->n = 0;
	m->overflow = overflow_id(uid ? "/proc/sys/kernel/overflowuid" :
					"/proc/sys/kernel/overflowgid");
	while (*p) {
		uint64_t v[3];
		for (int k = 0; k < 3; k++) {
			char *end;
			errno = 0;
			if (*p < '0' || *p > '9' || (v[k] = strtoull(p, &end, 10), errno) ||
			    v[k] > UINT32_MAX || (*end && *end != ':' && *end != ',') ||
			    (k < 2 && !*end) || (*end && !end[1])) {
				snprintf(err, errlen,
					 "option '%s': '%s' is not a list of STORED:SHOWN:COUNT",
					 what, spec);
				return -EINVAL;
			}
			p = *end ? end + 1 : end;
		}
		if (v[2] == 0 || v[0] + v[2] - 1 > UINT32_MAX - 1 || v[1] + v[2] - 1 > UINT32_MAX - 1) {
			snprintf(err, errlen, "option '%s': range %llu:%llu:%llu is empty or too long",
				 what, (unsigned long long)v[0], (unsigned long long)v[1],
				 (unsigned long long)v[2]);
			return -EINVAL;
		}
		if (m->n == SFS_IDMAP_MAX) {
			snprintf(err, errlen, "option '%s': more than %d ranges", what,
				 SFS_IDMAP_MAX);
			return -EINVAL;
		}
		struct sfs_idrange r = { (uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2] };
		for (unsigned i = 0; i < m->n; i++) {
			if (overlaps(r.stored, r.count, m->r[i].stored, m->r[i].count) ||
			    overlaps(r.shown, r.count, m->r[i].shown, m->r[i].count)) {
				snprintf(err, errlen,
					 "option '%s': range %u:%u:%u overlaps %u:%u:%u", what,
					 r.stored, r.shown, r.count, m->r[i].stored,
					 m->r[i].shown, m->r[i].count);
				return -EINVAL;
			}
		}
		m->r[m->n++] = r;
	}
	if (!m->n) {
		snprintf(err, errlen, "option '%s': no range given", what);
		return -EINVAL;
	}
	return 0;
}

uint32_t sfs_id_shown(const struct sfs_idmap *m, uint32_t id)
{
	if (!m->n)
		return id;
	for (unsigned i = 0; i < m->n; i++)
		if (id - m->r[i].stored < m->r[i].count)
			return m->r[i].shown + (id - m->r[i].stored);
	return m->overflow;
}

int sfs_id_stored(const struct sfs_idmap *m, uint32_t id, uint32_t *ret)
{
	if (!m->n) {
		*ret = id;
		return 0;
	}
	for (unsigned i = 0; i < m->n; i++) {
		if (id - m->r[i].shown < m->r[i].count) {
			*ret = m->r[i].stored + (id - m->r[i].shown);
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * The owner @st shows: mapped, or squashed to one (squash_to_uid=, _gid=, _root, as
 * fuse-overlayfs); with static_nlink, a directory's link count is 1.
 */
void sfs_stat_shown(const struct sfs_fs *fs, struct stat *st)
{
	if (fs->static_nlink && S_ISDIR(st->st_mode))
		st->st_nlink = 1;
	st->st_uid = fs->squash_uid >= 0 ? (uid_t)fs->squash_uid :
					   sfs_id_shown(&fs->uidmap, st->st_uid);
	st->st_gid = fs->squash_gid >= 0 ? (gid_t)fs->squash_gid :
					   sfs_id_shown(&fs->gidmap, st->st_gid);
}

/* Whether the value of extended attribute @name holds ids that are mapped: a POSIX ACL's. */
bool sfs_idmap_acl_name(const struct sfs_fs *fs, const char *name)
{
	return (fs->uidmap.n || fs->gidmap.n) && (!strcmp(name, "system.posix_acl_access") ||
						  !strcmp(name, "system.posix_acl_default"));
}

/*
 * The ids in a POSIX ACL (system.posix_acl_access or _default, the kernel's xattr form: a
 * version, then tag, permissions and id of each entry, little-endian), mapped to what is
 * shown (@to_shown) or to what is stored. Fails where an id has no stored form.
 */
int sfs_idmap_acl(const struct sfs_fs *fs, const char *name, void *value, size_t size,
		  bool to_shown)
{
	unsigned char *v = value;

	if (!sfs_idmap_acl_name(fs, name))
		return 0;
	if (size < 4 || (size - 4) % 8)
		return to_shown ? 0 : -EINVAL;
	for (size_t off = 4; off < size; off += 8) {
		unsigned tag = v[off] | v[off + 1] << 8;
		const struct sfs_idmap *m = tag == 0x02 ? &fs->uidmap : tag == 0x08 ? &fs->gidmap : NULL;
		if (!m)
			continue;
		uint32_t id = (uint32_t)v[off + 4] | (uint32_t)v[off + 5] << 8 |
			      (uint32_t)v[off + 6] << 16 | (uint32_t)v[off + 7] << 24;
		if (to_shown)
			id = sfs_id_shown(m, id);
		else if (sfs_id_stored(m, id, &id) < 0)
			return -EINVAL;
		for (int k = 0; k < 4; k++)
			v[off + 4 + k] = (unsigned char)(id >> (8 * k));
	}
	return 0;
}
