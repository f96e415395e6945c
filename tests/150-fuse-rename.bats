#!/usr/bin/env bats
# strata-fuse: rename of files and directories, never EXDEV, POSIX replacement rules.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

@test "fuse: renaming a lower file whites out the old name" {
	sfs_mount_small
	mv "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/a2"
	[ ! -e "$TEST_DIR/mnt/a" ]
	[ "$(cat "$TEST_DIR/mnt/a2")" = a ]
	[ -f "$TEST_DIR/up/.wh.a" ]
	[ "$(cat "$TEST_DIR/up/a2")" = a ]
}

@test "fuse: renaming a merged lower directory copies the subtree up, never EXDEV" {
	sfs_mount_small
	mv "$TEST_DIR/mnt/d" "$TEST_DIR/mnt/moved"
	[ ! -e "$TEST_DIR/mnt/d" ]
	[ "$(names "$TEST_DIR/mnt/moved")" = "sub x y" ]
	[ "$(cat "$TEST_DIR/mnt/moved/sub/deep")" = deep ]
	[ -f "$TEST_DIR/up/.wh.d" ]
	[ -f "$TEST_DIR/up/moved/.wh..wh..opq" ]
	# making d again shows an empty directory
	mkdir "$TEST_DIR/mnt/d"
	[ "$(names "$TEST_DIR/mnt/d")" = "" ]
}

@test "fuse: a merged lower directory keeps its times through a rename" {
	sfs_small_stack
	touch -d '2001-02-03 04:05:06.789' "$TEST_DIR/l1/d" "$TEST_DIR/l1/d/y" "$TEST_DIR/l2/d/sub"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	want=$(stat -c %y "$TEST_DIR/l1/d")
	[ "$(stat -c %y "$TEST_DIR/mnt/d")" = "$want" ]
	mv "$TEST_DIR/mnt/d" "$TEST_DIR/mnt/moved"
	# in the branch, and through a new mount that has cached nothing
	[ "$(stat -c %y "$TEST_DIR/up/moved")" = "$want" ]
	[ "$(stat -c %y "$TEST_DIR/up/moved/sub")" = "$want" ]
	[ "$(stat -c %y "$TEST_DIR/up/moved/y")" = "$want" ]
	sfs_umount "$TEST_DIR/mnt"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ "$(stat -c %y "$TEST_DIR/mnt/moved")" = "$want" ]
}

@test "fuse: a renamed merged tree merges nothing at its new place, where a lower directory is whited out" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/f/b" "$TEST_DIR/l2/f/b" "$TEST_DIR/l2/c/b" "$TEST_DIR/mnt"
	echo x >"$TEST_DIR/l1/f/b/x"
	echo y >"$TEST_DIR/l2/f/b/y"
	echo z >"$TEST_DIR/l2/c/b/z"
	touch "$TEST_DIR/l1/.wh.c"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	# f/b is copied up and still merges l1 and l2; f's listing says so
	touch "$TEST_DIR/mnt/f/b/new"
	ls "$TEST_DIR/mnt/f" >/dev/null
	# the kernel forgets b: after the rename it is looked up through f's listing
	echo 2 >/proc/sys/vm/drop_caches
	mv "$TEST_DIR/mnt/f" "$TEST_DIR/mnt/c"
	[ "$(names "$TEST_DIR/mnt/c/b")" = "new x y" ]
	echo 2 >/proc/sys/vm/drop_caches
	[ "$(names "$TEST_DIR/mnt/c/b")" = "new x y" ]
}

@test "fuse: a directory moved into another keeps its content; the old place is empty" {
	sfs_mount_small
	mv "$TEST_DIR/mnt/keep" "$TEST_DIR/mnt/d/sub/"
	[ "$(cat "$TEST_DIR/mnt/d/sub/keep/k")" = k ]
	[ ! -e "$TEST_DIR/mnt/keep" ]
	echo more >>"$TEST_DIR/mnt/d/sub/keep/k"
	[ "$(cat "$TEST_DIR/mnt/d/sub/keep/k")" = "$(printf 'k\nmore')" ]
}

@test "fuse: rename over an existing file replaces it" {
	sfs_mount_small
	mv -f "$TEST_DIR/mnt/c" "$TEST_DIR/mnt/a"
	[ "$(cat "$TEST_DIR/mnt/a")" = c ]
	[ ! -e "$TEST_DIR/mnt/c" ]
	[ "$(names "$TEST_DIR/mnt")" = "a d hl1 hl2 keep opq" ]
}

@test "fuse: rename over an empty merged directory works, over a non-empty one gives ENOTEMPTY" {
	sfs_mount_small
	mkdir "$TEST_DIR/mnt/empty" "$TEST_DIR/mnt/src"
	touch "$TEST_DIR/mnt/src/f"
	run mv -T "$TEST_DIR/mnt/src" "$TEST_DIR/mnt/keep"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not empty"* ]]
	rm "$TEST_DIR/mnt/keep/k"
	mv -T "$TEST_DIR/mnt/src" "$TEST_DIR/mnt/keep"
	[ "$(names "$TEST_DIR/mnt/keep")" = f ]
	mv -T "$TEST_DIR/mnt/empty" "$TEST_DIR/mnt/keep2"
	[ -d "$TEST_DIR/mnt/keep2" ]
}

@test "fuse: rename of a directory over a file is ENOTDIR, of a file over a directory EISDIR" {
	sfs_mount_small
	run python3 -c "import os,sys; os.rename(sys.argv[1], sys.argv[2])" "$TEST_DIR/mnt/d" "$TEST_DIR/mnt/a"
	[[ "$output" == *NotADirectoryError* ]]
	run python3 -c "import os,sys; os.rename(sys.argv[1], sys.argv[2])" "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/d"
	[[ "$output" == *IsADirectoryError* ]]
}

@test "fuse: rename back and forth, and a chain of renames" {
	sfs_mount_small
	mv "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/t"
	mv "$TEST_DIR/mnt/t" "$TEST_DIR/mnt/a"
	[ "$(cat "$TEST_DIR/mnt/a")" = a ]
	mv "$TEST_DIR/mnt/d" "$TEST_DIR/mnt/e"
	mv "$TEST_DIR/mnt/e" "$TEST_DIR/mnt/d"
	[ "$(names "$TEST_DIR/mnt/d")" = "sub x y" ]
	[ "$(names "$TEST_DIR/mnt")" = "a c d hl1 hl2 keep opq" ]
}

@test "fuse: mv -n (RENAME_NOREPLACE) refuses an existing target" {
	sfs_mount_small
	run mv --no-clobber "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/c"
	[ "$(cat "$TEST_DIR/mnt/c")" = c ]
	[ "$(cat "$TEST_DIR/mnt/a")" = a ]
}

@test "fuse: the view survives a remount after renames" {
	sfs_mount_small
	mv "$TEST_DIR/mnt/d" "$TEST_DIR/mnt/opq/d"
	mv "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/opq/d/sub/a"
	before=$(tree_digest "$TEST_DIR/mnt")
	sfs_umount "$TEST_DIR/mnt"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ "$(tree_digest "$TEST_DIR/mnt")" = "$before" ]
}

# renameat2(RENAME_EXCHANGE), as overlayfs and local file systems have it
@test "fuse: RENAME_EXCHANGE swaps files and merged directories, lower branches untouched" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/A/sub" "$TEST_DIR/l2/A" "$TEST_DIR/l2/B" \
		"$TEST_DIR/l1/E" "$TEST_DIR/l2/E"
	echo a1 >"$TEST_DIR/l1/A/sub/x"
	echo a2 >"$TEST_DIR/l2/A/y"
	echo b2 >"$TEST_DIR/l2/B/z"
	echo f >"$TEST_DIR/l2/f"
	echo g >"$TEST_DIR/l1/g"
	echo e >"$TEST_DIR/l1/E/e"
	echo h >"$TEST_DIR/l2/h1"
	ln "$TEST_DIR/l2/h1" "$TEST_DIR/l2/h2"
	echo below-e >"$TEST_DIR/l2/E/old"
	(cd "$TEST_DIR" && find l1 l2 -type f | sort | xargs sha1sum) >"$TEST_DIR/lower.sum"
	br="br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	sfs_mount "$TEST_DIR/mnt" "$br"
	m=$TEST_DIR/mnt
	xchg() {
		python3 - "$1" "$2" <<-'PY'
			import ctypes, os, sys
			libc = ctypes.CDLL(None, use_errno=True)
			if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2):
			    e = ctypes.get_errno()
			    sys.exit("renameat2: " + os.strerror(e))
		PY
	}
	echo upper >"$m/u"
	xchg "$m/f" "$m/u"                 # lower file and upper file
	[ "$(cat "$m/f")" = upper ]
	[ "$(cat "$m/u")" = f ]
	xchg "$m/A" "$m/B"                 # two merged directories
	[ "$(names "$m/B")" = "sub y" ]
	[ "$(names "$m/A")" = z ]
	[ "$(cat "$m/B/sub/x")" = a1 ]
	[ "$(cat "$m/A/z")" = b2 ]
	xchg "$m/g" "$m/E"                 # a file and a directory with content below it too
	[ -d "$m/g" ]
	[ "$(names "$m/g")" = "e old" ]
	[ "$(cat "$m/E")" = g ]
	mkdir "$m/new"
	xchg "$m/new" "$m/B/sub"           # an upper-only directory into a merged one's place
	[ "$(names "$m/B/sub")" = "" ]
	[ "$(cat "$m/new/x")" = a1 ]
	xchg "$m/h1" "$m/h2"               # two names of one inode: nothing to swap but names
	echo more >>"$m/h1"
	[ "$(cat "$m/h2")" = "$(printf 'h\nmore')" ]
	rm "$m/h2"
	[ "$(cat "$m/h1")" = "$(printf 'h\nmore')" ]
	mv "$m/h1" "$m/h3"
	[ "$(cat "$m/h3")" = "$(printf 'h\nmore')" ]
	[ ! -e "$m/h1" ]
	[ ! -e "$m/h2" ]
	run xchg "$m/f" "$m/missing"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No such file"* ]]
	# as it shows after a remount, from the branches alone
	sfs_umount "$m"
	sfs_mount "$m" "$br"
	[ "$(cat "$m/f")" = upper ]
	[ "$(cat "$m/u")" = f ]
	[ "$(names "$m/B")" = "sub y" ]
	[ "$(names "$m/A")" = z ]
	[ "$(names "$m/B/sub")" = "" ]
	[ "$(names "$m/new")" = x ]
	[ "$(names "$m/g")" = "e old" ]
	[ "$(cat "$m/E")" = g ]
	(cd "$TEST_DIR" && sha1sum -c --quiet lower.sum)
}
