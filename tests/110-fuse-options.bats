#!/usr/bin/env bats
# strata-fuse: command line, branch spellings, daemonizing, errors.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

@test "fuse: br= mounts as fuse.strata-fuse with the fsname as source, pidfile names the daemon" {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh,fsname=strata:abc,subtype=strata-fuse"
	run awk -v m="$TEST_DIR/mnt" '$5 == m { for (i = 7; $i != "-"; i++); print $(i+1), $(i+2) }' /proc/self/mountinfo
	[ "$output" = "fuse.strata-fuse strata:abc" ]
	[ "$(names "$TEST_DIR/mnt")" = "a c d hl1 hl2 keep opq" ]
}

@test "fuse: the daemon's pid is in the pidfile and it exits on fusermount3 -u" {
	sfs_small_stack
	mkdir -p "$TEST_DIR/mnt"
	"$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw:$TEST_DIR/l2=ro+wh,pidfile=$TEST_DIR/pid"
	pid=$(cat "$TEST_DIR/pid")
	track_pid "$pid"
	kill -0 "$pid"
	mountpoint -q "$TEST_DIR/mnt"
	fusermount3 -u "$TEST_DIR/mnt"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || false
	[ ! -e "$TEST_DIR/pid" ]
}

@test "fuse: exits on umount too" {
	sfs_mount_small
	pid=$(tail -1 "$TEST_DIR/.pids")
	umount "$TEST_DIR/mnt"
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || false
}

@test "fuse: SOURCE MOUNTPOINT form with brfile, as the mount engine calls it" {
	sfs_small_stack
	printf '%s\n' "$TEST_DIR/up=rw" "$TEST_DIR/l1=ro+wh" "$TEST_DIR/l2=ro+wh" >"$TEST_DIR/brfile"
	mkdir -p "$TEST_DIR/mnt"
	env -i "$STRATA_FUSE_BIN" strata:xyz "$TEST_DIR/mnt" \
		-o "brfile=$TEST_DIR/brfile,fsname=strata:xyz,subtype=strata-fuse,allow_other,pidfile=$TEST_DIR/pid"
	track_pid "$(cat "$TEST_DIR/pid")"
	grep -q " $TEST_DIR/mnt .* - fuse.strata-fuse strata:xyz " /proc/self/mountinfo
	[ "$(cat "$TEST_DIR/mnt/c")" = c ]
	[ "$(names "$TEST_DIR/mnt")" = "a c d hl1 hl2 keep opq" ]
}

@test "fuse: br: spelling and branches without permissions (first rw, others ro)" {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "br:$TEST_DIR/up:$TEST_DIR/l1"
	[ "$(names "$TEST_DIR/mnt")" = "c d opq" ]
	touch "$TEST_DIR/mnt/new"
	[ -e "$TEST_DIR/up/new" ]
}

@test "fuse: overlay-style lowerdir, upperdir, workdir" {
	sfs_small_stack
	mkdir -p "$TEST_DIR/work"
	sfs_mount "$TEST_DIR/mnt" "lowerdir=$TEST_DIR/l1:$TEST_DIR/l2,upperdir=$TEST_DIR/up,workdir=$TEST_DIR/work,index=off"
	[ "$(names "$TEST_DIR/mnt")" = "a c d hl1 hl2 keep opq" ]
	echo more >>"$TEST_DIR/mnt/a"
	[ "$(cat "$TEST_DIR/up/a")" = "$(printf 'a\nmore')" ]
	# scratch space lives in the workdir, not in the upper layer
	[ "$(names "$TEST_DIR/up")" = "a" ]
}

@test "fuse: mount.fuse3 drives it (SOURCE MOUNTPOINT -o OPTIONS)" {
	command -v mount.fuse3 >/dev/null || skip "no mount.fuse3"
	sfs_small_stack
	mkdir -p "$TEST_DIR/work"
	# the TYPE#SOURCE form names the program by path: mount(8) would search a fixed PATH
	mount.fuse3 "$STRATA_FUSE_BIN#strata:m" "$TEST_DIR/mnt" \
		-o "lowerdir=$TEST_DIR/l1:$TEST_DIR/l2,upperdir=$TEST_DIR/up,workdir=$TEST_DIR/work,pidfile=$TEST_DIR/pid"
	track_pid "$(cat "$TEST_DIR/pid")"
	grep -q " $TEST_DIR/mnt .* - fuse.strata-fuse strata:m " /proc/self/mountinfo
	[ "$(cat "$TEST_DIR/mnt/c")" = c ]
}

@test "fuse: lowerdir alone is a read-only union" {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "lowerdir=$TEST_DIR/l1:$TEST_DIR/l2"
	[ "$(cat "$TEST_DIR/mnt/a")" = a ]
	run touch "$TEST_DIR/mnt/new"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
}

@test "fuse: a missing branch is named, nothing is mounted" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/mnt"
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw:$TEST_DIR/nope=ro+wh"
	[ "$status" -ne 0 ]
	[[ "$output" == *"branch '$TEST_DIR/nope'"* ]]
	! mountpoint -q "$TEST_DIR/mnt" || false
}

@test "fuse: an empty element of the branch list is refused and named" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/lo" "$TEST_DIR/mnt"
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw::$TEST_DIR/lo"
	[ "$status" -ne 0 ]
	[[ "$output" == *"element 2 of '$TEST_DIR/up=rw::$TEST_DIR/lo' is empty"* ]]
	! mountpoint -q "$TEST_DIR/mnt" || false
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw:$TEST_DIR/lo:"
	[ "$status" -ne 0 ]
	[[ "$output" == *"element 3 of"*"is empty"* ]]
	! mountpoint -q "$TEST_DIR/mnt" || false
}

@test "fuse: unknown options and permissions are named" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/lo" "$TEST_DIR/mnt"
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw,frobnicate"
	[ "$status" -ne 0 ]
	[[ "$output" == *frobnicate* ]]
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw:$TEST_DIR/lo=rx"
	[ "$status" -ne 0 ]
	[[ "$output" == *"unknown permission 'rx'"* ]]
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=ro:$TEST_DIR/lo=rw"
	[ "$status" -ne 0 ]
	[[ "$output" == *"only the top branch may be rw"* ]]
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "lowerdir=$TEST_DIR/lo,upperdir=$TEST_DIR/up"
	[ "$status" -ne 0 ]
	[[ "$output" == *workdir* ]]
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw,whiteout=zfs"
	[ "$status" -ne 0 ]
	[[ "$output" == *"option 'whiteout'"* ]]
	run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no branches"* ]]
	! mountpoint -q "$TEST_DIR/mnt" || false
}

@test "fuse: -f stays in the foreground and serves" {
	sfs_small_stack
	mkdir -p "$TEST_DIR/mnt"
	"$STRATA_FUSE_BIN" -f "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw:$TEST_DIR/l2=ro+wh" &
	track_pid $!
	for _ in $(seq 50); do mountpoint -q "$TEST_DIR/mnt" && break; sleep 0.1; done
	[ "$(cat "$TEST_DIR/mnt/a")" = a ]
	fusermount3 -u "$TEST_DIR/mnt"
	wait
}

# uidmapping=/gidmapping= as containers/storage gives them to its mount program: triples
# STORED:SHOWN:COUNT, joined by ':'. Owners and ACL entries show mapped, are stored unmapped;
# what has no mapping shows as the overflow id and cannot be stored.
@test "fuse: uidmapping and gidmapping show stored ids mapped and store shown ids unmapped" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/pub"
	echo a >"$TEST_DIR/l1/f0"
	echo b >"$TEST_DIR/l1/f1"
	chown 1:1 "$TEST_DIR/l1/f1"
	echo c >"$TEST_DIR/l1/far"
	chown 70000:70000 "$TEST_DIR/l1/far"
	chmod 1777 "$TEST_DIR/l1/pub"
	chmod 755 "$TEST_DIR" # for the unprivileged creator
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh,allow_other,uidmapping=0:100000:65536,gidmapping=0:200000:1:1:300001:65535"
	m=$TEST_DIR/mnt
	[ "$(stat -c %u:%g "$m/f0")" = 100000:200000 ]
	[ "$(stat -c %u:%g "$m/f1")" = 100001:300001 ]
	[ "$(stat -c %u:%g "$m/far")" = 65534:65534 ]
	# listed with attributes too
	[ "$(ls -ln "$m" | awk '$NF == "f1" { print $3 ":" $4 }')" = 100001:300001 ]
	chown 100005:300007 "$m/f0"
	[ "$(stat -c %u:%g "$TEST_DIR/up/f0")" = 5:7 ]
	[ "$(stat -c %u:%g "$m/f0")" = 100005:300007 ]
	run chown 42 "$m/f1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid argument"* ]]
	[ "$(stat -c %u "$m/f1")" = 100001 ]
	# a new object is its creator's, stored unmapped; a creator with no mapping owns nothing
	setpriv --reuid=100003 --regid=300003 --clear-groups touch "$m/pub/new"
	setpriv --reuid=100003 --regid=300003 --clear-groups mkdir "$m/pub/dir"
	[ "$(stat -c %u:%g "$TEST_DIR/up/pub/new")" = 3:3 ]
	[ "$(stat -c %u:%g "$TEST_DIR/up/pub/dir")" = 3:3 ]
	[ "$(stat -c %u:%g "$m/pub/new")" = 100003:300003 ]
	run touch "$m/pub/byroot"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Value too large"* ]]
	[ ! -e "$TEST_DIR/up/pub/byroot" ]
	# the ids in ACL entries
	setfacl -m u:100009:r,g:300010:rw "$m/f0"
	[ "$(getfacl -n "$TEST_DIR/up/f0" | grep -E '^(user|group):[0-9]' | tr '\n' ' ')" = "user:9:r-- group:10:rw- " ]
	[ "$(getfacl -n "$m/f0" | grep -E '^(user|group):[0-9]' | tr '\n' ' ')" = "user:100009:r-- group:300010:rw- " ]
	run setfacl -m u:5:r "$m/f0"
	[ "$status" -ne 0 ]
}

# squash_to_uid=, squash_to_gid=, squash_to_root (fuse-overlayfs's): every object shows as
# owned by one user and group; what is stored does not change. static_nlink: directories
# show one link.
@test "fuse: squash_to_uid, squash_to_gid and squash_to_root show one owner for everything; static_nlink" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/d/s1" "$TEST_DIR/l1/d/s2"
	echo a >"$TEST_DIR/l1/f"
	chown 5:6 "$TEST_DIR/l1/f"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh,squash_to_root,squash_to_uid=1000"
	[ "$(stat -c %u:%g "$TEST_DIR/mnt/f")" = 1000:0 ]
	[ "$(stat -c %u:%g "$TEST_DIR/mnt")" = 1000:0 ]
	echo more >>"$TEST_DIR/mnt/f"
	[ "$(stat -c %u:%g "$TEST_DIR/up/f")" = 5:6 ]
	sfs_umount "$TEST_DIR/mnt"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh,squash_to_gid=7"
	[ "$(stat -c %u:%g "$TEST_DIR/mnt/f")" = 5:7 ]
	# static_nlink: a directory with subdirectories shows 1 link, not 2 + subdirectories
	[ "$(stat -c %h "$TEST_DIR/mnt/d")" = 4 ]
	sfs_umount "$TEST_DIR/mnt"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh,static_nlink"
	[ "$(stat -c %h "$TEST_DIR/mnt/d")" = 1 ]
	[ "$(stat -c %h "$TEST_DIR/mnt/f")" = 1 ]
}

@test "fuse: a bad uidmapping, gidmapping or squash id is refused, naming the option" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/mnt"
	for bad in "uidmapping=0:100000" "uidmapping=0:1:10:5:5:10" "gidmapping=0:1:0" \
		"gidmapping=a:b:c" "uidmapping=" "uidmapping=0:1:4294967295" "uidmapping=0:1:5:" \
		"gidmapping=0:1:5:6:7:8:" \
		"squash_to_uid=x" "squash_to_gid=4294967295" "squash_to_uid=-1"; do
		run "$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw,$bad"
		echo "$bad: $output"
		[ "$status" -ne 0 ]
		[[ "$output" == *"option '${bad%%=*}'"* ]]
		! mountpoint -q "$TEST_DIR/mnt" || false
	done
}
