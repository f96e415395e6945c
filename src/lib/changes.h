/* SPDX-License-Identifier: Apache-2.0 */
/* Change lists between layers and trees (changes.c), shared with the naive diff path. */
#pragma once

#include <stddef.h>

#include "strata-private.h"

struct change_list {
	struct strata_change *v;
	size_t n, cap;
};

void change_list_clear(struct change_list *l);
void changes_sort(struct change_list *l);

/* The names of directory @fd, sorted bytewise, NULL-terminated. */
int list_dir_sorted(int fd, char ***ret, size_t *ret_n);

/*
 * Docker's layered changes: walks the layer directory @layer_fd against the
 * lower layers @lower_fds (nearest first), appending to @out in walk order.
 */
int changes_layered(int layer_fd, const int *lower_fds, size_t n_lower, struct change_list *out);

/* Docker's ChangesDirs: tree @new_fd against @old_fd (-1: an empty tree), sorted. */
int changes_dirs(int new_fd, int old_fd, struct change_list *out);
