#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# apply and diff against GNU tar and bsdtar, side by side in one run: page-cached
# input, one disk, median wall time of RUNS runs. Prints a Markdown table.
#
#   bench/tar/run.sh                      # a /usr-like layer and 100k small files
#   SOURCES="/usr/bin /usr/include" RUNS=5 BENCH_DIR=/var/tmp/x bench/tar/run.sh
#
# FS=loop (the default, as root): every run extracts into a fresh ext4, made without
# discard on a loop image in BENCH_DIR, so that no tool pays for the files an earlier run
# removed (ext4 skips recently freed inodes, and a discard mount trims them). FS=dir:
# extract into BENCH_DIR itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

STRATA=${STRATA:-$PWD/build/src/cli/strata}
W=${BENCH_DIR:-/var/tmp/strata-bench}
RUNS=${RUNS:-3}
SOURCES=${SOURCES:-"/usr/bin /usr/include /usr/share/doc /usr/lib/python3"}
SMALL_FILES=${SMALL_FILES:-100000}

mkdir -p "$W"
W=$(cd "$W" && pwd)
FS=${FS:-$([ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && echo loop || echo dir)}
if [ "$FS" = loop ]; then
	D=$W/fs
	mkdir -p "$D"
	trap 'umount "$D" 2>/dev/null; rm -f "$W/fs.img"' EXIT
else
	D=$W
	trap 'rm -rf "$W/out" "$W/root"' EXIT
fi
OUT=$D/out
ROOT=$D/root

# Seconds of wall time of "$@".
timed() {
	local a b
	a=$(date +%s.%N)
	"$@" >/dev/null
	b=$(date +%s.%N)
	echo "$b - $a" | bc
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

fresh_fs() {
	if [ "$FS" = loop ]; then
		# the image is made once and formatted again: its blocks stay allocated, so
		# that the disk under it does no work of freeing them during the next run
		umount "$D" 2>/dev/null || true
		[ -f "$W/fs.img" ] || truncate -s 6G "$W/fs.img"
		mkfs.ext4 -q -F -E nodiscard "$W/fs.img"
		mount -o loop "$W/fs.img" "$D"
	else
		rm -rf "$OUT" "$ROOT"
	fi
}

fresh_out() {
	fresh_fs
	mkdir "$OUT"
	sync
}

fresh_layer() {
	fresh_fs
	"$STRATA" --root "$ROOT" create L >/dev/null
	sync
}

# Cases run interleaved, RUNS rounds of all of them, so that a machine whose load
# drifts (it is often shared) biases no tool: label, bytes, prep, command, split by US.
cases=()
add() {
	cases+=("$1"$'\x1f'"$2"$'\x1f'"$3"$'\x1f'"$4")
}

run_cases() {
	local -A times
	local r i label bytes prep cmd
	for r in $(seq "$RUNS"); do
		for i in "${!cases[@]}"; do
			IFS=$'\x1f' read -r label bytes prep cmd <<<"${cases[$i]}"
			$prep
			times[$i]+="$(timed sh -c "$cmd") "
		done
	done
	for i in "${!cases[@]}"; do
		IFS=$'\x1f' read -r label bytes prep cmd <<<"${cases[$i]}"
		local med
		med=$(printf '%s\n' ${times[$i]} | median)
		printf '| %-44s | %8.2f s | %8.0f MB/s |\n' "${label//|/\\|}" "$med" \
			"$(echo "$bytes / 1000000 / $med" | bc -l)"
	done
	cases=()
}

if [ ! -f "$W/usr.tar" ]; then
	# shellcheck disable=SC2086
	tar --xattrs --format=posix -cf "$W/usr.tar" $SOURCES 2>/dev/null || true
fi
if [ ! -f "$W/small.tar" ]; then
	python3 - "$W/small.tar" "$SMALL_FILES" <<'PY'
import io, os, sys, tarfile
out, n = sys.argv[1], int(sys.argv[2])
data = os.urandom(4096)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    for d in range(n // 100):
        ti = tarfile.TarInfo("d%04d" % d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
        t.addfile(ti)
        for f in range(100):
            ti = tarfile.TarInfo("d%04d/f%03d" % (d, f)); ti.size = 512 + (f * 37) % 3000
            ti.mode = 0o644; ti.mtime = 1600000000
            t.addfile(ti, io.BytesIO(data[:ti.size]))
PY
fi
[ -f "$W/usr.tar.gz" ] || pigz -k "$W/usr.tar" 2>/dev/null || gzip -k "$W/usr.tar"
[ -f "$W/usr.tar.zst" ] || zstd -q -T0 "$W/usr.tar"
for f in usr.tar small.tar usr.tar.gz usr.tar.zst; do cat "$W/$f" >/dev/null; done

usr=$(stat -c %s "$W/usr.tar")
small=$(stat -c %s "$W/small.tar")
entries=$(tar -tf "$W/usr.tar" | wc -l)

echo "Input: layer ($SOURCES) $((usr / 1000000)) MB, $entries entries; small.tar $((small / 1000000)) MB," \
	"$SMALL_FILES files; $RUNS runs, median; $(nproc) CPUs; $(df -T "$W" | awk 'NR==2 {print $2}'), FS=$FS."
echo
echo '| operation | median | rate |'
echo '|---|---|---|'
S="'$STRATA' -q --root '$ROOT'"
for t in usr small; do
	bytes=$(stat -c %s "$W/$t.tar")
	name=$t; [ "$t" = usr ] && name=layer
	add "$name: GNU tar -xpf --xattrs" "$bytes" fresh_out "tar -xpf '$W/$t.tar' --xattrs -C '$OUT'"
	command -v bsdtar >/dev/null &&
		add "$name: bsdtar -xpf" "$bytes" fresh_out "bsdtar -xpf '$W/$t.tar' -C '$OUT'"
	add "$name: strata apply" "$bytes" fresh_layer "$S apply L '$W/$t.tar'"
	add "$name: strata apply --no-tar-split" "$bytes" fresh_layer "$S apply --no-tar-split L '$W/$t.tar'"
	add "$name: strata apply --serial" "$bytes" fresh_layer "$S apply --serial L '$W/$t.tar'"
	add "$name: strata apply --threads" "$bytes" fresh_layer "$S apply --threads L '$W/$t.tar'"
done
command -v pigz >/dev/null &&
	add "layer.gz: pigz -d | tar -xpf" "$usr" fresh_out "pigz -dc '$W/usr.tar.gz' | tar -xpf - --xattrs -C '$OUT'"
add "layer.gz: strata apply" "$usr" fresh_layer "$S apply L '$W/usr.tar.gz'"
add "layer.zst: zstd -d | tar -xpf" "$usr" fresh_out "zstd -dc '$W/usr.tar.zst' | tar -xpf - --xattrs -C '$OUT'"
add "layer.zst: strata apply" "$usr" fresh_layer "$S apply L '$W/usr.tar.zst'"
run_cases

# diff: of the same extracted tree, through a pipe (GNU tar skips reading for /dev/null).
fresh_layer
$STRATA -q --root "$ROOT" apply L "$W/usr.tar" >/dev/null
noop() { :; }
add "layer: GNU tar -cf - | cat" "$usr" noop "tar -cf - -C '$ROOT/diff/L' . | cat >/dev/null"
add "layer: strata diff (tar-split) | cat" "$usr" noop "$S diff L | cat >/dev/null"
add "layer: strata diff --regenerate | cat" "$usr" noop "$S diff --regenerate L | cat >/dev/null"
run_cases
