/* SPDX-License-Identifier: Apache-2.0 */
/* Layer ids: what a name must look like before any file is touched. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define STRATA_ID_MAX 255
#define REMOVING_SUFFIX "-removing"

/*
 * Checks @id against [A-Za-z0-9][A-Za-z0-9_.-]*, at most 255 bytes and not
 * ending in "-removing". Returns 0, or -EINVAL and points @ret_why (may be
 * NULL) at a static text saying what is wrong.
 */
int id_check(const char *id, const char **ret_why);

static inline bool id_valid(const char *id)
{
	return id_check(id, NULL) == 0;
}

/* Writes @id into @buf as far as it is printable (others as '?', "..." when cut). */
void id_shown(const char *id, char *buf, size_t size);

bool str_has_suffix(const char *s, const char *suffix);
