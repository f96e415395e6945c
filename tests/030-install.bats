#!/usr/bin/env bats
# What a user of the installed project gets: the shared library with its soname, a
# pkg-config file a program builds with, the header, man pages and bash completion.

load helpers

per_test_setup() {
	DEST=$TEST_DIR/dest
	meson install -C "$STRATA_BUILD" --destdir "$DEST" --no-rebuild >"$TEST_DIR/install.log" 2>&1 ||
		{ cat "$TEST_DIR/install.log"; false; }
}

@test "libstrata installs with its soname, and a program builds against it with pkg-config" {
	! asan_build || skip "ASan build: a program linked against it needs the ASan runtime"
	lib=$(find "$DEST" -name 'libstrata.so.0.*' -type f | head -1)
	[ -n "$lib" ]
	[ "$(readelf -d "$lib" | awk '/SONAME/ { print $NF }')" = "[libstrata.so.0]" ]
	[ -L "$(dirname "$lib")/libstrata.so.0" ]
	[ -L "$(dirname "$lib")/libstrata.so" ]
	# Only the public API is exported.
	! nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | grep -v '^strata_' || false
	pc=$(find "$DEST" -name strata.pc | head -1)
	[ -n "$pc" ]
	[ -f "$(find "$DEST" -name strata.h | head -1)" ]

	cat >"$TEST_DIR/prog.c" <<'EOF'
#include <stdio.h>
#include <strata.h>

int main(int argc, char **argv)
{
	struct strata_options o = { .root = argv[1] };
	struct strata_error *err = NULL;
	struct strata *s = NULL;
	struct strata_kv *kv;
	size_t n;

	if (strata_open(&o, &s, &err) < 0 || strata_layer_create(s, "base", NULL, NULL, 0, &err) < 0 ||
	    strata_layer_create(s, "kid", "base", NULL, 0, &err) < 0 ||
	    strata_layer_create(s, "bad/id", NULL, NULL, 0, &err) == 0) {
		fprintf(stderr, "%s\n", strata_error_message(err));
		return 1;
	}
	printf("%s\n", strata_error_message(err));
	strata_error_free(err);
	if (strata_status(s, &kv, &n, NULL) < 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		printf("%s=%s\n", kv[i].key, kv[i].value);
	strata_kv_free(kv, n);
	strata_close(s);
	return argc == 2 ? 0 : 1;
}
EOF
	export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$DEST
	# shellcheck disable=SC2046
	cc -Wall -Wextra -Werror -o "$TEST_DIR/prog" "$TEST_DIR/prog.c" $(pkg-config --cflags --libs strata)
	LD_LIBRARY_PATH=$(dirname "$lib") run "$TEST_DIR/prog" "$TEST_DIR/store"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "create 'bad/id': invalid layer id"* ]]
	[ "${lines[1]}" = "Root Dir=$TEST_DIR/store" ]
	[ "${lines[3]}" = "Dirs=2" ]
	[ "$(cat "$TEST_DIR/store/layers/kid")" = base ]
}

@test "man pages and bash completion are installed and work" {
	for page in strata.1 strata-fuse.1; do
		f=$(find "$DEST" -name "$page" | head -1)
		[ -n "$f" ]
		grep -q '^\.TH' "$f"
		grep -q 'SYNOPSIS' "$f"
	done
	comp=$(find "$DEST" -path '*bash-completion*' -name strata | head -1)
	[ -n "$comp" ]
	mkdir -p "$TEST_DIR/store/layers"
	: >"$TEST_DIR/store/layers/c0ffee"
	# shellcheck disable=SC1090
	source "$comp"
	COMP_WORDS=(strata --root "$TEST_DIR/store" diff-s)
	COMP_CWORD=3
	_strata
	[ "${COMPREPLY[*]}" = diff-size ]
	COMP_WORDS=(strata --root "$TEST_DIR/store" mount c0)
	COMP_CWORD=4
	_strata
	[ "${COMPREPLY[*]}" = c0ffee ]
	COMP_WORDS=(strata init --engine "")
	COMP_CWORD=3
	_strata
	[ "${COMPREPLY[*]}" = "auto aufs fuse" ]
}
