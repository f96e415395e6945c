#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmarks strata-fuse against kernel overlayfs, fuse-overlayfs and unionfs-fuse on the
# same layer stacks of a real root file system. Never part of the test suite.
#
#   bench/fuse/run.sh [-r RUNS] [-l "1 8 64"] [-o OUTDIR] [-R ROOTFS] [-w WORKDIR]
#   FSTYPES="strata overlay" WORKLOADS="create rmrf" bench/fuse/run.sh   # a subset
# FSTYPES may also name strata-volatile: strata-fuse with -o volatile (no fsync at copy-up).
#
# ROOTFS defaults to a debootstrap --variant=minbase of Debian bookworm made once in WORKDIR.
# UPPER=loop (the default): every mount gets its upper and work directories on a fresh ext4,
# made without discard on a loop image in WORKDIR, so that no run pays for the files an
# earlier run removed (ext4 skips recently freed inodes); UPPER=dir: plain directories in
# WORKDIR.
# Prints a markdown table of medians (seconds) and writes OUTDIR/results.csv and
# OUTDIR/results.svg. Needs root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
runs=5
stacks="1 8 64"
out=$top/bench/fuse/out
work=${TMPDIR:-/tmp}/strata-bench
rootfs=
while getopts r:l:o:R:w: o; do
	case $o in
	r) runs=$OPTARG ;;
	l) stacks=$OPTARG ;;
	o) out=$OPTARG ;;
	R) rootfs=$OPTARG ;;
	w) work=$OPTARG ;;
	*) exit 2 ;;
	esac
done
SFS=${STRATA_FUSE_BIN:-$top/build/src/fuse/strata-fuse}
[ -x "$SFS" ] || { echo "run.sh: build strata-fuse first ($SFS)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (drop_caches, overlayfs)" >&2; exit 1; }
mkdir -p "$work" "$out"

if [ -z "$rootfs" ]; then
	rootfs=$work/rootfs
	if [ ! -e "$rootfs/.done" ]; then
		rm -rf "$rootfs"
		debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
		touch "$rootfs/.done"
	fi
fi
big=$work/big100
[ -e "$big" ] || head -c 100M /dev/urandom >"$big"

fstypes=${FSTYPES:-"strata overlay fuse-overlayfs unionfs-fuse"}
mnt=$work/mnt
mkdir -p "$mnt"

upper=${UPPER:-$(command -v mkfs.ext4 >/dev/null && echo loop || echo dir)}
upfs=$work/upfs
cleanup() {
	umount "$mnt" 2>/dev/null || true
	if [ "$upper" = loop ]; then
		umount "$upfs" 2>/dev/null || true
		rm -f "$work/upfs.img"
	fi
}
trap cleanup EXIT

# A fresh file system for the upper and work directories (the mount must be gone).
fresh_upper() {
	[ "$upper" = loop ] || return 0
	# a FUSE daemon may still be letting go of its upper directory
	for _ in $(seq 50); do
		mountpoint -q "$upfs" || break
		umount "$upfs" 2>/dev/null || sleep 0.1
	done
	if mountpoint -q "$upfs"; then
		echo "run.sh: cannot unmount $upfs" >&2
		exit 1
	fi
	mkdir -p "$upfs"
	[ -f "$work/upfs.img" ] || truncate -s 4G "$work/upfs.img"
	mkfs.ext4 -q -F -E nodiscard "$work/upfs.img"
	mount -o loop "$work/upfs.img" "$upfs"
}

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.4f\n", a - b }'; }

# lowers TYPE N: the ro layers, top first, for TYPE
lowers() {
	local type=$1 n=$2 s=$work/stack$2 i list=()
	if [ "$n" -gt 1 ]; then
		case $type in
		strata*) list+=("$s/top-aufs") ;;
		unionfs-fuse) list+=("$s/top-unionfs") ;;
		*) list+=("$s/top-ovl") ;;
		esac
		for ((i = n - 2; i >= 0; i--)); do list+=("$s/l$i"); done
	else
		list+=("$s/l0")
	fi
	printf '%s\n' "${list[@]}"
}

do_mount() {
	local type=$1 n=$2 up=$work/up w=$work/w
	if [ "$upper" = loop ]; then
		mountpoint -q "$upfs" || fresh_upper
		up=$upfs/up w=$upfs/w
	fi
	rm -rf "$up" "$w"
	mkdir -p "$up" "$w"
	mapfile -t L < <(lowers "$type" "$n")
	case $type in
	strata | strata-volatile)
		{ echo "$up=rw"; for l in "${L[@]}"; do echo "$l=ro+wh"; done; } >"$work/brfile"
		local extra=
		[ "$type" = strata ] || extra=,volatile
		"$SFS" bench "$mnt" -o "brfile=$work/brfile$extra"
		;;
	overlay)
		mount -t overlay overlay -o "lowerdir=$(IFS=:; echo "${L[*]}"),upperdir=$up,workdir=$w" "$mnt"
		;;
	fuse-overlayfs)
		fuse-overlayfs -o "lowerdir=$(IFS=:; echo "${L[*]}"),upperdir=$up,workdir=$w" "$mnt"
		;;
	unionfs-fuse)
		local br=$up=RW
		for l in "${L[@]}"; do br="$br:$l=RO"; done
		unionfs-fuse -o cow,hide_meta_files "$br" "$mnt"
		;;
	esac
}

do_umount() {
	umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	for _ in $(seq 50); do mountpoint -q "$mnt" || break; sleep 0.1; done
	fresh_upper
}

# Workloads: each prints its time in seconds. Cold ones remount and drop caches first.
w_mount() { do_umount; drop; local t=$(now); do_mount "$1" "$2"; stat "$mnt/." >/dev/null; since "$t"; }
w_walk_cold() { do_umount; do_mount "$1" "$2"; drop; local t=$(now); find "$mnt" -printf '%s %m\n' >/dev/null; since "$t"; }
w_walk_warm() { find "$mnt" -printf '%s %m\n' >/dev/null; local t=$(now); find "$mnt" -printf '%s %m\n' >/dev/null; since "$t"; }
w_read_cold() { do_umount; do_mount "$1" "$2"; drop; local t=$(now); tar cf - -C "$mnt" . | cat >/dev/null; since "$t"; }
w_read_warm() { tar cf - -C "$mnt" . | cat >/dev/null; local t=$(now); tar cf - -C "$mnt" . | cat >/dev/null; since "$t"; }
w_grep_warm() { grep -r -q zzzqqqxxx "$mnt" || true; local t=$(now); grep -r zzzqqqxxx "$mnt" || true; since "$t"; }
w_readdir_cold() { do_umount; do_mount "$1" "$2"; drop; local t=$(now); ls -f "$mnt/bench-big" >/dev/null; since "$t"; }
# a fresh process that lists the 10k-entry directory and then stats every entry (as ls -l does)
w_lsstat_cold() { do_umount; do_mount "$1" "$2"; drop; local t=$(now); find "$mnt/bench-big" -maxdepth 1 -printf '%s %m\n' >/dev/null; since "$t"; }
w_readdir_warm() { ls -f "$mnt/bench-big" >/dev/null; local t=$(now); ls -f "$mnt/bench-big" >/dev/null; since "$t"; }
w_create() { do_umount; do_mount "$1" "$2"; mkdir "$mnt/new"; local t=$(now); (cd "$mnt/new" && seq -f 'f%g' 10000 | xargs touch); since "$t"; }
# 64 MiB written 4 KiB a write into a new file, left in the page cache (no sync)
w_write4k() { do_umount; do_mount "$1" "$2"; local t=$(now); dd if=/dev/zero of="$mnt/w4k" bs=4k count=16384 status=none; since "$t"; }
w_copyup() { do_umount; do_mount "$1" "$2"; local t=$(now); echo x >>"$mnt/big100"; since "$t"; }
w_rmrf() { do_umount; do_mount "$1" "$2"; local t=$(now); rm -rf "$mnt/usr"; since "$t"; }

workloads=${WORKLOADS:-"mount walk_cold walk_warm read_cold read_warm grep_warm readdir_cold lsstat_cold readdir_warm create write4k copyup rmrf"}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

csv=$out/results.csv
echo "layers,fs,workload,median_s" >"$csv"
for n in $stacks; do
	if [ ! -e "$work/stack$n/.done" ]; then
		rm -rf "$work/stack$n"
		"$here/mkstack.py" "$rootfs" "$work/stack$n" "$n" "$big"
		touch "$work/stack$n/.done"
	fi
	for fs in $fstypes; do
		case $fs in
		fuse-overlayfs | unionfs-fuse)
			command -v "$fs" >/dev/null || { echo "skipping $fs: not installed" >&2; continue; } ;;
		esac
		do_mount "$fs" "$n"
		for wl in $workloads; do
			vals=()
			for ((r = 0; r < runs; r++)); do vals+=("$("w_$wl" "$fs" "$n")"); done
			m=$(printf '%s\n' "${vals[@]}" | median)
			echo "$n,$fs,$wl,$m" >>"$csv"
			echo "layers=$n fs=$fs $wl: $m (${vals[*]})" >&2
		done
		do_umount
	done
done

python3 "$here/report.py" "$csv" "$out/results.svg"
