#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Splits a root file system into N layer directories (files hard-linked, not copied),
adds a 10k-entry directory spread over the layers, a 100 MB file (a copy, of one link) in
the bottom layer and, for N > 1, whiteouts in the top layer for every 50th file of the layers
below, written in three formats: aufs (.wh.), overlay (0/0 char devices) and unionfs-fuse
(_HIDDEN~).

usage: mkstack.py ROOTFS OUT N BIGFILE
  OUT/l0..l{N-1} (l{N-1} on top; for N > 1 the top layer comes as OUT/top-aufs,
  OUT/top-ovl and OUT/top-unionfs instead)."""
import os
import shutil
import stat
import sys

root, out, n, big = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
layers = [os.path.join(out, "l%d" % i) for i in range(n)]
for d in layers:
    os.makedirs(d, exist_ok=True)


def ensure_dir(layer, rel):
    """Makes rel's directory chain in layer with the modes of the root file system's."""
    parts = rel.split("/")[:-1]
    cur = ""
    for p in parts:
        cur = cur + "/" + p if cur else p
        dst = os.path.join(layer, cur)
        if not os.path.isdir(dst):
            st = os.lstat(os.path.join(root, cur))
            os.mkdir(dst, stat.S_IMODE(st.st_mode))


files = []
i = 0
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    rel_dir = os.path.relpath(dirpath, root)
    for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
        rel = name if rel_dir == "." else rel_dir + "/" + name
        src = os.path.join(root, rel)
        st = os.lstat(src)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            continue
        layer = layers[i % n]
        i += 1
        ensure_dir(layer, rel)
        dst = os.path.join(layer, rel)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        else:
            os.link(src, dst)
        files.append((rel, i % n))
    # empty directories too, in the bottom layer
    for d in dirnames:
        rel = d if rel_dir == "." else rel_dir + "/" + d
        full = os.path.join(root, rel)
        if not os.path.islink(full) and not os.listdir(full):
            ensure_dir(layers[0], rel + "/x")

for j in range(10000):
    layer = layers[j % n]
    os.makedirs(os.path.join(layer, "bench-big"), exist_ok=True)
    open(os.path.join(layer, "bench-big", "entry-%05d" % j), "w").close()
# a copy, not a link: the copy-up of a file with other names also looks for those of them
# in its layer, to keep them one inode in the rw layer (strata-fuse does; the others do not)
shutil.copyfile(big, os.path.join(layers[0], "big100"))

if n > 1:
    top = layers[-1]
    victims = [rel for k, (rel, li) in enumerate(files) if k % 50 == 0 and li != (n - 1) % n]
    for fmt in ("aufs", "ovl", "unionfs"):
        dst = os.path.join(out, "top-" + fmt)
        shutil.copytree(top, dst, symlinks=True, copy_function=os.link)
        for rel in victims:
            d, b = os.path.split(rel)
            if fmt == "unionfs":
                p = os.path.join(dst, ".unionfs-fuse", rel + "_HIDDEN~")
                os.makedirs(os.path.dirname(p), exist_ok=True)
                open(p, "w").close()
                continue
            os.makedirs(os.path.join(dst, d), exist_ok=True)
            if os.path.lexists(os.path.join(dst, rel)):
                continue
            if fmt == "aufs":
                open(os.path.join(dst, d, ".wh." + b), "w").close()
            else:
                os.mknod(os.path.join(dst, rel), stat.S_IFCHR | 0o600, os.makedev(0, 0))
    shutil.rmtree(top)
