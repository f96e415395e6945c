#!/usr/bin/env bats
# strata-fuse: copy-up to the rw branch: data, holes, metadata, parents, atomicity.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

@test "fuse: appending to a lower file copies it up; the lower branch is untouched" {
	sfs_mount_small
	echo more >>"$TEST_DIR/mnt/a"
	[ "$(cat "$TEST_DIR/mnt/a")" = "$(printf 'a\nmore')" ]
	[ "$(cat "$TEST_DIR/up/a")" = "$(printf 'a\nmore')" ]
	[ "$(cat "$TEST_DIR/l2/a")" = a ]
}

@test "fuse: reading does not copy up" {
	sfs_mount_small
	cat "$TEST_DIR/mnt/a" "$TEST_DIR/mnt/d/x" >/dev/null
	stat "$TEST_DIR/mnt/c" >/dev/null
	[ "$(names "$TEST_DIR/up")" = ".wh..wh.aufs .wh..wh.orph" ]
}

@test "fuse: copy-up keeps mode (setuid too), owner, times and xattrs" {
	sfs_small_stack
	f=$TEST_DIR/l2/a
	chown 1234:5678 "$f"
	chmod 4751 "$f"
	setfattr -n user.color -v blue "$f"
	touch -d '2001-02-03 04:05:06.123456789' "$f"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	setfattr -n user.other -v x "$TEST_DIR/mnt/a"
	u=$TEST_DIR/up/a
	[ -f "$u" ]
	[ "$(stat -c '%a %u:%g %y' "$u")" = "4751 1234:5678 2001-02-03 04:05:06.123456789 +0000" ]
	[ "$(getfattr --only-values -n user.color "$u")" = blue ]
	[ "$(getfattr --only-values -n user.other "$TEST_DIR/mnt/a")" = x ]
	[ "$(cat "$u")" = a ]
}

@test "fuse: copy-up keeps file capabilities, which chown would clear" {
	command -v setcap >/dev/null || skip "no setcap"
	sfs_small_stack
	f=$TEST_DIR/l2/a
	chown 1234:5678 "$f"
	setcap cap_net_raw+ep "$f" || skip "no file capabilities here"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	touch "$TEST_DIR/mnt/a"
	[ -f "$TEST_DIR/up/a" ]
	[ "$(stat -c '%u:%g' "$TEST_DIR/up/a")" = 1234:5678 ]
	run getcap "$TEST_DIR/up/a"
	[[ "$output" == *cap_net_raw=ep* ]]
	run getcap "$TEST_DIR/mnt/a"
	[[ "$output" == *cap_net_raw=ep* ]]
}

@test "fuse: a lower file unlinked while open for writing can still be written" {
	sfs_small_stack
	for h in no yes; do
		sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh,handles=$h"
		run "$SFS_PROBE" unlinked-rw "$TEST_DIR/mnt/a"
		echo "handles=$h: $output"
		[ "$status" -eq 0 ]
		[ ! -e "$TEST_DIR/mnt/a" ]
		[ ! -e "$TEST_DIR/up/a" ]
		[ "$(cat "$TEST_DIR/l2/a")" = a ]
		sfs_umount "$TEST_DIR/mnt"
		# nothing left behind in the scratch directory
		[ -z "$(ls -A "$TEST_DIR/up/.wh..wh.orph")" ]
		rm "$TEST_DIR/up/.wh.a"
	done
}

@test "fuse: a write through a removed name of a lower hard link shows through the other" {
	sfs_small_stack
	for h in no yes; do
		sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh,handles=$h"
		run "$SFS_PROBE" unlinked-link "$TEST_DIR/mnt"
		echo "handles=$h: $output"
		[ "$status" -eq 0 ]
		[ "$(cat "$TEST_DIR/up/hl2")" = HL ]
		[ "$(cat "$TEST_DIR/l2/hl2")" = hl ]
		sfs_umount "$TEST_DIR/mnt"
		rm "$TEST_DIR/up/hl2" "$TEST_DIR/up/.wh.hl1"
	done
}

@test "fuse: copy-up of symlinks, fifos and devices keeps their xattrs" {
	sfs_small_stack
	l=$TEST_DIR/l2
	ln -s a "$l/sym"
	mkfifo "$l/fifo"
	mknod "$l/null" c 1 3
	setfattr -h -n trusted.t -v sym "$l/sym"
	# Linux allows user.* on regular files and directories only
	setfattr -n trusted.t -v fifo "$l/fifo"
	setfattr -n trusted.t -v dev "$l/null"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	chown -h 5:6 "$TEST_DIR/mnt/sym" "$TEST_DIR/mnt/fifo" "$TEST_DIR/mnt/null"
	u=$TEST_DIR/up
	[ "$(stat -c '%F %u:%g' "$u/sym")" = "symbolic link 5:6" ]
	[ "$(getfattr -h --only-values -n trusted.t "$u/sym")" = sym ]
	[ "$(getfattr --only-values -n trusted.t "$u/fifo")" = fifo ]
	[ "$(getfattr --only-values -n trusted.t "$u/null")" = dev ]
	[ "$(getfattr -h --only-values -n trusted.t "$TEST_DIR/mnt/sym")" = sym ]
}

@test "fuse: parent directories are copied up first, with their metadata" {
	sfs_small_stack
	chmod 0711 "$TEST_DIR/l2/d/sub"
	chown 42:43 "$TEST_DIR/l2/d/sub"
	setfattr -n user.dir -v yes "$TEST_DIR/l2/d/sub"
	touch -d '2002-01-01 00:00:00' "$TEST_DIR/l2/d/sub"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	echo x >>"$TEST_DIR/mnt/d/sub/deep"
	[ "$(stat -c '%a %u:%g' "$TEST_DIR/up/d/sub")" = "711 42:43" ]
	[ "$(getfattr --only-values -n user.dir "$TEST_DIR/up/d/sub")" = yes ]
	[ "$(stat -c %Y "$TEST_DIR/up/d/sub")" = "$(date -d '2002-01-01 00:00:00' +%s)" ]
	# the copied-up directory still merges with the lower one
	[ "$(names "$TEST_DIR/mnt/d")" = "sub x y" ]
}

@test "fuse: chmod, chown, touch, truncate and setfattr each copy up" {
	sfs_mount_small
	chmod 600 "$TEST_DIR/mnt/a"
	[ "$(stat -c %a "$TEST_DIR/up/a")" = 600 ]
	chown 7:8 "$TEST_DIR/mnt/c"
	[ "$(stat -c %u:%g "$TEST_DIR/up/c")" = 7:8 ]
	touch -d '2010-10-10 10:10:10' "$TEST_DIR/mnt/d/x"
	[ "$(stat -c %Y "$TEST_DIR/up/d/x")" = "$(date -d '2010-10-10 10:10:10' +%s)" ]
	truncate -s 1 "$TEST_DIR/mnt/d/y"
	[ "$(stat -c %s "$TEST_DIR/up/d/y")" = 1 ]
	setfattr -n user.k -v v "$TEST_DIR/mnt/keep/k"
	[ -f "$TEST_DIR/up/keep/k" ]
	[ "$(cat "$TEST_DIR/up/keep/k")" = k ]
}

@test "fuse: O_TRUNC of a lower file gives an empty upper file" {
	sfs_mount_small
	echo new >"$TEST_DIR/mnt/a"
	[ "$(cat "$TEST_DIR/mnt/a")" = new ]
	[ "$(cat "$TEST_DIR/up/a")" = new ]
}

@test "fuse: holes survive copy-up" {
	sfs_small_stack
	truncate -s 64M "$TEST_DIR/l2/sparse"
	echo end >>"$TEST_DIR/l2/sparse"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	echo x >>"$TEST_DIR/mnt/sparse"
	[ "$(stat -c %s "$TEST_DIR/up/sparse")" -eq $((64 * 1024 * 1024 + 6)) ]
	[ "$(du -k "$TEST_DIR/up/sparse" | cut -f1)" -lt 1024 ]
	[ "$(tail -c 6 "$TEST_DIR/mnt/sparse")" = "$(printf 'end\nx')" ]
}

@test "fuse: a read-only handle opened before a copy-up reads the copy after it" {
	sfs_mount_small
	"$SFS_PROBE" follow "$TEST_DIR/mnt/d/x"
	[ "$(cat "$TEST_DIR/up/d/x")" = changed ]
}

@test "fuse: copy-up leaves no temporary behind and the rw branch stays aufs-shaped" {
	sfs_mount_small
	for f in a c d/x d/y keep/k; do echo >>"$TEST_DIR/mnt/$f"; done
	[ -z "$(ls -A "$TEST_DIR/up/.wh..wh.orph")" ]
	run bash -c "cd '$TEST_DIR/up' && find . -path ./.wh..wh.orph -prune -o -print | LC_ALL=C sort | tr '\n' ' '"
	[ "$output" = ". ./.wh..wh.aufs ./a ./c ./d ./d/x ./d/y ./keep ./keep/k " ]
}

@test "fuse: a big file copies up whole" {
	sfs_small_stack
	head -c 20M /dev/urandom >"$TEST_DIR/l2/big"
	sum=$(sha256sum <"$TEST_DIR/l2/big")
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	touch "$TEST_DIR/mnt/big"
	[ "$(sha256sum <"$TEST_DIR/up/big")" = "$sum" ]
	[ "$(sha256sum <"$TEST_DIR/mnt/big")" = "$sum" ]
}

# -o volatile (as overlayfs and fuse-overlayfs take it): no fsync at copy-up nor when asked,
# the rw branch marked while mounted, and refused after a mount that did not end cleanly.
@test "fuse: a volatile mount syncs nothing, and its rw branch is refused after a crash" {
	sfs_small_stack
	t=$TEST_DIR
	opts="br=$t/up=rw:$t/l1=ro+wh:$t/l2=ro+wh"
	sfs_mount "$t/mnt" "$opts,volatile"
	pid=$(cat "$t"/.pid.*)
	[ -d "$t/up/.wh..wh.orph/volatile" ]
	if command -v strace >/dev/null; then
		strace -f -qq -e trace=fsync,fdatasync,syncfs -o "$t/trace" -p "$pid" &
		tracer=$!
		sleep 0.5
	fi
	echo more >>"$t/mnt/a"          # copy-up
	python3 -c "import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY); os.fsync(fd)" "$t/mnt/a"
	if [ -n "${tracer:-}" ]; then
		kill "$tracer"
		wait "$tracer" || true
		! grep -E 'f(data)?sync\(' "$t/trace" || false
	fi
	[ "$(cat "$t/mnt/a")" = "$(printf 'a\nmore')" ]
	# a clean end syncs the branch's file system and takes the mark away
	sfs_umount "$t/mnt"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	[ ! -e "$t/up/.wh..wh.orph/volatile" ]
	[ "$(cat "$t/up/a")" = "$(printf 'a\nmore')" ]
	sfs_mount "$t/mnt" "$opts"
	sfs_umount "$t/mnt"

	# a crash: the daemon killed while mounted
	sfs_mount "$t/mnt" "$opts,volatile"
	pid=$(ls -t "$t"/.pid.* | head -1 | xargs cat)
	echo crash >"$t/mnt/new"
	kill -9 "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	fusermount3 -u "$t/mnt" || umount -l "$t/mnt"
	run "$STRATA_FUSE_BIN" "$t/mnt" -o "$opts"
	[ "$status" -ne 0 ]
	[[ "$output" == *"rw branch '$t/up'"*"volatile mount"*"did not end cleanly"*".wh..wh.orph/volatile"* ]]
	! mountpoint -q "$t/mnt" || false
	run "$STRATA_FUSE_BIN" "$t/mnt" -o "$opts,volatile"
	[ "$status" -ne 0 ]
	# whoever removes the mark takes the branch as it is
	rmdir "$t/up/.wh..wh.orph/volatile"
	sfs_mount "$t/mnt" "$opts"
	[ "$(cat "$t/mnt/new")" = crash ]
	sfs_umount "$t/mnt"
	# fuse-overlayfs's spellings: fsync=0 is volatile, fsync=1 is not
	sfs_mount "$t/mnt" "$opts,fsync=0"
	[ -d "$t/up/.wh..wh.orph/volatile" ]
	sfs_umount "$t/mnt"
	sfs_mount "$t/mnt" "$opts,fsync=1"
	[ ! -e "$t/up/.wh..wh.orph/volatile" ]
}

# A full rw branch: the copy-up fails with ENOSPC, and neither a half copy nor a temporary
# is left; the lower file still shows whole, and what fits still works.
@test "fuse: a copy-up that does not fit fails with ENOSPC and leaves nothing behind" {
	mkdir -p "$TEST_DIR/upfs" "$TEST_DIR/l1/d"
	mount -t tmpfs -o size=1m none "$TEST_DIR/upfs" || skip "cannot mount tmpfs"
	head -c 3M /dev/urandom >"$TEST_DIR/l1/d/big"
	echo small >"$TEST_DIR/l1/d/small"
	echo other >"$TEST_DIR/l1/d/other"
	sum=$(sha1sum <"$TEST_DIR/l1/d/big")
	mkdir "$TEST_DIR/upfs/up"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/upfs/up=rw:$TEST_DIR/l1=ro+wh"
	m=$TEST_DIR/mnt
	run bash -c "echo more >>'$m/d/big'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"No space left on device"* ]]
	[ "$(sha1sum <"$m/d/big")" = "$sum" ]
	[ ! -e "$TEST_DIR/upfs/up/d/big" ]
	[ -z "$(ls -A "$TEST_DIR/upfs/up/.wh..wh.orph")" ]
	# the rest still works: a small copy-up, a removal, a write until full and its undoing
	echo more >>"$m/d/small"
	[ "$(cat "$m/d/small")" = "$(printf 'small\nmore')" ]
	rm "$m/d/big"
	[ ! -e "$m/d/big" ]
	[ -e "$TEST_DIR/l1/d/big" ]
	run dd if=/dev/zero of="$m/fill" bs=64k count=64
	[ "$status" -ne 0 ]
	# full: a whiteout is a link of the branch's base file, and needs no room for data
	rm "$m/d/other"
	[ ! -e "$m/d/other" ]
	[ -e "$TEST_DIR/upfs/up/d/.wh.other" ]
	rm "$m/fill"
	echo after >"$m/after"
	[ "$(cat "$m/after")" = after ]
	sfs_umount "$m"
	umount "$TEST_DIR/upfs"
}

# The server killed in the middle of a copy-up: the next mount shows the file whole, as the
# lower branch has it or as the copy-up left it, never half copied; the temporary is gone.
@test "fuse: a server killed during a copy-up leaves the file whole" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1"
	head -c 48M /dev/urandom >"$TEST_DIR/l1/big"
	sum=$(sha1sum <"$TEST_DIR/l1/big" | cut -d' ' -f1)
	sumx=$( (cat "$TEST_DIR/l1/big"; echo x) | sha1sum | cut -d' ' -f1)
	br="br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh"
	for delay in 0.001 0.005 0.01 0.02 0.04 0.08; do
		rm -rf "$TEST_DIR/up" && mkdir "$TEST_DIR/up"
		sfs_mount "$TEST_DIR/mnt" "$br"
		pid=$(cat "$(ls -t "$TEST_DIR"/.pid.* | head -1)")
		(echo x >>"$TEST_DIR/mnt/big") 2>/dev/null &
		writer=$!
		sleep "$delay"
		kill -9 "$pid"
		wait "$writer" || true
		for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
		fusermount3 -u -z "$TEST_DIR/mnt" 2>/dev/null || umount -l "$TEST_DIR/mnt"
		sfs_mount "$TEST_DIR/mnt" "$br"
		got=$(sha1sum <"$TEST_DIR/mnt/big" | cut -d' ' -f1)
		echo "delay $delay: $got"
		[ "$got" = "$sum" ] || [ "$got" = "$sumx" ]
		[ -z "$(ls -A "$TEST_DIR/up/.wh..wh.orph")" ]
		sfs_umount "$TEST_DIR/mnt"
	done
	[ "$(sha1sum <"$TEST_DIR/l1/big" | cut -d' ' -f1)" = "$sum" ]
}
