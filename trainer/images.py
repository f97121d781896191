"""Trainer-side access to the engine's decoder, so training and indexing see identical pixels."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps

from engine.imageio import decode_image, decode_path


def load_pixels(path: str | os.PathLike, size: int = 224, resize: str = "center-crop") -> np.ndarray:
    """A file as the model input: uint8 [size, size, 3] RGB, exactly as the indexer decodes it."""
    return decode_path(path, size=size, resize=resize, thumb_size=0).pixels


def image_pixels(image: Image.Image, size: int = 224, resize: str = "center-crop") -> np.ndarray:
    """An in-memory (e.g. augmented) image as model input, through the same decoder.

    Round-trips through BMP: lossless and fast to write, and it keeps one resize path.
    """
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="BMP")
    return decode_image(buf.getvalue(), size=size, resize=resize, thumb_size=0).pixels


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image file upright (EXIF orientation applied) in RGB, fully loaded."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")
