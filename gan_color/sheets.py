"""Labelled image sheets: rows of equally sized cells under column titles, each row with a caption (labelled probe
grids of training, best/worst grids of `evaluate`, the cross-model sheet of `compare`), and the caption font."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from gan_color import color
from gan_color.safeio import atomic_write_bytes

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
FONT_SIZE = 13
PAD = 4


def to_pil(rgb: torch.Tensor) -> Image.Image:
    """[3,H,W] sRGB float in [0, 1] or uint8 -> PIL RGB."""
    return Image.fromarray(color.rgb_to_uint8_array(rgb))


def label_font() -> ImageFont.ImageFont:
    """The font of column titles and captions (Pillow's default at FONT_SIZE)."""
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _fit(image: Image.Image, cell: int) -> Image.Image:
    """`image` scaled to fit a cell x cell box (aspect kept), centred on the background."""
    scale = cell / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", (cell, cell), BACKGROUND)
    canvas.paste(image.resize(size, Image.Resampling.LANCZOS), ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return canvas


def _clip_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """`text` shortened with an ellipsis so it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def render_sheet(rows: list[list[Image.Image]], *, columns: list[str], captions: list[str] | None = None,
                 cell: int = 192) -> Image.Image:
    """One image: a title band naming `columns`, then per row an optional caption line and its cells."""
    if not rows or any(len(row) != len(columns) for row in rows):
        raise ValueError(f"every row needs {len(columns)} images (one per column)")
    font = label_font()
    line = FONT_SIZE + 2 * PAD
    caption_h = line if captions else 0
    width = len(columns) * (cell + PAD) + PAD
    height = line + len(rows) * (caption_h + cell + PAD) + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(columns):
        text = _clip_text(draw, title, font, cell)
        x = PAD + j * (cell + PAD) + (cell - draw.textlength(text, font=font)) / 2
        draw.text((x, PAD), text, fill=TEXT, font=font)
    y = line
    for i, row in enumerate(rows):
        if captions:
            draw.text((PAD, y + PAD), _clip_text(draw, captions[i], font, width - 2 * PAD), fill=TEXT, font=font)
            y += caption_h
        for j, image in enumerate(row):
            sheet.paste(_fit(image, cell), (PAD + j * (cell + PAD), y))
        y += cell + PAD
    return sheet


def save_sheet(sheet: Image.Image, path: str | Path) -> Path:
    """Written atomically (a reader or a crash sees the old sheet or the new one); the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    sheet.save(buffer, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    return atomic_write_bytes(path, buffer.getvalue())
