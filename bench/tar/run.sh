#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# apply and diff against GNU tar and bsdtar, side by side in one run: page-cached
# input, one disk, median wall time of RUNS runs. Prints a Markdown table.
#
#   bench/tar/run.sh                      # a /usr-like layer and 100k small files
#   SOURCES="/usr/bin /usr/include" RUNS=5 BENCH_DIR=/var/tmp/x bench/tar/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

STRATA=${STRATA:-$PWD/build/src/cli/strata}
W=${BENCH_DIR:-/var/tmp/strata-bench}
RUNS=${RUNS:-3}
SOURCES=${SOURCES:-"/usr/bin /usr/include /usr/share/doc /usr/lib/python3"}
SMALL_FILES=${SMALL_FILES:-100000}

mkdir -p "$W"
W=$(cd "$W" && pwd)
trap 'rm -rf "$W/out" "$W/root"' EXIT

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

fresh_out() {
	rm -rf "$W/out"
	mkdir "$W/out"
	sync
}

fresh_layer() {
	rm -rf "$W/root"
	"$STRATA" --root "$W/root" create L >/dev/null
	sync
}

# One row: label, bytes of (uncompressed) tar, then a command that is run RUNS times after $2.
row() {
	local label=$1 bytes=$2 prep=$3
	shift 3
	local times=()
	for _ in $(seq "$RUNS"); do
		$prep
		times+=("$(timed "$@")")
	done
	local med
	med=$(printf '%s\n' "${times[@]}" | median)
	printf '| %-44s | %8.2f s | %8.0f MB/s |\n' "$label" "$med" "$(echo "$bytes / 1000000 / $med" | bc -l)"
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

echo "Input: usr.tar $((usr / 1000000)) MB, $entries entries; small.tar $((small / 1000000)) MB," \
	"$SMALL_FILES files; $RUNS runs, median; $(nproc) CPUs; $(df -T "$W" | awk 'NR==2 {print $2}')."
echo
echo '| operation | median | rate |'
echo '|---|---|---|'
for t in usr small; do
	bytes=$(stat -c %s "$W/$t.tar")
	row "$t: GNU tar -xpf --xattrs" "$bytes" fresh_out tar -xpf "$W/$t.tar" --xattrs -C "$W/out"
	command -v bsdtar >/dev/null &&
		row "$t: bsdtar -xpf" "$bytes" fresh_out bsdtar -xpf "$W/$t.tar" -C "$W/out"
	row "$t: strata apply" "$bytes" fresh_layer "$STRATA" -q --root "$W/root" apply L "$W/$t.tar"
	row "$t: strata apply --no-tar-split" "$bytes" fresh_layer \
		"$STRATA" -q --root "$W/root" apply --no-tar-split L "$W/$t.tar"
done
command -v pigz >/dev/null &&
	row "usr.gz: pigz -d | tar -xpf" "$usr" fresh_out sh -c "pigz -dc '$W/usr.tar.gz' | tar -xpf - --xattrs -C '$W/out'"
row "usr.gz: strata apply" "$usr" fresh_layer "$STRATA" -q --root "$W/root" apply L "$W/usr.tar.gz"
row "usr.zst: zstd -d | tar -xpf" "$usr" fresh_out sh -c "zstd -dc '$W/usr.tar.zst' | tar -xpf - --xattrs -C '$W/out'"
row "usr.zst: strata apply" "$usr" fresh_layer "$STRATA" -q --root "$W/root" apply L "$W/usr.tar.zst"

# diff: of the same extracted tree, through a pipe (GNU tar skips reading for /dev/null).
fresh_layer
"$STRATA" -q --root "$W/root" apply L "$W/usr.tar" >/dev/null
noop() { :; }
row "usr: GNU tar -cf - | cat" "$usr" noop sh -c "tar -cf - -C '$W/root/diff/L' . | cat >/dev/null"
row "usr: strata diff (tar-split) | cat" "$usr" noop sh -c "'$STRATA' -q --root '$W/root' diff L | cat >/dev/null"
row "usr: strata diff --regenerate | cat" "$usr" noop sh -c "'$STRATA' -q --root '$W/root' diff --regenerate L | cat >/dev/null"
