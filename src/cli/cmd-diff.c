/* SPDX-License-Identifier: Apache-2.0 */
/* Layer I/O commands: apply (ApplyDiff), diff (Diff), diff-size (DiffSize), diff-get (DiffGetter). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

enum { OPT_NO_TARSPLIT = OPT_COMMAND_FIRST, OPT_REGENERATE, OPT_SERIAL, OPT_THREADS };

struct diff_args {
	const char *parent;  /* NULL: the layer's own */
	const char *output;
	unsigned flags;
};

static int diff_opt(struct cli *cli, int c, const char *arg, void *u)
{
	struct diff_args *a = u;

	switch (c) {
	case 'p':
		a->parent = arg;
		return cli_check_parent(cli, arg);
	case 'o':
		a->output = arg;
		return 0;
	case OPT_NO_TARSPLIT:
		a->flags |= STRATA_DIFF_NO_TARSPLIT;
		return 0;
	case OPT_REGENERATE:
		a->flags |= STRATA_DIFF_REGENERATE;
		return 0;
	case OPT_SERIAL:
		a->flags |= STRATA_DIFF_SERIAL;
		return 0;
	case OPT_THREADS:
		a->flags |= STRATA_DIFF_THREADS;
		return 0;
	}
	return EXIT_USAGE;
}

/* ---- the progress line: on a terminal only, at most ten times a second ---- */

struct progress_line {
	struct timespec start, last;
	uint64_t bytes, entries;
	bool active, shown;
};

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void progress_show(struct progress_line *p, uint64_t bytes, uint64_t entries, bool final)
{
	struct timespec now;
	p->bytes = bytes;
	p->entries = entries;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!final && since(&p->last, &now) < 0.1)
		return;
	p->last = now;
	double secs = since(&p->start, &now);
	fprintf(stderr, "\r%10.1f MB  %8llu entries  %7.1f MB/s", (double)bytes / 1e6,
		(unsigned long long)entries, secs > 0 ? (double)bytes / 1e6 / secs : 0.0);
	p->shown = true;
}

static void progress_cb(void *u, uint64_t bytes, uint64_t entries)
{
	progress_show(u, bytes, entries, false);
}

static void progress_init(struct cli *cli, struct progress_line *line, struct strata_progress *p)
{
	*p = (struct strata_progress){ 0 };
	if (cli->quiet || !isatty(STDERR_FILENO))
		return;
	clock_gettime(CLOCK_MONOTONIC, &line->start);
	line->last = line->start;
	line->active = true;
	p->fn = progress_cb;
	p->userdata = line;
}

/* The last word: what was done and how fast, on its own line. */
static void progress_end(struct progress_line *line)
{
	if (!line->active)
		return;
	progress_show(line, line->bytes, line->entries, true);
	fputc('\n', stderr);
}

/* ---- commands ---- */

static const struct option diff_opts[] = {
	{ "parent", required_argument, NULL, 'p' },
	{ "output", required_argument, NULL, 'o' },
	{ "no-tar-split", no_argument, NULL, OPT_NO_TARSPLIT },
	{ "regenerate", no_argument, NULL, OPT_REGENERATE },
	{ "serial", no_argument, NULL, OPT_SERIAL },
	{ "threads", no_argument, NULL, OPT_THREADS },
	{ 0 },
};

static int run_apply(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	_cleanup_close_ int fd = -1;
	struct strata_error *err = NULL;
	struct diff_args a = { 0 };
	struct progress_line line = { 0 };
	struct strata_progress progress;
	int64_t size = 0;
	int first, r;

	first = cli_parse(cli, &cmd_apply, argc, argv, "p:", diff_opts, diff_opt, &a);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_apply, argc, argv, first, 1, 2)))
		return r;
	const char *id = argv[first];
	const char *file = first + 1 < argc ? argv[first + 1] : "-";
	if (!strcmp(file, "-")) {
		if (isatty(STDIN_FILENO))
			return cli_error(cli, EXIT_USAGE, "apply '%s': will not read a tar from a terminal",
					 id);
	} else {
		fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return cli_error(cli, EXIT_FAIL, "apply '%s': cannot open '%s': %m", id, file);
	}
	if ((r = cli_open(cli, &cmd_apply, &s)))
		return r;
	progress_init(cli, &line, &progress);
	r = strata_diff_apply(s, id, a.parent, fd >= 0 ? fd : STDIN_FILENO, &progress, a.flags,
			      &size, &err);
	progress_end(&line);
	if (r < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON)
		return cli_print_json(json_pack("{s:s, s:I}", "id", id, "size", (json_int_t)size));
	return printf("%lld\n", (long long)size) < 0 ? EXIT_FAIL : EXIT_OK;
}

static int run_diff(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	_cleanup_close_ int fd = -1;
	struct strata_error *err = NULL;
	struct diff_args a = { 0 };
	struct progress_line line = { 0 };
	struct strata_progress progress;
	int first, r;

	first = cli_parse(cli, &cmd_diff, argc, argv, "p:o:", diff_opts, diff_opt, &a);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_diff, argc, argv, first, 1, 1)))
		return r;
	const char *id = argv[first];
	if (!a.output || !strcmp(a.output, "-")) {
		a.output = NULL;
		if (isatty(STDOUT_FILENO))
			return cli_error(cli, EXIT_USAGE,
					 "diff '%s': will not write a tar to a terminal (use -o FILE)", id);
	}
	if ((r = cli_open(cli, &cmd_diff, &s)))
		return r;
	if (a.output) {
		fd = open(a.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (fd < 0)
			return cli_error(cli, EXIT_FAIL, "diff '%s': cannot create '%s': %m", id,
					 a.output);
	}
	progress_init(cli, &line, &progress);
	r = strata_diff_export(s, id, a.parent, fd >= 0 ? fd : STDOUT_FILENO, &progress, a.flags,
			       &err);
	progress_end(&line);
	if (r < 0) {
		/*
		 * An incomplete tar must not pass for a layer: remove the file we
		 * wrote, but only a regular file that is still the one we opened
		 * (never /dev/null, a fifo, or what a rename put there since).
		 */
		struct stat a_st, b_st;
		if (a.output && fstat(fd, &a_st) == 0 && S_ISREG(a_st.st_mode) &&
		    lstat(a.output, &b_st) == 0 && a_st.st_dev == b_st.st_dev &&
		    a_st.st_ino == b_st.st_ino)
			unlink(a.output);
		return cli_fail(cli, err);
	}
	if (fd >= 0 && close(TAKE_FD(fd)) < 0)
		return cli_error(cli, EXIT_FAIL, "diff '%s': cannot write '%s': %m", id, a.output);
	return EXIT_OK;
}

static int run_diff_size(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	struct diff_args a = { 0 };
	int64_t size;
	int first, r;

	first = cli_parse(cli, &cmd_diff_size, argc, argv, "p:", diff_opts, diff_opt, &a);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_diff_size, argc, argv, first, 1, 1)))
		return r;
	if ((r = cli_open(cli, &cmd_diff_size, &s)))
		return r;
	if (strata_diff_size(s, argv[first], a.parent, &size, &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON)
		return cli_print_json(
			json_pack("{s:s, s:I}", "id", argv[first], "size", (json_int_t)size));
	return printf("%lld\n", (long long)size) < 0 ? EXIT_FAIL : EXIT_OK;
}

static int run_diff_get(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	_cleanup_close_ int fd = -1;
	struct strata_error *err = NULL;
	struct diff_args a = { 0 };
	char buf[65536];
	int first, r;

	first = cli_parse(cli, &cmd_diff_get, argc, argv, "", NULL, NULL, &a);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_diff_get, argc, argv, first, 2, 2)))
		return r;
	if ((r = cli_open(cli, &cmd_diff_get, &s)))
		return r;
	if (strata_diff_getter_open(s, argv[first], argv[first + 1], &fd, &err) < 0)
		return cli_fail(cli, err);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0)
			return cli_error(cli, EXIT_FAIL, "diff-get '%s': cannot read '%s': %m",
					 argv[first], argv[first + 1]);
		if (n == 0)
			break;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return EXIT_FAIL;
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

const struct command cmd_apply = {
	"apply", "ID [--parent P] [FILE|-]",
	"unpack a layer tar (plain, gzip, zstd, xz, bzip2) into a layer and print its size",
	"  -p, --parent P        the parent the tar is a diff against (default: the layer's own;\n"
	"                        '' means none)\n"
	"      --no-tar-split    keep no record for rebuilding the tar byte for byte\n"
	"      --serial          write every file on one thread\n"
	"      --threads         write small files on worker threads (the default with 2 CPUs\n"
	"                        or more)\n",
	run_apply, 0, 1,
};
const struct command cmd_diff = {
	"diff", "ID [--parent P] [-o FILE]", "write a layer as a tar",
	"  -p, --parent P        the parent to diff against (default: the layer's own)\n"
	"  -o, --output FILE     write to FILE instead of standard output\n"
	"      --regenerate      write a fresh tar even when the applied one can be rebuilt\n",
	run_diff, STRATA_OPEN_READONLY, 1,
};
const struct command cmd_diff_size = {
	"diff-size", "ID [--parent P]", "print the bytes of a layer's own files",
	"  -p, --parent P        the parent to diff against (default: the layer's own)\n",
	run_diff_size, STRATA_OPEN_READONLY, 1,
};
const struct command cmd_diff_get = {
	"diff-get", "ID PATH", "print a file of a layer, named as in its tar", NULL,
	run_diff_get, STRATA_OPEN_READONLY, 1,
};
