"""A folder of real-looking photos with planted edited copies, and the true copy pairs, for duplicate finders."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
from PIL import Image

from tests import photos

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
SIZES = ((640, 480), (800, 600), (480, 640), (720, 540))


def fashion_images(count: int, seed: int) -> list[Image.Image]:
    """Fashion-MNIST items upscaled to 336 px and tinted: look-alikes (same kind of garment) that are not copies."""
    if not FASHION.is_file():
        return []
    with gzip.open(FASHION) as f:
        data = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    rng = np.random.default_rng(seed)
    images = []
    for index in rng.choice(len(data), count, replace=False):
        grey = Image.fromarray(data[index]).resize((336, 336), Image.Resampling.BICUBIC)
        tint = rng.integers(120, 256, 3)
        rgb = np.asarray(grey, np.float32)[..., None] * (tint / 255.0) + rng.integers(0, 40, 3)
        images.append(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"))
    return images


def make_photo_set(folder: Path, *, scenes: int = 200, fashion: int = 100, copied: int = 60,
                   seed: int = 0) -> tuple[list[Path], set[frozenset[str]]]:
    """Write ``scenes`` generated scenes and ``fashion`` garments; ``copied`` of them get every edit of
    photos.COPY_EDITS (plus one byte copy each). Returns (all files, the true copy pairs as frozensets of paths)."""
    rng = np.random.default_rng(seed)
    originals: list[Image.Image] = [photos.scene(seed * 100_000 + i, SIZES[i % len(SIZES)]) for i in range(scenes)]
    originals += fashion_images(fashion, seed)
    files: list[Path] = []
    groups: list[list[Path]] = []
    chosen = set(rng.choice(len(originals), min(copied, len(originals)), replace=False).tolist())
    for i, image in enumerate(originals):
        path = photos.save(image, folder / f"photo{i:04d}.jpg", quality=92)
        group = [path]
        if i in chosen:
            for edit in photos.COPY_EDITS:
                group.append(photos.copy_edit(image, edit, folder / "copies" / f"photo{i:04d}"))
            byte_copy = folder / "backup" / path.name
            byte_copy.parent.mkdir(parents=True, exist_ok=True)
            byte_copy.write_bytes(path.read_bytes())
            group.append(byte_copy)
        files += group
        groups.append(group)
    truth = {frozenset((str(a), str(b))) for group in groups for a, b in itertools.combinations(group, 2)}
    return files, truth


def pair_scores(found_groups: list[list[str]], truth: set[frozenset[str]]) -> dict:
    """Pairwise precision and recall of groups against the true copy pairs."""
    found = {frozenset((str(a), str(b))) for group in found_groups for a, b in itertools.combinations(group, 2)}
    hits = len(found & truth)
    return {"pairs_found": len(found), "true_pairs": len(truth), "correct": hits,
            "precision": hits / len(found) if found else 1.0, "recall": hits / len(truth) if truth else 1.0}
