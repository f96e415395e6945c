# Shared by the strata-fuse suites: building layer stacks and mounting them so that the
# teardown in helpers.bash always unmounts and stops the daemon.

SFS_PROBE=$STRATA_BUILD/tests/fuse/sfs-probe
SFS_FUZZ=$STRATA_BUILD/tests/fuse/sfs-fuzz

sfs_require() {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	[ -x "$STRATA_FUSE_BIN" ] || skip "strata-fuse not built"
}

# sfs_mount MOUNTPOINT OPTIONS [ARGS...]: mounts, records the daemon's pid for teardown.
sfs_mount() {
	local mnt=$1 opts=$2
	shift 2
	mkdir -p "$mnt"
	local pf
	pf=$(mktemp "$TEST_DIR/.pid.XXXXXX")
	"$STRATA_FUSE_BIN" "$mnt" -o "pidfile=$pf,$opts" "$@" || return 1
	track_pid "$(cat "$pf")"
}

# sfs_umount MOUNTPOINT: unmounts and waits for the daemon to go.
sfs_umount() {
	local mnt=$1
	# the daemon of a mount whose branches are in this one may still be exiting: busy a while
	for _ in $(seq 50); do
		fusermount3 -u "$mnt" 2>/dev/null && break
		mountpoint -q "$mnt" || break
		sleep 0.1
	done
	! mountpoint -q "$mnt" || fusermount3 -u "$mnt"
	for _ in $(seq 50); do
		mountpoint -q "$mnt" || break
		sleep 0.1
	done
	! mountpoint -q "$mnt"
}

# A small stack: $TEST_DIR/{up,l1,l2} (l1 above l2), mounted on $TEST_DIR/mnt.
#   l2: a, b, d/x, d/sub/deep, keep/k, hl1=hl2 (hard links)
#   l1: c, .wh.b, d/y, opq/ (opaque over l2's opq/old)
sfs_small_stack() {
	local t=$TEST_DIR
	mkdir -p "$t/up" "$t/l1" "$t/l2" "$t/mnt"
	echo a >"$t/l2/a"
	echo b >"$t/l2/b"
	mkdir -p "$t/l2/d/sub" "$t/l2/keep" "$t/l2/opq"
	echo x >"$t/l2/d/x"
	echo deep >"$t/l2/d/sub/deep"
	echo k >"$t/l2/keep/k"
	echo old >"$t/l2/opq/old"
	echo hl >"$t/l2/hl1"
	ln "$t/l2/hl1" "$t/l2/hl2"
	echo c >"$t/l1/c"
	touch "$t/l1/.wh.b"
	mkdir -p "$t/l1/d" "$t/l1/opq"
	echo y >"$t/l1/d/y"
	touch "$t/l1/opq/.wh..wh..opq"
	echo new >"$t/l1/opq/new"
}

sfs_mount_small() {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh${1:+,$1}"
}

# Sorted names in a directory, one line.
names() {
	ls -A "$1" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
}
