/* SPDX-License-Identifier: Apache-2.0 */
/* Option parsing, errors and output shared by the commands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct option global_opts[] = {
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
};

int cli_error(struct cli *cli, int code, const char *fmt, ...)
{
	va_list ap;

	fputs("strata: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (code == EXIT_USAGE)
		fprintf(stderr, "Try 'strata %s--help' for more information.\n",
			cli && cli->command ? cli->command : "");
	return code;
}

int cli_fail(struct cli *cli, struct strata_error *err)
{
	cli_error(cli, EXIT_FAIL, "%s", strata_error_message(err));
	strata_error_free(err);
	return EXIT_FAIL;
}

int cli_global_option(struct cli *cli, int c, const char *arg)
{
	switch (c) {
	case OPT_ROOT:
		if (!*arg)
			return cli_error(cli, EXIT_USAGE, "--root: empty path");
		cli->root = arg;
		return 0;
	case OPT_FORMAT:
		if (!strcmp(arg, "text"))
			cli->format = FORMAT_TEXT;
		else if (!strcmp(arg, "json"))
			cli->format = FORMAT_JSON;
		else
			return cli_error(cli, EXIT_USAGE,
					 "--format '%s': expected 'text' or 'json'", arg);
		return 0;
	case 'q':
		cli->quiet = true;
		return 0;
	}
	return -1;
}

int cli_parse(struct cli *cli, const struct command *cmd, int argc, char **argv,
	      const char *shortopts, const struct option *opts,
	      int (*on_opt)(struct cli *cli, int c, const char *arg, void *u), void *u)
{
	struct option all[32];
	size_t n = 0;
	char sopts[64];
	int c;

	for (const struct option *o = opts; o && o->name && n < ARRAY_SIZE(all) - 8; o++)
		all[n++] = *o;
	for (size_t i = 0; i < ARRAY_SIZE(global_opts); i++)
		all[n++] = global_opts[i];
	all[n] = (struct option){ 0 };
	snprintf(sopts, sizeof(sopts), ":q%s", shortopts ? shortopts : "");

	optind = 0; /* Full re-initialisation: each command parses afresh. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, sopts, all, NULL)) != -1) {
		int r;
		if (c == '?') {
			if (optopt)
				return -cli_error(cli, EXIT_USAGE, "%s: unknown option '-%c'",
						  cmd->name, optopt);
			return -cli_error(cli, EXIT_USAGE, "%s: unknown option '%s'", cmd->name,
					  argv[optind - 1]);
		}
		if (c == ':')
			return -cli_error(cli, EXIT_USAGE, "%s: option '%s' needs a value",
					  cmd->name, argv[optind - 1]);
		if (c == OPT_HELP) {
			cli_command_help(cmd, stdout);
			return CLI_HELP_SHOWN;
		}
		r = cli_global_option(cli, c, optarg);
		if (r < 0)
			r = on_opt ? on_opt(cli, c, optarg, u) : EXIT_USAGE;
		if (r)
			return -r;
	}
	return optind;
}

int cli_check_id(struct cli *cli, const char *op, const char *id)
{
	const char *why;
	char shown[64];

	if (id_check(id, &why) == 0)
		return 0;
	id_shown(id, shown, sizeof(shown));
	return cli_error(cli, EXIT_USAGE, "%s '%s': invalid layer id: %s", op, shown, why);
}

int cli_operands(struct cli *cli, const struct command *cmd, int argc, char **argv, int first,
		 int min, int max)
{
	int n = argc - first;

	if (n < min)
		return cli_error(cli, EXIT_USAGE, "%s: missing operand (usage: strata %s %s)",
				 cmd->name, cmd->name, cmd->args);
	if (max >= 0 && n > max)
		return cli_error(cli, EXIT_USAGE, "%s: too many operands (usage: strata %s %s)",
				 cmd->name, cmd->name, cmd->args);
	for (int i = 0; i < n && (cmd->id_operands < 0 || i < cmd->id_operands); i++) {
		int r = cli_check_id(cli, cmd->name, argv[first + i]);
		if (r)
			return r;
	}
	return 0;
}

int cli_open(struct cli *cli, const struct command *cmd, struct strata **ret)
{
	struct strata_error *err = NULL;
	struct strata_options o = {
		.root = cli->root,
		.flags = cmd->open_flags,
		.engine = cli->engine,
		.uid_maps = cli->uid_maps,
		.n_uid_maps = cli->n_uid_maps,
		.gid_maps = cli->gid_maps,
		.n_gid_maps = cli->n_gid_maps,
	};

	if (strata_open(&o, ret, &err) < 0)
		return cli_fail(cli, err);
	return 0;
}

int cli_print_json(json_t *v)
{
	if (!v)
		return cli_error(NULL, EXIT_FAIL, "out of memory");
	int r = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(v);
	fputc('\n', stdout);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}

int cli_print_kv(struct cli *cli, const struct strata_kv *kv, size_t n)
{
	if (cli->format == FORMAT_JSON) {
		json_t *o = json_object();
		for (size_t i = 0; o && i < n; i++)
			json_object_set_new(o, kv[i].key, json_string(kv[i].value));
		return cli_print_json(o);
	}
	for (size_t i = 0; i < n; i++)
		printf("%s: %s\n", kv[i].key, kv[i].value);
	return EXIT_OK;
}
