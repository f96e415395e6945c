/* SPDX-License-Identifier: Apache-2.0 */
/* libstrata internals shared by its files: the store handle, errors, locks, counts. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "strata.h"

#define STRATA_DEFAULT_ROOT "/var/lib/strata"
#define STATE_DIR ".strata"

/* The store's uid and gid maps; empty means identity. */
struct idmap_set {
	struct strata_idmap *uid, *gid;
	size_t n_uid, n_gid;
};

struct strata {
	char *root;      /* absolute, no trailing slash */
	unsigned flags;  /* enum strata_open_flags */
	int root_fd;
	int layers_fd;   /* -1 when a read-only open found no layers/ */
	int diff_fd;
	int mnt_fd;
	int state_fd;    /* ROOT/.strata, -1 until something needs it */
	int tmp_fd;      /* .strata/tmp: temporaries renamed into place */
	int locks_fd;    /* .strata/locks: one flock file an id */
	int mounts_fd;   /* .strata/mounts: one count file an id */
	uid_t root_uid;  /* owner of layer directories (the remapped root) */
	gid_t root_gid;
	char *backing_fs;
	const struct strata_engine *engine; /* chosen at open (engine.c) */
	struct idmap_set idmap;
};

struct strata_engine;


struct strata_error {
	int code;
	char *message;
};

/*
 * Describes a failure in *@err (when @err is not NULL) and returns -|@code|, so
 * that a caller can `return strata_fail(err, r, "rm '%s': ...", id);`.
 */
int strata_fail(struct strata_error **err, int code, const char *fmt, ...) _printf_(3, 4);

/* Checks @id for operation @op ("create", "rm", ...); fills @err naming the id. */
int strata_check_id(const char *op, const char *id, struct strata_error **err);

/* Makes .strata/ and its subdirectories if missing and opens them. */
int store_ensure_state(struct strata *s, struct strata_error **err);

/* ---- id maps (store_idmap.c) ---- */

/* Container id @id to host (-ERANGE when no range holds it), and back. */
int idmap_set_to_host(const struct idmap_set *m, bool gid, uint32_t id, uint32_t *ret);
int idmap_set_to_container(const struct idmap_set *m, bool gid, uint32_t id, uint32_t *ret);
void idmap_set_clear(struct idmap_set *m);
/* Loads (or, from @o, records) the store's maps and sets root_uid/root_gid. */
int idmap_setup(struct strata *s, const struct strata_options *o, struct strata_error **err);

/* ---- locks (lock.c) ---- */

/*
 * Takes a flock of kind @op (LOCK_SH or LOCK_EX) on id @id, shared with every
 * process that opens the store. Returns the lock fd (close it to unlock) or
 * -errno. A lock whose file was unlinked by store_unlock_remove() while we waited
 * is taken again on the new file.
 */
int store_lock(struct strata *s, const char *id, int op);
/* Unlinks the lock file of @id, then closes @fd. The caller holds @fd LOCK_EX. */
void store_unlock_remove(struct strata *s, const char *id, int fd);
/*
 * For a lock @fd on an id that names no layer: unlinks its file if no one else holds
 * it (nothing is left behind by asking about an unknown id), then closes @fd.
 */
void store_unlock_unknown(struct strata *s, const char *id, int fd);

/* ---- layers (layer.c) ---- */

/* Reads layers/<id> into a NULL-terminated list, nearest parent first. -ENOENT if absent. */
int layer_read_parents(struct strata *s, const char *id, char ***ret);
/*
 * Resolves the @parent a diff operation @op names for layer @id: NULL means the
 * layer's own parent, "" none. Sets *@ret_direct when Docker's isParent holds
 * (a base layer, or @parent is its direct parent) and returns the chain.
 */
int layer_resolve_parent(struct strata *s, const char *op, const char *id, const char **parent,
			 char ***ret_chain, bool *ret_direct, struct strata_error **err);
/* 1 if layers/<id> exists, 0 if not. */
int layer_exists(struct strata *s, const char *id);
/* "<root>/diff/<id>" and "<root>/mnt/<id>"; NULL only when out of memory. */
char *layer_diff_path(struct strata *s, const char *id);
char *layer_mnt_path(struct strata *s, const char *id);

/* ---- mount counts (refs.c) ---- */

/* The stored count of @id (0 when none). The caller holds the id's lock. */
int refs_get_locked(struct strata *s, const char *id);
int refs_set_locked(struct strata *s, const char *id, int count);

/*
 * strata_mount_get(); @for_write false is for the library's own reads (naive
 * changes), which leave the layer's tar-split record alone.
 */
int mount_get(struct strata *s, const char *id, const char *mount_label, bool for_write,
	      char **ret_path, struct strata_error **err);
/* Unmounts layer @id (whatever its count) and forgets its count. The caller holds its lock. */
int mount_release_all_locked(struct strata *s, const char *id, struct strata_error **err);
/* How many mount points under mnt/ are dead (their FUSE daemon gone). */
int mount_count_dead(struct strata *s);

/* ---- status (fsmagic.c) ---- */

/* The name Docker gives to statfs magic @magic, or "<unknown>". */
const char *fsmagic_name(unsigned long magic);
