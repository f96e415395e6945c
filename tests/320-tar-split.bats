#!/usr/bin/env bats
# tar-split records: ours reassemble with the tar-split program, and its records
# with our diff, byte for byte (Docker's layerdb keeps them so).

load helpers

per_test_setup() {
	command -v tar-split >/dev/null || skip "no tar-split program"
	SRC=$TEST_DIR/src
	mkdir -p "$SRC/d/e" "$SRC/.wh..wh.plnk"
	head -c 100000 /dev/urandom >"$SRC/d/rand"
	echo hi >"$SRC/d/e/hi"
	ln "$SRC/d/e/hi" "$SRC/hl"
	ln -s d/rand "$SRC/sl"
	: >"$SRC/.wh.gone"
	long=$(printf 'n%.0s' $(seq 1 120))
	mkdir -p "$SRC/$long"
	echo long >"$SRC/$long/$long"
	echo ü >"$SRC/d/ünï"
}

# Makes $TEST_DIR/in-$1.tar in flavour $1.
make_tar() {
	case $1 in
	gnu) tar --format=gnu -C "$SRC" -cf "$TEST_DIR/in-gnu.tar" . ;;
	pax) tar --format=posix -C "$SRC" -cf "$TEST_DIR/in-pax.tar" . ;;
	ustar-bsdtar) bsdtar --format=pax -C "$SRC" -cf "$TEST_DIR/in-ustar-bsdtar.tar" . ;;
	python) python3 -c 'import sys,tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t: t.add(sys.argv[2], arcname="")' \
		"$TEST_DIR/in-python.tar" "$SRC" ;;
	esac
}

@test "a record of ours reassembles with tar-split asm" {
	for f in gnu pax ustar-bsdtar python; do
		command -v bsdtar >/dev/null || [ $f != ustar-bsdtar ] || continue
		make_tar $f
		strata create "L$f"
		strata apply "L$f" "$TEST_DIR/in-$f.tar" >/dev/null
		tar-split asm --input "$ROOT/.strata/tarsplit/L$f.json.gz" --path "$ROOT/diff/L$f" \
			--output "$TEST_DIR/theirs-$f.tar"
		[ "$(sha256sum <"$TEST_DIR/theirs-$f.tar")" = "$(sha256sum <"$TEST_DIR/in-$f.tar")" ] ||
			{ echo "flavour $f differs"; return 1; }
	done
}

@test "a record made by tar-split disasm reassembles with strata diff" {
	for f in gnu pax python; do
		make_tar $f
		tar-split disasm --no-stdout --output "$TEST_DIR/rec-$f.json.gz" "$TEST_DIR/in-$f.tar"
		strata create "L$f"
		strata apply "L$f" --no-tar-split "$TEST_DIR/in-$f.tar" >/dev/null
		mkdir -p "$ROOT/.strata/tarsplit"
		cp "$TEST_DIR/rec-$f.json.gz" "$ROOT/.strata/tarsplit/L$f.json.gz"
		[ "$(strata diff "L$f" | sha256sum)" = "$(sha256sum <"$TEST_DIR/in-$f.tar")" ] ||
			{ echo "flavour $f differs"; return 1; }
	done
}

@test "trailing bytes after the end of the archive are kept, as Docker's layer store keeps them" {
	make_tar pax
	cp "$TEST_DIR/in-pax.tar" "$TEST_DIR/padded.tar"
	head -c 7777 /dev/zero >>"$TEST_DIR/padded.tar"
	strata create L
	strata apply L "$TEST_DIR/padded.tar" >/dev/null
	[ "$(strata diff L | sha256sum)" = "$(sha256sum <"$TEST_DIR/padded.tar")" ]
}

@test "removing a layer's record makes diff write a fresh tar" {
	make_tar gnu
	strata create L
	strata apply L "$TEST_DIR/in-gnu.tar" >/dev/null
	rm "$ROOT/.strata/tarsplit/L.json.gz"
	run strata diff L -o "$TEST_DIR/fresh.tar"
	[ "$status" -eq 0 ]
	[ "$(sha256sum <"$TEST_DIR/fresh.tar")" != "$(sha256sum <"$TEST_DIR/in-gnu.tar")" ]
	tar -tf "$TEST_DIR/fresh.tar" | grep -qx 'd/e/hi'
}
