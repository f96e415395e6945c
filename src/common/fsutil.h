/* SPDX-License-Identifier: Apache-2.0 */
/* File-system helpers on directory fds: no path inside a store is resolved through a symlink. */
#pragma once

#include <stdbool.h>
#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * mkdirat() with an exact mode (umask does not apply) and owner. Returns 0 when
 * it made the directory, -EEXIST when a directory is already there (left as it
 * is), -ENOTDIR when something else is, or another -errno.
 */
int mkdirat_exact(int dfd, const char *name, mode_t mode, uid_t uid, gid_t gid);

/* Reads a whole file below @dfd (not following a final symlink) into a NUL-terminated buffer. */
int read_file_at(int dfd, const char *name, char **ret_data, size_t *ret_len);

/*
 * Writes @len bytes to @name below @dfd so that a reader sees the old content or
 * the new, never a part: a temporary file in @tmp_dfd (the same file system) is
 * written, fsync'd and renamed over @name, and @dfd is fsync'd.
 */
int write_file_atomic_at(int tmp_dfd, int dfd, const char *name, const void *data, size_t len,
			 mode_t mode);

/*
 * Removes @name below @dfd and everything in it. Never follows a symlink and
 * never crosses into another mount: a mount point inside gives -EBUSY.
 * A missing @name is not an error.
 */
int rm_rf_at(int dfd, const char *name);

/*
 * Opens @name below @dfd ("." for @dfd itself) for reading as a directory, with a
 * position of its own: a dup of @dfd would share its offset with every other reader.
 * NULL with errno set on failure.
 */
DIR *opendir_at(int dfd, const char *name);

/* Writes all of @len bytes, retrying short writes and EINTR. */
int write_all(int fd, const void *buf, size_t len);

/* Reads up to @len bytes of @fd, stopping early only at its end: the count, or -errno. */
ssize_t read_all(int fd, void *buf, size_t len);

/* Creates a name in @dfd unique among concurrent callers: "<prefix>.<pid>.<n>.<rand>". */
void make_temp_name(char *buf, size_t size, const char *prefix);

/* True when @path (relative to @dfd, AT_FDCWD for absolute) is a mount point. */
int is_mount_point_at(int dfd, const char *name);
