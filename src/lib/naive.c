/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Docker's naive diff driver, for a parent that is not the layer's own: both
 * stacks are mounted and compared (changes_dirs), and the changes are sized,
 * exported as a tar, or a tar is applied through the mounted union with its
 * whiteouts acted on.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "changes.h"
#include "hashset.h"
#include "layerio.h"
#include "naive.h"

int changes_size(int root_fd, const struct change_list *l, int64_t *ret)
{
	struct inode_set seen = { 0 };
	int64_t total = 0;

	for (size_t i = 0; i < l->n; i++) {
		struct stat st;
		if (l->v[i].kind == STRATA_CHANGE_DELETE)
			continue;
		const char *rel = l->v[i].path + (l->v[i].path[0] == '/');
		if (!*rel || fstatat(root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* Docker logs and skips what it cannot stat. */
		if (S_ISDIR(st.st_mode))
			continue;
		if (st.st_nlink > 1) {
			struct inode_slot *slot = inode_set_get(&seen, st.st_dev, st.st_ino);
			if (!slot) {
				inode_set_clear(&seen);
				return -ENOMEM;
			}
			if (slot->used)
				continue;
			slot->used = true;
		}
		total += st.st_size;
	}
	inode_set_clear(&seen);
	*ret = total;
	return 0;
}

int naive_open(struct strata *s, const char *op, const char *id, const char *parent,
	       struct naive *ret, struct strata_error **err)
{
	struct naive n = { .s = s, .id = id, .parent = parent, .new_fd = -1, .old_fd = -1 };
	int r;

	r = mount_get(s, id, NULL, /* for_write= */ false, &n.new_path, err);
	if (r < 0)
		return r;
	if (!isempty(parent)) {
		r = mount_get(s, parent, NULL, /* for_write= */ false, &n.old_path, err);
		if (r < 0)
			goto fail;
		n.old_fd = open(n.old_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (n.old_fd < 0) {
			r = strata_fail(err, errno, "%s '%s': cannot open '%s': %m", op, id, n.old_path);
			goto fail;
		}
	}
	n.new_fd = open(n.new_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (n.new_fd < 0) {
		r = strata_fail(err, errno, "%s '%s': cannot open '%s': %m", op, id, n.new_path);
		goto fail;
	}
	r = changes_dirs(n.new_fd, n.old_fd, &n.changes);
	if (r < 0) {
		r = strata_fail(err, r, "%s '%s': cannot compare with '%s': %s", op, id,
				strempty(parent), strerror(-r));
		goto fail;
	}
	*ret = n;
	return 0;
fail:
	naive_close(&n, NULL);
	return r;
}

int naive_close(struct naive *n, struct strata_error **err)
{
	int r = 0, q;

	change_list_clear(&n->changes);
	/* Nothing of ours may stay open in the mounts, or they are busy. */
	if (n->new_fd >= 0)
		close(n->new_fd);
	if (n->old_fd >= 0)
		close(n->old_fd);
	n->new_fd = n->old_fd = -1;
	if (n->old_path) {
		q = strata_mount_put(n->s, n->parent, err);
		if (q < 0 && r == 0)
			r = q, err = NULL;
	}
	if (n->new_path) {
		q = strata_mount_put(n->s, n->id, err);
		if (q < 0 && r == 0)
			r = q;
	}
	free(n->new_path);
	free(n->old_path);
	n->new_path = n->old_path = NULL;
	return r;
}

int naive_diff_size(struct strata *s, const char *id, const char *parent, int64_t *ret,
		    struct strata_error **err)
{
	struct naive n;
	int r = naive_open(s, "diff-size", id, parent, &n, err);

	if (r < 0)
		return r;
	r = changes_size(n.new_fd, &n.changes, ret);
	if (r < 0)
		strata_fail(err, r, "diff-size '%s': %s", id, strerror(-r));
	int q = naive_close(&n, r < 0 ? NULL : err);
	return r < 0 ? r : q;
}

int naive_diff_export(struct strata *s, const char *id, const char *parent, int out_fd,
		      const struct strata_progress *progress, struct strata_error **err)
{
	struct exporter *ex = NULL;
	struct naive n;
	int r = naive_open(s, "diff", id, parent, &n, err);

	if (r < 0)
		return r;
	r = exporter_new(s, id, out_fd, progress, err, &ex);
	for (size_t i = 0; r == 0 && i < n.changes.n; i++) {
		const char *rel = n.changes.v[i].path + 1;
		if (n.changes.v[i].kind == STRATA_CHANGE_DELETE) {
			r = exporter_add_whiteout(ex, rel);
			continue;
		}
		const char *slash = strrchr(rel, '/');
		_cleanup_free_ char *dir = slash ? strndup(rel, (size_t)(slash - rel)) : strdup("");
		const char *base = slash ? slash + 1 : rel;
		struct stat st;
		if (!dir) {
			r = strata_fail(err, ENOMEM, "diff '%s': out of memory", id);
			break;
		}
		_cleanup_close_ int dfd = layer_openat(n.new_fd, dir, O_RDONLY | O_DIRECTORY, 0);
		if (dfd < 0 || fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			int e = dfd < 0 ? -dfd : errno;
			r = strata_fail(err, e, "diff '%s': '%s': %s", id, rel, strerror(e));
			break;
		}
		r = exporter_add(ex, dfd, base, rel, &st);
	}
	if (r == 0)
		r = exporter_finish(ex);
	exporter_free(ex);
	int q = naive_close(&n, r < 0 ? NULL : err);
	return r < 0 ? r : q;
}
