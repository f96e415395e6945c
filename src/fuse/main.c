// SPDX-License-Identifier: Apache-2.0
/*
 * strata-fuse: a userspace aufs. Parses the command line (aufs and overlay spellings),
 * mounts, daemonizes once the mount is up and serves requests on several threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "sfs.h"

struct cmdline {
	char *br, *brfile, *lowerdir, *upperdir, *workdir, *pidfile, *whiteout, *timeout, *handles;
	char *uidmapping, *gidmapping, *squash_uid, *squash_gid;
	char *pos[3];
	int npos;
	bool has_fsname, has_subtype, bad, nosync, squash_root, static_nlink;
};

static char **opt_slot(struct cmdline *c, const char *arg, const char **ret_val)
{
	static const struct {
		const char *prefix;
		size_t off;
	} keys[] = {
		{ "br=", offsetof(struct cmdline, br) },
		{ "br:", offsetof(struct cmdline, br) },
		{ "brfile=", offsetof(struct cmdline, brfile) },
		{ "lowerdir=", offsetof(struct cmdline, lowerdir) },
		{ "upperdir=", offsetof(struct cmdline, upperdir) },
		{ "workdir=", offsetof(struct cmdline, workdir) },
		{ "pidfile=", offsetof(struct cmdline, pidfile) },
		{ "whiteout=", offsetof(struct cmdline, whiteout) },
		{ "timeout=", offsetof(struct cmdline, timeout) },
		{ "handles=", offsetof(struct cmdline, handles) },
		{ "uidmapping=", offsetof(struct cmdline, uidmapping) },
		{ "gidmapping=", offsetof(struct cmdline, gidmapping) },
		{ "squash_to_uid=", offsetof(struct cmdline, squash_uid) },
		{ "squash_to_gid=", offsetof(struct cmdline, squash_gid) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		size_t l = strlen(keys[i].prefix);
		if (!strncmp(arg, keys[i].prefix, l)) {
			*ret_val = arg + l;
			return (char **)((char *)c + keys[i].off);
		}
	}
	return NULL;
}

/* Overlay options that container tools pass and that mean nothing here. */
static bool ignored_opt(const char *arg)
{
	static const char *const prefixes[] = { "index=", "metacopy=", "redirect_dir=", "xino=",
						"nfs_export=", "uuid=", "context=" };
	static const char *const words[] = { "userxattr", "noatime", "relatime", "lazytime",
					     "nodiratime", "strictatime" };

	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (!strncmp(arg, prefixes[i], strlen(prefixes[i])))
			return true;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (!strcmp(arg, words[i]))
			return true;
	return false;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *c = data;
	const char *val;
	char **slot;

	if (key == FUSE_OPT_KEY_NONOPT) {
		if (c->npos >= (int)ARRAY_SIZE(c->pos)) {
			fprintf(stderr, "strata-fuse: unexpected argument '%s'\n", arg);
			c->bad = true;
			return 0;
		}
		c->pos[c->npos++] = strdup(arg);
		return 0;
	}
	if (key != FUSE_OPT_KEY_OPT)
		return 1;
	slot = opt_slot(c, arg, &val);
	if (slot) {
		free(*slot);
		*slot = strdup(val);
		return 0;
	}
	if (ignored_opt(arg))
		return 0;
	/* fsync=0 is fuse-overlayfs's spelling of the same promise given up */
	if (!strcmp(arg, "volatile") || !strcmp(arg, "fsync=0")) {
		c->nosync = true;
		return 0;
	}
	if (!strcmp(arg, "fsync=1"))
		return 0;
	if (!strcmp(arg, "squash_to_root")) {
		c->squash_root = true;
		return 0;
	}
	if (!strcmp(arg, "static_nlink")) {
		c->static_nlink = true;
		return 0;
	}
	if (!strncmp(arg, "fsname=", 7))
		c->has_fsname = true;
	if (!strncmp(arg, "subtype=", 8))
		c->has_subtype = true;
	return 1;
}

static void usage(const char *prog)
{
	printf("usage: %s [SOURCE] MOUNTPOINT -o br=DIR=rw:DIR=ro+wh...[,OPTIONS]\n"
	       "       %s [SOURCE] MOUNTPOINT -o lowerdir=A:B,upperdir=U,workdir=W[,OPTIONS]\n"
	       "\n"
	       "options:\n"
	       "    -o br=BRANCHES        branches, top first, as DIR=rw|ro|ro+wh|rr|rr+wh\n"
	       "    -o brfile=PATH        the branches, one a line, top first\n"
	       "    -o lowerdir=A:B       overlay-style lower layers (top first)\n"
	       "    -o upperdir=U,workdir=W  overlay-style writable layer and scratch dir\n"
	       "    -o whiteout=aufs|overlay  format of the whiteouts written (aufs)\n"
	       "    -o pidfile=PATH       write the daemon's pid there\n"
	       "    -o timeout=SECONDS    entry and attribute cache timeout (86400)\n"
	       "    -o handles=yes        open and opendir round trips for every open (no)\n"
	       "    -o volatile, fsync=0  no syncs: after a crash the rw branch is not to be used\n"
	       "    -o uidmapping=STORED:SHOWN:COUNT[:...], gidmapping=...\n"
	       "                          ids as the branches store them and as they show\n"
	       "    -o squash_to_uid=UID, squash_to_gid=GID, squash_to_root\n"
	       "                          every object shows as owned by them\n"
	       "    -o static_nlink       every directory shows a link count of 1\n"
	       "    -o allow_other, -f, -d, -s and the other FUSE options\n",
	       prog, prog);
}

/* An id given to option @what: a number below 2^32 - 1. */
static int parse_id(const char *v, const char *what, int64_t *ret)
{
	char *end;
	errno = 0;
	unsigned long long id = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end || errno || id >= UINT32_MAX) {
		fprintf(stderr, "strata-fuse: option '%s': bad id '%s'\n", what, v);
		return -EINVAL;
	}
	*ret = (int64_t)id;
	return 0;
}

/* Forks; the parent exits with the child's report once the child is ready. */
static int daemonize(const char *pidfile, int *ret_fd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		char c = 1;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			c = 1;
		_exit(c);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		return -errno;
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		if (!getenv("STRATA_FUSE_STDERR"))
			dup2(nul, 2);
		if (nul > 2)
			close(nul);
	}
	*ret_fd = p[1];
	return 0;
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, buf, n) != n)
		return -errno;
	return 0;
}

/*
 * Removes the pidfile if it still names us: once we are unmounted, the next
 * daemon for the same mount point may already have written its own there.
 */
static void remove_pidfile(const char *path)
{
	char buf[32];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (n <= 0)
		return;
	buf[n] = '\0';
	if (strtol(buf, NULL, 10) == (long)getpid())
		unlink(path);
}

static void free_cmdline(struct cmdline *c)
{
	free(c->br);
	free(c->brfile);
	free(c->lowerdir);
	free(c->upperdir);
	free(c->workdir);
	free(c->pidfile);
	free(c->whiteout);
	free(c->timeout);
	free(c->handles);
	free(c->uidmapping);
	free(c->gidmapping);
	free(c->squash_uid);
	free(c->squash_gid);
	for (int i = 0; i < c->npos; i++)
		free(c->pos[i]);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct cmdline c = { 0 };
	static struct sfs_fs fs;
	char err[PATH_MAX + 256] = "";
	int ret = 1, r, ready_fd = -1;

	if (fuse_opt_parse(&args, &c, NULL, opt_proc) < 0 || c.bad)
		return 1;
	const char *source = c.npos == 2 ? c.pos[0] : NULL;
	const char *mountpoint = c.npos == 2 ? c.pos[1] : c.npos == 1 ? c.pos[0] : NULL;
	if (c.npos == 3) {
		fprintf(stderr, "strata-fuse: unexpected argument '%s'\n", c.pos[2]);
		goto out_args;
	}
	if (!c.has_fsname) {
		char *o = NULL;
		if (asprintf(&o, "-ofsname=%s", source ? source : "strata-fuse") < 0)
			goto out_args;
		fuse_opt_add_arg(&args, o);
		free(o);
	}
	if (!c.has_subtype)
		fuse_opt_add_arg(&args, "-osubtype=strata-fuse");
	/* a container's root file system needs its setuid programs and device nodes, as on
	 * aufs; given first so that the caller's nosuid or nodev wins */
	if (geteuid() == 0)
		fuse_opt_insert_arg(&args, 1, "-osuid,dev");
	/* aufs checks permissions as the backing file system would; so does the kernel here */
	fuse_opt_add_arg(&args, "-odefault_permissions");
	if (mountpoint)
		fuse_opt_add_arg(&args, mountpoint);

	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	if (opts.show_help) {
		usage(argv[0]);
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("strata-fuse %s\n", STRATA_VERSION);
		fuse_lowlevel_version();
		ret = 0;
		goto out_args;
	}
	if (!opts.mountpoint) {
		fprintf(stderr, "strata-fuse: no mount point given\n");
		goto out_args;
	}

	fs.timeout = 86400.0;
	if (!c.handles || !strcmp(c.handles, "no")) {
		fs.no_open = fs.no_opendir = true;
	} else if (strcmp(c.handles, "yes")) {
		fprintf(stderr, "strata-fuse: option 'handles': expected yes or no, not '%s'\n",
			c.handles);
		goto out_args;
	}
	if (c.timeout) {
		char *end;
		fs.timeout = strtod(c.timeout, &end);
		if (*end || fs.timeout < 0) {
			fprintf(stderr, "strata-fuse: option 'timeout': bad value '%s'\n", c.timeout);
			goto out_args;
		}
	}
	if (!c.whiteout || !strcmp(c.whiteout, "aufs")) {
		fs.wh_format = SFS_WH_AUFS;
	} else if (!strcmp(c.whiteout, "overlay")) {
		fs.wh_format = SFS_WH_OVERLAY;
	} else {
		fprintf(stderr, "strata-fuse: option 'whiteout': unknown format '%s'\n", c.whiteout);
		goto out_args;
	}
	fs.nosync = c.nosync;
	if ((c.uidmapping &&
	     sfs_idmap_parse(&fs.uidmap, c.uidmapping, true, err, sizeof(err)) < 0) ||
	    (c.gidmapping &&
	     sfs_idmap_parse(&fs.gidmap, c.gidmapping, false, err, sizeof(err)) < 0)) {
		fprintf(stderr, "strata-fuse: %s\n", err);
		goto out_args;
	}
	fs.squash_uid = fs.squash_gid = c.squash_root ? 0 : -1;
	fs.static_nlink = c.static_nlink;
	if ((c.squash_uid && parse_id(c.squash_uid, "squash_to_uid", &fs.squash_uid) < 0) ||
	    (c.squash_gid && parse_id(c.squash_gid, "squash_to_gid", &fs.squash_gid) < 0))
		goto out_args;
	const char *br = c.br;
	if (br && (!strncmp(br, "br:", 3) || !strncmp(br, "br=", 3)))
		br += 3;
	r = sfs_setup(&fs, br, c.brfile, c.lowerdir, c.upperdir, c.workdir, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "strata-fuse: %s\n", err[0] ? err : strerror(-r));
		goto out_args;
	}

	/* without a rw branch, opening for write must fail at open: keep OPEN */
	if (!fs.rw)
		fs.no_open = false;
	umask(0);
	/* files are read through fds cached per node: as many as the hard limit allows */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fs.fd_max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 2048 ?
			    (long)(rl.rlim_cur - 1024) * 3 / 4 :
			    512;
	fs.is_root = geteuid() == 0;
	sfs_table_init(&fs);
	struct stat st;
	if (fstatat(fs.br[0].fd, ".", &st, 0) < 0) {
		fprintf(stderr, "strata-fuse: branch '%s': %s\n", fs.br[0].path, strerror(errno));
		goto out_args;
	}
	fs.root.type = S_IFDIR;
	fs.root.ino = sfs_ino_of(&fs, 0, &st);
	fs.root.nlookup = 1;
	fs.root.hashed = true;
	fs.root.layers = calloc(fs.nbr, sizeof(int));
	if (!fs.root.layers)
		goto out_args;
	for (int i = 0; i < fs.nbr; i++)
		fs.root.layers[i] = i;
	fs.root.nlayers = fs.nbr;

	fs.se = fuse_session_new(&args, &sfs_ops, sizeof(sfs_ops), &fs);
	if (!fs.se)
		goto out_args;
	if (fuse_set_signal_handlers(fs.se) != 0)
		goto out_session;
	if (fuse_session_mount(fs.se, opts.mountpoint) != 0) {
		fprintf(stderr, "strata-fuse: cannot mount on '%s'\n", opts.mountpoint);
		goto out_signals;
	}
	if (sfs_devio_attach(&fs) < 0) {
		fprintf(stderr, "strata-fuse: cannot set up /dev/fuse's reads and writes\n");
		goto out_unmount;
	}
	if (!opts.foreground) {
		r = daemonize(c.pidfile, &ready_fd);
		if (r < 0) {
			fprintf(stderr, "strata-fuse: daemonize: %s\n", strerror(-r));
			goto out_unmount;
		}
	}
	if (sfs_volatile_begin(&fs) < 0)
		goto out_unmount;
	if (c.pidfile && write_pidfile(c.pidfile) < 0) {
		fprintf(stderr, "strata-fuse: pidfile '%s': %s\n", c.pidfile, strerror(errno));
		goto out_unmount;
	}
	if (ready_fd >= 0) {
		char ok = 0;
		if (write(ready_fd, &ok, 1) != 1)
			goto out_unmount;
		close(ready_fd);
		ready_fd = -1;
	}

	if (opts.singlethread) {
		ret = fuse_session_loop(fs.se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, opts.clone_fd);
		fuse_loop_cfg_set_idle_threads(cfg, opts.max_idle_threads > 0 ?
							    opts.max_idle_threads : 16);
		fuse_loop_cfg_set_max_threads(cfg, 64);
		ret = fuse_session_loop_mt(fs.se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	ret = ret < 0 ? 1 : 0;
	sfs_prefetch_stop(&fs);
	if (c.pidfile)
		remove_pidfile(c.pidfile);
out_unmount:
	/* what a volatile mount did not sync is on disk now: the rw branch may be used again */
	if (sfs_volatile_end(&fs) < 0)
		ret = 1;
	fuse_session_unmount(fs.se);
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out_args:
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	free_cmdline(&c);
	return ret;
}
