#!/usr/bin/env bats
# strata mount / unmount of layer stacks through real union mounts (the FUSE engine here).

load helpers

per_test_setup() {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	strata init --engine fuse >/dev/null
}

# The mount at $1: "<fstype> <source>", or nothing.
mount_of() {
	awk -v t="$1" '$5 == t { for (i = 7; $i != "-"; i++); print $(i + 1), $(i + 2) }' /proc/self/mountinfo | tail -1
}

count_of() {
	strata --format json metadata "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Mounts"])'
}

daemon_pid() {
	cat "$ROOT/.strata/pids/$1"
}

# Kills layer $1's daemon (SIGKILL) and waits until its mount is dead.
kill_daemon() {
	kill -9 "$(daemon_pid "$1")"
	for _ in $(seq 50); do stat -f "$ROOT/mnt/$1" 2>&1 | grep -q 'not connected' && break; sleep 0.1; done
}

@test "status shows the engine chosen at init" {
	run strata status
	[[ "$output" == *"Engine: fuse"* ]]
	[ "$(cat "$ROOT/.strata/engine")" = fuse ]
	run strata init --engine nope
	[ "$status" -eq 2 ]
}

@test "auto takes FUSE on a kernel without aufs; aufs asked for by name fails clearly" {
	grep -qw aufs /proc/filesystems && skip "this kernel has aufs"
	run "$STRATA_BIN" --root "$TEST_DIR/auto" init
	[ "$status" -eq 0 ]
	[[ "$output" == *"Engine: fuse"* ]]
	[ "$(cat "$TEST_DIR/auto/.strata/engine")" = fuse ]
	run "$STRATA_BIN" --root "$TEST_DIR/kernel" init --engine aufs
	[ "$status" -eq 1 ]
	[ "$output" = "strata: engine 'aufs': the kernel has no aufs (not in /proc/filesystems)" ]
	[ ! -e "$TEST_DIR/kernel/.strata/engine" ]
}

@test "mount of a layer with parents is a union at mnt/<id>, counted, unmounted by the last put" {
	strata create base
	strata create mid --parent base
	strata create top --parent mid
	echo base >"$ROOT/diff/base/a"
	echo mid >"$ROOT/diff/mid/b"
	echo gone >"$ROOT/diff/base/c"
	: >"$ROOT/diff/mid/.wh.c"
	run strata mount top
	[ "$status" -eq 0 ]
	[ "$output" = "$ROOT/mnt/top" ]
	[ "$(mount_of "$ROOT/mnt/top")" = "fuse.strata-fuse strata:top" ]
	[ "$(cat "$ROOT/mnt/top/a")" = base ]
	[ "$(cat "$ROOT/mnt/top/b")" = mid ]
	[ ! -e "$ROOT/mnt/top/c" ]
	[ "$(ls -A "$ROOT/mnt/top" | tr '\n' ' ')" = "a b " ]
	echo new >"$ROOT/mnt/top/new"
	[ "$(cat "$ROOT/diff/top/new")" = new ]
	pid=$(daemon_pid top)
	strata mount top >/dev/null
	[ "$(daemon_pid top)" = "$pid" ]
	[ "$(count_of top)" = 2 ]
	strata unmount top
	[ -n "$(mount_of "$ROOT/mnt/top")" ]
	strata unmount top
	[ -z "$(mount_of "$ROOT/mnt/top")" ]
	[ "$(count_of top)" = 0 ]
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	! alive "$pid" || false
	run strata unmount top
	[ "$status" -eq 1 ]
	[[ "$output" == *"not mounted"* ]]
}

@test "a failed mount changes no count and leaves nothing mounted" {
	strata create base
	strata create kid --parent base
	STRATA_FUSE=/bin/false run strata mount kid
	[ "$status" -eq 1 ]
	[[ "$output" == *"mount 'kid'"* ]]
	[ "$(count_of kid)" = 0 ]
	[ -z "$(mount_of "$ROOT/mnt/kid")" ]
	run strata mount ghost
	[ "$status" -eq 1 ]
	[[ "$output" == *"no such layer"* ]]
}

@test "rm of a mounted layer unmounts it first" {
	strata create base
	strata create kid --parent base
	strata mount kid
	strata mount kid
	pid=$(daemon_pid kid)
	strata rm kid
	[ -z "$(mount_of "$ROOT/mnt/kid")" ]
	[ ! -e "$ROOT/mnt/kid" ]
	[ ! -e "$ROOT/diff/kid" ]
	[ ! -e "$ROOT/.strata/mounts/kid" ]
}

@test "cleanup unmounts everything below the root and forgets the counts" {
	strata create base
	strata create a --parent base
	strata create b --parent base
	strata mount a
	strata mount b
	strata mount b
	strata mount base
	pa=$(daemon_pid a) pb=$(daemon_pid b)
	mkdir -p "$ROOT/extra"
	mount -t tmpfs none "$ROOT/extra"
	strata cleanup
	[ -z "$(mount_of "$ROOT/mnt/a")" ]
	[ -z "$(mount_of "$ROOT/mnt/b")" ]
	[ -z "$(mount_of "$ROOT/extra")" ]
	[ "$(count_of b)" = 0 ]
	[ "$(count_of base)" = 0 ]
	# Each layer went down through its engine: the daemons are gone, and so are their pid files.
	for _ in $(seq 50); do alive "$pa" || alive "$pb" || break; sleep 0.1; done
	! alive "$pa" || false
	! alive "$pb" || false
	[ -z "$(ls -A "$ROOT/.strata/pids")" ]
}

@test "cleanup recovers a dead mount, and init and status count dead mounts alike" {
	strata create base
	strata create a --parent base
	strata mount a
	kill_daemon a
	run strata status
	[[ "$output" == *"Dead Mounts: 1"* ]]
	run strata init
	[[ "$output" == *"Dead Mounts: 1"* ]]
	strata cleanup
	[ -z "$(mount_of "$ROOT/mnt/a")" ]
	[ "$(count_of a)" = 0 ]
	run strata status
	[[ "$output" == *"Dead Mounts: 0"* ]]
	strata mount a
	[ "$(mount_of "$ROOT/mnt/a")" = "fuse.strata-fuse strata:a" ]
}

@test "a mount of another layer's stack at mnt/<id> is not adopted" {
	strata create base
	strata create a --parent base
	strata create b --parent base
	echo b >"$ROOT/diff/b/marker"
	"$STRATA_FUSE_BIN" strata:b "$ROOT/mnt/a" -o "br=$ROOT/diff/b=rw:$ROOT/diff/base=ro+wh"
	[ "$(mount_of "$ROOT/mnt/a")" = "fuse.strata-fuse strata:b" ]
	run strata mount a
	[ "$status" -eq 1 ]
	[[ "$output" == *"mount 'a': '$ROOT/mnt/a' is already a mount point of another kind"* ]]
	[ "$(count_of a)" = 0 ]
	fusermount3 -u "$ROOT/mnt/a"
}

@test "a mount left from an earlier run is adopted, not mounted twice" {
	strata create base
	strata create kid --parent base
	strata mount kid
	pid=$(daemon_pid kid)
	rm "$ROOT/.strata/mounts/kid" # the count is lost, the mount is not
	strata mount kid
	[ "$(daemon_pid kid)" = "$pid" ]
	[ "$(count_of kid)" = 2 ]
	[ "$(grep -c " $ROOT/mnt/kid " /proc/self/mountinfo)" = 1 ]
	strata unmount kid
	strata unmount kid
	[ -z "$(mount_of "$ROOT/mnt/kid")" ]
}

@test "a killed daemon leaves a dead mount that status reports and mount, unmount and rm recover" {
	strata create base
	strata create kid --parent base
	echo hi >"$ROOT/diff/base/f"
	strata mount kid
	kill_daemon kid
	run strata status
	[[ "$output" == *"Dead Mounts: 1"* ]]
	# mount: detached and made again, the count goes on
	strata mount kid
	[ "$(cat "$ROOT/mnt/kid/f")" = hi ]
	[ "$(count_of kid)" = 2 ]
	# unmount of one user while dead: the other user gets the view back
	kill_daemon kid
	strata unmount kid
	[ "$(cat "$ROOT/mnt/kid/f")" = hi ]
	[ "$(count_of kid)" = 1 ]
	# unmount of the last user while dead: nothing of the dead daemon stays
	kill_daemon kid
	strata unmount kid
	[ "$(count_of kid)" = 0 ]
	[ ! -e "$ROOT/.strata/pids/kid" ]
	[ ! -e "$ROOT/.strata/branches/kid" ]
	# rm of a dead mount
	strata mount kid
	kill_daemon kid
	strata rm kid
	[ ! -e "$ROOT/mnt/kid" ]
	[ ! -e "$ROOT/.strata/pids/kid" ]
	[ ! -e "$ROOT/.strata/branches/kid" ]
	run strata status
	[[ "$output" == *"Dead Mounts: 0"* ]]
}

@test "unmount of a busy mount fails, says who holds it, and keeps the count" {
	strata create base
	strata create kid --parent base
	strata mount kid
	(cd "$ROOT/mnt/kid" && exec sleep 30) &
	holder=$!
	track_pid "$holder"
	sleep 0.3
	run strata unmount kid
	[ "$status" -eq 1 ]
	[[ "$output" == *"held by 'sleep' (pid $holder)"* ]]
	[ "$(count_of kid)" = 1 ]
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	strata unmount kid
	[ -z "$(mount_of "$ROOT/mnt/kid")" ]
}

@test "126 layers, every 10th removing its parent's file, show exactly 114 entries" {
	parent=
	prev=
	for i in $(seq 126); do
		id=$(printf '%s' "$i" | sha256sum | cut -c1-64)
		strata create-rw "$id" ${parent:+--parent "$parent"} >/dev/null
		dir=$(strata mount "$id")
		: >"$dir/$id"
		if [ $((i % 10)) -eq 0 ]; then
			rm "$dir/$prev"
		fi
		strata unmount "$id"
		prev=$id
		parent=$id
	done
	dir=$(strata mount "$parent")
	[ "$(ls -A "$dir" | wc -l)" -eq 114 ]
	[ "$(find "$dir" -mindepth 1 | wc -l)" -eq 114 ]
	strata unmount "$parent"
}

@test "a 500-layer stack mounts and reads correctly" {
	strata create l0 >/dev/null
	echo 0 >"$ROOT/diff/l0/f0"
	for i in $(seq 499); do
		"$STRATA_BIN" --root "$ROOT" create "l$i" --parent "l$((i - 1))" >/dev/null
		echo "$i" >"$ROOT/diff/l$i/f$i"
		[ $((i % 50)) -eq 0 ] && echo "top$i" >"$ROOT/diff/l$i/f0"
	done
	[ "$(wc -l <"$ROOT/layers/l499")" -eq 499 ]
	dir=$(strata mount l499)
	[ "$(ls "$dir" | wc -l)" -eq 500 ]
	[ "$(cat "$dir/f0")" = top450 ]
	[ "$(cat "$dir/f1")" = 1 ]
	[ "$(cat "$dir/f499")" = 499 ]
	strata unmount l499
}

@test "16 processes mounting and unmounting one layer 200 times each end with count 0 and nothing mounted" {
	strata create base
	strata create kid --parent base
	echo x >"$ROOT/diff/base/f"
	for w in $(seq 16); do
		(
			for i in $(seq 200); do
				d=$("$STRATA_BIN" --root "$ROOT" mount kid) || exit 1
				[ "$d" = "$ROOT/mnt/kid" ] || exit 1
				"$STRATA_BIN" --root "$ROOT" unmount kid || exit 1
			done
		) &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	[ "$(count_of kid)" = 0 ]
	[ -z "$(mount_of "$ROOT/mnt/kid")" ]
	[ -z "$(ls "$ROOT/.strata/pids" 2>/dev/null)" ]
}

@test "writing through a mount drops the byte-exact record: diff then shows what was written" {
	mkdir -p "$TEST_DIR/src/etc"
	echo one >"$TEST_DIR/src/etc/a"
	tar -C "$TEST_DIR/src" -cf "$TEST_DIR/l.tar" etc
	strata create base
	strata create kid --parent base
	strata apply kid "$TEST_DIR/l.tar" >/dev/null
	strata diff kid -o "$TEST_DIR/out1.tar"
	cmp "$TEST_DIR/l.tar" "$TEST_DIR/out1.tar"
	dir=$(strata mount kid)
	echo two >"$dir/etc/b"
	strata unmount kid
	strata diff kid -o "$TEST_DIR/out2.tar"
	tar -tf "$TEST_DIR/out2.tar" | grep -qx 'etc/b'
	tar -tf "$TEST_DIR/out2.tar" | grep -qx 'etc/a'
}
