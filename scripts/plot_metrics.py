#!/usr/bin/env python3
"""Validation curves against steps for several runs: an SVG chart and a Markdown table.

Usage: plot_metrics.py --out PREFIX --title TITLE --baseline NAME [--metric M] NAME=RUN_DIR [NAME=RUN_DIR ...]
Reads RUN_DIR/metrics.jsonl (written by `linformer pretrain` or `finetune`); writes PREFIX.svg and
PREFIX.md. The metric: valid_ppl (pretraining, the default; log scale) or valid_accuracy
(fine-tuning; linear scale, in percent).
Plain Python, no third-party modules (the SVG is written by hand).
"""
import argparse
import json
import math
import os
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def read_run(path, metric="valid_ppl"):
    valid, train = [], []
    with open(os.path.join(path, "metrics.jsonl")) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            m = json.loads(line)
            if metric in m:
                valid.append((m["step"], m[metric] * (100 if metric == "valid_accuracy" else 1)))
            if "train_loss" in m:
                train.append(m)
    if not valid:
        sys.exit(f"{path}/metrics.jsonl: no validation points")
    return valid, train


def svg_chart(series, title, width=720, height=440, log=True, ylabel="validation perplexity (log)"):
    left, right, top, bottom = 70, 190, 40, 50
    pw, ph = width - left - right, height - top - bottom
    xs = [s for _, pts in series for s, _ in pts]
    ys = [p for _, pts in series for _, p in pts if p > 0]
    xmax = max(xs) or 1
    tr = math.log10 if log else (lambda v: v)
    if log:  # from the best value seen to a cap well above the start (initial ppl ~ vocab size)
        ylo = math.log10(min(ys)) - 0.05
        yhi = min(math.log10(max(ys)), ylo + 3) + 0.05
    else:  # percent: tens below the lowest to tens above the highest
        ylo = 10 * math.floor(min(ys) / 10)
        yhi = min(100, 10 * math.ceil(max(ys) / 10 + 0.01))
    def X(s):
        return left + pw * s / xmax
    def Y(p):
        v = min(max(tr(p) if p > 0 else ylo, ylo), yhi)
        return top + ph * (1 - (v - ylo) / (yhi - ylo))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left + pw / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    # y ticks: log scale at 1, 2, 5 x 10^k; linear every 10
    ticks = [(math.log10(m) + e, m * 10 ** e) for e in range(int(math.floor(ylo)), int(math.ceil(yhi)) + 1)
             for m in (1, 2, 5)] if log else [(v, v) for v in range(int(ylo), int(yhi) + 1, 10)]
    for v, label in ticks:
        if ylo <= v <= yhi:
            y = top + ph * (1 - (v - ylo) / (yhi - ylo))
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label:g}</text>')
    for i in range(6):
        s = xmax * i / 5
        x = X(s)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 5}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle">{int(s)}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" text-anchor="middle">step</text>')
    out.append(f'<text x="16" y="{top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 {top + ph / 2})">{ylabel}</text>')
    for i, (name, pts) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{X(s):.1f},{Y(p):.1f}" for j, (s, p) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        ly = top + 14 + 18 * i
        out.append(f'<line x1="{left + pw + 12}" x2="{left + pw + 36}" y1="{ly - 4}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 42}" y="{ly}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output prefix (writes PREFIX.svg and PREFIX.md)")
    ap.add_argument("--title", default="Validation perplexity")
    ap.add_argument("--baseline", help="name of the run the others are compared with")
    ap.add_argument("--command", default="", help="command line to record in the table")
    ap.add_argument("--metric", default="valid_ppl", choices=["valid_ppl", "valid_accuracy"])
    ap.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    a = ap.parse_args()
    series, rows = [], []
    for spec in a.runs:
        name, _, path = spec.partition("=")
        valid, train = read_run(path, a.metric)
        series.append((name, valid))
        last = train[-1] if train else {}
        steps = valid[-1][0]
        secs = last.get("elapsed_s", float("nan"))
        rows.append((name, valid[-1][1], steps, secs / max(steps, 1), last.get("tokens_per_s", float("nan"))))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out + ".svg.tmp", "w") as f:
        acc = a.metric == "valid_accuracy"
        f.write(svg_chart(series, a.title, log=not acc,
                          ylabel="validation accuracy (%)" if acc else "validation perplexity (log)"))
    os.replace(a.out + ".svg.tmp", a.out + ".svg")
    base = dict((r[0], r[1]) for r in rows).get(a.baseline)
    lines = [f"# {a.title}", ""]
    if a.command:
        lines += ["Produced by:", "", "    " + a.command, ""]
    what = "validation accuracy (%)" if a.metric == "valid_accuracy" else "valid ppl"
    lines += [f"![{what}]({os.path.basename(a.out)}.svg)", "",
              f"| run | final {what} | vs " + (a.baseline or "baseline") + " | steps | s/step | tokens/s |",
              "|---|---|---|---|---|---|"]
    for name, ppl, steps, sps, tps in rows:
        if a.metric == "valid_accuracy":
            rel = f"{ppl - base:+.1f} points" if base is not None else ""
        else:
            rel = f"{100 * (ppl / base - 1):+.1f}%" if base else ""
        lines.append(f"| {name} | {ppl:.2f} | {rel} | {steps} | {sps:.3f} | {tps:.0f} |")
    with open(a.out + ".md.tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(a.out + ".md.tmp", a.out + ".md")
    print("\n".join(lines[-len(rows) - 2:]))


if __name__ == "__main__":
    main()
