/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libstrata: Docker's aufs graph driver as a C library. A store is a directory
 * in the aufs layout (layers/, diff/, mnt/); a layer is a directory of files
 * stacked on its parent chain.
 *
 * Conventions: functions return 0 (or a count) on success and a negative errno
 * on failure. Those that take a `struct strata_error **err` also describe a
 * failure there when @err is not NULL; the caller frees it with
 * strata_error_free(). The library never prints and never exits.
 */
#ifndef STRATA_H
#define STRATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(STRATA_BUILDING_LIBRARY)
#define STRATA_EXPORT __attribute__((visibility("default")))
#else
#define STRATA_EXPORT
#endif

struct strata;
struct strata_error;

/* ---- errors ---------------------------------------------------------- */

/** The text of @err: lowercase, subject quoted, e.g. "rm 'c0ffee': layer has children 'a1'". */
STRATA_EXPORT const char *strata_error_message(const struct strata_error *err);
/** The positive errno that describes @err best (ENOENT, EEXIST, EINVAL, EBUSY, ...). */
STRATA_EXPORT int strata_error_code(const struct strata_error *err);
/** Frees @err; NULL is allowed. */
STRATA_EXPORT void strata_error_free(struct strata_error *err);

/* ---- opening a store ------------------------------------------------- */

enum strata_open_flags {
	/*
	 * Do not change an existing store: no stale-entry cleanup, no missing
	 * directory made, nothing written. A store that does not exist yet is
	 * still created. For commands that only look.
	 */
	STRATA_OPEN_READONLY = 1 << 0,
	/* Also set the modes and owners of ROOT, layers/, diff/ and mnt/ to the seed's. */
	STRATA_OPEN_FIX_MODES = 1 << 1,
};

/** One range of an id map: container ids [container_id, +size) are host ids [host_id, +size). */
struct strata_idmap {
	uint32_t container_id;
	uint32_t host_id;
	uint32_t size;
};

struct strata_options {
	/** The store's root directory; NULL means "/var/lib/strata". */
	const char *root;
	/** Bitwise or of enum strata_open_flags. */
	unsigned flags;
	/**
	 * The union mount engine: "auto" (or NULL), "aufs" or "fuse". The first
	 * open records its choice in the store; a different engine replaces it
	 * only while no layer is mounted. "auto" takes kernel aufs where the
	 * kernel has it and we are not in a user namespace, else FUSE.
	 */
	const char *engine;
	/**
	 * User-namespace remapping (Docker's --userns-remap): ranges of container
	 * ids and the host ids they are. Recorded in the store on first use; they
	 * cannot change while the store has layers. None: ids are themselves.
	 * Layer directories are owned by the host ids of container root.
	 */
	const struct strata_idmap *uid_maps;
	size_t n_uid_maps;
	const struct strata_idmap *gid_maps;
	size_t n_gid_maps;
};

/**
 * strata_open() - open (creating on first use) the store at @opts->root.
 * @opts:    where and how; NULL means the defaults.
 * @ret:     the handle, freed with strata_close().
 * @err:     filled on failure (may be NULL).
 *
 * Creates ROOT (0710), layers/, diff/ and mnt/ (0710) when missing and, unless
 * STRATA_OPEN_READONLY, deletes "<id>-removing" leftovers of interrupted
 * removes in diff/ and mnt/. Our own state lives only under ROOT/.strata/.
 * Errors: -ENOTDIR (root is not a directory), -EACCES/-EROFS (cannot write),
 * -EINVAL (bad options).
 */
STRATA_EXPORT int strata_open(const struct strata_options *opts, struct strata **ret,
			      struct strata_error **err);

/** Releases @s; NULL is allowed. Mounts stay up: they belong to the store, not the handle. */
STRATA_EXPORT void strata_close(struct strata *s);

/** The store's absolute root path, owned by @s. */
STRATA_EXPORT const char *strata_root(const struct strata *s);

/* ---- status ---------------------------------------------------------- */

/** A key and value pair; both owned by the array they are in. */
struct strata_kv {
	char *key;
	char *value;
};

/** Frees an array of @n pairs as returned by the library; NULL is allowed. */
STRATA_EXPORT void strata_kv_free(struct strata_kv *kv, size_t n);

/**
 * strata_status() - the driver's status pairs: "Root Dir", "Backing Filesystem",
 * "Dirs", "Dirperm1 Supported" in that order (Docker's), then strata's own
 * ("Engine", "Mounted", ...).
 * @ret_kv, @ret_n: the array, freed with strata_kv_free().
 */
STRATA_EXPORT int strata_status(struct strata *s, struct strata_kv **ret_kv, size_t *ret_n,
				struct strata_error **err);

/* ---- layers ---------------------------------------------------------- */

/**
 * strata_layer_create() - create an empty layer @id on @parent (NULL or "" for a base layer).
 * @storage_opts, @n_storage_opts: Docker's --storage-opt pairs; any at all is -EINVAL,
 *    as aufs supports none.
 *
 * Makes diff/<id> and mnt/<id> (0755) and then, atomically, layers/<id> holding
 * the parent chain, nearest first. Errors: -EINVAL (bad id or parent), -EEXIST
 * (the layer exists), -ENOENT (no such parent). A failed create leaves nothing.
 */
STRATA_EXPORT int strata_layer_create(struct strata *s, const char *id, const char *parent,
				      const struct strata_kv *storage_opts, size_t n_storage_opts,
				      struct strata_error **err);

/** As strata_layer_create(): aufs makes no difference between read-only and read-write layers. */
STRATA_EXPORT int strata_layer_create_rw(struct strata *s, const char *id, const char *parent,
					 const struct strata_kv *storage_opts,
					 size_t n_storage_opts, struct strata_error **err);

/** 1 if layer @id exists (its layers/ file does), 0 if not, -EINVAL for a bad id. */
STRATA_EXPORT int strata_layer_exists(struct strata *s, const char *id);

enum strata_remove_flags {
	/* Remove even when other layers have this one as parent. */
	STRATA_REMOVE_FORCE = 1 << 0,
};

/**
 * strata_layer_remove() - unmount and delete layer @id.
 *
 * The layers file goes first, then diff/<id> and mnt/<id> are renamed to
 * "<id>-removing" and deleted, so a crash never leaves a half layer that looks
 * whole. Errors: -ENOENT (no such layer), -ENOTEMPTY (other layers sit on it and
 * STRATA_REMOVE_FORCE is not given; the message names them), -EBUSY.
 */
STRATA_EXPORT int strata_layer_remove(struct strata *s, const char *id, unsigned flags,
				      struct strata_error **err);

/**
 * strata_layer_parents() - the parent chain of @id, nearest first.
 * @ret_ids: a NULL-terminated array (empty for a base layer), freed with strata_strv_free().
 */
STRATA_EXPORT int strata_layer_parents(struct strata *s, const char *id, char ***ret_ids,
				       struct strata_error **err);

/** Frees a NULL-terminated string array returned by the library; NULL is allowed. */
STRATA_EXPORT void strata_strv_free(char **v);

struct strata_layer_info {
	char *id;
	char *parent;       /* NULL for a base layer */
	unsigned depth;     /* number of ancestors */
	unsigned mounts;    /* how many users hold it mounted (strata_mount_get) */
	unsigned children;  /* layers whose direct parent this is */
};

/**
 * strata_layer_list() - every layer of the store, sorted by id.
 * @ret, @ret_n: freed with strata_layer_info_free().
 */
STRATA_EXPORT int strata_layer_list(struct strata *s, struct strata_layer_info **ret,
				    size_t *ret_n, struct strata_error **err);

/** Frees an array of @n layers as strata_layer_list() returns it; NULL is allowed. */
STRATA_EXPORT void strata_layer_info_free(struct strata_layer_info *info, size_t n);

/**
 * strata_layer_metadata() - what the store knows of @id, as pairs:
 * "ID", "Parent", "Depth", "DiffDir", "MountDir", "Mounts". (Docker's aufs
 * driver reports none; strata says what it has.) Freed with strata_kv_free().
 */
STRATA_EXPORT int strata_layer_metadata(struct strata *s, const char *id, struct strata_kv **ret_kv,
					size_t *ret_n, struct strata_error **err);

/* ---- mounts ---------------------------------------------------------- */

/**
 * strata_mount_get() - make layer @id's merged view available, counted (Docker's Get).
 * @mount_label: an SELinux context for the mount, or NULL.
 * @ret_path:    the directory to use, freed by the caller: diff/<id> for a base
 *               layer, mnt/<id> for a layer with parents.
 *
 * Only the first of several calls mounts; the count is shared by every process
 * that opens the store. The layer's files may change through the returned path
 * from then on, so its tar-split record is dropped: a later strata_diff_export()
 * writes a fresh tar instead of the applied one. A mount left by an earlier run
 * (the engine's file-system type with this layer's source) is adopted and counted
 * once, as Docker's RefCounter does; a dead FUSE mount is detached and made again.
 * Errors: -ENOENT (no such layer), -EBUSY (something else is mounted at mnt/<id>),
 * -EIO (the engine failed to mount), -EINVAL (bad id). A failed call changes no count.
 */
STRATA_EXPORT int strata_mount_get(struct strata *s, const char *id, const char *mount_label,
				   char **ret_path, struct strata_error **err);

/**
 * strata_mount_put() - release one strata_mount_get() of @id (Docker's Put);
 * the last one unmounts. Errors: -ENOENT (no such layer), -EINVAL (not mounted:
 * nothing changes).
 */
STRATA_EXPORT int strata_mount_put(struct strata *s, const char *id, struct strata_error **err);

/** How many users hold layer @id mounted, or a negative errno. */
STRATA_EXPORT int strata_mount_count(struct strata *s, const char *id);

/**
 * strata_cleanup() - unmount everything the store has mounted and forget all
 * counts (Docker's Cleanup, run when the daemon stops).
 */
STRATA_EXPORT int strata_cleanup(struct strata *s, struct strata_error **err);

/* ---- layer I/O (tar) ------------------------------------------------ */

/**
 * struct strata_progress - how far a tar stream has got, for a progress line.
 * @fn:       called now and then from the calling thread with the bytes of tar
 *            read or written so far and the entries done; may be NULL.
 * @userdata: passed to @fn.
 */
struct strata_progress {
	void (*fn)(void *userdata, uint64_t bytes, uint64_t entries);
	void *userdata;
};

enum strata_diff_flags {
	/* apply: do not keep a tar-split record of the stream. */
	STRATA_DIFF_NO_TARSPLIT = 1 << 0,
	/* export: write a fresh tar of the files even when a tar-split record exists. */
	STRATA_DIFF_REGENERATE = 1 << 1,
	/*
	 * apply into an empty layer: small files are written on worker threads by
	 * default where there are 2 CPUs or more. SERIAL never uses them; THREADS
	 * always does.
	 */
	STRATA_DIFF_SERIAL = 1 << 2,
	STRATA_DIFF_THREADS = 1 << 3,
};

/**
 * strata_diff_apply() - unpack a layer tar into layer @id (Docker's ApplyDiff).
 * @parent:   NULL means the layer's own parent; "" means none. When it is the
 *            layer's direct parent (or the layer has none) the tar is unpacked
 *            literally into diff/<id>: ".wh." files stay files. Any other parent
 *            (Docker's naive path): the layer is mounted and the tar applied
 *            to its merged view, whiteouts acted on (".wh.<name>" deletes,
 *            ".wh..wh..opq" empties the directory of what this tar did not
 *            unpack, aufs pseudo-link hard links made whole).
 * @fd:       the tar, plain or gzip, bzip2, xz or zstd (told from its bytes);
 *            read to its end, not closed.
 * @progress: may be NULL.
 * @flags:    enum strata_diff_flags.
 * @ret_size: the layer's size afterwards, as strata_diff_size(); on the naive
 *            path the sum of the tar's entry sizes, as Docker returns; may be NULL.
 *
 * Holds the layer's lock. Nothing is written outside diff/<id>: a name with
 * ".." that climbs out, a link that leads out, a ".wh." name with children, a
 * duplicate name, a bad size or a damaged stream fails with a message naming
 * the entry. Absolute names are taken relative to the layer, as Docker does.
 * Unless STRATA_DIFF_NO_TARSPLIT, an apply into an empty layer also records
 * the stream (tar-split) so that strata_diff_export() rebuilds it byte for byte.
 * A failed apply leaves the layer as far as it got, and removable.
 * Errors: -ENOENT (no layer), -EINVAL (bad id), -EXDEV (an entry leaves the
 * layer), -EBADMSG (damaged or hostile tar), -EEXIST (duplicate), mount errors.
 */
STRATA_EXPORT int strata_diff_apply(struct strata *s, const char *id, const char *parent, int fd,
				    const struct strata_progress *progress, unsigned flags,
				    int64_t *ret_size, struct strata_error **err);

/**
 * strata_diff_export() - write layer @id as a tar to @out_fd (Docker's Diff).
 * @parent:   as for strata_diff_apply().
 * @progress: may be NULL.
 * @flags:    STRATA_DIFF_REGENERATE, or 0.
 *
 * When the layer was applied and has a tar-split record, the applied tar is
 * rebuilt byte for byte; a file changed since fails with -EBADMSG naming it
 * (the output is then incomplete). Otherwise a PAX tar of diff/<id> in lexical
 * order, as Docker writes it: root-level ".wh..wh.*" left out except
 * ".wh..wh..opq", mtimes in whole seconds, no atime, ctime or owner names,
 * hard links to their first name, only the security.capability xattr, ids
 * mapped back except on whiteouts. The same tree gives the same bytes.
 */
STRATA_EXPORT int strata_diff_export(struct strata *s, const char *id, const char *parent,
				     int out_fd, const struct strata_progress *progress,
				     unsigned flags, struct strata_error **err);

/**
 * strata_diff_size() - bytes of layer @id's own files (Docker's DiffSize):
 * directories and empty files count nothing, a hard-linked inode counts once.
 * @parent: as for strata_diff_apply().
 */
STRATA_EXPORT int strata_diff_size(struct strata *s, const char *id, const char *parent,
				   int64_t *ret_size, struct strata_error **err);

/**
 * strata_diff_getter_open() - open a file of layer @id by its name in the tar
 * (Docker's DiffGetter): "./a/b", "/a/b" and "a/b" are the same file.
 * @ret_fd: a read-only fd, closed by the caller.
 *
 * Symlinks resolve inside the layer; a name that climbs out is -EXDEV.
 */
STRATA_EXPORT int strata_diff_getter_open(struct strata *s, const char *id, const char *path,
					  int *ret_fd, struct strata_error **err);

/* ---- changes ------------------------------------------------------- */

enum strata_change_kind {
	STRATA_CHANGE_MODIFY = 0, /* "C /path" */
	STRATA_CHANGE_ADD = 1,    /* "A /path" */
	STRATA_CHANGE_DELETE = 2, /* "D /path" */
};

struct strata_change {
	char *path; /* absolute within the layer: "/etc/passwd" */
	enum strata_change_kind kind;
};

/**
 * strata_changes() - what layer @id changed against @parent, as `docker diff` prints it.
 * @parent: NULL for the layer's own parent (what `docker diff` means), "" for
 *          none (everything is an add), or another layer id.
 * @ret, @ret_n: the changes, freed with strata_changes_free(). For the direct
 *          parent they come in walk order (parents before children); for any
 *          other parent both stacks are mounted and compared, sorted by path.
 * Errors: -ENOENT (no such layer or parent), -EINVAL (bad id), mount errors.
 */
STRATA_EXPORT int strata_changes(struct strata *s, const char *id, const char *parent,
				 struct strata_change **ret, size_t *ret_n,
				 struct strata_error **err);

/** Frees an array of @n changes as strata_changes() returns it; NULL is allowed. */
STRATA_EXPORT void strata_changes_free(struct strata_change *v, size_t n);

#ifdef __cplusplus
}
#endif

#endif
