/* SPDX-License-Identifier: Apache-2.0 */
/* Layer I/O internals: tar names, id maps, CRC-64, tar-split records, safe opens in a layer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>

#include "strata-private.h"

/* ---- tar names (tarpath.c) ---- */

/*
 * Cleans a name from a tar as Go's filepath.Clean does, relative to the layer:
 * leading '/' and "./" go, "a/../b" becomes "b", a trailing '/' goes. Writes
 * the result to @buf ("" for the layer's root). Returns its length, -EXDEV when
 * a ".." climbs above the layer, -ENAMETOOLONG when it does not fit.
 */
int tar_path_clean(const char *name, char *buf, size_t size);

/*
 * Opens @path (a cleaned name) below the layer directory @layer_fd with @flags,
 * resolving every symlink inside the layer (RESOLVE_IN_ROOT), never through
 * /proc magic links. Without openat2(), a symlink anywhere on the path is
 * -ELOOP. Returns an fd or -errno. "" opens the layer itself.
 */
int layer_openat(int layer_fd, const char *path, int flags, mode_t mode);

/*
 * As layer_openat(), but -ELOOP when any component of @path (the last one too)
 * is a symlink: what opens is then at the place its name says.
 */
int layer_openat_nolinks(int layer_fd, const char *path, int flags, mode_t mode);

/* Changes the mode of @name in @dfd, never through a symlink: -ELOOP if @name is one. */
int chmod_nofollow_at(int dfd, const char *name, mode_t mode);

/* ---- id maps (idmap.c) ---- */

/*
 * A store's uid and gid maps (Docker's IdentityMapping). Empty maps map every
 * id to itself. root_uid/root_gid are the host ids of container root.
 */
struct idmap {
	const struct strata_idmap *uid;
	size_t n_uid;
	const struct strata_idmap *gid;
	size_t n_gid;
};

/* The store's maps, as layer I/O uses them (borrowed from @s). */
static inline struct idmap store_layer_idmap(const struct strata *s)
{
	return (struct idmap){ s->idmap.uid, s->idmap.n_uid, s->idmap.gid, s->idmap.n_gid };
}

/* Container id @id to host id through @m (n == 0: unchanged). -ERANGE when unmapped. */
int idmap_to_host(const struct strata_idmap *m, size_t n, uint32_t id, uint32_t *ret);
/* The inverse of idmap_to_host(). */
int idmap_to_container(const struct strata_idmap *m, size_t n, uint32_t id, uint32_t *ret);
/* The host uid and gid of container root (0:0 without maps). */
void idmap_root_pair(const struct idmap *m, uint32_t *ret_uid, uint32_t *ret_gid);
/*
 * Docker's IdentityMapping.ToHost: a uid (gid) that already equals the root
 * pair's is left alone, any other is mapped. -ERANGE names no field: the
 * caller says which id failed.
 */
int idmap_pair_to_host(const struct idmap *m, uint32_t *uid, uint32_t *gid);
int idmap_pair_to_container(const struct idmap *m, uint32_t *uid, uint32_t *gid);

/* ---- CRC-64/ISO, as Go's hash/crc64 with crc64.ISO (crc64.c) ---- */

uint64_t crc64_iso_update(uint64_t crc, const void *data, size_t len);

/* ---- tar-split records (tarsplit.c) ---- */

#define TARSPLIT_DIR "tarsplit"

/*
 * A record being written: vbatts/tar-split's JSON lines, gzip'd. Entries are
 * numbered in order ("position"). Segments hold raw tar bytes that are not file
 * content; a file entry holds a file's name as in the tar, its size and the
 * CRC-64/ISO of its content.
 */
struct tarsplit_writer;

/* Starts a record for layer @id in a temporary file under .strata/tmp. */
int tarsplit_writer_new(struct strata *s, struct tarsplit_writer **ret);
int tarsplit_add_segment(struct tarsplit_writer *w, const void *data, size_t len);
/* @name: raw bytes of the name; @size > 0 gives @crc as payload, else payload null. */
int tarsplit_add_file(struct tarsplit_writer *w, const char *name, int64_t size, uint64_t crc);
/* Finishes the record and moves it to .strata/tarsplit/<id>.json.gz. */
int tarsplit_writer_commit(struct tarsplit_writer *w, const char *id);
/* Drops an unfinished record; NULL is allowed. */
void tarsplit_writer_free(struct tarsplit_writer *w);

/* The gzip'd record of @id opened for reading, or -ENOENT. */
int tarsplit_open(struct strata *s, const char *id);

/*
 * Removes the record of layer @id (missing is fine). The store calls it when the
 * layer is removed, and whenever the layer's files may change behind the record.
 */
int tarsplit_remove(struct strata *s, const char *id);

/*
 * Rebuilds the tar described by the gzip'd record on @record_fd (owned by the
 * call) into @out_fd, taking file contents from the layer directory
 * @layer_fd. A file whose size or CRC-64 differs is -EBADMSG, with its name in
 * *@ret_bad (freed by the caller). @progress may be NULL.
 */
int tarsplit_assemble(int record_fd, int layer_fd, int out_fd,
		      const struct strata_progress *progress, char **ret_bad);

/* ---- shared by apply and export (export.c) ---- */

/*
 * Docker's isParent: *@ret_fast is true when @parent (NULL: the layer's own)
 * is the layer's direct parent, or the layer has none. Fails with a message
 * for @op when the layer does not exist.
 */
int diff_is_parent(struct strata *s, const char *op, const char *id, const char *parent,
		   bool *ret_fast, struct strata_error **err);

/*
 * A tar written the way Docker's Diff writes it (export.c), one entry at a
 * time: for the naive path, which exports a list of changes.
 */
struct exporter;
int exporter_new(struct strata *s, const char *id, int out_fd,
		 const struct strata_progress *progress, struct strata_error **err,
		 struct exporter **ret);
/* Adds @name of directory @dfd as tar entry @rel (no leading '/'), with its data. */
int exporter_add(struct exporter *ex, int dfd, const char *name, const char *rel,
		 const struct stat *st);
/* Adds the whiteout of @rel: "dir/.wh.name", empty, as Docker's ExportChanges. */
int exporter_add_whiteout(struct exporter *ex, const char *rel);
int exporter_finish(struct exporter *ex);
void exporter_free(struct exporter *ex);

/* Docker's directory.Size of the tree open as @layer_fd. */
int diff_size_at(int layer_fd, int64_t *ret);

/* ---- regular files written on worker threads (filepool.c) ---- */

/* A directory fd shared by the jobs of the files in it; the last unref closes it. */
struct fp_dir {
	int fd;
	unsigned refs;
};

struct fp_dir *fp_dir_new(int fd);
struct fp_dir *fp_dir_ref(struct fp_dir *d);
void fp_dir_unref(struct fp_dir *d);

/* One regular file to create below @dir, with all its content and metadata; owns its fields. */
struct fp_job {
	struct fp_job *next;
	struct fp_dir *dir;
	/* these three live in the job's own allocation, after it */
	char *base;            /* the name in @dir */
	char *name;            /* the entry's name in the tar, for messages */
	unsigned char *data;
	size_t len;
	size_t filled;         /* bytes of data read so far */
	uint32_t uid, gid;
	mode_t mode;
	mode_t create_mode;    /* what openat() is given: see apply.c initial_mode() */
	struct timespec ts[2];
	struct fp_xattr {
		char *name;
		void *value;
		size_t size;
	} *xattrs;
	size_t n_xattrs;
};

void fp_job_free(struct fp_job *j);

/* Whether @fd, just made, needs an fchown() to @uid:@gid: unknown counts as needed. */
static inline bool chown_due(int fd, struct stat *st, uint32_t uid, uint32_t gid)
{
	if (fstat(fd, st) < 0) {
		st->st_mode = (mode_t)-1;
		return true;
	}
	return st->st_uid != uid || st->st_gid != gid;
}

struct file_pool;

int file_pool_new(unsigned threads, struct file_pool **ret);
/* Queues @j (taken over), waiting while too much is queued. The first job failure, -errno. */
int file_pool_push(struct file_pool *p, struct fp_job *j);
/* Waits until every queued job is done; returns the first failure. */
int file_pool_drain(struct file_pool *p);
/* The first failure (0 if none), and the entry and step that failed. */
int file_pool_error(struct file_pool *p, const char **ret_name, const char **ret_what);
/* Drops what is not started, waits for the rest and frees @p; NULL is allowed. */
void file_pool_free(struct file_pool *p);
