/* SPDX-License-Identifier: Apache-2.0 */
/* Layer commands: create, create-rw, rm, exists, metadata, parents, ls. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ids.h"

struct create_args {
	const char *parent;
	struct strata_kv opts[16];
	size_t n_opts;
};

static int create_opt(struct cli *cli, int c, const char *arg, void *u)
{
	struct create_args *a = u;

	switch (c) {
	case 'p':
		a->parent = arg;
		return cli_check_parent(cli, arg);
	case 's': {
		if (a->n_opts == ARRAY_SIZE(a->opts))
			return cli_error(cli, EXIT_USAGE, "too many --storage-opt");
		const char *eq = strchr(arg, '=');
		if (!eq || eq == arg)
			return cli_error(cli, EXIT_USAGE, "--storage-opt '%s': expected KEY=VALUE",
					 arg);
		a->opts[a->n_opts++] = (struct strata_kv){ strndup(arg, (size_t)(eq - arg)),
							   strdup(eq + 1) };
		return 0;
	}
	}
	return EXIT_USAGE;
}

static int run_create_common(struct cli *cli, const struct command *cmd, int argc, char **argv,
			     bool rw)
{
	static const struct option opts[] = {
		{ "parent", required_argument, NULL, 'p' },
		{ "storage-opt", required_argument, NULL, 's' },
		{ 0 },
	};
	struct create_args a = { 0 };
	struct strata_error *err = NULL;
	struct strata *s = NULL;
	int first, r;

	first = cli_parse(cli, cmd, argc, argv, "p:s:", opts, create_opt, &a);
	if (first < 0) {
		r = cli_parse_exit(first);
		goto out;
	}
	r = cli_operands(cli, cmd, argc, argv, first, 1, 1);
	if (r)
		goto out;
	r = cli_open(cli, cmd, &s);
	if (r)
		goto out;
	const char *id = argv[first];
	r = (rw ? strata_layer_create_rw : strata_layer_create)(s, id, a.parent, a.opts, a.n_opts,
								 &err);
	if (r < 0) {
		r = cli_fail(cli, err);
		goto out;
	}
	if (cli->format == FORMAT_JSON)
		r = cli_print_json(json_pack("{s:s, s:s?}", "id", id, "parent",
					     a.parent && *a.parent ? a.parent : NULL));
	else
		r = printf("%s\n", id) < 0 ? EXIT_FAIL : EXIT_OK;
out:
	for (size_t i = 0; i < a.n_opts; i++) {
		free(a.opts[i].key);
		free(a.opts[i].value);
	}
	strata_close(s);
	return r;
}

static int run_create(struct cli *cli, int argc, char **argv)
{
	return run_create_common(cli, &cmd_create, argc, argv, false);
}

static int run_create_rw(struct cli *cli, int argc, char **argv)
{
	return run_create_common(cli, &cmd_create_rw, argc, argv, true);
}

/* For commands whose one option is a flag. */
static int flag_opt(struct cli *cli, int c, const char *arg, void *u)
{
	*(bool *)u = true;
	return 0;
}

static int run_rm(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, { 0 } };
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	bool force = false;
	int first, r;

	first = cli_parse(cli, &cmd_rm, argc, argv, "f", opts, flag_opt, &force);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_rm, argc, argv, first, 1, -1)))
		return r;
	if ((r = cli_open(cli, &cmd_rm, &s)))
		return r;
	json_t *removed = cli->format == FORMAT_JSON ? json_array() : NULL;
	r = EXIT_OK;
	for (int i = first; i < argc; i++) {
		if (strata_layer_remove(s, argv[i], force ? STRATA_REMOVE_FORCE : 0, &err) < 0)
			r = cli_fail(cli, err), err = NULL;
		else if (removed)
			json_array_append_new(removed, json_string(argv[i]));
	}
	if (cli->format == FORMAT_JSON) {
		/* One document, also when some failed: it names those that went. */
		int p = cli_print_json(json_pack("{s:o}", "removed", removed));
		return r ? r : p;
	}
	return r;
}

static int run_exists(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	int first, r;

	first = cli_parse(cli, &cmd_exists, argc, argv, "", NULL, NULL, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_exists, argc, argv, first, 1, 1)))
		return r;
	const char *id = argv[first];
	if ((r = cli_open(cli, &cmd_exists, &s)))
		return r;
	r = strata_layer_exists(s, id);
	if (r < 0) {
		return cli_error(cli, EXIT_FAIL, "exists '%s': %s", id, strerror(-r));
	}
	if (cli->format == FORMAT_JSON)
		cli_print_json(json_pack("{s:s, s:b}", "id", id, "exists", r));
	return r ? EXIT_OK : EXIT_FAIL;
}

static int run_metadata(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	struct strata_kv *kv;
	size_t n;
	int first, r;

	first = cli_parse(cli, &cmd_metadata, argc, argv, "", NULL, NULL, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_metadata, argc, argv, first, 1, 1)))
		return r;
	if ((r = cli_open(cli, &cmd_metadata, &s)))
		return r;
	if (strata_layer_metadata(s, argv[first], &kv, &n, &err) < 0)
		return cli_fail(cli, err);
	r = cli_print_kv(cli, kv, n);
	strata_kv_free(kv, n);
	return r;
}

static int run_parents(struct cli *cli, int argc, char **argv)
{
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	char **ids;
	int first, r;

	first = cli_parse(cli, &cmd_parents, argc, argv, "", NULL, NULL, NULL);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_parents, argc, argv, first, 1, 1)))
		return r;
	if ((r = cli_open(cli, &cmd_parents, &s)))
		return r;
	if (strata_layer_parents(s, argv[first], &ids, &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON) {
		json_t *a = json_array();
		for (char **p = ids; a && *p; p++)
			json_array_append_new(a, json_string(*p));
		r = cli_print_json(a);
	} else {
		for (char **p = ids; *p; p++)
			printf("%s\n", *p);
		r = EXIT_OK;
	}
	strata_strv_free(ids);
	return r;
}

static const struct strata_layer_info *find_info(const struct strata_layer_info *v, size_t n,
						 const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].id, id))
			return &v[i];
	return NULL;
}

/* Prints the children of @parent (NULL: the base layers and orphans) as a tree. */
static void print_tree(const struct strata_layer_info *v, size_t n, const char *parent,
		       const char *prefix, unsigned level)
{
	size_t count = 0, seen = 0;

	for (size_t i = 0; i < n; i++) {
		bool root_level = !v[i].parent || !find_info(v, n, v[i].parent);
		if (parent ? (v[i].parent && !strcmp(v[i].parent, parent)) : root_level)
			count++;
	}
	for (size_t i = 0; i < n && level < 4096; i++) {
		bool root_level = !v[i].parent || !find_info(v, n, v[i].parent);
		if (!(parent ? (v[i].parent && !strcmp(v[i].parent, parent)) : root_level))
			continue;
		bool last = ++seen == count;
		char mounts[32] = "";
		if (v[i].mounts)
			snprintf(mounts, sizeof(mounts), " (mounted %u)", v[i].mounts);
		if (!parent) {
			if (v[i].parent)
				printf("%s%s (parent '%s' is missing)\n", v[i].id, mounts, v[i].parent);
			else
				printf("%s%s\n", v[i].id, mounts);
			print_tree(v, n, v[i].id, "", level + 1);
			continue;
		}
		printf("%s%s%s%s\n", prefix, last ? "└── " : "├── ", v[i].id, mounts);
		char *next;
		if (asprintf(&next, "%s%s", prefix, last ? "    " : "│   ") < 0)
			return;
		print_tree(v, n, v[i].id, next, level + 1);
		free(next);
	}
}

static int run_ls(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "tree", no_argument, NULL, 't' }, { 0 } };
	_cleanup_strata_ struct strata *s = NULL;
	struct strata_error *err = NULL;
	struct strata_layer_info *v;
	bool tree = false;
	size_t n;
	int first, r;

	first = cli_parse(cli, &cmd_ls, argc, argv, "t", opts, flag_opt, &tree);
	if (first < 0)
		return cli_parse_exit(first);
	if ((r = cli_operands(cli, &cmd_ls, argc, argv, first, 0, 0)))
		return r;
	if ((r = cli_open(cli, &cmd_ls, &s)))
		return r;
	if (strata_layer_list(s, &v, &n, &err) < 0)
		return cli_fail(cli, err);
	if (cli->format == FORMAT_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s?, s:i, s:i, s:i}", "id",
							   v[i].id, "parent", v[i].parent, "depth",
							   (int)v[i].depth, "mounts",
							   (int)v[i].mounts, "children",
							   (int)v[i].children));
		r = cli_print_json(a);
	} else if (tree) {
		print_tree(v, n, NULL, "", 0);
		r = EXIT_OK;
	} else {
		size_t w = 2;
		for (size_t i = 0; i < n; i++)
			if (strlen(v[i].id) > w)
				w = strlen(v[i].id);
		printf("%-*s  %-*s  %5s  %6s\n", (int)w, "ID", (int)w, "PARENT", "DEPTH", "MOUNTS");
		for (size_t i = 0; i < n; i++)
			printf("%-*s  %-*s  %5u  %6u\n", (int)w, v[i].id, (int)w,
			       v[i].parent ? v[i].parent : "-", v[i].depth, v[i].mounts);
		r = EXIT_OK;
	}
	strata_layer_info_free(v, n);
	return r;
}

const struct command cmd_create = {
	"create", "ID [--parent PARENT]", "create an empty read-only layer",
	"  -p, --parent PARENT   the layer to stack on (none: a base layer)\n"
	"  -s, --storage-opt K=V refused: aufs has no storage options\n",
	run_create, 0, 1,
};
const struct command cmd_create_rw = {
	"create-rw", "ID [--parent PARENT]", "create an empty read-write (container) layer",
	"  -p, --parent PARENT   the layer to stack on (none: a base layer)\n"
	"  -s, --storage-opt K=V refused: aufs has no storage options\n",
	run_create_rw, 0, 1,
};
const struct command cmd_rm = {
	"rm", "ID... [--force]", "unmount and delete layers",
	"  -f, --force           delete even if other layers sit on it\n",
	run_rm, 0, -1,
};
const struct command cmd_exists = {
	"exists", "ID", "exit 0 if the layer exists, 1 if not", NULL,
	run_exists, STRATA_OPEN_READONLY, 1,
};
const struct command cmd_metadata = {
	"metadata", "ID", "show what the store knows of a layer", NULL,
	run_metadata, STRATA_OPEN_READONLY, 1,
};
const struct command cmd_parents = {
	"parents", "ID", "list a layer's ancestors, nearest first", NULL,
	run_parents, STRATA_OPEN_READONLY, 1,
};
const struct command cmd_ls = {
	"ls", "[--tree]", "list the layers",
	"  -t, --tree            draw the layers as a tree of parents\n",
	run_ls, STRATA_OPEN_READONLY,
};
