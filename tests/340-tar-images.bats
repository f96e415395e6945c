#!/usr/bin/env bats
# Images made offline with buildah and skopeo: each layer blob (plain or gzip) is
# applied on its parent, and diff gives back exactly the layer the image's config
# names (its diff_id), as Docker's layer store needs.

load helpers

per_test_setup() {
	command -v buildah >/dev/null || skip "no buildah"
	B="buildah --root $TEST_DIR/storage --runroot $TEST_DIR/run --storage-driver vfs"
	mkdir -p "$TEST_DIR/one/etc" "$TEST_DIR/one/usr/bin" "$TEST_DIR/two/usr/lib"
	echo hello >"$TEST_DIR/one/etc/hello"
	head -c 200000 /dev/urandom >"$TEST_DIR/one/usr/bin/tool"
	chmod 755 "$TEST_DIR/one/usr/bin/tool"
	ln -s ../../etc/hello "$TEST_DIR/one/usr/bin/hello"
	echo lib >"$TEST_DIR/two/usr/lib/lib.so"
	ctr=$($B from scratch)
	$B copy "$ctr" "$TEST_DIR/one" / >/dev/null
	$B commit -q "$ctr" base >/dev/null
	ctr=$($B from base)
	$B copy "$ctr" "$TEST_DIR/two" / >/dev/null
	$B commit -q "$ctr" oci:"$TEST_DIR/oci:latest" >/dev/null
}

# Prints "blob-path diff-id" for each layer of the OCI layout $1, base first.
oci_layers() {
	python3 - "$1" <<'PY'
import json, os, sys
d = sys.argv[1]
blob = lambda dg: os.path.join(d, "blobs", *dg.split(":"))
index = json.load(open(os.path.join(d, "index.json")))
man = json.load(open(blob(index["manifests"][0]["digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
for layer, diff_id in zip(man["layers"], cfg["rootfs"]["diff_ids"]):
    print(blob(layer["digest"]), diff_id.split(":")[1])
PY
}

apply_image() {
	local dir=$1 parent="" n=0
	while read -r blob diff_id; do
		n=$((n + 1))
		strata create "$2$n" ${parent:+--parent "$parent"}
		strata apply "$2$n" "$blob" >/dev/null
		[ "$(strata diff "$2$n" | sha256sum | cut -d' ' -f1)" = "$diff_id" ] ||
			{ echo "layer $n of $dir: diff is not the layer $diff_id"; return 1; }
		parent=$2$n
	done < <(oci_layers "$dir")
	[ "$n" -ge 2 ]
}

@test "buildah layers apply on their parents and diff back to their diff_ids" {
	apply_image "$TEST_DIR/oci" L
	[ "$(cat "$ROOT/diff/L1/etc/hello")" = hello ]
	[ "$(readlink "$ROOT/diff/L1/usr/bin/hello")" = ../../etc/hello ]
	[ "$(cat "$ROOT/diff/L2/usr/lib/lib.so")" = lib ]
	[ "$(strata parents L2)" = L1 ]
}

@test "gzip'd layers from skopeo apply and diff back to the uncompressed diff_ids" {
	command -v skopeo >/dev/null || skip "no skopeo"
	skopeo copy -q --dest-compress oci:"$TEST_DIR/oci:latest" oci:"$TEST_DIR/gz:latest"
	while read -r blob _; do
		[ "$(head -c 2 "$blob" | od -An -tx1 | tr -d ' ')" = 1f8b ]
	done < <(oci_layers "$TEST_DIR/gz")
	apply_image "$TEST_DIR/gz" G
}
