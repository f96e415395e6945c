#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Streams to stdout a layer tar of about ROUNDS * 2 * MIB MiB that needs little
# disk to unpack: each round writes dN/zero (MIB MiB of zeros) and dN/sparse
# (a PAX 1.0 sparse file with MIB MiB of data in 4 MiB regions), then, unless
# KEEP is 1, an empty file dN that replaces the directory and frees both.
# TRAIL MiB of zeros follow the end of the archive.
import sys
import tarfile

rounds, mib, trail, keep = (int(a) for a in sys.argv[1:5])
out = sys.stdout.buffer
zeros = bytes(1 << 20)


def header(name, size, pax=None, kind=tarfile.REGTYPE):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.size = size
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.mtime = 1000000000
    if pax:
        ti.pax_headers = pax
    out.write(ti.tobuf(format=tarfile.PAX_FORMAT))


def zeros_out(n):
    while n > 0:
        k = min(n, len(zeros))
        out.write(zeros[:k])
        n -= k


def pad(n):
    zeros_out(-n % 512)


for r in range(rounds):
    size = mib << 20
    header("d%d/zero" % r, size)
    zeros_out(size)
    # Data regions of 4 MiB with 4 MiB holes between them.
    region = 4 << 20
    regions = [(2 * i * region, region) for i in range(size // region)]
    sparse_map = ("%d\n" % len(regions) + "".join("%d\n%d\n" % o for o in regions)).encode()
    sparse_map += bytes(-len(sparse_map) % 512)
    header("d%d/GNUSparseFile.0/sparse" % r, len(sparse_map) + size,
           pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                "GNU.sparse.name": "d%d/sparse" % r,
                "GNU.sparse.realsize": str(2 * size)})
    out.write(sparse_map)
    zeros_out(size)
    if not keep:
        header("d%d" % r, 0)
zeros_out(1024)
zeros_out(trail << 20)
out.flush()
