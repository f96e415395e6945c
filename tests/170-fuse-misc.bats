#!/usr/bin/env bats
# strata-fuse: everything else a file system does.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }
# the append-only files of the set-id test below, which rm -rf could not remove
per_test_teardown() { chattr -a "$TEST_DIR/up/f" "$TEST_DIR/ref/f" 2>/dev/null || true; }

@test "fuse: symlinks, fifos, sockets and device nodes" {
	sfs_small_stack
	ln -s a "$TEST_DIR/l2/lnk"
	mkfifo "$TEST_DIR/l2/fifo"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ "$(readlink "$TEST_DIR/mnt/lnk")" = a ]
	[ "$(cat "$TEST_DIR/mnt/lnk")" = a ]
	[ -p "$TEST_DIR/mnt/fifo" ]
	ln -s ../c "$TEST_DIR/mnt/d/up-link"
	[ "$(cat "$TEST_DIR/mnt/d/up-link")" = c ]
	mkfifo "$TEST_DIR/mnt/fifo2"
	[ -p "$TEST_DIR/up/fifo2" ]
	mknod "$TEST_DIR/mnt/null" c 1 3
	[ "$(stat -c '%F %t:%T' "$TEST_DIR/mnt/null")" = "character special file 1:3" ]
	echo discard >"$TEST_DIR/mnt/null"
	python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$TEST_DIR/mnt/sock"
	[ -S "$TEST_DIR/mnt/sock" ]
	touch -h -d '2003-03-03 03:03:03' "$TEST_DIR/mnt/lnk"
	[ -L "$TEST_DIR/up/lnk" ]
	[ "$(readlink "$TEST_DIR/up/lnk")" = a ]
	chmod 600 "$TEST_DIR/mnt/fifo"
	[ "$(stat -c %a "$TEST_DIR/up/fifo")" = 600 ]
}

@test "fuse: setuid and setgid bits survive creation" {
	sfs_mount_small
	m=$TEST_DIR/mnt
	mkdir "$m/sg"
	chmod 2775 "$m/sg"
	python3 - "$m" <<-'EOF'
		import os, sys
		m = sys.argv[1]
		os.umask(0)
		os.close(os.open(m + "/suid", os.O_CREAT | os.O_WRONLY, 0o4755))
		os.mknod(m + "/fifo", 0o2755 | 0o010000)
		os.close(os.open(m + "/sg/file", os.O_CREAT | os.O_WRONLY, 0o6755))
		os.mkdir(m + "/sg/sub", 0o755)
	EOF
	for d in "$m" "$TEST_DIR/up"; do
		[ "$(stat -c %a "$d/suid")" = 4755 ]
		[ "$(stat -c %a "$d/fifo")" = 2755 ]
		[ "$(stat -c %a "$d/sg/file")" = 6755 ]
		[ "$(stat -c %a "$d/sg/sub")" = 2755 ]
	done
}

@test "fuse: a removed directory still open can be fstat'ed, its mode unchanged" {
	sfs_small_stack
	mkdir "$TEST_DIR/l2/empty"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	mkdir "$TEST_DIR/mnt/new"
	# the owner has no search right: the daemon must not grant it while removing
	chmod 2635 "$TEST_DIR/mnt/new"
	# whiteouts make its upper copy non-empty
	chmod 0645 "$TEST_DIR/mnt/keep"
	rm "$TEST_DIR/mnt/keep/k"
	python3 - "$TEST_DIR/mnt" <<-'EOF'
		import os, stat, sys
		m = sys.argv[1]
		for d, mode in (("new", 0o2635), ("empty", None), ("keep", 0o645)):
		    fd = os.open(m + "/" + d, os.O_RDONLY | os.O_DIRECTORY)
		    os.rmdir(m + "/" + d)
		    st = os.fstat(fd)
		    assert stat.S_ISDIR(st.st_mode), d
		    assert mode is None or stat.S_IMODE(st.st_mode) == mode, (d, oct(st.st_mode))
		    os.close(fd)
	EOF
	[ ! -e "$TEST_DIR/mnt/new" ]
	[ ! -e "$TEST_DIR/mnt/empty" ]
}

@test "fuse: xattrs list, get, set and remove" {
	sfs_small_stack
	setfattr -n user.low -v 1 "$TEST_DIR/l2/a"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ "$(getfattr --only-values -n user.low "$TEST_DIR/mnt/a")" = 1 ]
	setfattr -n user.new -v 2 "$TEST_DIR/mnt/a"
	run getfattr -d "$TEST_DIR/mnt/a"
	[[ "$output" == *'user.low="1"'* ]]
	[[ "$output" == *'user.new="2"'* ]]
	setfattr -x user.low "$TEST_DIR/mnt/a"
	run getfattr -n user.low "$TEST_DIR/mnt/a"
	[ "$status" -ne 0 ]
	[ "$(getfattr --only-values -n user.low "$TEST_DIR/l2/a")" = 1 ]
	setfattr -n user.dir -v d "$TEST_DIR/mnt/d"
	[ "$(getfattr --only-values -n user.dir "$TEST_DIR/mnt/d")" = d ]
}

@test "fuse: fsync, fallocate, SEEK_DATA/SEEK_HOLE" {
	sfs_mount_small
	"$SFS_PROBE" fallocate "$TEST_DIR/mnt/falloc"
	"$SFS_PROBE" seekhole "$TEST_DIR/mnt/sparse"
	dd if=/dev/zero of="$TEST_DIR/mnt/synced" bs=4k count=4 conv=fsync status=none
	sync "$TEST_DIR/mnt/synced"
	[ "$(stat -c %s "$TEST_DIR/up/synced")" = 16384 ]
}

@test "fuse: shared writable mmap of a lower file" {
	sfs_mount_small
	"$SFS_PROBE" mmap "$TEST_DIR/mnt/a"
	[ "$(stat -c %s "$TEST_DIR/up/a")" = 8192 ]
	[ "$(dd if="$TEST_DIR/up/a" bs=1 skip=4096 count=6 status=none)" = mapped ]
}

@test "fuse: O_APPEND, O_EXCL" {
	sfs_mount_small
	"$SFS_PROBE" append "$TEST_DIR/mnt/a"
	[ "$(cat "$TEST_DIR/mnt/a")" = "$(printf 'a\n12')" ]
	"$SFS_PROBE" excl "$TEST_DIR/mnt/c"
	"$SFS_PROBE" excl "$TEST_DIR/mnt/a"
}

@test "fuse: a new 0444 file takes the writes of the open that made it, for root and for a user" {
	sfs_mount_small allow_other
	"$SFS_PROBE" create-ro "$TEST_DIR/mnt/ro-root"
	[ "$(cat "$TEST_DIR/up/ro-root")" = fresh ]
	[ "$(stat -c %a "$TEST_DIR/up/ro-root")" = 444 ]
	mkdir -m 1777 "$TEST_DIR/mnt/shared"
	# a copy the user can reach, wherever the build is
	cp "$SFS_PROBE" "$TEST_DIR/probe"
	chmod 755 "$TEST_DIR" "$TEST_DIR/probe"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$TEST_DIR/probe" create-ro "$TEST_DIR/mnt/shared/ro-user"
	[ "$(cat "$TEST_DIR/up/shared/ro-user")" = fresh ]
	[ "$(stat -c '%u %g %a' "$TEST_DIR/up/shared/ro-user")" = "65534 65534 444" ]
	# and a user may not write a file that is not theirs
	run setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo x >> '$TEST_DIR/mnt/ro-root'"
	[ "$status" -ne 0 ]
	[ "$(cat "$TEST_DIR/up/ro-root")" = fresh ]
}

@test "fuse: flock and POSIX locks" {
	sfs_mount_small
	"$SFS_PROBE" locks "$TEST_DIR/mnt/a"
}

@test "fuse: statfs is the rw branch's, name length leaves room for .wh." {
	sfs_mount_small
	[ "$(stat -f -c %l "$TEST_DIR/mnt")" -eq $(($(stat -f -c %l "$TEST_DIR/up") - 4)) ]
	[ "$(stat -f -c %b "$TEST_DIR/mnt")" = "$(stat -f -c %b "$TEST_DIR/up")" ]
}

@test "fuse: utimensat with nanoseconds" {
	sfs_mount_small
	"$SFS_PROBE" utimes-ns "$TEST_DIR/mnt/a"
	"$SFS_PROBE" utimes-ns "$TEST_DIR/mnt/d"
}

@test "fuse: names up to the longest allowed minus .wh., longer ones fail" {
	sfs_mount_small
	max=$(stat -f -c %l "$TEST_DIR/mnt")
	long=$(printf 'n%.0s' $(seq 1 "$max"))
	touch "$TEST_DIR/mnt/$long"
	rm "$TEST_DIR/mnt/$long"
	run touch "$TEST_DIR/mnt/${long}x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"too long"* ]]
}

@test "fuse: the longest name comes from the rw branch's file system" {
	# a strata-fuse mount as the upper layer: its names are 4 shorter than its own branch's
	mkdir -p "$TEST_DIR/iup" "$TEST_DIR/lo"
	sfs_mount "$TEST_DIR/inner" "br=$TEST_DIR/iup=rw"
	mkdir "$TEST_DIR/inner/up" "$TEST_DIR/inner/work"
	imax=$(stat -f -c %l "$TEST_DIR/inner")
	max=$((imax - 4))
	lower=$(printf 'l%.0s' $(seq 1 "$max"))
	touch "$TEST_DIR/lo/$lower"
	sfs_mount "$TEST_DIR/mnt" \
		"lowerdir=$TEST_DIR/lo,upperdir=$TEST_DIR/inner/up,workdir=$TEST_DIR/inner/work"
	[ "$(stat -f -c %l "$TEST_DIR/mnt")" = "$max" ]
	long=$(printf 'n%.0s' $(seq 1 "$max"))
	touch "$TEST_DIR/mnt/$long"
	run touch "$TEST_DIR/mnt/${long}x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"too long"* ]]
	[ -e "$TEST_DIR/mnt/$lower" ]
	sfs_umount "$TEST_DIR/mnt"
	sfs_umount "$TEST_DIR/inner"
}

@test "fuse: several writers in parallel" {
	sfs_mount_small
	for i in $(seq 1 8); do
		(for j in $(seq 1 50); do echo "$i $j" >"$TEST_DIR/mnt/d/p$i-$j"; done) &
	done
	wait
	[ "$(ls "$TEST_DIR/mnt/d" | grep -c '^p')" -eq 400 ]
	cat "$TEST_DIR/mnt/d"/p* | wc -l | grep -qx 400
}

@test "fuse: a read-only stack (no rw branch) refuses every change with EROFS" {
	sfs_small_stack
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ "$(cat "$TEST_DIR/mnt/a")" = a ]
	for cmd in "touch $TEST_DIR/mnt/n" "rm $TEST_DIR/mnt/a" "mkdir $TEST_DIR/mnt/x" "chmod 600 $TEST_DIR/mnt/a" \
		"$SFS_PROBE append $TEST_DIR/mnt/a"; do
		run $cmd
		[ "$status" -ne 0 ]
		[[ "$output" == *"Read-only"* ]]
	done
}

# A directory the kernel forgets frees the listing it cached (with its name index and what it
# knew of the directories below): the server's memory stays flat however often a tree is
# listed and forgotten.
@test "fuse: the listings of forgotten directories are freed" {
	# under ASan or TSan the resident size is their quarantine's and shadow's; ASan's leak
	# check covers this there
	! asan_build || skip "ASan build"
	! tsan_build || skip "TSan build"
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1" "$TEST_DIR/l2"
	python3 - "$TEST_DIR" <<'PY'
import os, sys
for b in ("l1", "l2"):
    for d in range(300):
        p = "%s/%s/d%03d" % (sys.argv[1], b, d)
        os.makedirs(p)
        for f in range(50):
            open("%s/%s%02d" % (p, b, f), "w").close()
PY
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	pid=$(cat "$TEST_DIR"/.pid.*)
	for c in $(seq 1 35); do
		ls -R "$TEST_DIR/mnt" >/dev/null
		echo 2 >/proc/sys/vm/drop_caches
		[ "$c" != 5 ] || before=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
	done
	after=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
	echo "resident after 5 rounds: $before KiB, after 35: $after KiB"
	# each round leaked about 500 KiB when they were not freed
	[ $((after - before)) -lt 8192 ]
}

@test "fuse: POSIX ACLs are enforced, copied up, and inherited as on the branch's file system" {
	command -v setfacl >/dev/null || skip "no setfacl"
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l" "$TEST_DIR/real/dd"
	setfacl -m u:nobody:--- "$TEST_DIR/up" 2>/dev/null || skip "no ACLs on $TEST_DIR"
	setfacl -b "$TEST_DIR/up"
	echo secret >"$TEST_DIR/l/shut"
	chmod 644 "$TEST_DIR/l/shut"
	setfacl -m u:nobody:--- "$TEST_DIR/l/shut"
	echo open >"$TEST_DIR/l/let"
	chmod 640 "$TEST_DIR/l/let"
	setfacl -m u:nobody:r "$TEST_DIR/l/let"
	chmod 755 "$TEST_DIR"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l=ro+wh,allow_other"
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	# a named entry shuts nobody out though "other" may read; another lets nobody in
	run as_nobody cat "$TEST_DIR/mnt/shut"
	[ "$status" -ne 0 ]
	[ "$(as_nobody cat "$TEST_DIR/mnt/let")" = open ]
	# setfacl through the mount copies up; chmod narrows the mask, as on a local file system
	setfacl -m u:nobody:r "$TEST_DIR/mnt/shut"
	[ "$(as_nobody cat "$TEST_DIR/mnt/shut")" = secret ]
	getfacl -c "$TEST_DIR/up/shut" | grep -qx 'user:nobody:r--'
	chmod 600 "$TEST_DIR/mnt/shut"
	run as_nobody cat "$TEST_DIR/mnt/shut"
	[ "$status" -ne 0 ]
	# a default ACL is inherited and overrides the umask; elsewhere the umask applies
	mkdir "$TEST_DIR/mnt/dd"
	setfacl -d -m u:nobody:rw "$TEST_DIR/mnt/dd" "$TEST_DIR/real/dd"
	(umask 022 && touch "$TEST_DIR/mnt/dd/new" "$TEST_DIR/real/dd/new" "$TEST_DIR/mnt/plain")
	[ "$(getfacl -c "$TEST_DIR/mnt/dd/new")" = "$(getfacl -c "$TEST_DIR/real/dd/new")" ]
	[ "$(stat -c %a "$TEST_DIR/mnt/dd/new")" = "$(stat -c %a "$TEST_DIR/real/dd/new")" ]
	[ "$(stat -c %a "$TEST_DIR/mnt/plain")" = 644 ]
	(umask 077 && mkdir "$TEST_DIR/mnt/private")
	[ "$(stat -c %a "$TEST_DIR/mnt/private")" = 700 ]
}


# The set-id bits and file capabilities a change drops, as a local file system drops them: a
# write, truncate or fallocate by a writer without CAP_FSETID drops setuid, and setgid where
# the group may execute; root's keeps them; chown drops both for anyone; any write drops a
# file capability. The same operations run in a plain directory of the same file system, and
# every mode (and capability) must come out the same (chown and chgrp are root's), for files
# made through the mount and for files copied up from a layer.
# check_setid_drops [OPTIONS]
check_setid_drops() {
	sfs_small_stack
	local ref=$TEST_DIR/ref
	mkdir -p "$ref/low" "$TEST_DIR/l1/low"
	chmod 755 "$TEST_DIR"
	ops="write truncate fallocate chown"
	modes="4777 2777 6777 2767 6767 777"
	make_files() { # DIR...: a file for every operation, mode and actor in each
		local d op mode who
		for d; do
			for op in $ops; do for mode in $modes; do for who in root nobody; do
				echo data >"$d/$op-$mode-$who"
				chmod "$mode" "$d/$op-$mode-$who"
			done; done; done
		done
	}
	# files below, made before the mount, and their reference twins
	make_files "$TEST_DIR/l1/low" "$ref/low"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh,allow_other${1:+,$1}"
	mkdir "$TEST_DIR/mnt/new" "$ref/new"
	make_files "$TEST_DIR/mnt/new" "$ref/new"
	run_op() { # DIR OP MODE WHO
		local f=$1/$2-$3-$4 as=()
		[ "$4" = root ] || as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		case $2 in
		write) "${as[@]}" sh -c "echo more >>'$f'" ;;
		truncate) "${as[@]}" truncate -s 2 "$f" ;;
		fallocate) "${as[@]}" fallocate -l 65536 "$f" ;;
		chown) if [ "$4" = root ]; then chown 65534 "$f"; else chgrp 65534 "$f"; fi ;;
		esac
	}
	for m in "$TEST_DIR/mnt" "$ref"; do
		for sub in low new; do
			for op in $ops; do for mode in $modes; do for who in root nobody; do
				run_op "$m/$sub" "$op" "$mode" "$who"
			done; done; done
		done
	done
	got=$(cd "$TEST_DIR/mnt" && stat -c '%n %a %U' low/* new/*)
	want=$(cd "$ref" && stat -c '%n %a %U' low/* new/*)
	diff <(echo "$want") <(echo "$got")
	# they did change something: a write by nobody drops setuid
	[[ "$want" == *"low/write-4777-nobody 777 root"* ]]
	[[ "$want" == *"low/write-4777-root 4777 root"* ]]
	# a write drops a file capability, even root's
	for d in "$TEST_DIR/mnt/new" "$ref/new"; do
		echo x >"$d/cap"
		setcap cap_net_raw+p "$d/cap"
		[ -n "$(getcap "$d/cap")" ]
		echo y >>"$d/cap"
		[ -z "$(getcap "$d/cap")" ]
	done
}

@test "fuse: writes, truncates, fallocates and chowns drop set-id bits and capabilities as locally" {
	check_setid_drops
}

@test "fuse: ... and so they do through OPEN handles" {
	check_setid_drops handles=yes
}

# Before a write(), the kernel must know whether it drops a file capability. A FUSE mount may
# remember that a file has none only if the server drops set-id bits and capabilities itself
# (FUSE_HANDLE_KILLPRIV_V2, asked for in the INIT reply): then it asks once per file, not
# once per write. Seen in the daemon's debug log.
@test "fuse: writes are not each preceded by a GETXATTR of security.capability" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/mnt"
	"$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw" -f -d 2>"$TEST_DIR/log" &
	track_pid $!
	for _ in $(seq 100); do mountpoint -q "$TEST_DIR/mnt" && break; sleep 0.1; done
	dd if=/dev/zero of="$TEST_DIR/mnt/f" bs=4k count=200 status=none
	[ "$(stat -c %s "$TEST_DIR/up/f")" -eq 819200 ]
	writes=$(grep -c 'opcode: WRITE' "$TEST_DIR/log")
	getxattrs=$(grep -c 'opcode: GETXATTR' "$TEST_DIR/log" || true)
	echo "WRITEs $writes, GETXATTRs $getxattrs"
	[ "$writes" -ge 200 ]
	[ "$getxattrs" -le 2 ]
	sfs_umount "$TEST_DIR/mnt"
}

# setfacl on a setgid file by its owner, who is not of its group, drops setgid on a local
# file system (the kernel says so in the SETXATTR under FUSE_SETXATTR_EXT); root's and a group
# member's keep it. Compared with a plain directory of the same file system.
@test "fuse: an access ACL set by an owner outside the file's group drops setgid, as locally" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/ref"
	setfacl -m u:nobody:r "$TEST_DIR/up" 2>/dev/null || skip "no ACLs on $TEST_DIR"
	setfacl -b "$TEST_DIR/up"
	chmod 755 "$TEST_DIR"
	chmod 777 "$TEST_DIR/ref"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw,allow_other"
	chmod 777 "$TEST_DIR/mnt"
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	for d in "$TEST_DIR/mnt" "$TEST_DIR/ref"; do
		for who in outsider member root; do
			f=$d/$who
			as_nobody touch "$f"
			if [ "$who" = member ]; then chgrp 65534 "$f"; else chgrp 0 "$f"; fi
			chmod 2775 "$f"
			case $who in
			root) setfacl -m u:root:r "$f" ;;
			*) as_nobody setfacl -m u:root:r "$f" ;;
			esac
		done
	done
	got=$(cd "$TEST_DIR/mnt" && stat -c '%n %a %G' outsider member root)
	want=$(cd "$TEST_DIR/ref" && stat -c '%n %a %G' outsider member root)
	diff <(echo "$want") <(echo "$got")
	[[ "$want" == *"outsider 775 root"* ]]
	[[ "$want" == *"member 2775"* ]]
	[ "$(getfacl -cp "$TEST_DIR/up/outsider" | grep -c '^user:root:r--')" -eq 1 ]
}

# A write must not happen while the set-id bits it should drop stay: on an append-only setuid
# file, whose mode cannot change, a local file system refuses the write; so must the mount.
@test "fuse: a write whose set-id bits cannot be dropped is refused, as locally" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/ref"
	touch "$TEST_DIR/probe"
	chattr +a "$TEST_DIR/probe" 2>/dev/null || skip "no chattr +a on $TEST_DIR"
	chattr -a "$TEST_DIR/probe"
	chmod 755 "$TEST_DIR"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw,allow_other"
	echo data >"$TEST_DIR/mnt/f"
	echo data >"$TEST_DIR/ref/f"
	chmod 4777 "$TEST_DIR/mnt/f" "$TEST_DIR/ref/f"
	chattr +a "$TEST_DIR/up/f" "$TEST_DIR/ref/f"
	for f in "$TEST_DIR/ref/f" "$TEST_DIR/mnt/f"; do
		run setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo more >>'$f'"
		[ "$status" -ne 0 ]
		[ "$(stat -c %a "$f")" = 4777 ]
		[ "$(cat "$f")" = data ]
	done
	chattr -a "$TEST_DIR/up/f" "$TEST_DIR/ref/f"
}
