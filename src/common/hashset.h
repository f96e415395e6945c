/* SPDX-License-Identifier: Apache-2.0 */
/* Two small open-addressing sets: of strings (paths), and of inodes with an optional name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
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
