"""Camera RAW photos (DNG written here with tifffile): embedded preview, half-size demosaic, orientation, indexing."""

from __future__ import annotations

import io
from collections import namedtuple

import numpy as np
import pytest
from PIL import Image

rawpy = pytest.importorskip("rawpy", reason="camera RAW needs rawpy (a base dependency)")
tifffile = pytest.importorskip("tifffile", reason="the tests write DNG files with tifffile (dev extra)")

from engine import imageio  # noqa: E402
from engine.errors import DecodeError  # noqa: E402
from engine.imageio import decode_image, decode_path  # noqa: E402

DNG = [(50706, "B", 4, (1, 4, 0, 0), True), (50708, "s", 0, "Lookalike Test Cam", True)]
CFA = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True), (50717, "I", 1, 4095, True)]
ORIENTATION = 274


def sensor(height: int = 600, width: int = 900) -> np.ndarray:
    """RGGB mosaic: red on the left half, blue on the right half (12-bit values)."""
    raw = np.full((height, width), 200, np.uint16)
    raw[0::2, 0:width // 2:2] = 3800  # R sites, left half
    raw[1::2, width // 2 + 1::2] = 3800  # B sites, right half
    return raw


def write_dng(path, *, orientation: int = 1, preview: np.ndarray | None = None, date: str | None = None):
    """A minimal DNG: the CFA in IFD0, or (with a preview) the preview in IFD0 and the CFA in a SubIFD."""
    tags = DNG + [(ORIENTATION, "H", 1, orientation, True)]
    if date:
        tags.append((306, "s", 0, date, True))  # DateTime
    with tifffile.TiffWriter(path) as tw:
        if preview is None:
            tw.write(sensor(), photometric=32803, extratags=tags + CFA)
        else:
            tw.write(preview, photometric="rgb", subfiletype=1, subifds=1, extratags=tags)
            tw.write(sensor(), photometric=32803, subfiletype=0, extratags=CFA)
    return path


def halves(pixels: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour of the first and last fifth along ``axis`` (0: top/bottom, 1: left/right)."""
    n = pixels.shape[axis] // 5
    first = pixels[:n] if axis == 0 else pixels[:, :n]
    last = pixels[-n:] if axis == 0 else pixels[:, -n:]
    return first.reshape(-1, 3).mean(0), last.reshape(-1, 3).mean(0)


def is_red(rgb) -> bool:
    return rgb[0] > rgb[2] + 80


def is_blue(rgb) -> bool:
    return rgb[2] > rgb[0] + 80


def test_raw_types_are_offered_and_routed_by_content():
    assert {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"} <= imageio.IMAGE_SUFFIXES
    from engine.index import suffix_families

    assert ".dng" in suffix_families()["Camera RAW"]


def test_a_dng_without_a_preview_is_demosaiced_at_half_size(tmp_path):
    decoded = decode_path(write_dng(tmp_path / "plain.dng", date="2024:05:06 07:08:09"))
    assert (decoded.width, decoded.height) == (900, 600)  # the sensor's size, not the half-size image
    left, right = halves(decoded.pixels.astype(float), axis=1)
    assert is_red(left) and is_blue(right), (left, right)
    assert decoded.taken_at == "2024-05-06T07:08:09"
    thumb = Image.open(io.BytesIO(decoded.thumbnail))
    assert max(thumb.size) == 256 and thumb.size[0] > thumb.size[1]


@pytest.mark.parametrize("orientation, size, first, last, axis", [
    (3, (900, 600), is_blue, is_red, 1),   # upside down: red ends up on the right
    (6, (600, 900), is_red, is_blue, 0),   # turned clockwise: red on top
    (8, (600, 900), is_blue, is_red, 0),   # turned anticlockwise: blue on top
])
def test_orientation_is_respected(tmp_path, orientation, size, first, last, axis):
    decoded = decode_path(write_dng(tmp_path / "turned.dng", orientation=orientation))
    assert (decoded.width, decoded.height) == size
    a, b = halves(decoded.pixels.astype(float), axis)
    assert first(a) and last(b), (a, b)
    thumb = np.asarray(Image.open(io.BytesIO(decoded.thumbnail)))
    assert (thumb.shape[1] > thumb.shape[0]) == (size[0] > size[1])


def test_a_large_embedded_preview_is_used_and_turned_upright(tmp_path):
    # The preview differs from the sensor (green over yellow) so the test sees which was decoded.
    preview = np.zeros((600, 900, 3), np.uint8)
    preview[:, :450] = (30, 200, 30)
    preview[:, 450:] = (230, 220, 20)
    decoded = decode_path(write_dng(tmp_path / "preview.dng", orientation=6, preview=preview))
    assert (decoded.width, decoded.height) == (600, 900)
    top, bottom = halves(decoded.pixels.astype(float), axis=0)
    assert top[1] > 150 and top[0] < 80, top  # the preview's green half, now on top
    assert bottom[0] > 150 and bottom[1] > 150, bottom


def test_a_small_preview_is_passed_over_for_the_sensor_data(tmp_path):
    preview = np.full((120, 160, 3), (30, 200, 30), np.uint8)  # an index thumbnail
    decoded = decode_path(write_dng(tmp_path / "small-preview.dng", preview=preview))
    left, right = halves(decoded.pixels.astype(float), axis=1)
    assert is_red(left) and is_blue(right), (left, right)


def test_a_jpeg_preview_keeps_its_own_exif_orientation():
    photo = Image.new("RGB", (900, 600), (220, 30, 30))
    photo.paste((30, 30, 220), (450, 0, 900, 600))
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90, exif=exif)
    Thumb = namedtuple("Thumb", "format data")

    class Raw:
        def extract_thumb(self):
            return Thumb(rawpy.ThumbFormat.JPEG, buffer.getvalue())

    rgb, transpose, _ = imageio._raw_preview(Raw(), 512)
    assert rgb.size == (900, 600) and transpose == Image.Transpose.ROTATE_90
    assert imageio._raw_preview(Raw(), 700) is None  # shorter side 600: too small


def test_a_cut_raw_file_is_skipped_with_a_reason(tmp_path):
    data = write_dng(tmp_path / "cut.dng").read_bytes()
    with pytest.raises(DecodeError) as caught:
        decode_image(data[: len(data) // 3])
    assert str(caught.value).startswith(imageio.REASON_PREFIXES)


def test_a_plain_tiff_is_still_a_tiff(tmp_path):
    path = tmp_path / "scan.tif"
    Image.new("RGB", (300, 200), (10, 200, 10)).save(path)
    assert imageio._raw_signature(path.read_bytes()) is None
    decoded = decode_path(path)
    assert (decoded.width, decoded.height) == (300, 200)


def test_raw_files_index_and_find_their_twin(tmp_path, default_model_dir):
    from engine.index import Indexer
    from engine.library import Library
    folder = tmp_path / "photos"
    folder.mkdir()
    write_dng(folder / "IMG_0001.dng", date="2024:05:06 07:08:09")
    write_dng(folder / "IMG_0002.dng", orientation=6)
    Image.new("RGB", (640, 480), (120, 120, 120)).save(folder / "grey.jpg")
    with Library(tmp_path / "library") as library:
        library.install_model(default_model_dir)
        report = Indexer(library, workers=0).run([folder])
        assert report.added == 3 and not report.skipped, report.skipped_files
        hits = library.search_file(folder / "IMG_0001.dng")
        assert hits[0].path.endswith("IMG_0001.dng")
