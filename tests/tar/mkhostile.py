#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes the hostile tar corpus into DIR: one tar per case, and DIR/cases listing
# "<case> <refuse|contain> <what the error names>" (the moby vectors among them).
import gzip
import io
import os
import shutil
import subprocess
import sys
import tarfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
cases = []


def entry(name, kind=tarfile.REGTYPE, data=b"", link="", size=None, pax=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.size = len(data) if size is None else size
    if pax:
        ti.pax_headers = pax
    return ti, data


def write(case, expect, names, entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    with open(os.path.join(out, case + ".tar"), "wb") as f:
        f.write(buf.getvalue())
    cases.append((case, expect, names))


F = tarfile
# moby's TestApplyLayerInvalidFilenames
write("dotdot", "refuse", "../victim/dotdot", [entry("../victim/dotdot", data=b"x")])
write("slash-dotdot", "refuse", "/../victim/slash-dotdot",
      [entry("/../victim/slash-dotdot", data=b"x")])
write("inner-dotdot", "refuse", "a/../../victim/x", [entry("a/", F.DIRTYPE), entry("a/../../victim/x", data=b"x")])
write("dot-dot-dot", "refuse", "./././../../victim", [entry("./././../../victim", data=b"x")])
# Absolute names are taken relative to the layer, as Docker's chroot does.
write("absolute", "contain", "victim/abs", [entry("/victim/abs", data=b"contained")])
# moby's TestApplyLayerInvalidHardlink
write("hardlink-dotdot", "refuse", "../victim/hello",
      [entry("dotdot", F.LNKTYPE, link="../victim/hello")])
write("hardlink-slash-dotdot", "refuse", "/../victim/hello",
      [entry("slash-dotdot", F.LNKTYPE, link="/../victim/hello")])
write("hardlink-symlink-out", "refuse", "loophole-victim",
      [entry("loophole-victim", F.SYMTYPE, link="../victim"),
       entry("loophole-victim/file", F.LNKTYPE, link="../victim/hello")])
# moby's TestApplyLayerInvalidSymlink
write("symlink-dotdot", "refuse", "../victim/hello",
      [entry("dotdot", F.SYMTYPE, link="../victim/hello")])
write("symlink-deep-dotdot", "refuse", "entry 'a/b/l'",
      [entry("a/b/l", F.SYMTYPE, link="../../../x")])
write("symlink-then-file", "refuse", "loophole-victim",
      [entry("loophole-victim", F.SYMTYPE, link="../victim"),
       entry("loophole-victim/file", data=b"x")])
# An absolute symlink is a link inside the layer: writing through it stays there.
write("symlink-root-through", "contain", "escape/victim/pwned",
      [entry("escape", F.SYMTYPE, link="/"), entry("escape/victim/pwned", data=b"x")])
write("symlink-abs-through", "contain", "escape/pwned",
      [entry("escape", F.SYMTYPE, link="/victim"), entry("victim/", F.DIRTYPE),
       entry("escape/pwned", data=b"contained")])
write("symlink-abs-dangling-through", "refuse", "escape/x/pwned",
      [entry("escape", F.SYMTYPE, link="/nonexistent/victim"), entry("escape/x/pwned", data=b"x")])
write("hardlink-to-abs-symlink", "contain", "h",
      [entry("s", F.SYMTYPE, link="/etc/shadow"), entry("h", F.LNKTYPE, link="s")])
write("hardlink-to-dir", "refuse", "entry 'h' links to a directory",
      [entry("d/", F.DIRTYPE), entry("h", F.LNKTYPE, link="d")])
write("hardlink-missing", "refuse", "entry 'h' links to 'nothing'", [entry("h", F.LNKTYPE, link="nothing")])
write("duplicate", "refuse", "entry 'twice' appears twice",
      [entry("twice", data=b"1"), entry("twice", data=b"2")])
write("duplicate-cleaned", "refuse", "./a/../twice",
      [entry("twice", data=b"1"), entry("./a/../twice", data=b"2")])
write("duplicate-symlink-then-file", "refuse", "entry 'x' appears twice",
      [entry("x", F.SYMTYPE, link="/victim/x"), entry("x", data=b"2")])
write("whiteout-with-children", "refuse", ".wh.foo/bar", [entry(".wh.foo/bar", data=b"x")])
write("whiteout-nested-with-children", "refuse", "a/.wh..wh.plnk/x",
      [entry("a/.wh..wh.plnk/x", data=b"x")])
write("whiteout-dir", "refuse", ".wh.foo", [entry(".wh.foo", F.DIRTYPE)])
write("huge-size", "refuse", "entry 'big' has a bad size",
      [entry("big", size=0, pax={"size": str(1 << 60)})])
write("root-not-dir", "refuse", "entry '.'", [entry(".", data=b"x")])
write("long-name", "refuse", "aaaa", [entry("a" * 5000, data=b"x")])

# Damaged streams.
with open(os.path.join(out, "garbage.tar"), "wb") as f:
    f.write(os.urandom(4096))
cases.append(("garbage", "refuse", "not a tar stream"))
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
    ti, data = entry("big-file", data=b"y" * 100000)
    tf.addfile(ti, io.BytesIO(data))
with open(os.path.join(out, "truncated.tar"), "wb") as f:
    f.write(buf.getvalue()[:50000])
cases.append(("truncated", "refuse", "entry 'big-file'"))
# A negative size in base-256: all 0xff.
hdr = bytearray(tarfile.TarInfo("neg").tobuf(format=tarfile.GNU_FORMAT))
hdr[124:136] = b"\xff" * 12
hdr[148:156] = b" " * 8
hdr[148:155] = ("%06o\0" % sum(hdr)).encode()
with open(os.path.join(out, "negative-size.tar"), "wb") as f:
    f.write(bytes(hdr) + b"\0" * 1024)
cases.append(("negative-size", "refuse", "negative size"))
# A bad header checksum after a good entry.
good = tarfile.TarInfo("good").tobuf(format=tarfile.USTAR_FORMAT)
bad = bytearray(tarfile.TarInfo("bad").tobuf(format=tarfile.USTAR_FORMAT))
bad[148:156] = b"0000000\0"
with open(os.path.join(out, "bad-checksum.tar"), "wb") as f:
    f.write(good + bytes(bad) + b"\0" * 1024)
cases.append(("bad-checksum", "refuse", "after entry 'good'"))

# The same after a good entry: the message names the last entry done.
neg = bytearray(tarfile.TarInfo("neg").tobuf(format=tarfile.GNU_FORMAT))
neg[124:136] = b"\xff" * 12
neg[148:156] = b" " * 8
neg[148:155] = ("%06o\0" % sum(neg)).encode()
with open(os.path.join(out, "negative-size-after.tar"), "wb") as f:
    f.write(good + bytes(neg) + b"\0" * 1024)
cases.append(("negative-size-after", "refuse", "damaged tar after entry 'good'"))

# Truncated compressed streams, cut in the middle of an entry's data. The
# decompressor hands out its data in blocks, and the block that fails is lost:
# the cut is far enough into the entry to fall in it all the same.
first = io.BytesIO()
with tarfile.open(fileobj=first, mode="w", format=tarfile.PAX_FORMAT) as tf:
    tf.addfile(tarfile.TarInfo("good"))
    ti = tarfile.TarInfo("big")
    ti.size = 1 << 20
    tf.addfile(ti, io.BytesIO(os.urandom(ti.size)))
compressors = [("gzip", gzip.compress)]
if shutil.which("zstd"):
    compressors.append(("zstd", lambda b: subprocess.run(["zstd", "-q", "-c"], input=b,
                                                           stdout=subprocess.PIPE,
                                                           check=True).stdout))
for kind, comp in compressors:
    data = comp(first.getvalue())
    with open(os.path.join(out, "%s-cut.tar" % kind), "wb") as f:
        f.write(data[:len(data) * 3 // 4])
    cases.append(("%s-cut" % kind, "refuse",
                  "entry 'big' cannot be read: damaged %s data" % kind))

with open(os.path.join(out, "cases"), "w") as f:
    for c in cases:
        f.write("%s %s %s\n" % c)
