#!/usr/bin/env python3
"""The Table 3 picture: time, peak memory and speed-up against n, log-log, from `linformer bench
--table3 --json FILE`, with the paper's speed-ups (its Table 3, one V100) beside ours.

Usage: plot_bench.py BENCH.json OUT.svg [--title TITLE]
Three panels: inference time per kind (full, tiled, Linformer at each k); peak RSS; Linformer's
speed-up over full attention, ours (solid) and the paper's (dashed, same colour per k).
Plain Python, no third-party modules (the SVG is written by hand).
"""
import argparse
import json
import math
import os
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def decades(lo, hi):
    """Tick values 1, 2, 5 x 10^e inside [lo, hi] (positive)."""
    out = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                out.append(v)
    return out


def panel(x0, y0, w, h, series, title, ylabel, xvals):
    """One log-log panel; series: (label, colour, dashed, [(n, value)]). Returns SVG elements."""
    ys = [v for _, _, _, pts in series for _, v in pts if v and v > 0]
    if not ys:
        return [f'<text x="{x0 + w / 2}" y="{y0 + h / 2}" text-anchor="middle">{title}: no data</text>']
    ylo, yhi = min(ys) / 1.3, max(ys) * 1.3
    xlo, xhi = min(xvals) / 1.2, max(xvals) * 1.2
    X = lambda n: x0 + w * (math.log(n) - math.log(xlo)) / (math.log(xhi) - math.log(xlo))
    Y = lambda v: y0 + h * (1 - (math.log(v) - math.log(ylo)) / (math.log(yhi) - math.log(ylo)))
    out = [f'<text x="{x0 + w / 2}" y="{y0 - 10}" text-anchor="middle" font-size="13">{title}</text>',
           f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>',
           f'<text x="{x0 - 48}" y="{y0 + h / 2}" transform="rotate(-90 {x0 - 48} {y0 + h / 2})" '
           f'text-anchor="middle">{ylabel}</text>',
           f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle">sequence length n (log)</text>']
    for v in decades(ylo, yhi):
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 4}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for n in xvals:
        out.append(f'<line x1="{X(n):.1f}" x2="{X(n):.1f}" y1="{y0}" y2="{y0 + h}" stroke="#eee"/>')
        out.append(f'<text x="{X(n):.1f}" y="{y0 + h + 16}" text-anchor="middle">{n}</text>')
    for label, colour, dashed, pts in series:
        pts = sorted((n, v) for n, v in pts if v and v > 0)
        if not pts:
            continue
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        path = " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for n, v in pts:
            out.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="2.5" fill="{colour}"/>')
    return out


def legend(x, y, series):
    out = []
    for i, (label, colour, dashed, _) in enumerate(series):
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        yy = y + 16 * i
        out.append(f'<line x1="{x}" x2="{x + 22}" y1="{yy}" y2="{yy}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 28}" y="{yy + 4}">{label}</text>')
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench_json")
    ap.add_argument("out_svg")
    ap.add_argument("--title", default="Table 3 on this CPU: whole-encoder inference, batch 1")
    a = ap.parse_args()
    try:
        with open(a.bench_json) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        sys.exit(f"plot_bench.py: {a.bench_json}: {e}")
    rows = [r for r in data.get("table3", []) if r.get("ok")]
    if not rows:
        sys.exit(f"plot_bench.py: {a.bench_json}: no successful table3 rows (run bench --table3 --json)")
    xvals = sorted({r["n"] for r in rows})
    ks = sorted({r["k"] for r in rows if r["kind"] == "linformer"})
    colour = {}
    for kind in ("full", "tiled"):
        colour[(kind, 0)] = COLOURS[len(colour)]
    for k in ks:
        colour[("linformer", k)] = COLOURS[len(colour) % len(COLOURS)]
    def label(kind, k):
        return f"Linformer k={k}" if kind == "linformer" else f"{kind} attention"
    keys = [key for key in colour if any((r["kind"], r.get("k", 0)) == key for r in rows)]
    time_series = [(label(*key), colour[key], False,
                    [(r["n"], r["seconds"]) for r in rows if (r["kind"], r.get("k", 0)) == key]) for key in keys]
    mem_series = [(label(*key), colour[key], False,
                   [(r["n"], r["peak_mb"]) for r in rows if (r["kind"], r.get("k", 0)) == key]) for key in keys]
    speed_series = []
    for k in ks:
        lin = [r for r in rows if r["kind"] == "linformer" and r["k"] == k]
        speed_series.append((f"k={k}, ours", colour[("linformer", k)], False,
                             [(r["n"], r.get("speedup_vs_full")) for r in lin]))
        speed_series.append((f"k={k}, paper (V100)", colour[("linformer", k)], True,
                             [(r["n"], r.get("paper_speedup")) for r in lin]))
    W, H = 1260, 540
    pw, ph, top = 300, 300, 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{a.title}</text>',
           f'<text x="{W / 2}" y="40" text-anchor="middle">{data.get("cpu", "")}, {data.get("threads", "?")} threads, '
           f'{data.get("config", {}).get("layers", "?")} layers, d {data.get("config", {}).get("d_model", "?")}</text>']
    out += panel(70, top, pw, ph, time_series, "inference time", "seconds (log)", xvals)
    out += panel(470, top, pw, ph, mem_series, "peak resident memory", "MB (log)", xvals)
    out += panel(870, top, pw, ph, speed_series, "Linformer speed-up over full attention", "x (log)", xvals)
    # Legends under the panels: the kinds (shared by the first two), then ours and the paper's.
    half = (len(time_series) + 1) // 2
    out += legend(80, top + ph + 60, time_series[:half])
    out += legend(480, top + ph + 60, time_series[half:])
    out += legend(880, top + ph + 60, speed_series[0::2])
    out += legend(1060, top + ph + 60, speed_series[1::2])
    out.append("</svg>")
    with open(a.out_svg + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(a.out_svg + ".tmp", a.out_svg)
    print(f"plot_bench.py: wrote {a.out_svg} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
