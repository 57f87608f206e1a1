"""Small pictures for the UI's metadata, drawn with Pillow: a person would rather look at a
class histogram than read it. Shown inline as a markdown image."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

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
