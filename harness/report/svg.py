"""Small hand-written SVG charts: scatter, horizontal box plots, horizontal bars.

Used for the aggregated overview of large runs, where a handful of points per chart do not
justify importing matplotlib and laying out figures (over a second of a report that must
take a few). Text is XML-escaped; the only URL is the SVG namespace.
"""

from __future__ import annotations

import math
from html import escape

FONT = 11
CHAR_W = 6.2  # average glyph width at FONT px, for margins
_HEAD = ('<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
         f'font-family="sans-serif" font-size="{FONT}">')


class Axis:
    """Maps data values onto [a, b] pixels, linear or log10, and proposes tick values."""

    def __init__(self, values: list[float], a: float, b: float, log: bool = False, zero: bool = False):
        vals = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
        lo, hi = (min(vals), max(vals)) if vals else (1.0, 10.0)
        if zero and not log:
            lo = min(lo, 0.0)
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        pad = (hi - lo) * 0.08 or (0.5 if log else abs(hi) * 0.1 or 1.0)
        self.lo, self.hi = lo - (0 if zero and not log and lo == 0 else pad), hi + pad
        self.a, self.b, self.log = a, b, log

    def __call__(self, v: float) -> float:
        x = math.log10(v) if self.log else v
        return self.a + (x - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self) -> list[tuple[float, str]]:
        lo, hi = (10 ** self.lo, 10 ** self.hi) if self.log else (self.lo, self.hi)
        if self.log and self.hi - self.lo > 1.2:  # decades (and 2x, 5x when there are few)
            exps = range(math.floor(self.lo), math.ceil(self.hi) + 1)
            mult = (1,) if len(exps) > 3 else (1, 2, 5)
            vals = [m * 10.0 ** e for e in exps for m in mult]
            return [(v, f"{v:.3g}") for v in vals if lo <= v <= hi]
        raw = (hi - lo) / 5  # linear steps of 1, 2 or 5 x 10^k, labelled with the digits the step needs
        mag = 10 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        digits = max(0, -math.floor(math.log10(step)))
        vals = [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
        return [(v, f"{v:.{digits}f}") for v in vals if lo <= v <= hi and (v > 0 or not self.log)]


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(s)}</text>'


def _frame(w: int, h: int, left: float, top: float, right: float, bottom: float, x: Axis, y: Axis | None,
           x_label: str, y_label: str = "") -> list[str]:
    out = [_HEAD.format(w=w, h=h), f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           'fill="none" stroke="#888"/>']
    for v, label in x.ticks():
        px = x(v)
        out.append(f'<line x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}" stroke="#ddd"/>')
        out.append(_text(px, bottom + 14, label, "middle"))
    if y is not None:
        for v, label in y.ticks():
            py = y(v)
            out.append(f'<line x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}" stroke="#ddd"/>')
            out.append(_text(left - 4, py + 4, label, "end"))
    out.append(_text((left + right) / 2, h - 6, x_label, "middle"))
    if y_label:
        out.append(_text(14, (top + bottom) / 2, y_label, "middle", f' transform="rotate(-90 14 {(top + bottom) / 2:.1f})"'))
    return out


def scatter(points: list[tuple[float, float]], labels: list[str], front: list[int], x_label: str, y_label: str,
            log_y: bool = True) -> str:
    """Grey points, the `front` indices red and joined by a step line (the caption says so), each labelled."""
    w, h, left, top, right, bottom = 660, 360, 70, 12, 530, 316  # room on the right for labels
    x = Axis([p[0] for p in points], left, right)
    y = Axis([p[1] for p in points], bottom, top, log=log_y)
    out = _frame(w, h, left, top, right, bottom, x, y, x_label, y_label)
    fx = [(x(points[i][0]), y(points[i][1])) for i in front]
    if len(fx) > 1:
        path = " ".join(f"{a:.1f},{b:.1f} {c:.1f},{b:.1f}" for (a, b), (c, _) in zip(fx, fx[1:], strict=False))
        out.append(f'<polyline points="{path} {fx[-1][0]:.1f},{fx[-1][1]:.1f}" fill="none" stroke="#d62728" '
                   'stroke-opacity="0.6"/>')
    on_front = set(front)
    for i, ((px, py), label) in enumerate(zip(points, labels, strict=True)):
        colour = "#d62728" if i in on_front else "#8a8a8a"
        out.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="4" fill="{colour}"/>')
        out.append(_text(x(px) + 6, y(py) - 6, label))
    return "\n".join(out) + "\n</svg>"


def _rows_frame(labels: list[str], values: list[float], x_label: str, log: bool, zero: bool):
    left = 12 + CHAR_W * max(len(s) for s in labels)
    right, top = left + 460, 10
    bottom = top + 26 * len(labels)
    x = Axis(values, left, right, log=log, zero=zero)
    return x, _frame(int(right + 30), int(bottom + 40), left, top, right, bottom, x, None, x_label), left, top


def hboxes(boxes: list[dict], x_label: str, log: bool = False) -> str:
    """One horizontal box per dict (label, whislo, q1, med, q3, whishi), top to bottom."""
    labels = [b["label"] for b in boxes]
    x, out, left, top = _rows_frame(labels, [b[k] for b in boxes for k in ("whislo", "whishi")], x_label, log,
                                    zero=False)
    for i, b in enumerate(boxes):
        cy = top + 26 * i + 13
        out.append(_text(left - 6, cy + 4, b["label"], "end"))
        out.append(f'<line x1="{x(b["whislo"]):.1f}" y1="{cy}" x2="{x(b["whishi"]):.1f}" y2="{cy}" stroke="#555"/>')
        out.append(f'<rect x="{x(b["q1"]):.1f}" y="{cy - 8}" width="{max(x(b["q3"]) - x(b["q1"]), 1):.1f}" '
                   'height="16" fill="#9ecae1" stroke="#555"/>')
        out.append(f'<line x1="{x(b["med"]):.1f}" y1="{cy - 8}" x2="{x(b["med"]):.1f}" y2="{cy + 8}" '
                   'stroke="#08519c" stroke-width="2"/>')
    return "\n".join(out) + "\n</svg>"


def hbars(labels: list[str], values: list[float], x_label: str, fmt: str = ".2f") -> str:
    """One horizontal bar per label, its value written after it."""
    x, out, left, top = _rows_frame(labels, values, x_label, log=False, zero=True)
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        cy = top + 26 * i + 13
        out.append(_text(left - 6, cy + 4, label, "end"))
        out.append(f'<rect x="{x(0):.1f}" y="{cy - 8}" width="{max(x(v) - x(0), 0):.1f}" height="16" fill="#74c476"/>')
        out.append(_text(x(v) + 4, cy + 4, format(v, fmt)))
    return "\n".join(out) + "\n</svg>"
