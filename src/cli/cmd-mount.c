/* SPDX-License-Identifier: Apache-2.0 */
/* Mount commands: mount (Docker's Get) and unmount (Put). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int label_opt(struct cli *cli, int c, const char *arg, void *u)
{
	if (c != 'l')
		return EXIT_USAGE;
	*(const char **)u = arg;
	return 0;
}

static int run_mount(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "label", required_argument, NULL, 'l' }, { 0 } };
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	const char *label = NULL;
	char *path;
	int first, r;

	first = cli_parse(cli, &cmd_mount, argc, argv, "l:", opts, label_opt, &label);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_mount, argc, argv, first, 1, 1)))
		return r;
	if ((r = cli_open(cli, &cmd_mount, &s)))
		return r;
	if (strata_mount_get(s, argv[first], label, &path, &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON)
		r = cli_print_json(json_pack("{s:s, s:s}", "id", argv[first], "path", path));
	else
		r = printf("%s\n", path) < 0 ? EXIT_FAIL : EXIT_OK;
	free(path);
	return r;
}

static int run_unmount(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	int first, r;

	first = cli_parse(cli, &cmd_unmount, argc, argv, "", NULL, NULL, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_unmount, argc, argv, first, 1, 1)))
		return r;
	if ((r = cli_open(cli, &cmd_unmount, &s)))
		return r;
	if (strata_mount_put(s, argv[first], &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON) {
		int left = strata_mount_count(s, argv[first]);
		return cli_print_json(json_pack("{s:s, s:i}", "id", argv[first], "mounts",
						left < 0 ? 0 : left));
	}
	return EXIT_OK;
}

const struct command cmd_mount = {
	"mount", "ID [--label LABEL]", "mount a layer's merged view (counted) and print its path",
	"  -l, --label LABEL     SELinux context for the mount\n",
	run_mount, 0, 1,
};
const struct command cmd_unmount = {
	"unmount", "ID", "release one mount of a layer; the last one unmounts", NULL,
	run_unmount, 0, 1,
};
