/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel aufs engine, byte-exact with Docker's driver: the branch list is
 * clipped to one page of mount data, the rest added by MS_REMOUNT "append:"
 * batches that each fit, and every mount(2) runs under one lock (aufs's shared
 * xino file races otherwise).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "engine.h"

#define AUFS_XINO_OPTS "dio,xino=/dev/shm/aufs.xino"
#define AUFS_DIRPERM1 ",dirperm1"
/* What Docker leaves of a page for the xino options and the label. */
#define AUFS_DATA_OFFSET 54
#define AUFS_SUPER_MAGIC 0x61756673

extern char **environ;

static int real_mount(const char *source, const char *target, const char *fstype,
		      unsigned long flags, const void *data)
{
	return mount(source, target, fstype, flags, data) < 0 ? -errno : 0;
}

aufs_mount_fn aufs_mount_syscall = real_mount;
int aufs_dirperm1_override = -1;

static pthread_mutex_t mount_lock = PTHREAD_MUTEX_INITIALIZER;

/* One mount(2) under the process lock and the store-wide flock. */
static int locked_mount(struct strata *s, const char *target, unsigned long flags,
			const char *data)
{
	_cleanup_close_ int fd = -1;
	int r;

	if (s && s->state_fd >= 0) {
		fd = openat(s->state_fd, "aufs-mount.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
				;
	}
	pthread_mutex_lock(&mount_lock);
	r = aufs_mount_syscall("none", target, "aufs", flags, data);
	pthread_mutex_unlock(&mount_lock);
	return r;
}

/* Runs a program and returns its exit status, or -errno when it cannot run. */
static int run_quiet(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, r;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool kernel_has_aufs(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/filesystems", "re");
	char line[256];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "aufs"))
			return true;
	return false;
}

static int aufs_probe(struct strata *s, struct strata_error **err)
{
	(void)run_quiet((char *const[]){ "modprobe", "aufs", NULL });
	if (running_in_userns())
		return strata_fail(err, EOPNOTSUPP,
				   "engine 'aufs': aufs cannot be used in a user namespace");
	if (!kernel_has_aufs())
		return strata_fail(err, EOPNOTSUPP,
				   "engine 'aufs': the kernel has no aufs (not in /proc/filesystems)");
	struct statfs sfs;
	if (fstatfs(s->root_fd, &sfs) == 0) {
		unsigned long m = (unsigned long)sfs.f_type & 0xffffffffUL;
		if (m == AUFS_SUPER_MAGIC || m == 0x9123683EUL || m == 0xf15fUL)
			return strata_fail(err, EOPNOTSUPP,
					   "engine 'aufs': aufs cannot stack on '%s' (backing file system %s)",
					   s->root, fsmagic_name(m));
	}
	return 0;
}

/* Docker's Unmount: "auplink TARGET flush" (retried on EINVAL), then a lazy unmount. */
static int aufs_unmount_path(const char *target)
{
	for (int i = 0; i < 6; i++)
		if (run_quiet((char *const[]){ "auplink", (char *)target, "flush", NULL }) != 22)
			break;
	return unmount_retry(target, MNT_DETACH);
}

static bool dirperm1_supported;

/* Docker's probe: a trial aufs mount with dirperm1 over an empty temporary branch. */
static void dirperm1_probe(void)
{
	const char *tmp = getenv("TMPDIR");
	char base[PATH_MAX], uni[PATH_MAX], *data = NULL;

	snprintf(base, sizeof(base), "%s/strata-aufs-base.XXXXXX", tmp ? tmp : "/tmp");
	snprintf(uni, sizeof(uni), "%s/strata-aufs-union.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(base))
		return;
	if (mkdtemp(uni) && asprintf(&data, "br:%s,dirperm1,xino=/dev/shm/aufs.xino", base) >= 0) {
		if (locked_mount(NULL, uni, 0, data) == 0) {
			dirperm1_supported = true;
			aufs_unmount_path(uni);
		}
		free(data);
		rmdir(uni);
	}
	rmdir(base);
}

static bool aufs_dirperm1(struct strata *s)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (aufs_dirperm1_override >= 0)
		return aufs_dirperm1_override;
	if (!kernel_has_aufs())
		return false;
	pthread_once(&once, dirperm1_probe);
	return dirperm1_supported;
}

/* Go's %q for the label: quotes and backslashes escaped. */
static char *format_label(const char *data, const char *label)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if (isempty(label))
		return strdup(data);
	if (!(f = open_memstream(&out, &len)))
		return NULL;
	fprintf(f, "%s%scontext=\"", data, *data ? "," : "");
	for (const char *p = label; *p; p++) {
		if (*p == '"' || *p == '\\')
			fputc('\\', f);
		fputc(*p, f);
	}
	fputc('"', f);
	fclose(f);
	return out;
}

static int aufs_mount(struct strata *s, const char *id, const char *target, const char *rw,
		      char *const *ro, const char *label, struct strata_error **err)
{
	bool dirperm1 = aufs_dirperm1(s);
	long page = sysconf(_SC_PAGESIZE);
	size_t offset = AUFS_DATA_OFFSET + (dirperm1 ? strlen(AUFS_DIRPERM1) : 0);
	size_t cap, bp, n_ro = 0;
	_cleanup_free_ char *b = NULL;
	int r;

	if (page <= 0)
		page = 4096;
	if ((size_t)page <= strlen(strempty(label)) + offset + 16)
		return strata_fail(err, EINVAL, "mount '%s': mount label too long for aufs", id);
	cap = (size_t)page - strlen(strempty(label)) - offset;
	while (ro[n_ro])
		n_ro++;
	if (!(b = malloc(cap + 1)))
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);

	/* Docker clips silently here; a clipped top branch would be another mount. */
	r = snprintf(b, cap + 1, "br:%s=rw", rw);
	if (r < 0 || (size_t)r > cap)
		return strata_fail(err, ENAMETOOLONG, "mount '%s': branch '%s' too long for aufs", id,
				   rw);
	bp = (size_t)r;
	size_t index = 0;
	for (; index < n_ro; index++) {
		size_t len = 1 + strlen(ro[index]) + strlen("=ro+wh");
		if (bp + len > cap)
			break;
		bp += (size_t)snprintf(b + bp, cap + 1 - bp, ":%s=ro+wh", ro[index]);
	}
	_cleanup_free_ char *first = NULL, *data = NULL;
	if (asprintf(&first, "%.*s,%s%s", (int)bp, b, AUFS_XINO_OPTS,
		     dirperm1 ? AUFS_DIRPERM1 : "") < 0 ||
	    !(data = format_label(first, label)))
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);
	r = locked_mount(s, target, 0, data);
	if (r < 0)
		return strata_fail(err, r, "mount '%s': cannot mount aufs at '%s' (data '%s'): %s", id,
				   target, data, strerror(-r));

	while (index < n_ro) {
		bp = 0;
		for (; index < n_ro; index++) {
			size_t len = strlen("append:") + strlen(ro[index]) + strlen("=ro+wh,");
			if (bp + len > cap)
				break;
			bp += (size_t)snprintf(b + bp, cap + 1 - bp, "append:%s=ro+wh,", ro[index]);
		}
		if (bp == 0) {
			/* Docker would loop for ever: one branch alone does not fit a page. */
			r = strata_fail(err, ENAMETOOLONG,
					"mount '%s': branch '%s' too long for aufs", id, ro[index]);
			goto undo;
		}
		b[bp] = '\0';
		free(data);
		if (!(data = format_label(b, label))) {
			r = strata_fail(err, ENOMEM, "mount '%s': out of memory", id);
			goto undo;
		}
		r = locked_mount(s, target, MS_REMOUNT, data);
		if (r < 0) {
			r = strata_fail(err, r,
					"mount '%s': cannot add branches to '%s' (data '%s'): %s",
					id, target, data, strerror(-r));
			goto undo;
		}
	}
	return 0;
undo:
	/* As Docker: a plain lazy unmount, not the auplink one. */
	(void)umount2(target, MNT_DETACH);
	return r;
}

static int aufs_unmount(struct strata *s, const char *id, const char *target,
			struct strata_error **err)
{
	int r = aufs_unmount_path(target);
	if (r < 0) {
		_cleanup_free_ char *who = mount_holders(target);
		return strata_fail(err, r, "unmount '%s': cannot unmount '%s': %s%s%s", id, target,
				   strerror(-r), who ? "; held by " : "", who ? who : "");
	}
	return 0;
}

const struct strata_engine engine_aufs = {
	.name = "aufs",
	.probe = aufs_probe,
	.mount = aufs_mount,
	.unmount = aufs_unmount,
	.fstype = "aufs",
	.dirperm1 = aufs_dirperm1,
};
