#!/usr/bin/env bats
# strata-fuse: deep stacks (Docker's TestMountMoreThan42Layers, and 500 branches).

load helpers
load fuse/lib

per_test_setup() { sfs_require; }

# brfile for layers $1 (rw) down to 1
write_brfile() {
	local top=$1 out=$2
	{
		echo "$TEST_DIR/layers/$top=rw"
		for ((j = top - 1; j >= 1; j--)); do echo "$TEST_DIR/layers/$j=ro+wh"; done
	} >"$out"
}

@test "fuse: 126 layers, each adding a file and every 10th removing its parent's, show 114" {
	for ((i = 1; i <= 126; i++)); do
		mkdir -p "$TEST_DIR/layers/$i" "$TEST_DIR/m/$i"
		write_brfile "$i" "$TEST_DIR/br.$i"
		sfs_mount "$TEST_DIR/m/$i" "brfile=$TEST_DIR/br.$i"
		touch "$TEST_DIR/m/$i/$i"
		if ((i % 10 == 0)); then rm "$TEST_DIR/m/$i/$((i - 1))"; fi
		sfs_umount "$TEST_DIR/m/$i"
	done
	sfs_mount "$TEST_DIR/m/126" "brfile=$TEST_DIR/br.126"
	[ "$(ls "$TEST_DIR/m/126" | wc -l)" -eq 114 ]
	[ -f "$TEST_DIR/layers/120/.wh.119" ]
	[ ! -e "$TEST_DIR/m/126/119" ]
	[ -e "$TEST_DIR/m/126/1" ]
}

@test "fuse: 500 branches mount, merge and copy up" {
	for ((i = 1; i <= 500; i++)); do
		mkdir -p "$TEST_DIR/layers/$i/common"
		echo "$i" >"$TEST_DIR/layers/$i/f$i"
		echo "$i" >"$TEST_DIR/layers/$i/common/c$i"
		echo "$i" >"$TEST_DIR/layers/$i/shared"
	done
	write_brfile 500 "$TEST_DIR/brfile"
	sfs_mount "$TEST_DIR/mnt" "brfile=$TEST_DIR/brfile"
	[ "$(ls "$TEST_DIR/mnt" | wc -l)" -eq 502 ]
	[ "$(ls "$TEST_DIR/mnt/common" | wc -l)" -eq 500 ]
	[ "$(cat "$TEST_DIR/mnt/f1")" = 1 ]
	[ "$(cat "$TEST_DIR/mnt/shared")" = 500 ]
	echo more >>"$TEST_DIR/mnt/common/c1"
	[ "$(cat "$TEST_DIR/layers/500/common/c1")" = "$(printf '1\nmore')" ]
	rm "$TEST_DIR/mnt/f2"
	[ -f "$TEST_DIR/layers/500/.wh.f2" ]
	[ "$(ls "$TEST_DIR/mnt" | wc -l)" -eq 501 ]
}
