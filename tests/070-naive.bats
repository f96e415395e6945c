#!/usr/bin/env bats
# The naive driver: diff, diff-size and apply against a parent that is not the layer's own.

load helpers

per_test_setup() {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	strata init --engine fuse >/dev/null
}

# graphtest's addManyFiles: 100 files per directory-<i>, 64 bytes each from a seed.
add_many_files() {
	local dir=$1 n=$2 seed=$3 i
	for i in $(seq 0 $((n - 1))); do
		mkdir -p "$dir/directory-$((i / 100))"
		python3 -c 'import random,sys; r=random.Random(int(sys.argv[1])*1000+int(sys.argv[2])); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(64)))' "$seed" "$i" \
			>"$dir/directory-$((i / 100))/file-$i"
	done
}

@test "graphtest DriverTestDiffApply (N=10): naive size 640, and the diff applied on base gives the upper's view" {
	strata create base
	add_many_files "$ROOT/diff/base" 10 3
	echo remove >"$ROOT/diff/base/file-remove.txt"
	mkdir -p "$ROOT/diff/base/var/lib"
	strata create upper --parent base
	dir=$(strata mount upper)
	add_many_files "$dir" 10 6
	rm "$dir/file-remove.txt"
	rm -r "$dir/var/lib"
	strata unmount upper
	run strata diff-size upper --parent ''
	[ "$status" -eq 0 ]
	[ "$output" = 640 ]
	strata diff upper --parent base -o "$TEST_DIR/upper.tar"
	strata create diff --parent base
	run strata apply diff --parent base "$TEST_DIR/upper.tar"
	[ "$status" -eq 0 ]
	[ "$output" = 640 ]
	d=$(strata mount diff)
	for i in $(seq 0 9); do
		cmp "$d/directory-0/file-$i" "$ROOT/diff/upper/directory-0/file-$i"
	done
	[ ! -e "$d/file-remove.txt" ]
	[ ! -e "$d/var/lib" ]
	strata unmount diff
}

@test "naive diff: the changes against another layer as a tar, deletes as whiteouts" {
	strata create a
	mkdir -p "$ROOT/diff/a/etc"
	echo 1 >"$ROOT/diff/a/etc/one"
	echo 2 >"$ROOT/diff/a/etc/two"
	strata create b --parent a
	dir=$(strata mount b)
	echo new >"$dir/etc/three"
	strata unmount b
	strata create c --parent b
	dir=$(strata mount c)
	rm "$dir/etc/two"
	echo changed >"$dir/etc/one"
	strata unmount c
	strata diff c --parent a -o "$TEST_DIR/c-a.tar"
	run tar -tvf "$TEST_DIR/c-a.tar"
	[ "$status" -eq 0 ]
	names=$(tar -tf "$TEST_DIR/c-a.tar" | tr '\n' ' ')
	[ "$names" = "etc/ etc/one etc/three etc/.wh.two " ]
	[ "$(tar -xOf "$TEST_DIR/c-a.tar" etc/one)" = changed ]
	run strata diff-size c --parent a
	[ "$output" = $((8 + 4)) ]
	# Nothing stays mounted.
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}

@test "pkg/archive TestChangesSizeWithHardlinks: naive diff-size counts a hard-linked file once" {
	strata create base
	strata create links --parent base
	dir=$(strata mount links)
	for i in $(seq 0 99); do
		printf fooo >"$dir/file-$i"
		chmod 0700 "$dir/file-$i"
		ln "$dir/file-$i" "$dir/file-$i-link"
	done
	[ "$(stat -c %h "$dir/file-7")" -eq 2 ]
	strata unmount links
	# Against nothing the mounted union is compared with an empty tree: 100 inodes of 4 bytes.
	run strata diff-size links --parent ''
	[ "$status" -eq 0 ]
	[ "$output" = 400 ]
	# Against a grandparent (naive too): nothing changed gives 0, only deletes give 0.
	strata create mid --parent links
	strata create same --parent mid
	run strata diff-size same --parent links
	[ "$status" -eq 0 ]
	[ "$output" = 0 ]
	strata create gone --parent mid
	dir=$(strata mount gone)
	rm "$dir"/file-*
	strata unmount gone
	run strata changes gone --parent links
	[ "${#lines[@]}" -eq 200 ]
	[ -z "$(printf '%s\n' "${lines[@]}" | grep -v '^D ')" ]
	run strata diff-size gone --parent links
	[ "$status" -eq 0 ]
	[ "$output" = 0 ]
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}
