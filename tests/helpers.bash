# Shared by the bats suites: a fresh directory per test, a `strata` wrapper that
# pins --root, and a teardown that always unmounts what the test mounted and
# stops the daemons it started (by pid).

STRATA_BUILD=${STRATA_BUILD:-$BATS_TEST_DIRNAME/../build}
STRATA_BIN=$STRATA_BUILD/src/cli/strata
STRATA_FUSE_BIN=$STRATA_BUILD/src/fuse/strata-fuse
# The library runs the strata-fuse of this build, not an installed one.
export STRATA_FUSE=${STRATA_FUSE:-$STRATA_FUSE_BIN}

# Whether this build runs under AddressSanitizer: resident sizes are then its quarantine's, and
# programs linked against the library need its runtime.
asan_build() {
	ldd "$STRATA_BIN" 2>/dev/null | grep -q libasan
}

tsan_build() {
	ldd "$STRATA_BIN" 2>/dev/null | grep -q libtsan
}

setup() {
	TEST_DIR=$(mktemp -d /tmp/strata-bats.XXXXXX)
	ROOT=$TEST_DIR/root
	export TEST_DIR ROOT
	: >"$TEST_DIR/.pids"
	if declare -F per_test_setup >/dev/null; then per_test_setup; fi
}

# Records a pid for teardown to stop.
track_pid() {
	echo "$1" >>"$TEST_DIR/.pids"
}

# Unmounts every mount below $TEST_DIR, deepest first, then removes it.
teardown() {
	if declare -F per_test_teardown >/dev/null; then per_test_teardown || true; fi
	[ -n "${TEST_DIR:-}" ] && [ -d "$TEST_DIR" ] || return 0
	local m pid
	for _ in 1 2 3; do
		mapfile -t mounts < <(awk -v d="$TEST_DIR" 'index($5, d) == 1 { print $5 }' \
			/proc/self/mountinfo | sort -r)
		[ ${#mounts[@]} -eq 0 ] && break
		for m in "${mounts[@]}"; do
			fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		done
	done
	while read -r pid; do
		[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	done <"$TEST_DIR/.pids"
	# Daemons the store started for this test's root (their pid files say which).
	local f
	for f in "$TEST_DIR"/root/.strata/pids/*; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		[ "$(cat /proc/"$pid"/comm 2>/dev/null)" = strata-fuse ] && kill "$pid" 2>/dev/null
	done
	rm -rf "$TEST_DIR"
}

strata() {
	"$STRATA_BIN" --root "$ROOT" "$@"
}

# A tree's listing with modes, owners, sizes and content digests: for before/after comparisons.
tree_digest() {
	(cd "$1" && find . -path ./.strata -prune -o -printf '%p %M %U:%G %s %l\n' | LC_ALL=C sort &&
		find . -path ./.strata -prune -o -type f -exec sha256sum {} + | LC_ALL=C sort)
}

# True while process $1 runs (a zombie nobody reaped has exited).
alive() {
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
