"""A query photo with planted edited copies among unrelated pictures, all made with Pillow: what the similarity words are measured on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tests import photos

SIZE = (640, 480)


def _checker() -> Image.Image:
    a = ((np.indices(SIZE[::-1]) // 40).sum(0) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.stack([a, a, a], -1))


def _stripes() -> Image.Image:
    a = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    a[:, :, 0] = (np.arange(SIZE[0]) // 20 % 2 * 255)[None]
    a[:, :, 2] = 120
    return Image.fromarray(a)


def _rings() -> Image.Image:
    y, x = np.indices(SIZE[::-1])
    a = ((np.sin(np.hypot(x - SIZE[0] / 2, y - SIZE[1] / 2) / 8) + 1) * 127).astype(np.uint8)
    return Image.fromarray(np.stack([a, 255 - a, a // 2], -1))


def _noise() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8))


def _page() -> Image.Image:
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    for line in range(20):
        draw.text((20, 20 + 22 * line), "The quick brown fox jumps over the lazy dog " * 2, fill="black")
    return image


def _confetti() -> Image.Image:
    image = Image.new("RGB", SIZE, "black")
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(3)
    for _ in range(60):
        x, y, r = int(rng.integers(0, SIZE[0])), int(rng.integers(0, SIZE[1])), int(rng.integers(5, 30))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image


UNRELATED = {"checker": _checker, "stripes": _stripes, "rings": _rings, "noise": _noise, "page": _page,
             "confetti": _confetti}


def planted(root: Path) -> dict:
    """``root/photos``: a query scene, its four edited copies (tests.photos.edited_copies) and six
    unrelated pictures (patterns, noise, a page of text); returns their paths."""
    query = photos.save(photos.scene(7), root / "photos" / "query" / "original.jpg", quality=92)
    copies = photos.edited_copies(photos.scene(7), root / "photos" / "copies")
    unrelated = {name: photos.save(make(), root / "photos" / "other" / f"{name}.png")
                 for name, make in UNRELATED.items()}
    return {"dir": root / "photos", "query": query, "copies": copies, "unrelated": unrelated}


def indexed_planted(root: Path, model_dir: Path) -> tuple[Path, dict]:
    """``planted`` under ``root``, indexed into ``root / "library"`` with the model at ``model_dir``:
    (the library's path, the photos)."""
    from engine.index import Indexer
    from engine.library import Library

    photos_made = planted(root)
    with Library(root / "library") as library:
        library.install_model(model_dir)
        Indexer(library, workers=0).run([photos_made["dir"]])
    return root / "library", photos_made
