#!/usr/bin/env bats
# strata-fuse: differential test. Random layer stacks are flattened into a plain directory;
# the same random operations run on the mount and on the plain directory must give the same
# results and the same trees, and the branches must flatten to the same tree afterwards.

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

# seed_branches DIR NLAYERS: sets the caller's br (the branch option) and lay (the branch
# directories, top first) for the stack gen made in DIR.
seed_branches() {
	local d=$1 nl=$2 i
	br="$d/up=rw"
	lay="$d/up"
	for ((i = 1; i <= nl; i++)); do
		br="$br:$d/l$i=ro+wh"
		lay="$lay $d/l$i"
	done
}

# run_seed SEED NOPS NLAYERS [OPTIONS]: every fourth seed mounts with OPEN and OPENDIR handles
run_seed() {
	local seed=$1 nops=$2 nl=$3 opts=${4:-}
	if ((seed % 4 == 0)); then
		opts=${opts:+$opts,}handles=yes
	fi
	local d=$TEST_DIR/s$seed br lay
	"$SFS_FUZZ" gen "$d" "$seed" "$nl"
	seed_branches "$d" "$nl"
	sfs_mount "$d/mnt" "br=$br${opts:+,$opts}"
	"$SFS_FUZZ" cmp "$d/mnt" "$d/ref" || { echo "seed $seed: initial view differs"; return 1; }
	"$SFS_FUZZ" ops "$d/mnt" "$d/ref" "$seed" "$nops" || { echo "seed $seed: operations differ"; return 1; }
	sfs_umount "$d/mnt"
	# shellcheck disable=SC2086
	"$SFS_FUZZ" flatten "$d/flat" $lay
	"$SFS_FUZZ" cmp "$d/flat" "$d/ref" || { echo "seed $seed: branches differ"; return 1; }
	# a fresh mount (no cached nodes) sees the same
	sfs_mount "$d/mnt" "br=$br${opts:+,$opts}"
	"$SFS_FUZZ" cmp-changed "$d/mnt" "$d/ref" || { echo "seed $seed: remount differs"; return 1; }
	sfs_umount "$d/mnt"
	rm -rf "$d"
}

# run_seed_user SEED NOPS NLAYERS: the operations run as nobody, through allow_other, on trees
# whose directories are open to all (some sticky, some setgid) and half of whose files are
# writable by all: permission checks, owners of new files and what copy-up keeps of them.
run_seed_user() {
	local seed=$1 nops=$2 nl=$3 opts=allow_other
	if ((seed % 4 == 0)); then
		opts=$opts,handles=yes
	fi
	local d=$TEST_DIR/u$seed br lay
	SFS_FUZZ_SHARED=1 "$SFS_FUZZ" gen "$d" "$seed" "$nl"
	seed_branches "$d" "$nl"
	sfs_mount "$d/mnt" "br=$br,$opts"
	"$SFS_FUZZ" cmp "$d/mnt" "$d/ref" || { echo "seed $seed: initial view differs"; return 1; }
	SFS_FUZZ_NO_CMP=1 setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$TEST_DIR/sfs-fuzz" ops "$d/mnt" "$d/ref" "$seed" "$nops" ||
		{ echo "seed $seed: operations differ"; return 1; }
	"$SFS_FUZZ" cmp-changed "$d/mnt" "$d/ref" || { echo "seed $seed: trees differ"; return 1; }
	sfs_umount "$d/mnt"
	# shellcheck disable=SC2086
	SFS_FUZZ_SHARED=1 "$SFS_FUZZ" flatten "$d/flat" $lay
	"$SFS_FUZZ" cmp "$d/flat" "$d/ref" || { echo "seed $seed: branches differ"; return 1; }
	rm -rf "$d"
}

@test "fuse: differential as an unprivileged user: 30 shared stacks x 300 random operations" {
	# a copy the user can reach, wherever the build is
	cp "$SFS_FUZZ" "$TEST_DIR/sfs-fuzz"
	chmod 755 "$TEST_DIR" "$TEST_DIR/sfs-fuzz"
	for seed in $(seq 301 330); do
		run_seed_user "$seed" 300 3
	done
}

@test "fuse: differential, aufs whiteouts: 40 stacks x 300 random operations, every fourth with handles" {
	for seed in $(seq 1 40); do
		run_seed "$seed" 300 3
	done
}

@test "fuse: differential, overlay whiteouts: 15 stacks x 300 random operations, every fourth with handles" {
	for seed in $(seq 101 115); do
		run_seed "$seed" 300 4 whiteout=overlay
	done
}

@test "fuse: differential, deeper stacks and longer runs: 5 stacks x 2000 operations, one with handles" {
	for seed in $(seq 201 205); do
		run_seed "$seed" 2000 8
	done
}
