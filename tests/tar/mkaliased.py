#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Writes to FILE a tar whose entries reach the same path by two names, one of
# them through a symlink: a layer unpacked on threads must equal --serial's.
import io
import sys
import tarfile

out, n = sys.argv[1], int(sys.argv[2])


def add(tf, name, kind=tarfile.REGTYPE, data=b"", link=""):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = link
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = 1000000000
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "real/", tarfile.DIRTYPE)
    add(tf, "l", tarfile.SYMTYPE, link="real")
    add(tf, "r", tarfile.SYMTYPE, link="/")
    for i in range(n):
        # The same file by its name, then through a symlink; and the other way round.
        add(tf, "real/a%d" % i, data=b"real %d\n" % i)
        add(tf, "l/a%d" % i, data=b"alias %d\n" % i)
        add(tf, "l/b%d" % i, data=b"alias %d\n" % i)
        add(tf, "real/b%d" % i, data=b"real %d\n" % i)
        # A file at the root, then a file and a directory in its place through r -> /.
        add(tf, "f%d" % i, data=b"root %d\n" % i)
        add(tf, "r/f%d" % i, data=b"through %d\n" % i)
        add(tf, "g%d" % i, data=b"root %d\n" % i)
        add(tf, "r/g%d/" % i, tarfile.DIRTYPE)
        add(tf, "r/g%d/x" % i, data=b"below %d\n" % i)
