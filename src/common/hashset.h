/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small open-addressing sets: of strings (paths), of names kept only as 64-bit
 * hashes, and of inodes with an optional name.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct strset {
	char **slot;
	size_t cap, n;
};

bool strset_has(const struct strset *set, const char *s);
/* Adds a copy of @s; 0 (also when already there) or -ENOMEM. */
int strset_add(struct strset *set, const char *s);
void strset_clear(struct strset *set);

struct inode_slot {
	dev_t dev;
	ino_t ino;
	char *name; /* owned; what the caller stored, e.g. the first name of a hard link */
	bool used;  /* the caller's mark */
	bool taken; /* the set's: this slot holds (dev, ino) */
};

struct inode_set {
	struct inode_slot *slots;
	size_t cap, n;
};

/* The slot of (@dev, @ino), made empty (used false) the first time; NULL when out of memory. */
struct inode_slot *inode_set_get(struct inode_set *set, dev_t dev, ino_t ino);
void inode_set_clear(struct inode_set *set);

/*
 * A set of names kept as seeded 64-bit hashes: 8 bytes a name whatever its
 * length. A "yes" may rarely be a collision; a "no" is always right.
 */
struct hashset {
	uint64_t *slots; /* 0: empty */
	size_t cap, n;
	uint64_t seed;   /* set by the caller, e.g. at random, so that input cannot aim at one chain */
};

/* 1 if added, 0 if the name's hash was there (a name seen, or a rare collision), -ENOMEM. */
int hashset_add(struct hashset *set, const char *s);
/* Whether the name may be in the set. */
bool hashset_has(const struct hashset *set, const char *s);
void hashset_clear(struct hashset *set);
