#!/usr/bin/env bats
# moby's graphdriver conformance suite (graphtest), on real layers and mounts:
# CreateEmpty, CreateBase, CreateSnap and DeepLayerRead.

load helpers

per_test_setup() {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	[ "$(id -u)" -eq 0 ] || skip "needs root (chown)"
	strata init --engine fuse >/dev/null
}

# "<octal mode> <uid>:<gid>" of a path, the mode with its type bits dropped.
mode_owner() {
	stat -c '%a %u:%g' "$1"
}

# The entries of a directory, as graphtest's readDir: lost+found does not count.
entries() {
	find "$1" -mindepth 1 -maxdepth 1 ! -name lost+found -printf '%f\n' | LC_ALL=C sort
}

# graphtest createBase: with umask 0, "a subdir" 0705|sticky owned by 1:2 and
# "a file" 0222|setuid holding "Some data", as Go's os.Mkdir and os.WriteFile make them.
create_base() {
	python3 - "$1" <<'EOF'
import os, sys
os.umask(0)
d = sys.argv[1]
os.mkdir(os.path.join(d, "a subdir"), 0o1705)
os.chown(os.path.join(d, "a subdir"), 1, 2)
fd = os.open(os.path.join(d, "a file"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o4222)
os.write(fd, b"Some data")
os.close(fd)
EOF
}

# graphtest verifyBase: exactly the two entries, with their modes and owners.
verify_base() {
	local dir=$1
	[ "$(mode_owner "$dir/a subdir")" = "1705 1:2" ]
	[ -d "$dir/a subdir" ]
	[ "$(mode_owner "$dir/a file")" = "4222 0:0" ]
	[ -f "$dir/a file" ]
	[ "$(cat "$dir/a file")" = "Some data" ]
	[ "$(entries "$dir")" = "a file
a subdir" ]
}

@test "graphtest DriverTestCreateEmpty: a 0755 root-owned directory with no entries" {
	strata create empty
	strata exists empty
	dir=$(strata mount empty)
	[ -d "$dir" ]
	[ "$(mode_owner "$dir")" = "755 0:0" ]
	[ -z "$(entries "$dir")" ]
	strata unmount empty
	strata rm empty
	run strata exists empty
	[ "$status" -eq 1 ]
}

@test "graphtest DriverTestCreateBase: exact modes, owners and two entries" {
	strata create-rw Base
	dir=$(strata mount Base)
	create_base "$dir"
	verify_base "$dir"
	strata unmount Base
	# Read again through a fresh Get.
	dir=$(strata mount Base)
	verify_base "$dir"
	strata unmount Base
	strata rm Base
	[ ! -e "$ROOT/diff/Base" ]
}

@test "graphtest DriverTestCreateSnap: a layer on the base shows the same through its mount, and can add" {
	strata create-rw Base
	dir=$(strata mount Base)
	create_base "$dir"
	strata unmount Base
	strata create Snap --parent Base
	snap=$(strata mount Snap)
	[ "$snap" != "$ROOT/diff/Snap" ]
	verify_base "$snap"
	# What the snapshot adds is its own: the base keeps exactly its two entries.
	echo more >"$snap/added"
	mkdir "$snap/a subdir/inner"
	[ "$(cat "$snap/added")" = more ]
	[ -d "$snap/a subdir/inner" ]
	[ "$(mode_owner "$snap/a subdir")" = "1705 1:2" ]
	strata unmount Snap
	verify_base "$ROOT/diff/Base"
	[ ! -e "$ROOT/diff/Base/a subdir/inner" ]
	[ "$(cat "$ROOT/diff/Snap/added")" = more ]
	snap=$(strata mount Snap)
	[ "$(entries "$snap")" = "a file
a subdir
added" ]
	strata unmount Snap
	strata rm Snap
	strata rm Base
	run strata exists Snap
	[ "$status" -eq 1 ]
	run strata exists Base
	[ "$status" -eq 1 ]
}

@test "graphtest DriverTestDeepLayerRead: 126 layers on a base, the top reads every one" {
	local n=126 i id parent dir
	strata create base
	dir=$(strata mount base)
	printf 'test content' >"$dir/testfile.txt"
	strata unmount base
	parent=base
	for i in $(seq 1 $n); do
		id=$(printf '%s' "$i" | sha256sum | cut -c1-64)
		strata create "$id" --parent "$parent"
		dir=$(strata mount "$id")
		printf '%s' "$id" >"$dir/top-id"
		mkdir -p "$dir/layer-$i"
		printf '%s' "$id" >"$dir/layer-$i/layer-id"
		printf '%s' "$parent" >"$dir/layer-$i/parent-id"
		strata unmount "$id"
		parent=$id
	done
	top=$parent
	[ "$(strata parents "$top" | wc -l)" -eq $n ]
	# graphtest checkManyLayers: follow the chain down from the top's own id.
	dir=$(strata mount "$top")
	want=$(cat "$dir/top-id")
	[ "$want" = "$top" ]
	for i in $(seq $n -1 1); do
		[ "$(cat "$dir/layer-$i/layer-id")" = "$want" ]
		want=$(cat "$dir/layer-$i/parent-id")
	done
	[ "$want" = base ]
	[ "$(cat "$dir/testfile.txt")" = "test content" ]
	[ "$(find "$dir" -mindepth 1 -maxdepth 1 -name 'layer-*' | wc -l)" -eq $n ]
	strata unmount "$top"
}
