/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel's mount table, read from /proc/self/mountinfo, and unmounting with retries. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>

#include "engine.h"

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else
			*w++ = *r;
	}
	*w = '\0';
}

void mount_entry_clear(struct mount_entry *m)
{
	free(m->target);
	free(m->fstype);
	free(m->source);
	*m = (struct mount_entry){ 0 };
}

/* Splits one mountinfo line; pointers point into @line. */
static bool parse_line(char *line, char **target, char **fstype, char **source)
{
	char *save = NULL, *tok;
	int field = 0;
	bool after_sep = false;
	int after = 0;

	*target = *fstype = *source = NULL;
	for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		if (!after_sep) {
			if (field == 4)
				*target = tok;
			if (field >= 6 && !strcmp(tok, "-"))
				after_sep = true;
			field++;
			continue;
		}
		if (after == 0)
			*fstype = tok;
		else if (after == 1)
			*source = tok;
		after++;
	}
	if (!*target || !*fstype)
		return false;
	unescape(*target);
	if (*source)
		unescape(*source);
	return true;
}

int mountinfo_find(const char *target, struct mount_entry *ret)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	struct mount_entry found = { 0 };
	size_t cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char *t, *fs, *src;
		if (!parse_line(line, &t, &fs, &src) || strcmp(t, target))
			continue;
		/* Later lines are mounted on top: keep the last. */
		mount_entry_clear(&found);
		found.target = strdup(t);
		found.fstype = strdup(fs);
		found.source = strdup(src ? src : "");
		r = 1;
	}
	if (ret)
		*ret = found;
	else
		mount_entry_clear(&found);
	return r;
}

static int cmp_len_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : strcmp(*(char *const *)a, *(char *const *)b);
}

int mountinfo_list_under(const char *prefix, char ***ret)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0, n = 0, plen = strlen(prefix);
	char **v = calloc(1, sizeof(char *));

	if (!f || !v) {
		free(v);
		return f ? -ENOMEM : -errno;
	}
	while (getline(&line, &cap, f) > 0) {
		char *t, *fs, *src;
		if (!parse_line(line, &t, &fs, &src))
			continue;
		if (strncmp(t, prefix, plen) || (t[plen] != '/' && t[plen] != '\0'))
			continue;
		bool dup = false;
		for (size_t i = 0; i < n && !dup; i++)
			dup = !strcmp(v[i], t);
		if (dup)
			continue;
		char **nv = realloc(v, (n + 2) * sizeof(char *));
		if (!nv || !(nv[n] = strdup(t))) {
			strv_free(nv ? nv : v);
			return -ENOMEM;
		}
		v = nv;
		v[++n] = NULL;
	}
	qsort(v, n, sizeof(char *), cmp_len_desc);
	*ret = v;
	return 0;
}

int unmount_retry(const char *target, int flags)
{
	int r = 0;

	for (int i = 0; i < 5; i++) {
		if (umount2(target, flags | UMOUNT_NOFOLLOW) == 0)
			return 0;
		r = -errno;
		if (r == -EINVAL || r == -ENOENT)
			return 0;
		if (r != -EBUSY)
			return r;
		nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	}
	return r;
}

/* True when the /proc link @link points at or below @path. */
static bool link_under(const char *link, const char *path, size_t plen)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(link, buf, sizeof(buf) - 1);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	return !strncmp(buf, path, plen) && (buf[plen] == '/' || buf[plen] == '\0');
}

char *mount_holders(const char *path)
{
	_cleanup_closedir_ DIR *proc = opendir("/proc");
	char *out = NULL;
	size_t len = 0, plen = strlen(path);
	FILE *f;
	struct dirent *de;
	int found = 0;

	if (!proc || !(f = open_memstream(&out, &len)))
		return NULL;
	while ((de = readdir(proc)) && found < 8) {
		char p[PATH_MAX], comm[64] = "?";
		bool holds = false;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || pid == getpid())
			continue;
		snprintf(p, sizeof(p), "/proc/%ld/cwd", pid);
		holds = link_under(p, path, plen);
		snprintf(p, sizeof(p), "/proc/%ld/root", pid);
		holds = holds || link_under(p, path, plen);
		snprintf(p, sizeof(p), "/proc/%ld/fd", pid);
		_cleanup_closedir_ DIR *fds = holds ? NULL : opendir(p);
		struct dirent *fe;
		while (fds && !holds && (fe = readdir(fds))) {
			char l[PATH_MAX];
			snprintf(l, sizeof(l), "/proc/%ld/fd/%s", pid, fe->d_name);
			holds = link_under(l, path, plen);
		}
		if (!holds)
			continue;
		snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
		FILE *c = fopen(p, "re");
		if (c) {
			if (fgets(comm, sizeof(comm), c))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(c);
		}
		fprintf(f, "%s'%s' (pid %ld)", found++ ? ", " : "", comm, pid);
	}
	fclose(f);
	if (!found) {
		free(out);
		return NULL;
	}
	return out;
}
