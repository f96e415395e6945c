#!/usr/bin/env bats
# Layer tars from writers nobody here wrote: GNU tar, bsdtar, Python's tarfile
# and Go's archive/tar (the writer Docker uses). Each is applied, compared with
# its source, rebuilt byte for byte, and exported afresh.

load helpers

per_test_setup() {
	SRC=$TEST_DIR/src
	mkdir -p "$SRC/dir/sub" "$SRC/empty-dir" "$SRC/ro"
	echo hello >"$SRC/dir/file"
	head -c 70000 /dev/urandom >"$SRC/dir/sub/rand"
	: >"$SRC/zero"
	ln "$SRC/dir/file" "$SRC/dir/link"
	ln -s sub/rand "$SRC/dir/sym"
	mkfifo "$SRC/fifo"
	mknod "$SRC/tty" c 5 0
	echo suid >"$SRC/suid"
	chmod 4755 "$SRC/suid"
	chown 100:200 "$SRC/dir/file"
	: >"$SRC/.wh.deleted"
	: >"$SRC/dir/.wh..wh..opq"
	echo é >"$SRC/dir/ünïcode"
	chmod 500 "$SRC/ro"
	touch -d '2020-01-02 03:04:05' "$SRC/dir/sub"
	# Long names only for the formats that can hold them.
	LONG=$TEST_DIR/long
	cp -a "$SRC" "$LONG"
	n=$(printf 'x%.0s' $(seq 1 130))
	mkdir -p "$LONG/$n"
	echo long >"$LONG/$n/$n"
	ln -s "$n/$n" "$LONG/longlink"
}

# What two trees must share after a tar: names, types, modes, owners, sizes, targets, contents.
tree_basic() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %#m %U:%G %s %l\n' | LC_ALL=C sort &&
		find . -mindepth 1 -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
}

# Applies $1 (a tar of tree $2) to a new layer and checks all there is to check.
check_writer() {
	local tarf=$1 src=$2 id=L$RANDOM$RANDOM
	strata create "$id"
	run strata apply "$id" "$tarf"
	[ "$status" -eq 0 ] || { echo "$tarf: apply: $output"; return 1; }
	diff <(tree_basic "$src") <(tree_basic "$ROOT/diff/$id") || { echo "$tarf: trees differ"; return 1; }
	[ "$(stat -c %Y "$ROOT/diff/$id/dir/sub")" = "$(stat -c %Y "$src/dir/sub")" ] ||
		{ echo "$tarf: directory time"; return 1; }
	[ "$(strata diff "$id" | sha256sum)" = "$(sha256sum <"$tarf")" ] ||
		{ echo "$tarf: not rebuilt byte for byte"; return 1; }
	# The fresh export is a tar every reader takes, holding the same tree.
	strata diff "$id" --regenerate -o "$TEST_DIR/fresh.tar"
	mkdir "$TEST_DIR/x"
	tar -xpf "$TEST_DIR/fresh.tar" -C "$TEST_DIR/x"
	diff <(tree_basic "$src") <(tree_basic "$TEST_DIR/x") || { echo "$tarf: fresh export differs"; return 1; }
	rm -rf "$TEST_DIR/x"
}

@test "GNU tar: gnu, posix, ustar and v7 formats" {
	for fmt in gnu oldgnu posix; do
		tar --format=$fmt -C "$LONG" -cf "$TEST_DIR/gnu-$fmt.tar" .
		check_writer "$TEST_DIR/gnu-$fmt.tar" "$LONG"
	done
	tar --format=ustar -C "$SRC" -cf "$TEST_DIR/gnu-ustar.tar" .
	check_writer "$TEST_DIR/gnu-ustar.tar" "$SRC"
	# v7 has no fifos, devices or owners' names: only the plain files.
	mkdir "$TEST_DIR/v7"
	cp -a "$SRC/dir" "$TEST_DIR/v7/"
	rm "$TEST_DIR/v7/dir/ünïcode"
	tar --format=v7 -C "$TEST_DIR/v7" -cf "$TEST_DIR/gnu-v7.tar" .
	check_writer "$TEST_DIR/gnu-v7.tar" "$TEST_DIR/v7"
}

@test "bsdtar: pax, ustar and gnutar formats" {
	command -v bsdtar >/dev/null || skip "no bsdtar"
	for fmt in pax paxr; do
		bsdtar --format=$fmt -C "$LONG" -cf "$TEST_DIR/bsd-$fmt.tar" .
		check_writer "$TEST_DIR/bsd-$fmt.tar" "$LONG"
	done
	bsdtar --format=ustar -C "$SRC" -cf "$TEST_DIR/bsd-ustar.tar" .
	check_writer "$TEST_DIR/bsd-ustar.tar" "$SRC"
	bsdtar --format=gnutar -C "$LONG" -cf "$TEST_DIR/bsd-gnutar.tar" .
	check_writer "$TEST_DIR/bsd-gnutar.tar" "$LONG"
}

@test "Python's tarfile: gnu, pax and ustar formats" {
	for fmt in GNU PAX USTAR; do
		src=$LONG
		[ $fmt != USTAR ] || src=$SRC
		python3 - "$TEST_DIR/py-$fmt.tar" "$src" $fmt <<'PY'
import os, sys, tarfile
out, src, fmt = sys.argv[1], sys.argv[2], getattr(tarfile, sys.argv[3] + "_FORMAT")
with tarfile.open(out, "w", format=fmt) as t:
    for name in sorted(os.listdir(src)):
        t.add(os.path.join(src, name), arcname=name)
PY
		check_writer "$TEST_DIR/py-$fmt.tar" "$src"
	done
}

@test "Go's archive/tar, written as Docker's TarWithOptions writes" {
	command -v go >/dev/null || skip "no Go toolchain"
	export GOCACHE=$TEST_DIR/gocache GOPATH=$TEST_DIR/gopath GO111MODULE=off GOFLAGS=
	go build -o "$TEST_DIR/gotar" "$BATS_TEST_DIRNAME/tar/gotar.go"
	"$TEST_DIR/gotar" "$LONG" >"$TEST_DIR/go.tar"
	check_writer "$TEST_DIR/go.tar" "$LONG"
	# Our own fresh export of a Go-written layer is read back by Go's tar reader's users.
	tar -tvf "$TEST_DIR/fresh.tar" >/dev/null
}

@test "Go's archive/tar output of a layer equals, entry for entry, our fresh export" {
	command -v go >/dev/null || skip "no Go toolchain"
	export GOCACHE=$TEST_DIR/gocache GOPATH=$TEST_DIR/gopath GO111MODULE=off GOFLAGS=
	go build -o "$TEST_DIR/gotar" "$BATS_TEST_DIRNAME/tar/gotar.go"
	strata create L
	tar -C "$LONG" -cf - . | strata apply L --no-tar-split >/dev/null
	"$TEST_DIR/gotar" "$ROOT/diff/L" >"$TEST_DIR/go.tar"
	strata diff L -o "$TEST_DIR/ours.tar"
	python3 - "$TEST_DIR/go.tar" "$TEST_DIR/ours.tar" <<'PY'
import sys, tarfile
def entries(p):
    out = []
    for m in tarfile.open(p):
        out.append((m.name, m.type, m.mode, m.uid, m.gid, m.size, m.mtime, m.linkname,
                    m.devmajor, m.devminor, m.uname, m.gname))
    return out
a, b = entries(sys.argv[1]), entries(sys.argv[2])
for x, y in zip(a, b):
    assert x == y, (x, y)
assert len(a) == len(b), (len(a), len(b))
PY
}
