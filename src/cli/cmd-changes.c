/* SPDX-License-Identifier: Apache-2.0 */
/* changes: what a layer changed, as `docker diff` prints it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int parent_opt(struct cli *cli, int c, const char *arg, void *u)
{
	if (c != 'p')
		return EXIT_USAGE;
	*(const char **)u = arg;
	return cli_check_parent(cli, arg);
}

static int run_changes(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "parent", required_argument, NULL, 'p' }, { 0 } };
	static const char kinds[] = { 'C', 'A', 'D' };
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	struct strata_change *v;
	const char *parent = NULL;
	size_t n;
	int first, r;

	first = cli_parse(cli, &cmd_changes, argc, argv, "p:", opts, parent_opt, &parent);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_changes, argc, argv, first, 1, 1)))
		return r;
	if ((r = cli_open(cli, &cmd_changes, &s)))
		return r;
	if (strata_changes(s, argv[first], parent, &v, &n, &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON) {
		static const char *const names[] = { "modify", "add", "delete" };
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s, s:i}", "path", v[i].path,
							   "kind", names[v[i].kind], "code",
							   (int)v[i].kind));
		r = cli_print_json(a);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%c %s\n", kinds[v[i].kind], v[i].path);
		r = fflush(stdout) ? EXIT_FAIL : EXIT_OK;
	}
	strata_changes_free(v, n);
	return r;
}

const struct command cmd_changes = {
	"changes", "ID [--parent PARENT]",
	"list what a layer changed (A, C, D lines, as docker diff prints them)",
	"  -p, --parent PARENT   compare with another layer (default: the layer's own parent;\n"
	"                        '' for none, so that everything is an add)\n",
	run_changes, 0, 1,
};
