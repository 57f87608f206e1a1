"""Small pictures for the UI's metadata, drawn with Pillow: a person would rather look at a
class histogram than read it. Shown inline as a markdown image."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

from dagster import MetadataValue
from PIL import Image, ImageDraw

BAR_COLOR = (46, 108, 194)


def bar_chart(counts: Mapping[str, int], *, title: str, most: int = 20) -> MetadataValue:
    """A horizontal bar per label (the ``most`` largest), as a PNG in markdown."""
    shown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:most]
    width, row, left = 480, 18, 150
    image = Image.new("RGB", (width, 28 + row * max(len(shown), 1)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((6, 6), title, fill="black")
    top = max((n for _, n in shown), default=1) or 1
    for i, (label, n) in enumerate(shown):
        y = 26 + i * row
        draw.text((6, y + 2), label[:22], fill="black")
        length = int((width - left - 60) * n / top)
        draw.rectangle([left, y + 2, left + max(length, 1), y + row - 4], fill=BAR_COLOR)
        draw.text((left + length + 6, y + 2), str(n), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")


def _png_markdown(image: Image.Image, title: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


PALETTE = [(46, 108, 194), (214, 96, 39), (60, 150, 70), (170, 50, 160), (200, 160, 30)]
PALETTE += [(40, 160, 170), (120, 80, 40), (230, 90, 130), (90, 90, 90), (140, 170, 40)]


def pr_chart(curves: Mapping[str, list[float]], recall: list[float], *, title: str) -> str:
    """Precision against recall, one line per class (at most 10, as given), as markdown."""
    size, margin = 360, 40
    image = Image.new("RGB", (size + 170, size + 2 * margin), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 8), title, fill="black")
    x0, y0, x1, y1 = margin, margin, margin + size - 20, margin + size - 20
    draw.rectangle([x0, y0, x1, y1], outline="black")
    for tick in (0.0, 0.5, 1.0):
        draw.text((x0 + tick * (x1 - x0) - 6, y1 + 4), f"{tick:.1f}", fill="black")
        draw.text((4, y1 - tick * (y1 - y0) - 6), f"{tick:.1f}", fill="black")
    draw.text(((x0 + x1) // 2 - 16, y1 + 18), "recall", fill="black")
    draw.text((x0 + 4, y0 + 4), "precision", fill="black")
    for n, (name, precision) in enumerate(list(curves.items())[:10]):
        colour = PALETTE[n % len(PALETTE)]
        points = [
            (x0 + r * (x1 - x0), y1 - max(p, 0.0) * (y1 - y0))
            for r, p in zip(recall, precision, strict=True)
            if p > -1
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        draw.text((x1 + 12, y0 + 14 * n), name[:24], fill=colour)
    return _png_markdown(image, title)


def matrix_chart(labels: list[str], matrix: list[list[int]], *, title: str) -> str:
    """A confusion matrix (rows: true class, columns: predicted), shaded by row share."""
    shown = labels[:30]
    cell, left, top = 26, 120, 56
    width = left + cell * len(shown) + 10
    image = Image.new("RGB", (max(width, 300), top + cell * len(shown) + 30), "white")
    draw = ImageDraw.Draw(image)
    draw.text((6, 6), title + " (rows: truth, columns: predicted)", fill="black")
    for j, label in enumerate(shown):  # column heads, staggered so that neighbours fit
        draw.text((left + j * cell + 2, top - 28 + 12 * (j % 2)), label[:4], fill="black")
    for i, label in enumerate(shown):
        total = sum(matrix[i]) or 1
        draw.text((6, top + i * cell + 5), label[:18], fill="black")
        for j in range(len(shown)):
            share = matrix[i][j] / total
            shade = int(255 - 200 * share)
            box = [
                left + j * cell,
                top + i * cell,
                left + (j + 1) * cell - 1,
                top + (i + 1) * cell - 1,
            ]
            draw.rectangle(box, fill=(shade, shade, 255), outline=(220, 220, 220))
            if matrix[i][j]:
                draw.text((box[0] + 3, box[1] + 5), str(matrix[i][j])[:3], fill="black")
    return _png_markdown(image, title)


def line_chart(values: list[float], *, title: str, x_label: str = "epoch") -> str:
    """One curve (a training loss by epoch, say), as markdown."""
    width, height, margin = 420, 220, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 8), title, fill="black")
    x0, y0, x1, y1 = margin, 28, width - 12, height - 28
    draw.rectangle([x0, y0, x1, y1], outline="black")
    low, high = min(values, default=0.0), max(values, default=1.0)
    span = (high - low) or 1.0
    draw.text((4, y0), f"{high:.3g}", fill="black")
    draw.text((4, y1 - 10), f"{low:.3g}", fill="black")
    draw.text(((x0 + x1) // 2 - 16, y1 + 8), f"{x_label} (1-{len(values)})", fill="black")
    step = (x1 - x0) / max(len(values) - 1, 1)
    points = [(x0 + i * step, y1 - (v - low) / span * (y1 - y0)) for i, v in enumerate(values)]
    if len(points) > 1:
        draw.line(points, fill=BAR_COLOR, width=2)
    return _png_markdown(image, title)


def map_chart(
    points: Any, marks: Any, *, title: str, legend: Mapping[int, str] | None = None
) -> str:
    """A 2-D scatter (an embedding map): ``points`` N x 2, ``marks`` an int per point, 0 drawn
    grey and small, 1 blue, 2 red and largest, in that order so the rarer marks stay visible."""
    width, height, margin = 420, 420, 12
    image = Image.new("RGB", (width, height + 18), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin, 4), title, fill="black")
    colours = {0: ((185, 185, 185), 1), 1: (BAR_COLOR, 2), 2: ((214, 39, 40), 3)}
    if len(points):
        low, high = points.min(axis=0), points.max(axis=0)
        span = [(h - lo) or 1.0 for lo, h in zip(low, high, strict=True)]
        for mark in (0, 1, 2):
            colour, r = colours[mark]
            for x, y in points[marks == mark]:
                px = margin + (x - low[0]) / span[0] * (width - 2 * margin)
                py = 22 + (y - low[1]) / span[1] * (height - 2 * margin)
                draw.ellipse([px - r, py - r, px + r, py + r], fill=colour)
    if legend:
        line = "   ".join(f"{('grey', 'blue', 'red')[m]}: {name}" for m, name in legend.items())
        draw.text((margin, height + 2), line, fill="black")
    return _png_markdown(image, title)
