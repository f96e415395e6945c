#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns results.csv into a markdown table (stdout) and an SVG bar chart of the cost of
each file system relative to kernel overlayfs, per workload, one panel per stack depth."""
import csv
import math
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
svg_path = sys.argv[2]
t = defaultdict(dict)  # (layers, workload) -> fs -> seconds
fss, wls, layers = [], [], []
for r in rows:
    key = (int(r["layers"]), r["workload"])
    t[key][r["fs"]] = float(r["median_s"])
    for lst, v in ((fss, r["fs"]), (wls, r["workload"]), (layers, int(r["layers"]))):
        if v not in lst:
            lst.append(v)

for n in layers:
    print(f"\n### {n} layer{'s' if n > 1 else ''}\n")
    print("| workload | " + " | ".join(fss) + " |")
    print("|---|" + "---|" * len(fss))
    for w in wls:
        base = t[(n, w)].get("overlay")
        cells = []
        for f in fss:
            v = t[(n, w)].get(f)
            if v is None:
                cells.append("-")
            elif base and f != "overlay":
                cells.append(f"{v:.3f} ({v / base:.1f}x)")
            else:
                cells.append(f"{v:.3f}")
        print(f"| {w} | " + " | ".join(cells) + " |")

colors = {"strata": "#1f77b4", "strata-volatile": "#9467bd", "overlay": "#7f7f7f",
          "fuse-overlayfs": "#d62728", "unionfs-fuse": "#ff7f0e"}
others = [f for f in fss if f != "overlay"]
bw, gap, ph = 10, 14, 260
pw = len(wls) * (len(others) * bw + gap) + 80
width, height = pw + 20, len(layers) * (ph + 60) + 40
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
       'font-family="sans-serif" font-size="10">']
out.append(f'<text x="10" y="16" font-size="13">cost relative to kernel overlayfs '
           '(log scale; 1x = overlayfs)</text>')
for pi, n in enumerate(layers):
    y0 = 40 + pi * (ph + 60)
    out.append(f'<text x="10" y="{y0 + 10}" font-size="12">{n} layer(s)</text>')
    top = math.log10(100)

    def ypos(ratio):
        ratio = min(max(ratio, 0.1), 100)
        return y0 + 20 + (top - math.log10(ratio)) / 3 * ph

    for mark in (0.1, 1, 10, 100):
        y = ypos(mark)
        out.append(f'<line x1="60" x2="{pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ccc"/>')
        out.append(f'<text x="30" y="{y + 3:.1f}">{mark:g}x</text>')
    x = 70
    for w in wls:
        base = t[(n, w)].get("overlay")
        for f in others:
            v = t[(n, w)].get(f)
            if v is not None and base:
                r = v / base
                y1, y2 = ypos(max(r, 1)), ypos(min(r, 1))
                out.append(f'<rect x="{x}" y="{y1:.1f}" width="{bw - 1}" '
                           f'height="{max(y2 - y1, 1):.1f}" fill="{colors.get(f, "#000")}">'
                           f'<title>{f} {w}: {r:.2f}x</title></rect>')
            x += bw
        out.append(f'<text x="{x - len(others) * bw}" y="{y0 + ph + 35}" '
                   f'transform="rotate(30 {x - len(others) * bw} {y0 + ph + 35})">{w}</text>')
        x += gap
lx = 70
for f in others:
    out.append(f'<rect x="{lx}" y="24" width="10" height="10" fill="{colors.get(f, "#000")}"/>'
               f'<text x="{lx + 14}" y="33">{f}</text>')
    lx += 110
out.append("</svg>")
open(svg_path, "w").write("\n".join(out) + "\n")
