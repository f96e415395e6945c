/* SPDX-License-Identifier: Apache-2.0 */
/* strata: every graph-driver operation from the shell. The command table lives here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"

static const struct command *const commands[] = {
	&cmd_init,  &cmd_status,   &cmd_create, &cmd_create_rw, &cmd_exists, &cmd_metadata,
	&cmd_ls,    &cmd_parents,  &cmd_rm,     &cmd_mount,     &cmd_unmount, &cmd_cleanup,
	&cmd_changes,
	&cmd_apply, &cmd_diff,     &cmd_diff_size, &cmd_diff_get,
};

const struct command *cli_find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	if (!strcmp(name, "get"))
		return &cmd_mount;
	if (!strcmp(name, "put") || !strcmp(name, "umount"))
		return &cmd_unmount;
	if (!strcmp(name, "remove"))
		return &cmd_rm;
	if (!strcmp(name, "list"))
		return &cmd_ls;
	return NULL;
}

static const char global_help[] =
	"Global options (before or after the command):\n"
	"  --root DIR            the store (default $STRATA_ROOT, else /var/lib/strata)\n"
	"  --format text|json    output for people (default) or one JSON document\n"
	"  -q, --quiet           no progress output\n"
	"  --help                help for the command\n";

void cli_command_help(const struct command *cmd, FILE *out)
{
	fprintf(out, "Usage: strata [--root DIR] [--format text|json] %s %s\n\n%s.\n", cmd->name,
		cmd->args, cmd->summary);
	if (cmd->help && *cmd->help)
		fprintf(out, "\nOptions:\n%s", cmd->help);
	fprintf(out, "\n%s", global_help);
}

static void usage(FILE *out)
{
	fprintf(out, "Usage: strata [--root DIR] [--format text|json] COMMAND [ARGS...]\n\n"
		     "Docker's aufs layer store, on any kernel.\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
	fprintf(out, "  %-10s %s\n  %-10s %s\n\n%s\nSee strata(1) for more.\n", "help",
		"show help for a command", "version", "show the version", global_help);
}

static int cmd_help(struct cli *cli, int argc, char **argv)
{
	if (argc < 2) {
		usage(stdout);
		return EXIT_OK;
	}
	const struct command *c = cli_find_command(argv[1]);
	if (!c)
		return cli_error(cli, EXIT_USAGE, "help: unknown command '%s'", argv[1]);
	cli_command_help(c, stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct cli cli = { .format = FORMAT_TEXT };
	int c;

	cli.root = getenv("STRATA_ROOT");
	if (cli.root && !*cli.root)
		cli.root = NULL;
	opterr = 0;
	/* "+": stop at the command; its own parser takes the rest, globals included. */
	while ((c = getopt_long(argc, argv, "+:qhV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("strata %s\n", STRATA_VERSION);
			return EXIT_OK;
		case ':':
			return cli_error(&cli, EXIT_USAGE, "option '%s' needs a value",
					 argv[optind - 1]);
		case '?':
			return cli_error(&cli, EXIT_USAGE, "unknown option '%s'", argv[optind - 1]);
		default: {
			int r = cli_global_option(&cli, c, optarg);
			if (r)
				return r;
		}
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[optind];
	if (!strcmp(name, "help"))
		return cmd_help(&cli, argc - optind, argv + optind);
	if (!strcmp(name, "version")) {
		printf("strata %s\n", STRATA_VERSION);
		return EXIT_OK;
	}
	const struct command *cmd = cli_find_command(name);
	if (!cmd)
		return cli_error(&cli, EXIT_USAGE, "'%s' is not a strata command (see 'strata help')",
				 name);
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "%s ", cmd->name);
	cli.command = prefix;
	cli.cmd = cmd;
	return cmd->run(&cli, argc - optind, argv + optind);
}
