#!/usr/bin/env python3
"""Plots of an sfu-replay summary: a latency histogram and loss over time, as SVG.

  /usr/bin/python3 bench/plot.py SUMMARY.json [--out-dir DIR] [--title TEXT]

writes, next to the summary (or in DIR):

  <name>-latency.svg  added latency of every packet received: its buckets
                      (sfu-replay's "latency_histogram") gathered into 20
                      bins a decade on a log axis, p50 / p95 / p99 marked
  <name>-loss.svg     loss per second of sending (sfu-replay's "intervals"),
                      in %, with the packets received per second under it

and prints their paths. Only the Python standard library: the SVG is
written here, text and lines, readable in a browser or a Markdown page.
bench/replay_load.py --plots DIR runs it on every scenario's summary.
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

W, H = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 40, 40, 50
FONT = 'font-family="sans-serif" font-size="12"'


def nice_step(span, ticks=5):
    """A round step (1, 2, 5 x 10^k) giving about `ticks` ticks over span."""
    if span <= 0:
        return 1
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def fmt_us(us):
    if us >= 1e6:
        return "%g s" % (us / 1e6)
    if us >= 1e3:
        return "%g ms" % (us / 1e3)
    return "%g µs" % us


def fmt_num(v):
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v).replace(",", " ")
    return "%g" % round(v, 6)


class Svg:
    """A chart's SVG: plot area from (LEFT, TOP) to (W - RIGHT, H - BOTTOM)."""

    def __init__(self, title):
        self.parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
                      'viewBox="0 0 %d %d">' % (W, H, W, H),
                      '<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (W, H),
                      '<text x="%d" y="22" font-family="sans-serif" font-size="14" '
                      'font-weight="bold">%s</text>' % (LEFT, escape(title))]
        self.x0, self.x1, self.y0, self.y1 = LEFT, W - RIGHT, H - BOTTOM, TOP

    def add(self, s):
        self.parts.append(s)

    def text(self, x, y, s, anchor="middle", extra=""):
        self.add('<text x="%.1f" y="%.1f" text-anchor="%s" %s %s>%s</text>'
                 % (x, y, anchor, FONT, extra, escape(s)))

    def line(self, x1, y1, x2, y2, style='stroke="#999" stroke-width="1"'):
        self.add('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>' % (x1, y1, x2, y2, style))

    def axes(self, xlabel, ylabel):
        self.line(self.x0, self.y0, self.x1, self.y0, 'stroke="black"')
        self.line(self.x0, self.y0, self.x0, self.y1, 'stroke="black"')
        self.text((self.x0 + self.x1) / 2, H - 12, xlabel)
        self.text(16, (self.y0 + self.y1) / 2, ylabel,
                  extra='transform="rotate(-90 16 %.1f)"' % ((self.y0 + self.y1) / 2))

    def yticks(self, ymax, fy, fmt=fmt_num):
        step = nice_step(ymax)
        v = 0
        while v <= ymax * 1.0001:
            y = fy(v)
            self.line(self.x0 - 4, y, self.x1, y, 'stroke="#e4e4e4" stroke-width="1"')
            self.text(self.x0 - 6, y + 4, fmt(v), anchor="end")
            v += step

    def done(self):
        return "\n".join(self.parts + ["</svg>"]) + "\n"


def latency_svg(summary, title):
    hist = summary.get("latency_histogram") or {}
    buckets = hist.get("buckets_us") or []
    svg = Svg(title + ": added latency")
    total = sum(b[2] for b in buckets) + hist.get("over", 0)
    if not buckets:
        svg.axes("added latency (log scale)", "packets")
        svg.text(W / 2, H / 2, "no packet received")
        return svg.done()
    # 20 bins a decade, from the decade of the smallest bucket to that of the largest
    per = 20
    lo = math.floor(math.log10(max(buckets[0][0], 1)))
    hi = math.ceil(math.log10(max(b[1] for b in buckets)))
    if hi <= lo:
        hi = lo + 1
    nbins = (hi - lo) * per
    bins = [0] * nbins
    for b_lo, b_hi, n in buckets:  # a bucket counts in the bin of its middle
        mid = max((b_lo + b_hi) / 2, 1)
        i = min(nbins - 1, max(0, int((math.log10(mid) - lo) * per)))
        bins[i] += n
    ymax = max(bins) * 1.1
    fx = lambda us: svg.x0 + (math.log10(us) - lo) / (hi - lo) * (svg.x1 - svg.x0)
    fy = lambda v: svg.y0 - v / ymax * (svg.y0 - svg.y1)
    svg.yticks(ymax, fy)
    for d in range(lo, hi + 1):
        x = fx(10 ** d)
        svg.line(x, svg.y0, x, svg.y0 + 4, 'stroke="black"')
        svg.text(x, svg.y0 + 18, fmt_us(10 ** d))
    bw = (svg.x1 - svg.x0) / nbins
    for i, n in enumerate(bins):
        if n:
            svg.add('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4c78a8"/>'
                    % (svg.x0 + i * bw + 0.5, fy(n), max(bw - 1, 0.5), svg.y0 - fy(n)))
    lat = summary.get("latency_us") or {}
    colors = {"p50": "#2ca02c", "p95": "#ff7f0e", "p99": "#d62728"}
    for k, color in colors.items():
        v = lat.get(k)
        if v:
            x = fx(max(v, 10 ** lo))
            svg.line(x, svg.y0, x, svg.y1, 'stroke="%s" stroke-width="1.5" '
                     'stroke-dasharray="4 3"' % color)
            svg.text(x + 3, svg.y1 + 12 + 14 * list(colors).index(k), "%s %s" % (k, fmt_us(v)),
                     anchor="start", extra='fill="%s"' % color)
    svg.text(svg.x1, 22, "%s packets%s" % (fmt_num(total), ", %d over 10 s" % hist["over"]
                                           if hist.get("over") else ""), anchor="end")
    svg.axes("added latency (log scale)", "packets")
    return svg.done()


def loss_svg(summary, title):
    iv = summary.get("intervals") or []
    svg = Svg(title + ": loss over time")
    if not iv:
        svg.axes("seconds of sending", "loss %")
        svg.text(W / 2, H / 2, "no interval")
        return svg.done()
    tmax = max(i["t_s"] for i in iv) or 1
    loss = [100.0 * i["loss"] for i in iv]
    rate = [i["received"] / i["dt_s"] if i["dt_s"] > 0 else 0 for i in iv]
    lmax = max(max(loss) * 1.2, 1.0)  # 1 % at least: no loss is a flat line at 0
    rmax = max(rate) * 1.1 or 1
    fx = lambda t: svg.x0 + t / tmax * (svg.x1 - svg.x0)
    fy = lambda v: svg.y0 - v / lmax * (svg.y0 - svg.y1)
    fr = lambda v: svg.y0 - v / rmax * (svg.y0 - svg.y1)
    svg.yticks(lmax, fy, fmt=lambda v: "%g %%" % round(v, 4))
    step = nice_step(tmax)
    t = 0
    while t <= tmax * 1.0001:
        svg.line(fx(t), svg.y0, fx(t), svg.y0 + 4, 'stroke="black"')
        svg.text(fx(t), svg.y0 + 18, "%g" % round(t, 3))
        t += step
    # received per second, light, on its own scale (labelled at the right)
    pts = " ".join("%.1f,%.1f" % (fx(i["t_s"]), fr(r)) for i, r in zip(iv, rate))
    svg.add('<polyline points="%s" fill="none" stroke="#bbbbbb" stroke-width="1.5"/>' % pts)
    svg.text(svg.x1, svg.y1 - 6, "grey: received, up to %s packets/s" % fmt_num(round(max(rate))),
             anchor="end", extra='fill="#888"')
    pts = " ".join("%.1f,%.1f" % (fx(i["t_s"]), fy(v)) for i, v in zip(iv, loss))
    svg.add('<polyline points="%s" fill="none" stroke="#d62728" stroke-width="2"/>' % pts)
    for i, v in zip(iv, loss):
        if v > 0:
            svg.add('<circle cx="%.1f" cy="%.1f" r="2.5" fill="#d62728"/>' % (fx(i["t_s"]), fy(v)))
    total_lost, total = summary.get("lost", 0), summary.get("received", 0) + summary.get("lost", 0)
    svg.text(svg.x1, 22, "lost %s of %s (%.3g %%)" % (fmt_num(total_lost), fmt_num(total),
                                                      100.0 * total_lost / total if total else 0),
             anchor="end")
    svg.axes("seconds of sending", "loss % per second")
    return svg.done()


def plot(summary_path, out_dir=None, title=None):
    """Writes both SVGs of one summary; returns their paths."""
    with open(summary_path) as f:
        summary = json.load(f)
    base = os.path.splitext(os.path.basename(summary_path))[0]
    out_dir = out_dir or os.path.dirname(os.path.abspath(summary_path))
    title = title or base
    paths = []
    for kind, fn in (("latency", latency_svg), ("loss", loss_svg)):
        p = os.path.join(out_dir, "%s-%s.svg" % (base, kind))
        with open(p, "w") as f:
            f.write(fn(summary, title))
        paths.append(p)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("summary", nargs="+", help="sfu-replay --json output")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    for s in args.summary:
        for p in plot(s, args.out_dir, args.title):
            print(p)


if __name__ == "__main__":
    sys.exit(main())
