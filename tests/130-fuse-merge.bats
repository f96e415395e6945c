#!/usr/bin/env bats
# strata-fuse: the merged view: topmost wins, directories merge, readdir once per name.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

@test "fuse: directories merge across branches, each name once" {
	sfs_mount_small
	[ "$(names "$TEST_DIR/mnt/d")" = "sub x y" ]
	[ "$(ls -A "$TEST_DIR/mnt/d" | wc -l)" -eq 3 ]
	[ "$(cat "$TEST_DIR/mnt/d/sub/deep")" = deep ]
}

@test "fuse: the topmost branch wins for a name in several" {
	sfs_small_stack
	echo top >"$TEST_DIR/l1/a"
	echo upper >"$TEST_DIR/up/c"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ "$(cat "$TEST_DIR/mnt/a")" = top ]
	[ "$(cat "$TEST_DIR/mnt/c")" = upper ]
	[ "$(ls "$TEST_DIR/mnt" | grep -c '^a$')" -eq 1 ]
}

@test "fuse: a file hides a directory below it, a directory hides a file below it" {
	sfs_small_stack
	echo file >"$TEST_DIR/l1/keep"
	mkdir "$TEST_DIR/l1/a"
	echo in >"$TEST_DIR/l1/a/in"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	[ -f "$TEST_DIR/mnt/keep" ]
	[ "$(cat "$TEST_DIR/mnt/keep")" = file ]
	[ -d "$TEST_DIR/mnt/a" ]
	[ "$(names "$TEST_DIR/mnt/a")" = in ]
}

@test "fuse: a file between two directories stops the merge" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/x" "$TEST_DIR/l3/x"
	echo f >"$TEST_DIR/l2x"
	mkdir -p "$TEST_DIR/l2"
	echo blocker >"$TEST_DIR/l2/x"
	touch "$TEST_DIR/l1/x/one" "$TEST_DIR/l3/x/three"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh:$TEST_DIR/l3=ro+wh"
	[ "$(names "$TEST_DIR/mnt/x")" = one ]
}

@test "fuse: st_dev is the mount's for every entry" {
	sfs_mount_small
	n=$(find "$TEST_DIR/mnt" -exec stat -c %d {} + | sort -u | wc -l)
	[ "$n" -eq 1 ]
	[ "$(stat -c %d "$TEST_DIR/mnt/a")" = "$(stat -c %d "$TEST_DIR/mnt")" ]
}

@test "fuse: telldir/seekdir offsets are stable, even when the directory changes" {
	sfs_small_stack
	for i in $(seq 1 300); do
		case $((i % 3)) in
		0) touch "$TEST_DIR/up/f$i" ;;
		1) touch "$TEST_DIR/l1/f$i" ;;
		2) touch "$TEST_DIR/l2/f$i" ;;
		esac
	done
	touch "$TEST_DIR/l2/f1" "$TEST_DIR/l1/f2"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	run "$SFS_PROBE" seekdir "$TEST_DIR/mnt"
	[ "$status" -eq 0 ]
	# ., .., a, c, d, hl1, hl2, keep, opq and 300 files
	[ "$output" -eq 309 ]
}

@test "fuse: a rewound or new directory stream sees names made and removed, with and without handles" {
	sfs_small_stack
	echo old >"$TEST_DIR/l2/d/rw-old"
	for h in no yes; do
		sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh,handles=$h"
		run "$SFS_PROBE" rewind "$TEST_DIR/mnt/d"
		echo "handles=$h: $output"
		[ "$status" -eq 0 ]
		# a directory of the rw branch alone, too
		mkdir "$TEST_DIR/mnt/new-$h"
		touch "$TEST_DIR/mnt/new-$h/rw-old"
		run "$SFS_PROBE" rewind "$TEST_DIR/mnt/new-$h"
		echo "handles=$h, upper: $output"
		[ "$status" -eq 0 ]
		sfs_umount "$TEST_DIR/mnt"
	done
}

@test "fuse: a large directory spread over branches lists every name once" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/big" "$TEST_DIR/l2/big" "$TEST_DIR/l3/big"
	for i in $(seq 1 3000); do echo >"$TEST_DIR/l$((i % 3 + 1))/big/n$i"; done
	# duplicates and whiteouts
	for i in $(seq 1 100); do echo >"$TEST_DIR/l3/big/n$((i * 3))"; done
	for i in $(seq 1 50); do touch "$TEST_DIR/l1/big/.wh.n$((i * 3 + 2))"; done
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh:$TEST_DIR/l3=ro+wh"
	[ "$(ls -A "$TEST_DIR/mnt/big" | wc -l)" -eq 2950 ]
	[ "$(ls -A "$TEST_DIR/mnt/big" | sort | uniq -d | wc -l)" -eq 0 ]
}

# Listings of large directories are stat'ed ahead on other threads (what they find is only
# warmth, never an answer) and their next entries looked up while the kernel takes in a reply
# (answers, unless the mount changed since): both keep up with changes and end with the mount.
@test "fuse: large directories listed while they change, and unmounted while being listed" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/big" "$TEST_DIR/l2/big"
	for i in $(seq 1 2000); do echo "$i" >"$TEST_DIR/l$((i % 2 + 1))/big/n$i"; done
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	pid=$(cat "$TEST_DIR"/.pid.*)
	# names removed and made while the listing is read: each shows as it is at the end
	(for i in $(seq 1 400); do rm "$TEST_DIR/mnt/big/n$i"; echo new >"$TEST_DIR/mnt/big/m$i"; done) &
	for _ in 1 2 3; do ls -f "$TEST_DIR/mnt/big" >/dev/null; done
	wait
	[ "$(ls -A "$TEST_DIR/mnt/big" | wc -l)" -eq 2000 ]
	[ "$(ls "$TEST_DIR/mnt/big" | grep -c '^m')" -eq 400 ]
	[ "$(cat "$TEST_DIR/mnt/big/n401")" = 401 ]
	[ "$(cat "$TEST_DIR/mnt/big/m7")" = new ]
	# a cold listing cut short by the unmount: the server still ends
	echo 2 >/proc/sys/vm/drop_caches
	ls -l "$TEST_DIR/mnt/big" >/dev/null &
	sfs_umount "$TEST_DIR/mnt" || fusermount3 -uz "$TEST_DIR/mnt"
	wait || true
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	! alive "$pid" || false
}

# While the kernel takes in one READDIRPLUS reply, the entries of the next are looked up:
# a change made through the mount in between must not be answered from those lookups.
@test "fuse: a listing read in steps shows the attributes changed between its steps" {
	# in the rw branch: the changes leave the names, hence the listing, as they are
	mkdir -p "$TEST_DIR/up/big" "$TEST_DIR/l1/big" "$TEST_DIR/l1/first"
	for i in $(seq 1 1000); do echo "$i" >"$TEST_DIR/up/big/n$i"; done
	chmod 644 "$TEST_DIR"/up/big/*
	echo lower >"$TEST_DIR/l1/big/lower"
	touch "$TEST_DIR"/l1/first/f{1..1000}
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh"
	run python3 - "$TEST_DIR/mnt/big" <<-'EOF'
		import os, subprocess, sys
		d = sys.argv[1]
		# a process that stats what it lists gets attributes in every reply: this one is
		first = os.path.dirname(d) + "/first"
		for n in os.listdir(first):
		    os.lstat(first + "/" + n)
		it = os.scandir(d)
		seen = [next(it).name]  # the first reply: the next is looked up meanwhile
		for i in range(1, 1001):
		    os.chmod("%s/n%d" % (d, i), 0o600)
		    os.utime("%s/n%d" % (d, i), (1000000000, 1000000000))
		# the kernel forgets the nodes those changes made: the next replies make them again
		subprocess.run(["sh", "-c", "echo 2 >/proc/sys/vm/drop_caches"], check=True)
		seen += [e.name for e in it]
		bad = [n for n in seen if n.startswith("n") and
		       (os.lstat(d + "/" + n).st_mode & 0o777 != 0o600 or
		        os.lstat(d + "/" + n).st_mtime != 1000000000)]
		print(len(seen), len(bad), bad[:5])
		sys.exit(1 if bad or len(seen) != 1001 else 0)
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
}

# READDIRPLUS gives attributes for a listing's first 256 entries, past them only to a process
# that walks: one seen to stat what it lists, or one that lists a second directory. A listing
# of names alone makes no lookup in the branches nor inode in the kernel for most of its
# entries. Seen in the daemon's debug log: the LOOKUPs of processes that list and then stat
# each entry.
@test "fuse: names alone cost no lookup past a listing's first entries; a process that walks gets attributes" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/mnt"
	for d in a b c d; do
		mkdir -p "$TEST_DIR/l1/$d"
		touch "$TEST_DIR/l1/$d/"f{1..2000}
	done
	"$STRATA_FUSE_BIN" "$TEST_DIR/mnt" -o "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh" -f -d \
		2>"$TEST_DIR/log" &
	track_pid $!
	for _ in $(seq 100); do mountpoint -q "$TEST_DIR/mnt" && break; sleep 0.1; done
	[ "$(ls -f "$TEST_DIR/mnt/a" | wc -l)" -eq 2002 ]
	# "list D, stat each entry" for each D given, "list D" alone for "-D"; a statfs ends each
	cat >"$TEST_DIR/walk.py" <<-'EOF'
		import os, sys
		m = sys.argv[1]
		print(os.getpid())
		for d in sys.argv[2:]:
		    names = os.listdir(m + "/" + d.lstrip("-"))
		    assert len(names) == 2000, (d, len(names))
		    if not d.startswith("-"):
		        for n in names:
		            os.lstat(m + "/" + d + "/" + n)
		    os.statvfs(m)
	EOF
	p1=$(python3 "$TEST_DIR/walk.py" "$TEST_DIR/mnt" a b)
	p2=$(python3 "$TEST_DIR/walk.py" "$TEST_DIR/mnt" -c d)
	awk -v p1="$p1" -v p2="$p2" '/opcode: STATFS/ { phase++ }
		/opcode: LOOKUP/ && ($NF == p1 || $NF == p2) { n[phase + 0]++ }
		END { print n[0] + 0, n[1] + 0, n[2] + 0, n[3] + 0 }' "$TEST_DIR/log" >"$TEST_DIR/counts"
	read -r a b c d <"$TEST_DIR/counts"
	echo "LOOKUPs: a $a, b $b, c $c, d $d"
	# a: the first directory, stated after it was listed: names alone past 256 entries
	[ "$a" -ge 1000 ]
	[ "$a" -le 2000 ]
	# b: by a process seen to stat what it lists; d: listed after another directory
	[ "$b" -le 20 ]
	[ "$c" -le 2 ] # the directory itself
	[ "$d" -le 20 ]
}

@test "fuse: a merged subdirectory looked up again after its parent changed still merges" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/D/S" "$TEST_DIR/l2/D/S"
	echo top >"$TEST_DIR/l1/D/S/t"
	echo bottom >"$TEST_DIR/l2/D/S/b"
	sfs_mount "$TEST_DIR/mnt" "br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh"
	# D stays open (its node and listing are kept), S does not
	exec 9<"$TEST_DIR/mnt/D"
	ls "$TEST_DIR/mnt/D" >/dev/null
	# D changes: its next listing is laid out in the order of the one before
	touch "$TEST_DIR/mnt/D/new"
	ls "$TEST_DIR/mnt/D" >/dev/null
	# the kernel forgets S: its lookup is answered from D's listing
	echo 2 >/proc/sys/vm/drop_caches
	run names "$TEST_DIR/mnt/D/S"
	exec 9<&-
	[ "$output" = "b t" ]
	[ "$(cat "$TEST_DIR/mnt/D/S/b")" = bottom ]
}

@test "fuse: changes show in listings at once" {
	sfs_mount_small
	ls "$TEST_DIR/mnt/d" >/dev/null
	touch "$TEST_DIR/mnt/d/new"
	rm "$TEST_DIR/mnt/d/x"
	[ "$(names "$TEST_DIR/mnt/d")" = "new sub y" ]
	mv "$TEST_DIR/mnt/d/y" "$TEST_DIR/mnt/d/y2"
	[ "$(names "$TEST_DIR/mnt/d")" = "new sub y2" ]
}

@test "fuse: find and du -a walk the merged tree" {
	sfs_mount_small
	run bash -c "cd '$TEST_DIR/mnt' && find . | LC_ALL=C sort | tr '\n' ' '"
	[ "$output" = ". ./a ./c ./d ./d/sub ./d/sub/deep ./d/x ./d/y ./hl1 ./hl2 ./keep ./keep/k ./opq ./opq/new " ]
}

# Lookups are answered from the directory's listing while it is current: what changes
# where a name lives (a copy-up) must not leave a lookup looking in the old place.
@test "fuse: a merged directory's link count is 1 (unknown), a directory of one branch keeps its own" {
	sfs_mount_small
	mkdir "$TEST_DIR/l2/keep/s1" "$TEST_DIR/l2/keep/s2"
	# d merges l1's and l2's: neither count is the view's
	[ "$(stat -c %h "$TEST_DIR/mnt/d")" = 1 ]
	# keep is l2's alone: 2 and its subdirectories
	[ "$(stat -c %h "$TEST_DIR/mnt/keep")" = 4 ]
	# find's leaf optimisation must not skip the subdirectories of a merged directory
	mkdir -p "$TEST_DIR/mnt/d/n1/n2" "$TEST_DIR/mnt/d/n3"
	[ "$(stat -c %h "$TEST_DIR/mnt/d")" = 1 ]
	[ "$(find "$TEST_DIR/mnt/d" -type d | wc -l)" = 5 ]
	# made again over a whiteout, a directory merges nothing and counts its own
	rm -rf "$TEST_DIR/mnt/d"
	mkdir -p "$TEST_DIR/mnt/d/x"
	[ "$(stat -c %h "$TEST_DIR/mnt/d")" = 3 ]
}

@test "fuse: names looked up afresh after copy-ups and forgotten inodes show the rw branch" {
	mkdir -p "$TEST_DIR/up" "$TEST_DIR/l1/d/sub" "$TEST_DIR/l2/d/sub" "$TEST_DIR/l3/d"
	echo lower >"$TEST_DIR/l2/d/f"
	echo deep >"$TEST_DIR/l2/d/sub/x"
	echo deeper >"$TEST_DIR/l1/d/sub/y"
	: >"$TEST_DIR/l3/d/sub" # a file below the directories: ends their merge
	echo gone >"$TEST_DIR/l3/d/g"
	: >"$TEST_DIR/l1/d/.wh.g"
	sfs_mount "$TEST_DIR/mnt" \
		"br=$TEST_DIR/up=rw:$TEST_DIR/l1=ro+wh:$TEST_DIR/l2=ro+wh:$TEST_DIR/l3=ro+wh"
	m=$TEST_DIR/mnt
	[ "$(names "$m/d")" = "f sub" ]      # the listing is built and current
	[ "$(names "$m/d/sub")" = "x y" ]
	[ ! -e "$m/d/g" ]
	[ ! -e "$m/d/nothing" ]
	echo more >>"$m/d/f"                 # copy-up of a file
	touch "$m/d/sub/z"                   # copy-up of a merged directory
	for _ in 1 2 3; do
		sync
		echo 2 >/proc/sys/vm/drop_caches # the kernel forgets the inodes, lookups come again
		[ "$(head -2 "$m/d/f")" = "$(printf 'lower\nmore')" ]
		[ "$(names "$m/d/sub")" = "x y z" ]
		[ "$(stat -c %F "$m/d/sub")" = directory ]
		[ ! -e "$m/d/g" ]
		echo again >>"$m/d/f"
		[ "$(tail -1 "$m/d/f")" = again ]
	done
	[ "$(cat "$TEST_DIR/l2/d/f")" = lower ]
	[ "$(tail -1 "$TEST_DIR/up/d/f")" = again ]
}
