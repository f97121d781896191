"""Photo-like test images, made on the spot: distinct scenes, edited copies and broken files."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scene(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A random but structured scene: a gradient sky, shapes, texture. Different seeds give
    images a CNN tells apart; the same seed gives the same image."""
    rng = np.random.default_rng(seed)
    width, height = size
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    base = (top * (1 - ramp) + bottom * ramp).astype(np.float32)
    pixels = np.broadcast_to(base, (height, width, 3)).copy()
    # Texture: low-frequency noise upsampled, so it survives downscaling.
    noise = rng.normal(0, 40, (height // 16 + 1, width // 16 + 1, 3))
    noise = np.kron(noise, np.ones((16, 16, 1)))[:height, :width]
    pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(4, 9)):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 10, width // 2), rng.integers(height // 10, height // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        box = (x0 - w // 2, y0 - h // 2, x0 + w // 2, y0 + h // 2)
        if shape == 0:
            draw.ellipse(box, fill=colour)
        elif shape == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x0, y0 - h), (x0 - w, y0 + h), (x0 + w, y0 + h)], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(1.0))


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = kwargs.pop("format", None)
    if path.suffix.lower() in (".heic", ".heif"):
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(path, format=fmt, **kwargs)
    return path


def with_orientation(image: Image.Image, path: Path, orientation: int) -> Path:
    """Save a JPEG whose pixels are stored rotated, with the EXIF tag that undoes it.

    A viewer that honours EXIF shows ``image`` upright.
    """
    stored = {
        1: image,
        3: image.transpose(Image.Transpose.ROTATE_180),
        6: image.transpose(Image.Transpose.ROTATE_90),    # tag 6: rotate 90 CW to display
        8: image.transpose(Image.Transpose.ROTATE_270),
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(stored, path, quality=92, exif=exif.tobytes())


def edited_copies(image: Image.Image, folder: Path) -> dict[str, Path]:
    """The edits a person's library is full of: resized, recompressed, cropped, rotated."""
    w, h = image.size
    return {
        "resized": save(image.resize((w // 2, h // 2), Image.Resampling.LANCZOS), folder / "resized.jpg",
                        quality=90),
        "recompressed": save(image, folder / "recompressed.jpg", quality=35),
        "cropped": save(image.crop((w // 10, h // 10, w - w // 10, h - h // 10)), folder / "cropped.jpg",
                        quality=90),
        "exif-rotated": with_orientation(image, folder / "rotated.jpg", 6),
    }


def truncated(path: Path, image: Image.Image, fmt: str = "JPEG") -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def broken_files(folder: Path) -> dict[str, Path]:
    """One of each kind of file an indexer must skip, with the reason family expected."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "truncated": truncated(folder / "truncated.jpg", scene(9001)),
        "empty": folder / "empty.jpg",
        "not an image": folder / "notes.jpg",
        "corrupt": folder / "garbage.png",
    }
    files["empty"].write_bytes(b"")
    files["not an image"].write_text("this is a shopping list, not a photo\n" * 20)
    files["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    return files


# The copies a duplicate finder must group with their original: (name, how to make it).
COPY_EDITS = ("resized", "q60", "png", "exif-rotated", "cropped")


def copy_edit(image: Image.Image, edit: str, path_stem: Path) -> Path:
    """One edited copy of ``image`` (see COPY_EDITS), written beside ``path_stem`` with its suffix."""
    w, h = image.size
    if edit == "resized":
        return save(image.resize((w * 3 // 5, h * 3 // 5), Image.Resampling.LANCZOS),
                    path_stem.with_suffix(".resized.jpg"), quality=88)
    if edit == "q60":
        return save(image, path_stem.with_suffix(".q60.jpg"), quality=60)
    if edit == "png":
        return save(image, path_stem.with_suffix(".png"))
    if edit == "exif-rotated":
        return with_orientation(image, path_stem.with_suffix(".rotated.jpg"), 6)
    if edit == "cropped":  # 5% off every side
        return save(image.crop((w // 20, h // 20, w - w // 20, h - h // 20)), path_stem.with_suffix(".crop.jpg"),
                    quality=90)
    raise ValueError(f"no edit {edit!r}")
