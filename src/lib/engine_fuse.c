/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FUSE engine: strata-fuse serves the union from userspace. Its branch list
 * goes in .strata/branches/<id> (stacks can be longer than a mount option), its
 * pid in .strata/pids/<id>; it daemonizes only once the mount is up, so its exit
 * status tells whether the mount worked.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "config.h"
#include "engine.h"
#include "fsutil.h"

extern char **environ;

#define FUSE_FSTYPE "fuse.strata-fuse"

/* $STRATA_FUSE, else the installed binary, else whatever $PATH finds. */
static const char *fuse_binary(void)
{
	const char *env = getenv("STRATA_FUSE");

	if (!isempty(env))
		return env;
	if (access(STRATA_BINDIR "/strata-fuse", X_OK) == 0)
		return STRATA_BINDIR "/strata-fuse";
	return "strata-fuse";
}

static bool on_path(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0;
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path ? path : "/usr/bin:/bin");
	char *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", d, name);
		if (access(p, X_OK) == 0)
			return true;
	}
	return false;
}

static int fuse_probe(struct strata *s, struct strata_error **err)
{
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		return strata_fail(err, EOPNOTSUPP, "engine 'fuse': cannot use /dev/fuse: %m");
	if (!on_path(fuse_binary()))
		return strata_fail(err, ENOENT, "engine 'fuse': program '%s' not found",
				   fuse_binary());
	return 0;
}

/* Appends @s to @f escaping what fuse's -o parser treats specially. */
static void opt_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static int state_subdir(struct strata *s, const char *name)
{
	if (mkdirat(s->state_fd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int fuse_mount(struct strata *s, const char *id, const char *target, const char *rw,
		      char *const *ro, const char *label, struct strata_error **err)
{
	_cleanup_free_ char *branches = NULL, *opts = NULL, *brfile = NULL, *pidfile = NULL;
	_cleanup_free_ char *errbuf = NULL;
	size_t blen = 0, olen = 0;
	FILE *f;
	int r;

	if ((r = state_subdir(s, "branches")) < 0 || (r = state_subdir(s, "pids")) < 0)
		return strata_fail(err, r, "mount '%s': cannot create state directories: %s", id,
				   strerror(-r));
	if (!(f = open_memstream(&branches, &blen)))
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);
	fprintf(f, "%s=rw\n", rw);
	for (char *const *p = ro; *p; p++)
		fprintf(f, "%s=ro+wh\n", *p);
	fclose(f);
	int bfd = openat(s->state_fd, "branches", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return strata_fail(err, errno, "mount '%s': %m", id);
	r = write_file_atomic_at(s->tmp_fd, bfd, id, branches, blen, 0600);
	close(bfd);
	if (r < 0)
		return strata_fail(err, r, "mount '%s': cannot write its branch list: %s", id,
				   strerror(-r));
	if (asprintf(&brfile, "%s/" STATE_DIR "/branches/%s", s->root, id) < 0 ||
	    asprintf(&pidfile, "%s/" STATE_DIR "/pids/%s", s->root, id) < 0)
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);

	if (!(f = open_memstream(&opts, &olen)))
		return strata_fail(err, ENOMEM, "mount '%s': out of memory", id);
	fputs("brfile=", f);
	opt_escaped(f, brfile);
	fputs(",pidfile=", f);
	opt_escaped(f, pidfile);
	fprintf(f, ",fsname=strata:%s,subtype=strata-fuse", id);
	if (geteuid() == 0)
		/* Everyone may use a root-made mount, as with aufs; the kernel checks modes. */
		fputs(",allow_other,default_permissions", f);
	if (!isempty(label)) {
		fputs(",context=\"", f);
		opt_escaped(f, label);
		fputc('"', f);
	}
	fclose(f);

	/* The daemon's stderr comes back through a pipe so that its error reaches the user. */
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return strata_fail(err, errno, "mount '%s': %m", id);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	char source[NAME_MAX + 16];
	snprintf(source, sizeof(source), "strata:%s", id);
	const char *bin = fuse_binary();
	char *argv[] = { (char *)bin, source, (char *)target, "-o", opts, NULL };
	pid_t pid;
	r = posix_spawnp(&pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r) {
		close(pfd[0]);
		return strata_fail(err, r, "mount '%s': cannot run '%s': %s", id, bin, strerror(r));
	}
	/* Read what it says until it exits (the daemon's own stderr goes to /dev/null). */
	f = open_memstream(&errbuf, &blen);
	char buf[512];
	ssize_t n;
	while ((n = read(pfd[0], buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (f && ftell(f) < 4096)
			fwrite(buf, 1, (size_t)n, f);
	}
	close(pfd[0]);
	if (f)
		fclose(f);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (errbuf) {
		size_t l = strlen(errbuf);
		while (l && (errbuf[l - 1] == '\n' || errbuf[l - 1] == ' '))
			errbuf[--l] = '\0';
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		(void)umount2(target, MNT_DETACH);
		return strata_fail(err, EIO, "mount '%s': strata-fuse failed%s%s", id,
				   !isempty(errbuf) ? ": " : "", strempty(errbuf));
	}
	struct mount_entry m = { 0 };
	r = mountinfo_find(target, &m);
	bool ok = r > 0 && !strcmp(m.fstype, FUSE_FSTYPE);
	mount_entry_clear(&m);
	if (!ok)
		return strata_fail(err, EIO, "mount '%s': strata-fuse exited but '%s' is not mounted",
				   id, target);
	return 0;
}

/* The pid in .strata/pids/<id> when it is still a strata-fuse, else 0. */
static pid_t daemon_pid(struct strata *s, const char *id)
{
	_cleanup_free_ char *data = NULL;
	char p[64], comm[64] = "";
	int dfd = openat(s->state_fd, "pids", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	int r = read_file_at(dfd, id, &data, NULL);
	close(dfd);
	if (r < 0)
		return 0;
	long pid = strtol(data, NULL, 10);
	if (pid <= 0)
		return 0;
	snprintf(p, sizeof(p), "/proc/%ld/comm", pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return !strncmp(comm, "strata-fuse", 11) ? (pid_t)pid : 0;
}

/* True while @pid runs: a zombie nobody has reaped yet (we are not its parent) has exited. */
static bool process_alive(pid_t pid)
{
	char p[64], buf[256];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static void forget_daemon(struct strata *s, const char *id)
{
	int dfd = openat(s->state_fd, "pids", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)unlinkat(dfd, id, 0);
		close(dfd);
	}
	dfd = openat(s->state_fd, "branches", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)unlinkat(dfd, id, 0);
		close(dfd);
	}
}

static int fuse_unmount(struct strata *s, const char *id, const char *target,
			struct strata_error **err)
{
	pid_t pid = daemon_pid(s, id);
	int r = unmount_retry(target, 0);

	if (r == -EPERM && geteuid() != 0) {
		/* Rootless: the setuid helper may unmount what we mounted. */
		char *argv[] = { "fusermount3", "-u", (char *)target, NULL };
		pid_t h;
		int st;
		if (posix_spawnp(&h, argv[0], NULL, NULL, argv, environ) == 0 &&
		    waitpid(h, &st, 0) == h && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			r = 0;
	}
	if (r < 0) {
		_cleanup_free_ char *who = mount_holders(target);
		return strata_fail(err, r, "unmount '%s': cannot unmount '%s': %s%s%s", id, target,
				   strerror(-r), who ? "; held by " : "", who ? who : "");
	}
	/* The daemon exits once the kernel lets go; give it a moment, then make sure. */
	for (int i = 0; pid > 0 && i < 400 && process_alive(pid); i++)
		nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
	if (pid > 0 && process_alive(pid) && daemon_pid(s, id) == pid)
		kill(pid, SIGTERM);
	forget_daemon(s, id);
	return 0;
}

static bool fuse_dirperm1(struct strata *s)
{
	/* Permission checks see only the merged (topmost) directory, as dirperm1 makes aufs do. */
	return true;
}

const struct strata_engine engine_fuse = {
	.name = "fuse",
	.probe = fuse_probe,
	.mount = fuse_mount,
	.unmount = fuse_unmount,
	.fstype = FUSE_FSTYPE,
	.source_prefix = "strata:",
	.forget = forget_daemon,
	.dirperm1 = fuse_dirperm1,
};
