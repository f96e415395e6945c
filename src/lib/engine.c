/* SPDX-License-Identifier: Apache-2.0 */
/* Choosing the union mount engine, and remembering the choice in .strata/engine. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "fsutil.h"

static const struct strata_engine *const engines[] = { &engine_aufs, &engine_fuse };

const struct strata_engine *engine_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(engines); i++)
		if (!strcmp(engines[i]->name, name))
			return engines[i];
	return NULL;
}

bool running_in_userns(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/uid_map", "re");
	unsigned long a, b, c;

	if (!f)
		return false;
	if (fscanf(f, "%lu %lu %lu", &a, &b, &c) != 3)
		return false;
	/* The initial namespace maps every id onto itself. */
	return !(a == 0 && b == 0 && c == 4294967295UL);
}

/* Resolves "auto": kernel aufs where it can work, else FUSE. */
static const struct strata_engine *resolve_auto(struct strata *s)
{
	if (engine_aufs.probe(s, NULL) == 0)
		return &engine_aufs;
	return &engine_fuse;
}

static int read_recorded(struct strata *s, char *buf, size_t size)
{
	_cleanup_free_ char *data = NULL;
	int r;

	if (s->state_fd < 0)
		return -ENOENT;
	r = read_file_at(s->state_fd, "engine", &data, NULL);
	if (r < 0)
		return r;
	data[strcspn(data, " \n")] = '\0';
	snprintf(buf, size, "%s", data);
	return 0;
}

static bool any_mounted(struct strata *s)
{
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;

	if (s->mounts_fd < 0 || !(d = opendir_at(s->mounts_fd, ".")))
		return false;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			return true;
	return false;
}

int engine_select(struct strata *s, const char *requested, struct strata_error **err)
{
	char recorded[32] = "";
	const struct strata_engine *e = NULL;
	bool have = read_recorded(s, recorded, sizeof(recorded)) == 0;
	int r;

	if (!isempty(requested) && strcmp(requested, "auto") && !engine_by_name(requested))
		return strata_fail(err, EINVAL, "engine '%s': unknown (expected auto, aufs or fuse)",
				   requested);
	if (have && (isempty(requested) || !strcmp(requested, "auto") ||
		     !strcmp(requested, recorded))) {
		e = engine_by_name(recorded);
		if (!e)
			return strata_fail(err, EINVAL, "root '%s': unknown engine '%s' in " STATE_DIR
					   "/engine", s->root, recorded);
		s->engine = e;
		return 0;
	}
	if (isempty(requested) || !strcmp(requested, "auto"))
		e = resolve_auto(s);
	else {
		e = engine_by_name(requested);
		r = e->probe(s, err);
		if (r < 0)
			return r;
	}
	s->engine = e;
	if (s->flags & STRATA_OPEN_READONLY && !(s->state_fd >= 0 && s->tmp_fd >= 0))
		return 0; /* Looking only: decide, but do not record. */
	if (have && any_mounted(s))
		return strata_fail(err, EBUSY,
				   "engine '%s': the store uses '%s' and has layers mounted", e->name,
				   recorded);
	r = store_ensure_state(s, err);
	if (r < 0)
		return r;
	char line[32];
	int n = snprintf(line, sizeof(line), "%s\n", e->name);
	r = write_file_atomic_at(s->tmp_fd, s->state_fd, "engine", line, (size_t)n, 0644);
	if (r < 0)
		return strata_fail(err, r, "root '%s': cannot record the engine: %s", s->root,
				   strerror(-r));
	return 0;
}
