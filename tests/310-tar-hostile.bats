#!/usr/bin/env bats
# Hostile layer tars: nothing is written outside diff/<id>, each refusal names the
# entry, and a failed apply leaves the layer removable. A canary tree around the
# store is compared before and after every case.

load helpers

per_test_setup() {
	WORLD=$TEST_DIR/world
	ROOT=$WORLD/store/root
	mkdir -p "$WORLD/victim" "$ROOT/victim" "$ROOT/diff/victim" "$WORLD/store/victim"
	for d in "$WORLD/victim" "$ROOT/victim" "$ROOT/diff/victim" "$WORLD/store/victim"; do
		echo secret >"$d/hello"
	done
	strata status >/dev/null
	python3 "$BATS_TEST_DIRNAME/tar/mkhostile.py" "$TEST_DIR/corpus"
}

# Everything under WORLD but the layer under test and our own state.
canary() {
	(cd "$WORLD" && find . -path ./store/root/diff/L -prune -o -path ./store/root/.strata -prune \
		-o -path ./store/root/layers/L -prune -o -path ./store/root/mnt/L -prune \
		-o -printf '%p %M %s %T@\n' | LC_ALL=C sort &&
		find . -path ./store/root/diff/L -prune -o -path ./store/root/.strata -prune -o -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort)
}

# Applies case $1 to a fresh layer L; checks the canary and that L can be removed.
run_case() {
	local c=$1
	strata create L
	local before
	before=$(canary)
	run strata apply L "$TEST_DIR/corpus/$c.tar"
	apply_status=$status apply_output=$output
	[ "$(canary)" = "$before" ] || { echo "case $c: the canary tree changed"; return 1; }
	[ ! -e /victim ] || { echo "case $c: /victim appeared"; return 1; }
	strata rm L || { echo "case $c: the layer cannot be removed"; return 1; }
	[ ! -e "$ROOT/diff/L" ]
	[ ! -e "$ROOT/layers/L" ]
	[ ! -e "$ROOT/.strata/tarsplit/L.json.gz" ] || { echo "case $c: a record was kept"; return 1; }
}

@test "hostile entries are refused with an error naming them, and nothing leaves the layer" {
	local n=0
	while read -r c expect what; do
		[ "$expect" = refuse ] || continue
		run_case "$c"
		if [ "$apply_status" -ne 1 ]; then
			echo "case $c: apply succeeded: $apply_output"
			return 1
		fi
		if [[ "$apply_output" != "strata: apply 'L': "*"$what"* ]]; then
			echo "case $c: message does not name '$what': $apply_output"
			return 1
		fi
		n=$((n + 1))
	done <"$TEST_DIR/corpus/cases"
	[ "$n" -ge 25 ]
}

@test "absolute names and absolute symlinks stay inside the layer, as in Docker's chroot" {
	while read -r c expect what; do
		[ "$expect" = contain ] || continue
		strata create L
		local before
		before=$(canary)
		run strata apply L "$TEST_DIR/corpus/$c.tar"
		[ "$status" -eq 0 ] || { echo "case $c: $output"; return 1; }
		[ "$(canary)" = "$before" ] || { echo "case $c: the canary changed"; return 1; }
		case $c in
		absolute) [ "$(cat "$ROOT/diff/L/victim/abs")" = contained ] ;;
		symlink-root-through)
			[ -f "$ROOT/diff/L/victim/pwned" ]
			[ "$(readlink "$ROOT/diff/L/escape")" = / ] ;;
		symlink-abs-through) [ "$(cat "$ROOT/diff/L/victim/pwned")" = contained ] ;;
		hardlink-to-abs-symlink)
			[ "$(readlink "$ROOT/diff/L/h")" = /etc/shadow ]
			[ "$(stat -c %i "$ROOT/diff/L/h")" = "$(stat -c %i "$ROOT/diff/L/s")" ] ;;
		esac
		strata rm L
	done <"$TEST_DIR/corpus/cases"
}

@test "a layer holding a symlink out is not followed by a later apply" {
	strata create L
	ln -s "$WORLD/victim" "$ROOT/diff/L/out"
	ln -s ../../../victim "$ROOT/diff/L/rel"
	python3 - "$TEST_DIR/t.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tf:
    for name in ("out/hello", "rel/hello"):
        ti = tarfile.TarInfo(name); ti.size = 5
        tf.addfile(ti, io.BytesIO(b"pwned"))
PY
	before=$(canary)
	run strata apply L "$TEST_DIR/t.tar"
	[ "$(canary)" = "$before" ]
	[ "$(cat "$WORLD/victim/hello")" = secret ]
}

@test "a failed apply of a damaged stream in the middle leaves a removable layer and a consistent store" {
	strata create B
	strata create L --parent B
	run strata apply L "$TEST_DIR/corpus/truncated.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == *"entry 'big-file'"* ]]
	run strata ls
	[ "$status" -eq 0 ]
	strata rm L
	strata rm B
	run strata ls --format json
	[ "$output" = "[]" ]
}

@test "apply with a parent that is not the layer's own goes through the mounted union, safely" {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	strata create A
	strata create B --parent A
	strata create L --parent B
	python3 -c 'import tarfile,sys; tarfile.open(sys.argv[1],"w").close()' "$TEST_DIR/e.tar"
	run strata apply L --parent A "$TEST_DIR/e.tar"
	[ "$status" -eq 0 ]
	[ "$output" = 0 ]
	run strata apply L --parent '' "$TEST_DIR/e.tar"
	[ "$status" -eq 0 ]
	run strata apply L --parent B "$TEST_DIR/e.tar"
	[ "$status" -eq 0 ]
	run strata apply L "$TEST_DIR/e.tar"
	[ "$status" -eq 0 ]
	# A base layer takes any parent (Docker's isParent).
	run strata apply A --parent whatever "$TEST_DIR/e.tar"
	[ "$status" -eq 0 ]
	run strata apply nosuch "$TEST_DIR/e.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == *"no such layer"* ]]
	# The hostile corpus through the union: refused, and nothing leaves the layer.
	local c before
	for c in dotdot hardlink-symlink-out symlink-then-file whiteout-with-children; do
		before=$(canary)
		run strata apply L --parent A "$TEST_DIR/corpus/$c.tar"
		[ "$status" -eq 1 ] || { echo "case $c: $output"; return 1; }
		[ "$(canary)" = "$before" ] || { echo "case $c: the canary changed"; return 1; }
	done
	# A whiteout in the tar never reaches out of the layer either.
	python3 - "$TEST_DIR/wh.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w") as tf:
    ti = tarfile.TarInfo("victim/hello")
    ti.size = 6
    tf.addfile(ti, io.BytesIO(b"inside"))
    for name in ("l", "l/.wh.hello"):
        ti = tarfile.TarInfo(name)
        if name == "l":
            ti.type, ti.linkname = tarfile.SYMTYPE, "/victim"
        tf.addfile(ti)
PY
	before=$(canary)
	run strata apply L --parent A "$TEST_DIR/wh.tar"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	[ "$(canary)" = "$before" ]
	[ "$(cat "$WORLD/victim/hello")" = secret ]
	[ ! -e "$ROOT/diff/L/victim/hello" ]
	[ -d "$ROOT/diff/L/victim" ]
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}
