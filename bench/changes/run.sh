#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `strata changes` against `containers-storage changes` (overlay driver) on the same
# layers, side by side in one run: wall time and peak resident memory, median of RUNS.
#
#   bench/changes/run.sh                   # 1M-file layer, two 100k-file trees
#   FILES=200000 TREE=20000 RUNS=5 BENCH_DIR=/var/tmp/x bench/changes/run.sh
#
# Cases:
#   layer:  a layer of FILES new files on an empty parent, against its direct parent
#           (strata: the walk of diff/<id>; containers-storage: its layered overlay walk).
#   trees:  two layers of TREE files, the second (on the empty layer, so that the first is
#           not its parent) with 1% of the files modified, 1% deleted and 1% added:
#           both stacks mounted and compared as two trees (Docker's naive ChangesDirs).
# Needs root (containers-storage mounts overlayfs), python3, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."

STRATA=${STRATA:-$PWD/build/src/cli/strata}
export STRATA_FUSE=${STRATA_FUSE:-$(dirname "$STRATA")/../fuse/strata-fuse}
W=${BENCH_DIR:-/var/tmp/strata-bench-changes}
RUNS=${RUNS:-3}
FILES=${FILES:-1000000}
TREE=${TREE:-100000}

[ -x "$STRATA" ] || { echo "run.sh: build strata first ($STRATA)" >&2; exit 1; }
command -v containers-storage >/dev/null || { echo "run.sh: needs containers-storage" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "run.sh: needs /usr/bin/time (Debian: time)" >&2; exit 1; }
mkdir -p "$W"
W=$(cd "$W" && pwd)

S() { "$STRATA" -q --root "$W/strata" "$@"; }
CS() { containers-storage "$1" -g "$W/cs/graph" -R "$W/cs/run" -s overlay "${@:2}"; }
cleanup() {
	S cleanup >/dev/null 2>&1 || true
	CS shutdown >/dev/null 2>&1 || true
	umount "$W/cs/graph/overlay" 2>/dev/null || true
}
trap cleanup EXIT

# gen.py KIND OUT: the layer tars, made once.
gen() {
	python3 - "$@" <<'PY'
import io, sys, tarfile
kind, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def files(variant):
    for i in range(n):
        if variant == "b" and i % 100 == 1:
            continue                                   # deleted
        data = b"x" * (i % 64)
        if variant == "b" and i % 100 == 2:
            data += b"changed"                         # modified: size and content
        yield "d%04d/f%07d" % (i // 1000, i), data
    if variant == "b":
        for i in range(0, n, 100):
            yield "d%04d/new%07d" % (i // 1000, i), b"new"
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    dirs = set()
    for name, data in files(kind):
        d = name.split("/")[0]
        if d not in dirs:
            dirs.add(d)
            ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1600000000
            t.addfile(ti)
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1600000000
        t.addfile(ti, io.BytesIO(data))
PY
}
[ -f "$W/layer.tar" ] || gen a "$W/layer.tar" "$FILES"
[ -f "$W/tree-a.tar" ] || gen a "$W/tree-a.tar" "$TREE"
[ -f "$W/tree-b.tar" ] || gen b "$W/tree-b.tar" "$TREE"

# The same layers in both stores, applied once.
if [ ! -e "$W/.ready" ]; then
	cleanup
	rm -rf "$W/strata" "$W/cs"
	S init --engine fuse >/dev/null
	S create empty
	S create layer --parent empty
	S apply layer "$W/layer.tar" >/dev/null
	S create tree-a
	S apply tree-a "$W/tree-a.tar" >/dev/null
	S create tree-b --parent empty
	S apply tree-b "$W/tree-b.tar" >/dev/null
	CS create-layer -n empty >/dev/null
	CS create-layer -n layer empty >/dev/null
	CS applydiff -f "$W/layer.tar" layer
	CS create-layer -n tree-a >/dev/null
	CS applydiff -f "$W/tree-a.tar" tree-a
	CS create-layer -n tree-b empty >/dev/null
	CS applydiff -f "$W/tree-b.tar" tree-b
	touch "$W/.ready"
fi

# measure LABEL PROGRAM ARGS...: RUNS runs after one warm-up; prints median seconds, median peak RSS
# in MB and the number of changes printed.
measure() {
	local label=$1 r secs=() rss=() lines
	shift
	"$@" >"$W/out.txt" 2>/dev/null
	lines=$(wc -l <"$W/out.txt")
	for ((r = 0; r < RUNS; r++)); do
		/usr/bin/time -f '%e %M' -o "$W/time.txt" "$@" >/dev/null 2>&1
		read -r s m <"$W/time.txt"
		secs+=("$s")
		rss+=("$m")
	done
	local ms mm
	ms=$(printf '%s\n' "${secs[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	mm=$(printf '%s\n' "${rss[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	printf '| %-46s | %8.2f s | %7.1f MB | %8d |\n' "$label" "$ms" "$(echo "$mm / 1024" | bc -l)" "$lines"
}

echo "Data: a layer of $FILES files on an empty parent; two trees of $TREE files (1% modified," \
	"1% deleted, 1% added); $RUNS runs, median, warm page cache; $(nproc) CPUs;" \
	"$(df -T "$W" | awk 'NR==2 {print $2}')."
echo
echo '| case | time | peak RSS | changes |'
echo '|---|---|---|---|'
CSO=(-g "$W/cs/graph" -R "$W/cs/run" -s overlay)
measure "layer: strata changes (direct parent)" "$STRATA" -q --root "$W/strata" changes layer
measure "layer: containers-storage changes (overlay)" containers-storage changes "${CSO[@]}" layer
measure "trees: strata changes tree-b --parent tree-a" \
	"$STRATA" -q --root "$W/strata" changes tree-b --parent tree-a
measure "trees: containers-storage changes tree-b tree-a" \
	containers-storage changes "${CSO[@]}" tree-b tree-a
