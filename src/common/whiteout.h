/* SPDX-License-Identifier: Apache-2.0 */
/* The aufs whiteout names, defined once: branches and layer tars use them alike. */
#pragma once

#include <stdbool.h>
#include <string.h>

/* ".wh.<name>" in a branch hides <name> of the branches below. */
#define WH_PREFIX ".wh."
#define WH_PREFIX_LEN (sizeof(WH_PREFIX) - 1)
/* Names that begin ".wh..wh." are aufs metadata, never part of the merged view. */
#define WH_META_PREFIX ".wh..wh."
#define WH_META_PREFIX_LEN (sizeof(WH_META_PREFIX) - 1)
/* A file of this name in a directory makes the directory opaque. */
#define WH_OPAQUE ".wh..wh..opq"
/* Root-level metadata that aufs keeps in a writable branch. */
#define WH_BASE ".wh..wh.aufs"
#define WH_PLINK_DIR ".wh..wh.plnk"
#define WH_ORPHAN_DIR ".wh..wh.orph"

static inline bool wh_is_whiteout(const char *name)
{
	return strncmp(name, WH_PREFIX, WH_PREFIX_LEN) == 0;
}

static inline bool wh_is_meta(const char *name)
{
	return strncmp(name, WH_META_PREFIX, WH_META_PREFIX_LEN) == 0;
}

static inline bool wh_is_opaque(const char *name)
{
	return strcmp(name, WH_OPAQUE) == 0;
}

/* The name a whiteout hides, or NULL if @name is not a plain whiteout. */
static inline const char *wh_target(const char *name)
{
	if (!wh_is_whiteout(name) || wh_is_meta(name))
		return NULL;
	return name + WH_PREFIX_LEN;
}
