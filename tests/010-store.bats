#!/usr/bin/env bats
# The store from the command line: layout, create, ls, rm, exists, metadata, errors.

load helpers

@test "first use creates the aufs layout with the seed's modes" {
	run strata status
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$ROOT")" = 710 ]
	for d in layers diff mnt; do
		[ "$(stat -c %a "$ROOT/$d")" = 710 ]
		[ "$(stat -c %u:%g "$ROOT/$d")" = "$(id -u):$(id -g)" ]
	done
}

@test "status prints the seed's four keys in order, then ours" {
	strata create a
	run strata status
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "Root Dir: $ROOT" ]
	[[ "${lines[1]}" == "Backing Filesystem: "* ]]
	[ "${lines[2]}" = "Dirs: 1" ]
	[[ "${lines[3]}" == "Dirperm1 Supported: "* ]]
	[[ "${lines[4]}" == "Engine: "* ]]
}

@test "status names the backing file system from its magic" {
	mkdir "$TEST_DIR/tmpfs"
	mount -t tmpfs none "$TEST_DIR/tmpfs" || skip "cannot mount tmpfs"
	run "$STRATA_BIN" --root "$TEST_DIR/tmpfs/root" status
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "Backing Filesystem: tmpfs" ]
}

@test "create writes the parent chain, nearest first" {
	strata create A
	strata create B --parent A
	strata create-rw C -p B
	[ "$(cat "$ROOT/layers/C")" = "$(printf 'B\nA')" ]
	[ ! -s "$ROOT/layers/A" ]
	[ "$(stat -c %a "$ROOT/diff/C")" = 755 ]
	[ "$(stat -c %a "$ROOT/mnt/C")" = 755 ]
	run strata parents C
	[ "$output" = "$(printf 'B\nA')" ]
}

@test "options go before or after operands" {
	"$STRATA_BIN" create A --root "$ROOT"
	"$STRATA_BIN" create --parent A B --root "$ROOT"
	STRATA_ROOT=$ROOT "$STRATA_BIN" create C --parent B
	run strata --format json exists C
	[ "$status" -eq 0 ]
	run "$STRATA_BIN" ls --root "$ROOT" --format json
	[ "$(echo "$output" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 3 ]
}

@test "ls lists id, parent and depth; --tree draws the chain" {
	strata create A
	strata create B --parent A
	strata create C --parent B
	run strata ls
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == ID* ]]
	[[ "${lines[3]}" =~ ^C\ +B\ +2 ]]
	run strata ls --tree
	[ "${lines[0]}" = A ]
	[[ "${lines[1]}" == *B ]]
	[[ "${lines[2]}" == *C ]]
}

@test "json output is one document" {
	strata create A
	strata create B --parent A
	strata --format json status | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["Dirs"]=="2", d'
	strata --format json ls | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[1]["parent"]=="A" and d[1]["depth"]==1, d'
	strata --format json metadata B | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["Parent"]=="A", d'
	# Every command prints exactly one document, those that change things too.
	strata --format json create C | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["id"]=="C", d'
	strata --format json mount A | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["path"].endswith("/diff/A"), d'
	strata --format json unmount A | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d=={"id":"A","mounts":0}, d'
	strata --format json cleanup | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["cleaned"] is True, d'
	strata --format json rm C B | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d=={"removed":["C","B"]}, d'
	run strata --format json rm A nope
	[ "$status" -eq 1 ]
	[[ "$output" == *'"removed": ['*'"A"'* ]]
}

@test "exists exits 0 or 1" {
	strata create A
	run strata exists A
	[ "$status" -eq 0 ]
	run strata exists B
	[ "$status" -eq 1 ]
}

@test "rm refuses a layer with children and names them; --force removes" {
	strata create c0ffee
	strata create b2 --parent c0ffee
	strata create a1 --parent c0ffee
	run strata rm c0ffee
	[ "$status" -eq 1 ]
	[ "$output" = "strata: rm 'c0ffee': layer has children 'a1', 'b2'" ]
	[ -e "$ROOT/layers/c0ffee" ]
	strata rm --force c0ffee
	[ ! -e "$ROOT/layers/c0ffee" ]
	[ ! -e "$ROOT/diff/c0ffee" ]
	[ ! -e "$ROOT/mnt/c0ffee" ]
	[ ! -e "$ROOT/diff/c0ffee-removing" ]
}

@test "rm of an unknown layer fails and changes nothing" {
	strata create A
	before=$(tree_digest "$ROOT")
	run strata rm nope
	[ "$status" -eq 1 ]
	[[ "$output" == *"rm 'nope': no such layer"* ]]
	[ "$before" = "$(tree_digest "$ROOT")" ]
}

@test "commands on an unknown id fail with exit 1 and leave no lock file behind" {
	strata create a
	printf '' >"$TEST_DIR/empty.tar"
	for cmd in "mount nope" "unmount nope" "rm nope" "diff nope" "diff-size nope" \
		"apply nope $TEST_DIR/empty.tar" "changes nope" "metadata nope" "parents nope"; do
		run strata $cmd
		[ "$status" -eq 1 ] || { echo "$cmd: exit $status"; false; }
		[[ "$output" == *"nope"* ]]
	done
	[ "$(ls "$ROOT/.strata/locks")" = a ]
	# a lock held elsewhere is left alone: it may be another process's
	exec 9>"$ROOT/.strata/locks/nope"
	flock -s 9
	run strata diff nope
	[ "$status" -eq 1 ]
	[ -e "$ROOT/.strata/locks/nope" ]
	exec 9>&-
}

@test "create with an unknown parent fails and leaves nothing" {
	strata status >/dev/null
	before=$(tree_digest "$ROOT")
	run strata create X --parent missing
	[ "$status" -eq 1 ]
	[[ "$output" == *"create 'X': parent 'missing' does not exist"* ]]
	[ "$before" = "$(tree_digest "$ROOT")" ]
}

@test "a duplicate create fails and keeps the layer" {
	strata create A
	echo data >"$ROOT/diff/A/file"
	run strata create A
	[ "$status" -eq 1 ]
	[[ "$output" == *"create 'A': layer already exists"* ]]
	[ "$(cat "$ROOT/diff/A/file")" = data ]
}

@test "storage options are refused" {
	run strata create A --storage-opt size=10G
	[ "$status" -eq 1 ]
	[[ "$output" == *"--storage-opt is not supported"* ]]
	[ ! -e "$ROOT/diff/A" ]
}

@test "bad ids are refused before any file is touched" {
	strata status >/dev/null
	before=$(tree_digest "$ROOT")
	long=$(printf 'a%.0s' $(seq 256))
	for id in "../evil" "a/b" ".." "." "-x" "x-removing" "$long" "a b" ".hidden"; do
		run strata create -- "$id"
		[ "$status" -ne 0 ]
		[[ "$output" == *"invalid layer id"* ]] || [[ "$output" == *"usage"* ]] || false
		run strata rm -- "$id"
		[ "$status" -ne 0 ]
		run strata mount -- "$id"
		[ "$status" -ne 0 ]
	done
	run strata create ""
	[ "$status" -ne 0 ]
	[ "$before" = "$(tree_digest "$ROOT")" ]
	[ ! -e "$TEST_DIR/evil" ]
	run strata exists "a/b"
	[ "$status" -eq 2 ]
	# A bad id, or a bad parent, is a usage error found before the store is opened:
	# a root that does not exist yet stays so.
	for cmd in create create-rw rm exists metadata parents mount unmount changes apply diff diff-size; do
		run "$STRATA_BIN" --root "$TEST_DIR/fresh" "$cmd" -- ../evil
		[ "$status" -eq 2 ]
		[[ "$output" == *"$cmd '../evil': invalid layer id"* ]]
	done
	for cmd in create changes apply diff diff-size; do
		run "$STRATA_BIN" --root "$TEST_DIR/fresh" "$cmd" ok --parent ../evil
		[ "$status" -eq 2 ]
		[[ "$output" == *"$cmd '../evil': invalid layer id"* ]]
	done
	run "$STRATA_BIN" --root "$TEST_DIR/fresh" rm good "a$(printf '\001')b"
	[ "$status" -eq 2 ]
	[[ "$output" == *"rm 'a?b': invalid layer id"* ]]
	[ ! -e "$TEST_DIR/fresh" ]
}

@test "usage errors exit 2, help exits 0" {
	run strata
	[ "$status" -eq 2 ]
	run strata frobnicate
	[ "$status" -eq 2 ]
	run strata create
	[ "$status" -eq 2 ]
	run strata create a b
	[ "$status" -eq 2 ]
	run strata ls --bogus
	[ "$status" -eq 2 ]
	run strata --format yaml ls
	[ "$status" -eq 2 ]
	run strata help
	[ "$status" -eq 0 ]
	[[ "$output" == *create* ]]
	run strata rm --help
	[ "$status" -eq 0 ]
	[[ "$output" == *--force* ]]
	run strata help mount
	[ "$status" -eq 0 ]
}

@test "a root that is a file, or that cannot be written, fails clearly" {
	touch "$TEST_DIR/file"
	run "$STRATA_BIN" --root "$TEST_DIR/file" create A
	[ "$status" -eq 1 ]
	[[ "$output" == *"root '$TEST_DIR/file': not a directory"* ]]
	strata create A
	mount --bind -o ro "$ROOT" "$ROOT" || skip "cannot make a read-only bind mount"
	run strata create B
	[ "$status" -eq 1 ]
	[[ "$output" == *"$ROOT"* ]]
	run strata ls
	[ "$status" -eq 0 ]
	[[ "$output" == *A* ]]
	umount "$ROOT"
}

@test "a missing root is created, parents included" {
	run "$STRATA_BIN" --root "$TEST_DIR/x/y/root" create A
	[ "$status" -eq 0 ]
	[ -e "$TEST_DIR/x/y/root/layers/A" ]
}

@test "stale -removing directories are deleted when the store is opened for writing" {
	strata status >/dev/null
	mkdir -p "$ROOT/diff/123-removing/sub" "$ROOT/mnt/123-removing"
	touch "$ROOT/diff/123-removing/sub/f"
	strata ls >/dev/null
	[ -d "$ROOT/diff/123-removing" ]
	strata create A
	[ ! -e "$ROOT/diff/123-removing" ]
	[ ! -e "$ROOT/mnt/123-removing" ]
}

@test "mount of a base layer returns its diff dir, counted across processes" {
	strata create base
	strata create kid --parent base
	run strata mount base
	[ "$output" = "$ROOT/diff/base" ]
	strata mount base
	run strata --format json ls
	echo "$output" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[0]["mounts"]==2, d'
	strata unmount base
	strata unmount base
	run strata unmount base
	[ "$status" -eq 1 ]
	[[ "$output" == *"unmount 'base': layer is not mounted"* ]]
	run strata mount nope
	[ "$status" -eq 1 ]
	[[ "$output" == *"mount 'nope': no such layer"* ]]
}

@test "rm after mount of a base layer leaves nothing" {
	strata create base
	strata mount base
	strata rm base
	[ -z "$(find "$ROOT/diff" "$ROOT/mnt" "$ROOT/layers" "$ROOT/.strata/mounts" -mindepth 1)" ]
}

@test "16 processes creating, listing and removing leave a consistent store" {
	strata create shared
	for w in $(seq 16); do
		(
			for i in $(seq 10); do
				"$STRATA_BIN" --root "$ROOT" create "w$w-$i" --parent shared >/dev/null || exit 1
				"$STRATA_BIN" --root "$ROOT" create "w$w-$i-kid" --parent "w$w-$i" >/dev/null || exit 1
				"$STRATA_BIN" --root "$ROOT" ls >/dev/null || exit 1
				"$STRATA_BIN" --root "$ROOT" rm shared 2>/dev/null && exit 1
				if [ $((i % 2)) -eq 0 ]; then
					"$STRATA_BIN" --root "$ROOT" rm "w$w-$i-kid" || exit 1
					"$STRATA_BIN" --root "$ROOT" rm "w$w-$i" || exit 1
				fi
			done
		) &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	[ "$(ls "$ROOT/layers" | wc -l)" -eq $((1 + 16 * 10)) ]
	[ "$(ls "$ROOT/diff" | wc -l)" -eq $((1 + 16 * 10)) ]
	[ "$(ls "$ROOT/mnt" | wc -l)" -eq $((1 + 16 * 10)) ]
	for f in "$ROOT"/layers/*-kid; do
		parent=$(head -1 "$f")
		[ -e "$ROOT/layers/$parent" ]
		[ "$(sed -n 2p "$f")" = shared ]
	done
	[ -z "$(ls -A "$ROOT/.strata/tmp")" ]
}

@test "id maps: layer directories belong to the remapped root, and the maps are kept" {
	strata init --uidmap 0:100000:65536 --gidmap 0:200000:65536 >/dev/null
	strata create A
	[ "$(stat -c %u:%g "$ROOT/diff/A")" = 100000:200000 ]
	[ "$(stat -c %u:%g "$ROOT/mnt/A")" = 100000:200000 ]
	[ "$(stat -c %g "$ROOT/layers")" = 200000 ]
	strata create B
	[ "$(stat -c %u:%g "$ROOT/diff/B")" = 100000:200000 ]
	run strata init --uidmap 0:300000:65536
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot change while the store has layers"* ]]
	run strata init --uidmap 1:2
	[ "$status" -eq 2 ]
}
