/* SPDX-License-Identifier: Apache-2.0 */
/* Open-addressing sets of strings and of inodes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hashset.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

bool strset_has(const struct strset *set, const char *s)
{
	if (!set->cap)
		return false;
	for (size_t i = hash_str(s) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (!set->slot[i])
			return false;
		if (!strcmp(set->slot[i], s))
			return true;
	}
}

int strset_add(struct strset *set, const char *s)
{
	if (strset_has(set, s))
		return 0;
	if ((set->n + 1) * 2 > set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 256;
		char **ns = calloc(ncap, sizeof(char *));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slot[i])
				continue;
			size_t j = hash_str(set->slot[i]) & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = set->slot[i];
		}
		free(set->slot);
		set->slot = ns;
		set->cap = ncap;
	}
	char *d = strdup(s);
	if (!d)
		return -ENOMEM;
	size_t j = hash_str(s) & (set->cap - 1);
	while (set->slot[j])
		j = (j + 1) & (set->cap - 1);
	set->slot[j] = d;
	set->n++;
	return 0;
}

void strset_clear(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
	*set = (struct strset){ 0 };
}

static size_t inode_hash(dev_t dev, ino_t ino, size_t cap)
{
	uint64_t h = ((uint64_t)ino * 0x9E3779B97F4A7C15ULL) ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

struct inode_slot *inode_set_get(struct inode_set *set, dev_t dev, ino_t ino)
{
	if ((set->n + 1) * 2 > set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 256;
		struct inode_slot *ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return NULL;
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slots[i].taken)
				continue;
			size_t j = inode_hash(set->slots[i].dev, set->slots[i].ino, ncap);
			while (ns[j].taken)
				j = (j + 1) & (ncap - 1);
			ns[j] = set->slots[i];
		}
		free(set->slots);
		set->slots = ns;
		set->cap = ncap;
	}
	for (size_t i = inode_hash(dev, ino, set->cap);; i = (i + 1) & (set->cap - 1)) {
		struct inode_slot *sl = &set->slots[i];
		if (!sl->taken) {
			*sl = (struct inode_slot){ .dev = dev, .ino = ino, .taken = true };
			set->n++;
			return sl;
		}
		if (sl->dev == dev && sl->ino == ino)
			return sl;
	}
}

void inode_set_clear(struct inode_set *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i].name);
	free(set->slots);
	*set = (struct inode_set){ 0 };
}

/* ---- names as hashes ---- */

static uint64_t hash_name(const struct hashset *set, const char *s)
{
	uint64_t h = 1469598103934665603ULL ^ set->seed;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	/* splitmix64's finalizer: every bit of h reaches the slot index. */
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h ? h : 1;
}

int hashset_add(struct hashset *set, const char *s)
{
	uint64_t h = hash_name(set, s);

	if ((set->n + 1) * 4 > set->cap * 3) {
		size_t ncap = set->cap ? set->cap * 2 : 1024;
		uint64_t *ns = calloc(ncap, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slots[i])
				continue;
			size_t j = set->slots[i] & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = set->slots[i];
		}
		free(set->slots);
		set->slots = ns;
		set->cap = ncap;
	}
	size_t j = h & (set->cap - 1);
	for (; set->slots[j]; j = (j + 1) & (set->cap - 1))
		if (set->slots[j] == h)
			return 0;
	set->slots[j] = h;
	set->n++;
	return 1;
}

bool hashset_has(const struct hashset *set, const char *s)
{
	if (set->cap == 0)
		return false;
	uint64_t h = hash_name(set, s);
	for (size_t j = h & (set->cap - 1); set->slots[j]; j = (j + 1) & (set->cap - 1))
		if (set->slots[j] == h)
			return true;
	return false;
}

void hashset_clear(struct hashset *set)
{
	free(set->slots);
	set->slots = NULL;
	set->cap = set->n = 0;
}
