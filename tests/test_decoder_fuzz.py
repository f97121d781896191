"""Fuzzing the decoder: damaged files of every format the indexer takes never crash or hang it, and
every failure is a DecodeError with a reason from engine.imageio.REASON_PREFIXES.

Bounded for the default run (a fixed number of examples per format, derandomized, a deadline per
example and a timeout for the whole test); LOOKALIKE_FUZZ_EXAMPLES=N runs N per format.
"""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import DecodeError
from engine.imageio import IMAGE_SUFFIXES, REASON_PREFIXES, decode_image
from tests import photos

EXAMPLES = int(os.environ.get("LOOKALIKE_FUZZ_EXAMPLES", "40"))


def _encoded(fmt: str) -> bytes:
    """A small real image in ``fmt``, with what that format carries (EXIF, alpha, palette)."""
    image = photos.scene(1300, (48, 36))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        exif = image.getexif()
        exif[0x0112] = 6  # orientation: the decoder's EXIF path is exercised too
        image.save(buffer, "JPEG", quality=80, exif=exif.tobytes())
    elif fmt == "PNG":
        image.convert("RGBA").save(buffer, "PNG")
    elif fmt == "GIF":
        image.convert("P").save(buffer, "GIF")
    elif fmt == "TIFF":
        image.save(buffer, "TIFF", compression="tiff_deflate")
    elif fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
        image.save(buffer, "HEIF", quality=60)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


FORMATS = [fmt for fmt, suffix in [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif"),
                                    ("GIF", ".gif"), ("BMP", ".bmp"), ("HEIF", ".heic"), ("AVIF", ".avif")]
           if suffix in IMAGE_SUFFIXES]
SEEDS = {fmt: _encoded(fmt) for fmt in FORMATS}


@st.composite
def damaged(draw, fmt: str) -> bytes:
    """The format's file with a few bytes changed (often in the header, where sizes live),
    perhaps cut short, perhaps with junk inserted."""
    data = bytearray(SEEDS[fmt])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.one_of(st.integers(0, min(63, len(data) - 1)), st.integers(0, len(data) - 1)))
        data[position] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data)))
        data[start:start] = draw(st.binary(min_size=1, max_size=32))
    if draw(st.integers(0, 3)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.mark.timeout(120)  # a hang fails the test instead of the whole run
@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_files_decode_or_fail_with_a_reason(fmt):
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=5000, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(damaged(fmt))
    def check(data: bytes) -> None:
        try:
            decoded = decode_image(data, size=32, thumb_size=16)
        except DecodeError as exc:
            assert exc.reason.startswith(REASON_PREFIXES), exc.reason
            return
        assert decoded.pixels.shape == (32, 32, 3) and decoded.width > 0 and decoded.height > 0

    check()


def test_the_seed_images_themselves_decode():
    for fmt, data in SEEDS.items():
        assert decode_image(data, size=32).pixels.shape == (32, 32, 3), fmt
