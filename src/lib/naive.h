/* SPDX-License-Identifier: Apache-2.0 */
/* The naive diff driver (naive.c): a layer against a parent that is not its own. */
#pragma once

#include "changes.h"

/* Both stacks mounted and compared: the state of one naive operation. */
struct naive {
	struct strata *s;
	const char *id, *parent;
	char *new_path, *old_path; /* old_path NULL: compared with nothing */
	int new_fd, old_fd;
	struct change_list changes; /* sorted */
};

/* Mounts @id and @parent (NULL or "": none) and computes the changes between them. */
int naive_open(struct strata *s, const char *op, const char *id, const char *parent,
	       struct naive *ret, struct strata_error **err);
/* Releases the mounts; returns the first error. */
int naive_close(struct naive *n, struct strata_error **err);

/* Docker's ChangesSize: bytes of added and changed non-directories, hard links once. */
int changes_size(int root_fd, const struct change_list *l, int64_t *ret);

int naive_diff_size(struct strata *s, const char *id, const char *parent, int64_t *ret,
		    struct strata_error **err);

/* Docker's naive Diff: the changes as a tar, deletes as ".wh." entries. */
int naive_diff_export(struct strata *s, const char *id, const char *parent, int out_fd,
		      const struct strata_progress *progress, struct strata_error **err);
