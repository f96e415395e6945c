/* SPDX-License-Identifier: Apache-2.0 */
/* Store commands: init, status, cleanup. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* "C:H:S": container ids C.. are host ids H.., S of them. */
static int parse_map(struct cli *cli, const char *opt, const char *arg, struct strata_idmap *v,
		     size_t *n)
{
	unsigned long c, h, sz;
	int used = 0;

	if (*n == CLI_MAX_MAPS)
		return cli_error(cli, EXIT_USAGE, "%s: too many ranges", opt);
	if (sscanf(arg, "%lu:%lu:%lu%n", &c, &h, &sz, &used) != 3 || arg[used] || sz == 0 ||
	    c > UINT32_MAX || h > UINT32_MAX || sz > UINT32_MAX)
		return cli_error(cli, EXIT_USAGE, "%s '%s': expected CONTAINER:HOST:SIZE", opt, arg);
	v[(*n)++] = (struct strata_idmap){ (uint32_t)c, (uint32_t)h, (uint32_t)sz };
	return 0;
}

static int engine_opt(struct cli *cli, int c, const char *arg, void *u)
{
	if (c == 'u')
		return parse_map(cli, "--uidmap", arg, cli->uid_maps, &cli->n_uid_maps);
	if (c == 'g')
		return parse_map(cli, "--gidmap", arg, cli->gid_maps, &cli->n_gid_maps);
	if (c != 'e')
		return EXIT_USAGE;
	if (strcmp(arg, "auto") && strcmp(arg, "aufs") && strcmp(arg, "fuse"))
		return cli_error(cli, EXIT_USAGE, "--engine '%s': expected auto, aufs or fuse", arg);
	cli->engine = arg;
	return 0;
}

static int run_init(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "engine", required_argument, NULL, 'e' },
		{ "uidmap", required_argument, NULL, 'u' },
		{ "gidmap", required_argument, NULL, 'g' },
		{ 0 },
	};
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	struct strata_kv *kv;
	size_t n;
	int first, r;

	first = cli_parse(cli, &cmd_init, argc, argv, "e:u:g:", opts, engine_opt, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_init, argc, argv, first, 0, 0)))
		return r;
	if ((r = cli_open(cli, &cmd_init, &s)))
		return r;
	if (strata_status(s, &kv, &n, &err) < 0)
		return cli_fail(cli, err);
	r = cli_print_kv(cli, kv, n);
	strata_kv_free(kv, n);
	return r;
}

static int run_status(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	struct strata_kv *kv;
	size_t n;
	int first, r;

	first = cli_parse(cli, &cmd_status, argc, argv, "", NULL, NULL, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_status, argc, argv, first, 0, 0)))
		return r;
	if ((r = cli_open(cli, &cmd_status, &s)))
		return r;
	if (strata_status(s, &kv, &n, &err) < 0)
		return cli_fail(cli, err);
	r = cli_print_kv(cli, kv, n);
	strata_kv_free(kv, n);
	return r;
}

static int run_cleanup(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	int first, r;

	first = cli_parse(cli, &cmd_cleanup, argc, argv, "", NULL, NULL, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_cleanup, argc, argv, first, 0, 0)))
		return r;
	if ((r = cli_open(cli, &cmd_cleanup, &s)))
		return r;
	if (strata_cleanup(s, &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON)
		return cli_print_json(json_pack("{s:s, s:b}", "root", strata_root(s), "cleaned", 1));
	return EXIT_OK;
}

const struct command cmd_init = {
	"init", "[--engine auto|aufs|fuse] [--uidmap C:H:S]... [--gidmap C:H:S]...",
	"create the store, or set its directories to the seed's modes, choose its mount engine, and show its status",
	"  -e, --engine NAME     union mount engine: auto (default: kernel aufs where the kernel\n"
	"                        has it, else fuse), aufs or fuse; kept in the store\n"
	"  -u, --uidmap C:H:S    container uids C..C+S-1 are host uids H..H+S-1 (repeatable);\n"
	"                        kept in the store, fixed once it has layers\n"
	"  -g, --gidmap C:H:S    the same for gids\n",
	run_init, STRATA_OPEN_FIX_MODES,
};
const struct command cmd_status = {
	"status", "", "show the driver's status", NULL, run_status, STRATA_OPEN_READONLY,
};
const struct command cmd_cleanup = {
	"cleanup", "", "unmount everything the store mounted and forget all mount counts", NULL,
	run_cleanup, 0,
};
