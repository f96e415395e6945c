#!/usr/bin/env bats
# strata changes: docker diff's output on real layers and mounts.

load helpers

per_test_setup() {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	strata init --engine fuse >/dev/null
}

@test "aufs TestChanges: against no parent everything is an add; against the direct parent only the layer" {
	strata create 1
	strata create 2 --parent 1
	dir=$(strata mount 2)
	echo x >"$dir/test.txt"
	strata unmount 2
	run strata changes 2 --parent ''
	[ "$status" -eq 0 ]
	[ "$output" = "A /test.txt" ]
	strata create 3 --parent 2
	dir=$(strata mount 3)
	echo y >"$dir/test2.txt"
	strata unmount 3
	run strata changes 3 --parent 2
	[ "$output" = "A /test2.txt" ]
	run strata changes 3
	[ "$output" = "A /test2.txt" ]
	# Against a grandparent the two mounted stacks are compared.
	run strata changes 3 --parent 1
	[ "$output" = "A /test.txt
A /test2.txt" ]
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}

@test "changes made through a mount: modify, add, delete, with the parent directory modified" {
	strata create base
	mkdir -p "$ROOT/diff/base/etc/sub"
	echo a >"$ROOT/diff/base/etc/keep"
	echo b >"$ROOT/diff/base/etc/edit"
	echo c >"$ROOT/diff/base/etc/gone"
	strata create ctr --parent base
	dir=$(strata mount ctr)
	echo changed >"$dir/etc/edit"
	rm "$dir/etc/gone"
	echo new >"$dir/etc/sub/new"
	strata unmount ctr
	run strata changes ctr
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | sort)" = "$(printf '%s\n' 'A /etc/sub/new' 'C /etc' 'C /etc/edit' 'C /etc/sub' 'D /etc/gone' | sort)" ]
	strata --format json changes ctr | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert {"path": "/etc/gone", "kind": "delete", "code": 2} in d, d'
}

@test "graphtest DriverTestChanges: 21 changes, written through the mount" {
	strata create base
	mkdir -p "$ROOT/diff/base/directory-0"
	for j in $(seq 0 19); do echo seed3 >"$ROOT/diff/base/directory-0/file-$j"; done
	strata create upper --parent base
	dir=$(strata mount upper)
	for j in $(seq 0 19); do
		case $((j % 3)) in
		0) echo seed6 >"$dir/directory-0/file-$j" ;;
		1) echo new >"$dir/directory-0/file-6-$j" ;;
		2) rm "$dir/directory-0/file-$j" ;;
		esac
	done
	strata unmount upper
	run strata changes upper --parent base
	[ "${#lines[@]}" -eq 21 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^C ')" -eq 8 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^A ')" -eq 7 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^D ')" -eq 6 ]
	[ "${lines[0]}" = "C /directory-0" ]
}

@test "a directory removed and made again through the mount: what it hid is deleted, at its own path" {
	strata create base
	mkdir -p "$ROOT/diff/base/dir/sub"
	echo 1 >"$ROOT/diff/base/dir/sub/old"
	echo 2 >"$ROOT/diff/base/dir/0gone"
	echo 3 >"$ROOT/diff/base/dir/zgone"
	touch -d @1000 "$ROOT/diff/base/dir"
	strata create up --parent base
	dir=$(strata mount up)
	rm -rf "$dir/dir"
	mkdir -p "$dir/dir/sub"
	echo new >"$dir/dir/sub/new"
	echo first >"$dir/dir/0first"
	[ "$(ls -A "$dir/dir/sub")" = new ]
	strata unmount up
	# The layer holds an opaque directory: the merged mount hides all of the old one.
	[ -e "$ROOT/diff/up/dir/.wh..wh..opq" ]
	run strata changes up
	[ "$status" -eq 0 ]
	[ "$output" = "C /dir
A /dir/0first
D /dir/0gone
A /dir/sub
A /dir/sub/new
D /dir/sub/old
D /dir/zgone" ]
}

@test "changes of a bad or unknown layer fail clearly" {
	run strata changes nope
	[ "$status" -eq 1 ]
	[[ "$output" == *"changes 'nope': no such layer"* ]]
	strata create a
	strata create b --parent a
	run strata changes b --parent ghost
	[ "$status" -eq 1 ]
	[[ "$output" == *"no such parent layer 'ghost'"* ]]
	run strata changes ../x
	[ "$status" -eq 2 ]
	[[ "$output" == *"invalid layer id"* ]]
}
