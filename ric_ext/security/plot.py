"""Small line charts as PNG with Pillow alone (no plotting dependency)."""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


def _ticks(lo: float, hi: float, n: int = 5) -> List[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def line_chart(
    series: Dict[str, Sequence[Tuple[float, float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    size: Tuple[int, int] = (820, 400),
):
    """A PIL image: one polyline with markers per named series of (x, y) points (NaN y values are skipped)."""
    from PIL import Image, ImageDraw, ImageFont

    W, H = size
    left, right, top, bottom = 70, 300, 36, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    pts = [(x, y) for s in series.values() for x, y in s if y == y and x == x]
    if not pts:
        d.text((left, H // 2), "no data", fill="black", font=font)
        return img
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = 0.05 * (y1 - y0 or 1.0)
    y0, y1 = y0 - pad, y1 + pad

    def px(x: float, y: float) -> Tuple[float, float]:
        return (
            left + (x - x0) / (x1 - x0) * (W - left - right),
            H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom),
        )

    d.rectangle([left, top, W - right, H - bottom], outline="black")
    for t in _ticks(y0, y1):
        _, yy = px(x0, t)
        d.line([left - 4, yy, left, yy], fill="black")
        d.line([left, yy, W - right, yy], fill=(225, 225, 225))
        d.text((4, yy - 6), f"{t:g}", fill="black", font=font)
    for t in _ticks(x0, x1):
        xx, _ = px(t, y0)
        d.line([xx, H - bottom, xx, H - bottom + 4], fill="black")
        d.text((xx - 10, H - bottom + 6), f"{t:g}", fill="black", font=font)
    d.text((left, 8), title, fill="black", font=font)
    d.text(((W - right + left) // 2 - 30, H - 18), xlabel, fill="black", font=font)
    d.text((4, top - 20), ylabel, fill="black", font=font)
    for i, (name, s) in enumerate(series.items()):
        c = COLOURS[i % len(COLOURS)]
        line = [px(x, y) for x, y in s if y == y]
        if len(line) > 1:
            d.line(line, fill=c, width=2)
        for xx, yy in line:
            d.ellipse([xx - 3, yy - 3, xx + 3, yy + 3], fill=c)
        d.line([W - right + 10, top + 10 + 16 * i, W - right + 30, top + 10 + 16 * i], fill=c, width=2)
        d.text((W - right + 34, top + 4 + 16 * i), name, fill="black", font=font)
    return img
