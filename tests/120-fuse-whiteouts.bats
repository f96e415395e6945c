#!/usr/bin/env bats
# strata-fuse: reading aufs and overlay whiteouts, writing them, and the .wh. namespace.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

@test "fuse: an aufs whiteout hides the name below; .wh. files never show" {
	sfs_mount_small
	[ ! -e "$TEST_DIR/mnt/b" ]
	run ls -A "$TEST_DIR/mnt"
	[[ "$output" != *".wh."* ]]
	[ "$(names "$TEST_DIR/mnt")" = "a c d hl1 hl2 keep opq" ]
}

@test "fuse: an opaque directory hides the directory below" {
	sfs_mount_small
	[ "$(names "$TEST_DIR/mnt/opq")" = "new" ]
	[ ! -e "$TEST_DIR/mnt/opq/old" ]
}

@test "fuse: whiteouts of an ro branch are not looked up, as in aufs" {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro:$TEST_DIR/l2=ro+wh"
	[ "$(cat "$TEST_DIR/mnt/b")" = b ]
	[ "$(names "$TEST_DIR/mnt/opq")" = "new old" ]
	run ls -A "$TEST_DIR/mnt"
	[[ "$output" != *".wh."* ]]
}

@test "fuse: overlay whiteouts (0/0 char devices) and trusted.overlay.opaque are read" {
	sfs_small_stack
	mkdir -p "$TEST_DIR/ov/opq"
	mknod "$TEST_DIR/ov/a" c 0 0
	setfattr -n trusted.overlay.opaque -v y "$TEST_DIR/ov/opq" 2>/dev/null || skip "no trusted xattrs"
	echo fresh >"$TEST_DIR/ov/opq/fresh"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/ov=ro+wh:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ ! -e "$TEST_DIR/mnt/a" ]
	[ "$(names "$TEST_DIR/mnt")" = "c d hl1 hl2 keep opq" ]
	[ "$(names "$TEST_DIR/mnt/opq")" = "fresh" ]
	run getfattr -d -m - "$TEST_DIR/mnt/opq"
	[[ "$output" != *overlay* ]]
}

@test "fuse: rm of a lower name writes an aufs whiteout in the rw branch" {
	sfs_mount_small
	rm "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/d/x"
	[ ! -e "$TEST_DIR/mnt/a" ]
	[ -f "$TEST_DIR/up/.wh.a" ]
	[ ! -s "$TEST_DIR/up/.wh.a" ]
	# as in aufs, whiteouts are hard links of the branch's .wh..wh.aufs
	[ "$(stat -c %i "$TEST_DIR/up/.wh.a")" = "$(stat -c %i "$TEST_DIR/up/.wh..wh.aufs")" ]
	[ -f "$TEST_DIR/up/d/.wh.x" ]
	[ -e "$TEST_DIR/l2/a" ]
	[ "$(names "$TEST_DIR/mnt/d")" = "sub y" ]
}

@test "fuse: rm of an upper-only name leaves no whiteout" {
	sfs_mount_small
	echo n >"$TEST_DIR/mnt/newfile"
	rm "$TEST_DIR/mnt/newfile"
	[ ! -e "$TEST_DIR/up/newfile" ]
	[ ! -e "$TEST_DIR/up/.wh.newfile" ]
}

@test "fuse: whiteout=overlay writes char devices and opaque xattrs" {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh,whiteout=overlay"
	rm "$TEST_DIR/mnt/a"
	[ -c "$TEST_DIR/up/a" ]
	[ "$(stat -c '%t:%T' "$TEST_DIR/up/a")" = "0:0" ]
	[ ! -e "$TEST_DIR/mnt/a" ]
	rm -r "$TEST_DIR/mnt/keep"
	mkdir "$TEST_DIR/mnt/keep"
	[ "$(getfattr --only-values -n trusted.overlay.opaque "$TEST_DIR/up/keep")" = y ]
	[ "$(names "$TEST_DIR/mnt/keep")" = "" ]
}

@test "fuse: a directory made over a whiteout is opaque" {
	sfs_mount_small
	rm -r "$TEST_DIR/mnt/d"
	[ ! -e "$TEST_DIR/mnt/d" ]
	[ -f "$TEST_DIR/up/.wh.d" ]
	mkdir "$TEST_DIR/mnt/d"
	[ -f "$TEST_DIR/up/d/.wh..wh..opq" ]
	[ ! -e "$TEST_DIR/up/.wh.d" ]
	[ "$(names "$TEST_DIR/mnt/d")" = "" ]
}

@test "fuse: a file made over a whiteout removes the whiteout" {
	sfs_mount_small
	rm "$TEST_DIR/mnt/a"
	echo again >"$TEST_DIR/mnt/a"
	[ ! -e "$TEST_DIR/up/.wh.a" ]
	[ "$(cat "$TEST_DIR/mnt/a")" = again ]
}

@test "fuse: names beginning .wh. give EPERM" {
	sfs_mount_small
	run "$SFS_PROBE" create-errno "$TEST_DIR/mnt/.wh.x"
	[ "$output" = EPERM ]
	run mkdir "$TEST_DIR/mnt/.wh.dir"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Operation not permitted"* ]]
	run stat "$TEST_DIR/mnt/.wh.b"
	[[ "$output" == *"Operation not permitted"* ]]
	run mv "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/.wh.a"
	[ "$status" -ne 0 ]
	[ -e "$TEST_DIR/mnt/a" ]
}

@test "fuse: scratch directories at the rw branch root never show" {
	sfs_mount_small
	echo x >>"$TEST_DIR/mnt/hl1"
	[ -d "$TEST_DIR/up/.wh..wh.orph" ]
	[ -d "$TEST_DIR/up/.wh..wh.plnk" ]
	run ls -A "$TEST_DIR/mnt"
	[[ "$output" != *".wh."* ]]
	# no temporary is left behind
	[ -z "$(ls -A "$TEST_DIR/up/.wh..wh.orph")" ]
}

@test "fuse: rmdir of a merged directory that looks empty, and not of one that does not" {
	sfs_mount_small
	run rmdir "$TEST_DIR/mnt/d"
	[ "$status" -ne 0 ]
	[[ "$output" == *"not empty"* ]]
	rm "$TEST_DIR/mnt/keep/k"
	rmdir "$TEST_DIR/mnt/keep"
	[ ! -e "$TEST_DIR/mnt/keep" ]
	[ -f "$TEST_DIR/up/.wh.keep" ]
	[ ! -e "$TEST_DIR/up/keep" ]
}
