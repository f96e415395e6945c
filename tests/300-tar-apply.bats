#!/usr/bin/env bats
# apply, diff, diff-size and diff-get from the command line: every entry type,
# Docker's header rules, compressed input, byte-exact round trips.

load helpers
bats_require_minimum_version 1.5.0

# Paths, types, modes, owners, sizes, link targets, mtimes (ns), xattrs and contents of a tree.
tree_meta() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %#m %U:%G %s %l %T@\n' | LC_ALL=C sort &&
		find . -mindepth 1 -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum &&
		getfattr -h -R -d -m - . 2>/dev/null | grep -v '^$' | LC_ALL=C sort)
}

# Mtimes in whole seconds, for trees that went through a tar that keeps no more.
tree_meta_s() {
	tree_meta "$1" | sed -E 's/ ([0-9]+)\.[0-9]+$/ \1/'
}

# A source tree with every kind of entry a layer has.
make_tree() {
	local t=$1
	mkdir -p "$t/dir/sub" "$t/ro" "$t/.wh..wh.plnk" "$t/opaque"
	echo hello >"$t/dir/file"
	: >"$t/empty"
	head -c 300000 /dev/urandom >"$t/dir/sub/big"
	ln "$t/dir/file" "$t/dir/hardlink"
	ln -s file "$t/dir/symlink"
	ln -s /etc/passwd "$t/abs-symlink"
	mkfifo "$t/fifo"
	mknod "$t/null" c 1 3
	mknod "$t/blk" b 7 200
	echo suid >"$t/suid"
	chmod 4755 "$t/suid"
	echo sgid >"$t/sgid"
	chmod 2711 "$t/sgid"
	mkdir "$t/sticky"
	chmod 1777 "$t/sticky"
	echo owned >"$t/owned"
	chown 1234:5678 "$t/owned"
	setfattr -n user.comment -v "some value" "$t/dir/file"
	setfattr -n trusted.overlay.opaque -v y "$t/opaque"
	setcap cap_net_raw+ep "$t/suid" 2>/dev/null || true
	local long
	long=$(printf 'l%.0s' $(seq 1 150))
	mkdir -p "$t/deep/$long/$long"
	echo long >"$t/deep/$long/$long/$long"
	echo utf8 >"$t/dir/ünïcødé ☃"
	truncate -s 10M "$t/sparse"
	echo middle | dd of="$t/sparse" bs=1 seek=5000000 conv=notrunc status=none
	: >"$t/.wh.gone"
	: >"$t/opaque/.wh..wh..opq"
	echo x >"$t/.wh..wh.plnk/123.456"
	touch -h -d '2001-02-03 04:05:06.123456789' "$t/dir/file" "$t/dir/symlink"
	touch -d '1999-12-31 23:59:59.5' "$t/dir/sub" "$t/ro"
	chmod 555 "$t/ro"
}

@test "apply unpacks every entry type literally; diff rebuilds the applied tar byte for byte" {
	make_tree "$TEST_DIR/src"
	tar --xattrs --xattrs-include='*' --format=posix -S -C "$TEST_DIR/src" -cf "$TEST_DIR/in.tar" .
	strata create L
	run strata apply L "$TEST_DIR/in.tar"
	[ "$status" -eq 0 ]
	[ "$output" = "$(strata diff-size L)" ]
	diff <(tree_meta "$TEST_DIR/src") <(tree_meta "$ROOT/diff/L")
	# Whiteouts and aufs metadata stay files: the aufs layout is the tar layout.
	[ -f "$ROOT/diff/L/.wh.gone" ]
	[ -f "$ROOT/diff/L/opaque/.wh..wh..opq" ]
	[ -f "$ROOT/diff/L/.wh..wh.plnk/123.456" ]
	[ "$(stat -c %i "$ROOT/diff/L/dir/file")" = "$(stat -c %i "$ROOT/diff/L/dir/hardlink")" ]
	[ "$(stat -c %y "$ROOT/diff/L/dir/file")" = "2001-02-03 04:05:06.123456789 +0000" ]
	[ "$(stat -c %b "$ROOT/diff/L/sparse")" -lt 1000 ]
	strata diff L -o "$TEST_DIR/out.tar"
	[ "$(sha256sum <"$TEST_DIR/out.tar")" = "$(sha256sum <"$TEST_DIR/in.tar")" ]
	[ "$(strata diff L | sha256sum)" = "$(sha256sum <"$TEST_DIR/in.tar")" ]
}

@test "apply reads gzip, zstd, xz and bzip2, told from the bytes; the record is of the plain tar" {
	make_tree "$TEST_DIR/src"
	tar --xattrs --xattrs-include='*' --format=posix -C "$TEST_DIR/src" -cf "$TEST_DIR/in.tar" .
	gzip -k "$TEST_DIR/in.tar"
	zstd -q "$TEST_DIR/in.tar"
	xz -k "$TEST_DIR/in.tar"
	bzip2 -k "$TEST_DIR/in.tar"
	for ext in gz zst xz bz2; do
		strata create "L$ext"
		strata apply "L$ext" <"$TEST_DIR/in.tar.$ext" >/dev/null
		diff <(tree_meta_s "$TEST_DIR/src") <(tree_meta_s "$ROOT/diff/L$ext")
		[ "$(strata diff "L$ext" | sha256sum)" = "$(sha256sum <"$TEST_DIR/in.tar")" ]
	done
}

@test "diff writes Docker's headers: lexical order, PAX, whole seconds, no names, first-name hard links" {
	make_tree "$TEST_DIR/src"
	tar --xattrs --xattrs-include='*' --format=posix -C "$TEST_DIR/src" -cf "$TEST_DIR/in.tar" .
	strata create L
	strata apply L "$TEST_DIR/in.tar" >/dev/null
	strata diff L --regenerate -o "$TEST_DIR/out.tar"
	python3 - "$TEST_DIR/out.tar" "$ROOT/diff/L" <<'PY'
import os, sys, tarfile
tf = tarfile.open(sys.argv[1])
members = tf.getmembers()
names = [m.name for m in members]
# Go's WalkDir order: sorted per directory, depth first.
def walk(d, rel=""):
    for n in sorted(os.listdir(d), key=lambda s: s.encode()):
        p = rel + n
        if rel == "" and n.startswith(".wh..wh.") and n != ".wh..wh..opq":
            continue
        yield p
        if os.path.isdir(os.path.join(d, n)) and not os.path.islink(os.path.join(d, n)):
            yield from walk(os.path.join(d, n), p + "/")
want = list(walk(sys.argv[2]))
assert names == want, (names, want)
by = {m.name: m for m in members}
assert ".wh.gone" in by and "opaque/.wh..wh..opq" in by
assert not any(n.startswith(".wh..wh.plnk") for n in names)
for m in members:
    assert m.uname == "" and m.gname == "", m.name
    assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers, m.pax_headers
    assert "mtime" not in m.pax_headers, m.pax_headers
    for k in m.pax_headers:
        assert not k.startswith("SCHILY.xattr.") or k == "SCHILY.xattr.security.capability", k
        assert not k.startswith("LIBARCHIVE."), k
assert by["dir/hardlink"].type == tarfile.LNKTYPE and by["dir/hardlink"].linkname == "dir/file"
assert by["dir/file"].type == tarfile.REGTYPE
assert by["dir/file"].mtime == 981173106
assert by["owned"].uid == 1234 and by["owned"].gid == 5678
assert by["suid"].mode == 0o4755 and by["sgid"].mode == 0o2711 and by["sticky"].mode == 0o1777
assert by["null"].type == tarfile.CHRTYPE and (by["null"].devmajor, by["null"].devminor) == (1, 3)
assert by["blk"].type == tarfile.BLKTYPE and by["fifo"].type == tarfile.FIFOTYPE
assert by["dir/symlink"].linkname == "file"
assert "dir/sub/" in [m.name + "/" for m in members if m.isdir()]
caps = by["suid"].pax_headers.get("SCHILY.xattr.security.capability")
if caps is not None:
    assert ord(caps[3]) == 2, "capability not v2"
PY
	# Raw names: directories end in '/'.
	tar -tf "$TEST_DIR/out.tar" | grep -qx 'dir/sub/'
}

@test "diff of the same tree gives the same bytes, whatever atimes and ctimes do" {
	make_tree "$TEST_DIR/src"
	tar --format=posix -C "$TEST_DIR/src" -cf "$TEST_DIR/in.tar" .
	strata create L
	strata apply L --no-tar-split "$TEST_DIR/in.tar" >/dev/null
	[ ! -e "$ROOT/.strata/tarsplit/L.json.gz" ]
	a=$(strata diff L | sha256sum)
	cat "$ROOT/diff/L/dir/file" >/dev/null
	chmod 644 "$ROOT/diff/L/empty"
	b=$(strata diff L | sha256sum)
	[ "$a" = "$b" ]
	# Its own output applied elsewhere exports the same again.
	strata diff L -o "$TEST_DIR/one.tar"
	strata create M
	strata apply M --no-tar-split "$TEST_DIR/one.tar" >/dev/null
	[ "$(strata diff M | sha256sum)" = "$a" ]
	diff <(tree_meta_s "$ROOT/diff/L" | grep -v '^./.wh..wh.plnk' | grep -v '\.wh\.\.wh\.plnk') \
		<(tree_meta_s "$ROOT/diff/M")
}

@test "a file changed since apply is caught by its checksum, never exported wrong" {
	make_tree "$TEST_DIR/src"
	tar -C "$TEST_DIR/src" -cf "$TEST_DIR/in.tar" .
	strata create L
	strata apply L "$TEST_DIR/in.tar" >/dev/null
	echo hellp >"$ROOT/diff/L/dir/file"  # same size, other bytes
	run strata diff L -o "$TEST_DIR/out.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == *"file './dir/file' changed since the layer was applied"* ]]
	[ ! -e "$TEST_DIR/out.tar" ]
	# Only the regular file it wrote is removed: a device or fifo given as output stays.
	mknod "$TEST_DIR/null" c 1 3
	mkfifo "$TEST_DIR/fifo"
	cat "$TEST_DIR/fifo" >/dev/null &
	run strata diff L -o "$TEST_DIR/null"
	[ "$status" -eq 1 ]
	[ -c "$TEST_DIR/null" ]
	run strata diff L -o "$TEST_DIR/fifo"
	[ "$status" -eq 1 ]
	[ -p "$TEST_DIR/fifo" ]
	wait
	rm "$ROOT/diff/L/dir/sub/big"
	run strata diff L -o "$TEST_DIR/out.tar"
	[ "$status" -eq 1 ]
	# A fresh tar is still there for the asking.
	strata diff L --regenerate -o "$TEST_DIR/out.tar"
	tar -tf "$TEST_DIR/out.tar" | grep -qx 'dir/file'
}

@test "apply over existing files replaces them, merges directories, and keeps no record" {
	strata create L
	mkdir -p "$TEST_DIR/a/x" "$TEST_DIR/b/x"
	echo old >"$TEST_DIR/a/x/keep"
	echo file >"$TEST_DIR/a/y"
	mkdir "$TEST_DIR/a/z"
	echo inz >"$TEST_DIR/a/z/f"
	echo new >"$TEST_DIR/b/x/new"
	mkdir "$TEST_DIR/b/y"
	echo nowfile >"$TEST_DIR/b/z"
	tar -C "$TEST_DIR/a" -cf "$TEST_DIR/a.tar" .
	tar -C "$TEST_DIR/b" -cf "$TEST_DIR/b.tar" .
	strata apply L "$TEST_DIR/a.tar" >/dev/null
	[ -e "$ROOT/.strata/tarsplit/L.json.gz" ]
	run strata apply L "$TEST_DIR/b.tar"
	[ "$status" -eq 0 ]
	[ "$output" = 16 ]
	[ "$(cat "$ROOT/diff/L/x/keep")" = old ]
	[ "$(cat "$ROOT/diff/L/x/new")" = new ]
	[ -d "$ROOT/diff/L/y" ]
	[ "$(cat "$ROOT/diff/L/z")" = nowfile ]
	[ ! -e "$ROOT/.strata/tarsplit/L.json.gz" ]
	strata diff L | tar -t | grep -qx 'x/keep'
}

@test "diff-size counts files once per inode, not directories; diff-get opens by tar name" {
	strata create L
	mkdir -p "$TEST_DIR/s/d"
	head -c 1000 /dev/zero >"$TEST_DIR/s/d/a"
	ln "$TEST_DIR/s/d/a" "$TEST_DIR/s/b"
	ln -s 12345 "$TEST_DIR/s/l"
	: >"$TEST_DIR/s/empty"
	tar -C "$TEST_DIR/s" -cf - . | strata apply L >/dev/null
	[ "$(strata diff-size L)" = 1005 ]
	[ "$(strata --format json diff-size L)" = '{"id": "L", "size": 1005}' ] ||
		[ "$(strata --format json diff-size L | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')" = 1005 ]
	for n in d/a ./d/a /d/a d//a d/./a; do
		[ "$(strata diff-get L "$n" | wc -c)" = 1000 ]
	done
	run strata diff-get L ../L/d/a
	[ "$status" -eq 1 ]
	[[ "$output" == *"leaves the layer"* ]]
	run strata diff-get L nothing
	[ "$status" -eq 1 ]
	strata create E
	[ "$(strata diff-size E)" = 0 ]
}

@test "parents: none given means the layer's own; another goes through the mounted stacks" {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	strata create A
	echo below >"$ROOT/diff/A/below"
	strata create B --parent A
	tar -C "$BATS_TEST_DIRNAME" -cf "$TEST_DIR/t.tar" tar
	strata apply B "$TEST_DIR/t.tar" >/dev/null
	strata diff B --parent A | tar -t | grep -q mkhostile
	! strata diff B --parent A | tar -t | grep -q below || false
	strata diff-size B --parent A
	# Against nothing: the whole merged view, the parent's file included.
	strata diff B --parent '' | tar -t | grep -qx below
	strata diff B --parent '' | tar -t | grep -q mkhostile
	[ "$(strata diff-size B --parent '')" -gt "$(strata diff-size B --parent A)" ]
	run strata diff-size B --parent X
	[ "$status" -eq 1 ]
	[[ "$output" == *"no such parent layer 'X'"* ]]
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}

@test "no progress line when stderr is not a terminal; a tar is never written to a terminal" {
	strata create L
	tar -C "$BATS_TEST_DIRNAME" -cf "$TEST_DIR/t.tar" tar
	run --separate-stderr strata apply L "$TEST_DIR/t.tar"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ "$output" =~ ^[0-9]+$ ]]
	run strata --format json apply L "$TEST_DIR/t.tar"
	[[ "$output" == *'"size"'* ]]
	if script -qec true /dev/null >/dev/null 2>&1; then
		run script -qec "$STRATA_BIN --root $ROOT diff L" /dev/null
		[[ "$output" == *"will not write a tar to a terminal"* ]]
	fi
}

@test "diff keeps only security.capability, rewritten from v3 to v2 as Docker does" {
	mkdir -p "$TEST_DIR/s"
	echo x >"$TEST_DIR/s/f"
	setcap -n 1000 cap_net_raw+ep "$TEST_DIR/s/f" 2>/dev/null || skip "cannot set v3 capabilities"
	setfattr -n user.other -v 1 "$TEST_DIR/s/f"
	tar --xattrs --xattrs-include='*' --format=posix -C "$TEST_DIR/s" -cf "$TEST_DIR/in.tar" .
	strata create L
	strata apply L "$TEST_DIR/in.tar" >/dev/null
	[ "$(getfattr --only-values -n user.other "$ROOT/diff/L/f")" = 1 ]
	strata diff L --regenerate -o "$TEST_DIR/out.tar"
	python3 - "$TEST_DIR/out.tar" <<'PY'
import sys, tarfile
m = [m for m in tarfile.open(sys.argv[1]) if m.name == "f"][0]
caps = m.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape")
assert len(caps) == 20, len(caps)
assert caps[3] == 2, caps
assert not any(k.startswith("SCHILY.xattr.user") for k in m.pax_headers), m.pax_headers
PY
}

@test "a progress line on a terminal, none with -q" {
	script -qec true /dev/null >/dev/null 2>&1 || skip "no script(1)"
	strata create L
	strata create M
	tar -C "$BATS_TEST_DIRNAME" -cf "$TEST_DIR/t.tar" .
	run script -qec "$STRATA_BIN --root $ROOT apply L $TEST_DIR/t.tar" /dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"entries"*"MB/s"* ]]
	run script -qec "$STRATA_BIN --root $ROOT -q apply M $TEST_DIR/t.tar" /dev/null
	[ "$status" -eq 0 ]
	[[ "$output" != *"entries"* ]]
}

@test "worker threads and --serial unpack the same tree and the same record" {
	make_tree "$TEST_DIR/src"
	for i in $(seq 1 300); do echo "$i" >"$TEST_DIR/src/dir/n$i"; done
	ln "$TEST_DIR/src/dir/n7" "$TEST_DIR/src/dir/sub/link7"
	tar --xattrs --xattrs-include='*' --format=posix -C "$TEST_DIR/src" -cf "$TEST_DIR/in.tar" .
	strata create P
	strata create S
	[ "$(strata apply P --threads "$TEST_DIR/in.tar")" = "$(strata apply S --serial "$TEST_DIR/in.tar")" ]
	diff <(tree_meta "$ROOT/diff/P") <(tree_meta "$ROOT/diff/S")
	diff <(tree_meta "$TEST_DIR/src") <(tree_meta "$ROOT/diff/P")
	cmp <(zcat "$ROOT/.strata/tarsplit/P.json.gz") <(zcat "$ROOT/.strata/tarsplit/S.json.gz")
}

@test "worker threads and --serial agree on names that reach one path through a symlink" {
	# real/aN then l/aN (l -> real), and the reverse; fN then r/fN (r -> /);
	# gN, then a directory r/gN/ in its place and a file below it.
	python3 "$BATS_TEST_DIRNAME/tar/mkaliased.py" "$TEST_DIR/in.tar" 1000
	strata create P
	strata create S
	run strata apply P --threads "$TEST_DIR/in.tar"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	run strata apply S --serial "$TEST_DIR/in.tar"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	diff <(tree_meta "$ROOT/diff/P") <(tree_meta "$ROOT/diff/S")
	# The last entry for a path wins, as in Docker's Unpack.
	[ "$(cat "$ROOT/diff/S/real/a7")" = "alias 7" ]
	[ "$(cat "$ROOT/diff/S/real/b7")" = "real 7" ]
	[ "$(cat "$ROOT/diff/S/f7")" = "through 7" ]
	[ "$(cat "$ROOT/diff/S/g7/x")" = "below 7" ]
	cmp <(zcat "$ROOT/.strata/tarsplit/P.json.gz") <(zcat "$ROOT/.strata/tarsplit/S.json.gz")
}

@test "apply and diff of GiB-sized layers stay under 64 MiB resident" {
	[ -x /usr/bin/time ] || skip "no /usr/bin/time"
	! asan_build || skip "ASan build: resident size is its quarantine's"
	local big=$BATS_TEST_DIRNAME/tar/mkbig.py
	# 2 GiB through a pipe: files of zeros, sparse files with data (their bytes are
	# recorded as segments), 512 MiB after the archive; each round frees its files.
	strata create L
	python3 "$big" 4 256 512 0 |
		/usr/bin/time -f %M -o "$TEST_DIR/rss" "$STRATA_BIN" --root "$ROOT" apply L -
	echo "apply: $(cat "$TEST_DIR/rss") KiB"
	[ "$(cat "$TEST_DIR/rss")" -lt 65536 ]
	# A 4 GiB file (a hole costs no disk), exported afresh.
	strata create D
	truncate -s 4G "$ROOT/diff/D/big"
	/usr/bin/time -f %M -o "$TEST_DIR/rss" "$STRATA_BIN" --root "$ROOT" diff D --regenerate >/dev/null
	echo "diff: $(cat "$TEST_DIR/rss") KiB"
	[ "$(cat "$TEST_DIR/rss")" -lt 65536 ]
	# A layer rebuilt from its record, byte for byte: a 128 MiB file is checksummed
	# as it streams, the sparse file's data and the trailing bytes come from segments.
	strata create K
	python3 "$big" 1 128 64 1 | strata apply K -
	/usr/bin/time -f %M -o "$TEST_DIR/rss" "$STRATA_BIN" --root "$ROOT" diff K |
		sha256sum >"$TEST_DIR/k.sha"
	echo "rebuild: $(cat "$TEST_DIR/rss") KiB"
	[ "$(cat "$TEST_DIR/rss")" -lt 65536 ]
	[ "$(python3 "$big" 1 128 64 1 | sha256sum)" = "$(cat "$TEST_DIR/k.sha")" ]
}

@test "the size apply prints leaves out what a later entry replaced" {
	python3 - "$TEST_DIR/in.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tf:
    for name, data in (("d/f", b"12345"), ("d", b"xy"), ("l", None), ("l/g", b"abc")):
        ti = tarfile.TarInfo(name)
        if data is None:
            ti.type, ti.linkname = tarfile.SYMTYPE, "/"
        else:
            ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data) if data is not None else None)
PY
	strata create L
	run strata apply L "$TEST_DIR/in.tar"
	[ "$status" -eq 0 ]
	[ "$output" = "$(strata diff-size L)" ]
	[ "$output" = 6 ]
}

# A tar of files and directories (a trailing '/'), as moby's makeTestLayer makes them.
make_layer_tar() {
	local out=$1 d
	shift
	d=$(mktemp -d "$TEST_DIR/layer.XXXXXX")
	for p in "$@"; do
		if [[ $p == */ ]]; then mkdir -p "$d/$p"; else mkdir -p "$(dirname "$d/$p")" && echo content >"$d/$p"; fi
	done
	tar -C "$d" -cf "$out" .
	rm -rf "$d"
}

# The merged view of $1, as moby's readDirContents lists it: directories with a '/'.
union_list() {
	local dir
	dir=$(strata mount "$1")
	(cd "$dir" && find . -mindepth 1 \( -type d -printf '%P/\n' -o -printf '%P\n' \) | LC_ALL=C sort)
	strata unmount "$1" >/dev/null
}

@test "apply with another parent unpacks into the union, whiteouts acting (moby's TestApplyLayerWhiteouts)" {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	local base=(.baz bar/ bar/bax bar/bay/ baz foo/ foo/.abc foo/.bcd/ foo/.bcd/a foo/cde/
		foo/cde/def foo/cde/efg foo/fgh foobar)
	strata create A
	make_layer_tar "$TEST_DIR/0.tar" "${base[@]}"
	strata apply A "$TEST_DIR/0.tar" >/dev/null
	strata create L --parent A
	[ "$(union_list L)" = "$(printf '%s\n' "${base[@]}")" ]

	make_layer_tar "$TEST_DIR/1.tar" .bay .wh.baz foo/ foo/.bce foo/.wh..wh..opq foo/cde/ foo/cde/efg
	strata apply L --parent '' "$TEST_DIR/1.tar"
	[ "$(union_list L)" = "$(printf '%s\n' .bay .baz bar/ bar/bax bar/bay/ foo/ foo/.bce foo/cde/ \
		foo/cde/efg foobar)" ]

	make_layer_tar "$TEST_DIR/2.tar" .bay .wh..baz .wh.foobar foo/ foo/.abc foo/.wh.cde bar/
	strata apply L --parent '' "$TEST_DIR/2.tar"
	[ "$(union_list L)" = "$(printf '%s\n' .bay bar/ bar/bax bar/bay/ foo/ foo/.abc foo/.bce)" ]

	make_layer_tar "$TEST_DIR/3.tar" .abc .wh..wh..opq foobar
	strata apply L --parent '' "$TEST_DIR/3.tar"
	[ "$(union_list L)" = "$(printf '%s\n' .abc foobar)" ]
	# The parent is untouched; what the layer hides of it is whited out in the layer.
	[ -f "$ROOT/diff/A/baz" ]
	[ -f "$ROOT/diff/A/foo/cde/def" ]
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}

@test "apply with another parent: the size is the tar's, aufs pseudo-links are materialised" {
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	strata create A
	strata create L --parent A
	python3 - "$TEST_DIR/p.tar" "$TEST_DIR/bad.tar" <<'PY'
import io, sys, tarfile
def add(tf, name, data=None, link=None, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    if link is not None:
        ti.type, ti.linkname = tarfile.LNKTYPE, link
    elif data is None:
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    else:
        ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data) if data is not None and link is None else None)
with tarfile.open(sys.argv[1], "w") as tf:
    add(tf, ".wh..wh.aufs", b"not unpacked")
    add(tf, ".wh..wh.plnk/", None)
    add(tf, ".wh..wh.plnk/234.567", b"pseudo", mode=0o751)
    add(tf, "dir/", None)
    add(tf, ".wh..wh..opq", b"")
    add(tf, "dir/hard", link=".wh..wh.plnk/234.567")
    add(tf, "file", b"12345")
with tarfile.open(sys.argv[2], "w") as tf:
    add(tf, "dir/hard", link=".wh..wh.plnk/999.999")
PY
	run strata apply L --parent '' "$TEST_DIR/p.tar"
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	[ "$output" = 23 ]
	[ "$(cat "$ROOT/diff/L/dir/hard")" = pseudo ]
	[ "$(stat -c %a "$ROOT/diff/L/dir/hard")" = 751 ]
	# aufs metadata in the tar is not unpacked (the union keeps its own).
	[ ! -e "$ROOT/diff/L/.wh..wh.plnk/234.567" ]
	[ ! -s "$ROOT/diff/L/.wh..wh.aufs" ]
	[ -z "$(ls "$ROOT/diff/L" | grep dockerplnk)" ]
	run strata apply L --parent '' "$TEST_DIR/bad.tar"
	[ "$status" -eq 1 ]
	[[ "$output" == *"entry 'dir/hard' is an invalid aufs hardlink"* ]]
	[ -z "$(awk -v r="$ROOT" 'index($5, r) == 1' /proc/self/mountinfo)" ]
}

@test "a directory that a later entry replaces through a symlink keeps that entry's times" {
	python3 - "$TEST_DIR/t.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("l"); ti.type = tarfile.SYMTYPE; ti.linkname = "."; t.addfile(ti)
    ti = tarfile.TarInfo("d"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1000; t.addfile(ti)
    ti = tarfile.TarInfo("l/d"); ti.size = 2; ti.mtime = 2000; t.addfile(ti, io.BytesIO(b"hi"))
PY
	for mode in --threads --serial; do
		strata create "L$mode"
		strata apply $mode "L$mode" "$TEST_DIR/t.tar"
		[ "$(stat -c '%F %Y' "$ROOT/diff/L$mode/d")" = "regular file 2000" ]
		[ "$(cat "$ROOT/diff/L$mode/d")" = hi ]
	done
}
