/* SPDX-License-Identifier: Apache-2.0 */
/* The strata command line: what every command file shares. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

#include "ids.h"
#include "macro.h"
#include "strata.h"

static inline void strata_closep(struct strata **s)
{
	strata_close(*s);
}
#define _cleanup_strata_ _cleanup_(strata_closep)

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

enum output_format { FORMAT_TEXT, FORMAT_JSON };

struct cli {
	const char *root;
	enum output_format format;
	bool quiet;
	const char *command;          /* "<name> ", for hints */
	const struct command *cmd;    /* the command running */
	const char *engine; /* init --engine */
#define CLI_MAX_MAPS 16
	struct strata_idmap uid_maps[CLI_MAX_MAPS], gid_maps[CLI_MAX_MAPS];
	size_t n_uid_maps, n_gid_maps;
};

struct command {
	const char *name;
	const char *args;     /* synopsis after the name */
	const char *summary;  /* one line for `strata help` */
	const char *help;     /* the options, for `strata COMMAND --help` */
	int (*run)(struct cli *cli, int argc, char **argv);
	unsigned open_flags;  /* enum strata_open_flags */
	int id_operands;      /* how many leading operands are layer ids (-1: all) */
};

/* Option values shared by every command's getopt table. */
enum {
	OPT_ROOT = 0x100,
	OPT_FORMAT,
	OPT_HELP,
	OPT_COMMAND_FIRST = 0x200,
};

/*
 * Parses @argv (argv[0] is the command) with the command's own @opts (ended by a
 * zero entry) plus the global ones, permuting operands to the end. @on_opt gets
 * each command option; it returns 0, or EXIT_USAGE after printing why. Returns
 * the index of the first operand, or a negative value for cli_parse_exit().
 */
int cli_parse(struct cli *cli, const struct command *cmd, int argc, char **argv,
	      const char *shortopts, const struct option *opts,
	      int (*on_opt)(struct cli *cli, int c, const char *arg, void *u), void *u);

#define CLI_HELP_SHOWN (-1000)
/* The exit code for a negative cli_parse() result. */
static inline int cli_parse_exit(int r)
{
	return r == CLI_HELP_SHOWN ? EXIT_OK : -r;
}

/* Prints "strata: <what>" on stderr (a usage error adds a hint) and returns @code. */
int cli_error(struct cli *cli, int code, const char *fmt, ...) _printf_(3, 4);
/* Prints @err's message, frees it and returns EXIT_FAIL. */
int cli_fail(struct cli *cli, struct strata_error *err);
/* Handles a global option (--root, --format, -q): 0, EXIT_USAGE, or -1 if @c is not one. */
int cli_global_option(struct cli *cli, int c, const char *arg);
/*
 * Checks the operand count, and the operands that are layer ids (before the
 * store is opened, so that a bad id touches nothing); prints a usage error
 * when something is wrong.
 */
int cli_operands(struct cli *cli, const struct command *cmd, int argc, char **argv, int first,
		 int min, int max);
/* EXIT_USAGE after a message naming @op when @id is not a valid layer id, else 0. */
int cli_check_id(struct cli *cli, const char *op, const char *id);
/* The same for a --parent value of the running command, where '' means none. */
static inline int cli_check_parent(struct cli *cli, const char *parent)
{
	return parent && *parent ? cli_check_id(cli, cli->cmd->name, parent) : 0;
}

/* Opens the store with the command's flags; prints the error itself. */
int cli_open(struct cli *cli, const struct command *cmd, struct strata **ret);

/* Prints a JSON value (stealing the reference) on stdout. */
int cli_print_json(json_t *v);
/* Prints pairs as "Key: value" lines, or one JSON object. */
int cli_print_kv(struct cli *cli, const struct strata_kv *kv, size_t n);

const struct command *cli_find_command(const char *name);
void cli_command_help(const struct command *cmd, FILE *out);

extern const struct command cmd_init, cmd_status, cmd_cleanup;
extern const struct command cmd_create, cmd_create_rw, cmd_rm, cmd_exists, cmd_ls, cmd_metadata,
	cmd_parents;
extern const struct command cmd_mount, cmd_unmount;
extern const struct command cmd_changes;
extern const struct command cmd_apply, cmd_diff, cmd_diff_size, cmd_diff_get;
