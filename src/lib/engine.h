/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Union mount engines: a small table of functions each. The store picks one at
 * init (auto, aufs, fuse) and keeps the choice in .strata/engine.
 */
#pragma once

#include <stdbool.h>

#include "strata-private.h"

struct strata_engine {
	const char *name;
	/* 0 when the engine can work on this machine, else -errno with @err filled. */
	int (*probe)(struct strata *s, struct strata_error **err);
	/*
	 * Mounts the union of @rw (writable, on top) and @ro (read-only, nearest
	 * first, NULL-terminated) at @target. On failure nothing stays mounted.
	 */
	int (*mount)(struct strata *s, const char *id, const char *target, const char *rw,
		     char *const *ro, const char *label, struct strata_error **err);
	/* Unmounts @target; retries EBUSY. */
	int (*unmount)(struct strata *s, const char *id, const char *target,
		       struct strata_error **err);
	/* The file-system type /proc/self/mountinfo shows for this engine's mounts. */
	const char *fstype;
	/*
	 * The prefix of the mount source that, followed by the layer id, marks a
	 * mount of that layer ("strata:" for FUSE); NULL when the source does not
	 * name the layer (kernel aufs mounts "none"), as Docker's FsChecker.
	 */
	const char *source_prefix;
	/*
	 * Drops what the engine keeps for a mount of @id whose server died (a FUSE
	 * daemon's pid and branch files), once the dead mount is detached. May be NULL.
	 */
	void (*forget)(struct strata *s, const char *id);
	/* "Dirperm1 Supported" for Status. */
	bool (*dirperm1)(struct strata *s);
};

extern const struct strata_engine engine_aufs;
extern const struct strata_engine engine_fuse;

/* The engine named @name ("aufs", "fuse"), or NULL. */
const struct strata_engine *engine_by_name(const char *name);

/*
 * Reads the engine recorded in .strata/engine, or (first use) resolves
 * @requested ("auto" or NULL: aufs when the kernel has it and we are not in a
 * user namespace, else fuse) and records it. A @requested engine that differs
 * from the recorded one replaces it when no layer is mounted.
 */
int engine_select(struct strata *s, const char *requested, struct strata_error **err);

/* True when this process runs in a user namespace other than the initial one. */
bool running_in_userns(void);

/* ---- mount table (mountinfo.c) ---- */

struct mount_entry {
	char *target;
	char *fstype;
	char *source;
};

void mount_entry_clear(struct mount_entry *m);
/* Finds the topmost mount at exactly @target: 1 and fills @ret (may be NULL), 0 if none. */
int mountinfo_find(const char *target, struct mount_entry *ret);
/* The mount points at or below @prefix, deepest first, NULL-terminated. */
int mountinfo_list_under(const char *prefix, char ***ret);

/*
 * Unmounts @target (umount2 with @flags), retrying EBUSY 5 times 100 ms apart
 * as Docker does. EINVAL (not a mount point) counts as success.
 */
int unmount_retry(const char *target, int flags);

/* Names the processes that hold files below @path, as "'cmd' (pid N), ..."; NULL if none. */
char *mount_holders(const char *path);

/* The aufs engine's mount(2), replaceable by tests: the one fake we accept. */
typedef int (*aufs_mount_fn)(const char *source, const char *target, const char *fstype,
			     unsigned long flags, const void *data);
extern aufs_mount_fn aufs_mount_syscall;
/* Forces the dirperm1 answer in tests: -1 probes (the default), 0 or 1 decide. */
extern int aufs_dirperm1_override;
