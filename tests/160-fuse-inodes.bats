#!/usr/bin/env bats
# strata-fuse: inode numbers stable for the mount's life, hard links one inode.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
}

@test "fuse: st_ino does not change on copy-up, nor after the kernel forgets the inode" {
	sfs_mount_small
	ino=$(stat -c %i "$TEST_DIR/mnt/a")
	dino=$(stat -c %i "$TEST_DIR/mnt/d/sub")
	echo more >>"$TEST_DIR/mnt/a"
	touch "$TEST_DIR/mnt/d/sub/new"
	[ "$(stat -c %i "$TEST_DIR/mnt/a")" = "$ino" ]
	[ "$(stat -c %i "$TEST_DIR/mnt/d/sub")" = "$dino" ]
	drop_caches
	[ "$(stat -c %i "$TEST_DIR/mnt/a")" = "$ino" ]
	[ "$(stat -c %i "$TEST_DIR/mnt/d/sub")" = "$dino" ]
}

@test "fuse: readdir's d_ino agrees with stat's st_ino" {
	sfs_mount_small
	echo x >>"$TEST_DIR/mnt/c"
	drop_caches
	while read -r ino name; do
		[ "$(stat -c %i "$TEST_DIR/mnt/$name")" = "$ino" ]
	done < <(ls -i1 "$TEST_DIR/mnt" | awk '{ print $1, $2 }')
}

@test "fuse: hard links in a layer are one inode with the right link count" {
	sfs_mount_small
	[ "$(stat -c %i "$TEST_DIR/mnt/hl1")" = "$(stat -c %i "$TEST_DIR/mnt/hl2")" ]
	[ "$(stat -c %h "$TEST_DIR/mnt/hl1")" = 2 ]
}

@test "fuse: hard links stay one inode after one name is copied up" {
	sfs_mount_small
	ino=$(stat -c %i "$TEST_DIR/mnt/hl1")
	echo more >>"$TEST_DIR/mnt/hl1"
	[ "$(cat "$TEST_DIR/mnt/hl2")" = "$(printf 'hl\nmore')" ]
	[ "$(stat -c %i "$TEST_DIR/mnt/hl2")" = "$ino" ]
	[ "$(stat -c %i "$TEST_DIR/mnt/hl1")" = "$ino" ]
	drop_caches
	[ "$(cat "$TEST_DIR/mnt/hl2")" = "$(printf 'hl\nmore')" ]
	echo again >>"$TEST_DIR/mnt/hl2"
	[ "$(cat "$TEST_DIR/mnt/hl1")" = "$(printf 'hl\nmore\nagain')" ]
	# both names in the rw branch are one file, with no other link (a layer tar needs that)
	[ "$(stat -c %i "$TEST_DIR/up/hl1")" = "$(stat -c %i "$TEST_DIR/up/hl2")" ]
	[ "$(stat -c %h "$TEST_DIR/up/hl1")" = 2 ]
	[ "$(stat -c %h "$TEST_DIR/mnt/hl2")" = 2 ]
}

@test "fuse: ln makes a second name of the same inode, across copy-up" {
	sfs_mount_small
	ino=$(stat -c %i "$TEST_DIR/mnt/a")
	ln "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/d/a-link"
	[ "$(stat -c %i "$TEST_DIR/mnt/d/a-link")" = "$ino" ]
	[ "$(stat -c %h "$TEST_DIR/mnt/a")" = 2 ]
	echo w >>"$TEST_DIR/mnt/d/a-link"
	[ "$(cat "$TEST_DIR/mnt/a")" = "$(printf 'a\nw')" ]
	rm "$TEST_DIR/mnt/a"
	[ "$(stat -c %h "$TEST_DIR/mnt/d/a-link")" = 1 ]
	[ "$(cat "$TEST_DIR/mnt/d/a-link")" = "$(printf 'a\nw')" ]
}

@test "fuse: an open file keeps working after its name is removed" {
	sfs_mount_small
	exec 7<"$TEST_DIR/mnt/c"
	rm "$TEST_DIR/mnt/c"
	[ "$(cat <&7)" = c ]
	exec 7<&-
	echo tmp >"$TEST_DIR/mnt/tmpf"
	exec 8<>"$TEST_DIR/mnt/tmpf"
	rm "$TEST_DIR/mnt/tmpf"
	echo more >&8
	[ "$(stat -L -c %s /proc/self/fd/8)" -gt 0 ]
	exec 8<&-
}

@test "fuse: inode numbers are unique across the tree" {
	sfs_mount_small
	touch "$TEST_DIR/mnt/n1" "$TEST_DIR/mnt/d/n2"
	echo >>"$TEST_DIR/mnt/d/x"
	dups=$(find "$TEST_DIR/mnt" ! -name hl2 -printf '%i\n' | sort | uniq -d | wc -l)
	[ "$dups" -eq 0 ]
}

# The other names of a lower hard link come from an index of the branch made at the first
# copy-up that needs it; the branch does not change while mounted.
@test "fuse: many lower hard links copied up one after another each stay one inode" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/a" "$TEST_DIR/l1/b/c"
	for i in $(seq 1 40); do
		echo "$i" >"$TEST_DIR/l1/a/f$i"
		ln "$TEST_DIR/l1/a/f$i" "$TEST_DIR/l1/b/c/g$i"
	done
	ln "$TEST_DIR/l1/a/f7" "$TEST_DIR/l1/third"
	echo single >"$TEST_DIR/l1/a/single"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh"
	m=$TEST_DIR/mnt
	for i in $(seq 1 40); do echo "more $i" >>"$m/b/c/g$i"; done
	echo x >>"$m/a/single"
	for i in $(seq 1 40); do
		[ "$(tail -1 "$m/a/f$i")" = "more $i" ]
		[ "$(stat -c %i "$m/a/f$i")" = "$(stat -c %i "$m/b/c/g$i")" ]
		# the rw branch holds one inode for both names, as a layer tar needs
		[ "$(stat -c %i "$TEST_DIR/up/a/f$i")" = "$(stat -c %i "$TEST_DIR/up/b/c/g$i")" ]
	done
	[ "$(stat -c %h "$TEST_DIR/up/third")" = 3 ]
	[ "$(tail -1 "$m/third")" = "more 7" ]
	[ "$(stat -c %h "$TEST_DIR/up/a/single")" = 1 ]
	[ "$(cat "$TEST_DIR/l1/a/f7")" = 7 ]
}

# Past a listing's first 256 entries, names may come without attributes (see 130-fuse-merge): the
# inode number of each such entry is the one its lookup gives, whatever happened to it
# (copied up, linked, renamed) and on whichever file system its branch is.
@test "fuse: d_ino of a listing's entries, given with attributes or not, is their st_ino" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/d" "$TEST_DIR/l2"
	mount -t tmpfs tmpfs "$TEST_DIR/l2"
	mkdir "$TEST_DIR/l2/d"
	for i in $(seq 1 600); do echo "$i" >"$TEST_DIR/l2/d/f$i"; done
	for i in $(seq 1 7 600); do echo top >"$TEST_DIR/l1/d/f$i"; done
	for i in $(seq 601 700); do mkdir "$TEST_DIR/l2/d/s$i" "$TEST_DIR/l1/d/s$i"; done
	for i in $(seq 1 50); do ln "$TEST_DIR/l2/d/f$((i + 300))" "$TEST_DIR/l2/d/h$i"; done
	touch "$TEST_DIR/l1/d/.wh.f5" "$TEST_DIR/l1/d/.wh.f9"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	m=$TEST_DIR/mnt/d
	for i in $(seq 200 260); do chmod 600 "$m/f$i"; done
	mkdir "$m/new"
	ln "$m/f400" "$m/l400"
	mv "$m/f500" "$m/m500"
	echo 2 >/proc/sys/vm/drop_caches
	run python3 - "$m" <<-'EOF'
		import os, sys
		d = sys.argv[1]
		for rnd in (1, 2):  # the second listing, by a process that stats, has attributes
		    ents = [(e.name, e.inode()) for e in os.scandir(d)]
		    bad = [(n, i, os.lstat(d + "/" + n).st_ino) for n, i in ents
		           if os.lstat(d + "/" + n).st_ino != i]
		    print(rnd, len(ents), bad[:3])
		    if bad or len(ents) != 750:
		        sys.exit(1)
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
}
