#!/usr/bin/env bats
# A root exactly as Docker's aufs driver left one opens as-is, and looking changes nothing.

load helpers

make_docker_root() {
	local r=$1
	mkdir -p "$r"/{layers,diff,mnt}
	chmod 0710 "$r" "$r"/{layers,diff,mnt}
	local base=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
	local mid=4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
	local top=7902699be42c8a8e46fbbb4501726517e86b22c56a189f7625a6da49081b2451
	local init=$top-init
	: >"$r/layers/$base"
	printf '%s\n' "$base" >"$r/layers/$mid"
	printf '%s\n%s\n' "$mid" "$base" >"$r/layers/$init"
	printf '%s\n%s\n%s\n' "$init" "$mid" "$base" >"$r/layers/$top"
	for id in $base $mid $init $top; do
		install -d -m 0755 "$r/diff/$id" "$r/mnt/$id"
	done
	mkdir -p "$r/diff/$base/etc" "$r/diff/$base/usr/bin"
	echo "root:x:0:0::/root:/bin/sh" >"$r/diff/$base/etc/passwd"
	printf '#!/bin/sh\n' >"$r/diff/$base/usr/bin/tool"
	chmod 4755 "$r/diff/$base/usr/bin/tool"
	mkdir -p "$r/diff/$mid/etc" "$r/diff/$mid/var/cache"
	: >"$r/diff/$mid/etc/.wh.passwd"
	: >"$r/diff/$mid/var/cache/.wh..wh..opq"
	# What aufs itself leaves at the root of a writable branch.
	for id in $init $top; do
		: >"$r/diff/$id/.wh..wh.aufs"
		mkdir -p "$r/diff/$id/.wh..wh.plnk" "$r/diff/$id/.wh..wh.orph"
		chmod 0700 "$r/diff/$id/.wh..wh.plnk" "$r/diff/$id/.wh..wh.orph"
	done
	touch "$r/diff/$init/.dockerenv"
	echo hello >"$r/diff/$top/hello"
	echo "$top"
}

@test "ls, status, exists and metadata work on Docker's own store and change nothing outside .strata" {
	top=$(make_docker_root "$ROOT")
	before=$(tree_digest "$ROOT")
	run strata ls
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 5 ]
	run strata --format json ls
	echo "$output" | python3 -c '
import json, sys
d = {l["id"]: l for l in json.load(sys.stdin)}
assert len(d) == 4, d
top = sys.argv[1]
assert d[top]["depth"] == 3 and d[top]["parent"] == top + "-init", d[top]
' "$top"
	run strata status
	[ "$status" -eq 0 ]
	[ "${lines[2]}" = "Dirs: 4" ]
	run strata exists "$top"
	[ "$status" -eq 0 ]
	run strata exists "$top-init"
	[ "$status" -eq 0 ]
	run strata metadata "$top"
	[ "$status" -eq 0 ]
	[[ "$output" == *"Parent: $top-init"* ]]
	run strata parents "$top"
	[ "${#lines[@]}" -eq 3 ]
	run strata ls --tree
	[ "$status" -eq 0 ]
	[ "$before" = "$(tree_digest "$ROOT")" ]
}

@test "a Docker store accepts new layers on its chains" {
	top=$(make_docker_root "$ROOT")
	strata create mine --parent "$top"
	[ "$(wc -l <"$ROOT/layers/mine")" -eq 4 ]
	[ "$(head -1 "$ROOT/layers/mine")" = "$top" ]
	run strata rm "$top"
	[ "$status" -eq 1 ]
	strata rm mine
	strata rm "$top"
	[ ! -e "$ROOT/diff/$top" ]
}
