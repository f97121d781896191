"""A photo's facts from its header (engine.photo_info), decoding for the screen (engine.imageio.decode_for_display), and the results' orders."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from engine.errors import DecodeError
from engine.imageio import decode_for_display, read_file, read_header
from engine.photo_info import SORT_ORDERS, PhotoInfo, camera_name, read_photo_info, sort_order
from tests import photos


def rotated_jpeg(path, size=(1600, 1200), *, make="Canon", model="Canon EOS R6", taken="2019:05:01 09:15:30"):
    """An upright ``size`` photo stored sideways (EXIF orientation 6) with its date and camera.
    Its left half is red, so which way is up can be checked."""
    upright = photos.scene(7, size)
    upright.paste((220, 20, 20), (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    exif[0x0112] = 6
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
    path.parent.mkdir(parents=True, exist_ok=True)
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif.tobytes())
    return path


def test_facts_of_an_exif_rotated_jpeg(tmp_path):
    path = rotated_jpeg(tmp_path / "r.jpg")
    info = read_photo_info(path)
    assert (info.width, info.height) == (1600, 1200)  # upright, not as stored (1200 x 1600)
    assert info.format == "JPEG" and info.file_size == os.path.getsize(path)
    assert info.taken_at == "2019-05-01T09:15:30" and info.camera == "Canon EOS R6"
    assert info.modified == pytest.approx(os.path.getmtime(path)) and info.problem is None
    assert info.pixels == 1600 * 1200 and info.folder == str(tmp_path)


def test_facts_of_a_png_without_exif_and_of_bad_files(tmp_path):
    info = read_photo_info(photos.save(photos.scene(1, (300, 200)), tmp_path / "p.png"))
    assert (info.width, info.height, info.format, info.taken_at, info.camera) == (300, 200, "PNG", None, None)

    missing = read_photo_info(tmp_path / "gone.jpg")
    assert missing.problem == "file not found" and missing.file_size is None

    (tmp_path / "notes.jpg").write_text("not a photo\n" * 50)
    notes = read_photo_info(tmp_path / "notes.jpg")
    assert notes.problem == "not an image" and notes.file_size == 600 and notes.width is None

    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_photo_info(tmp_path / "empty.jpg").problem == "empty file"


def test_header_is_read_without_decoding_the_pixels(tmp_path):
    """A JPEG cut after its header still gives its size: only the header was read."""
    data = rotated_jpeg(tmp_path / "r.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[:len(data) // 4])
    header = read_header(tmp_path / "cut.jpg")
    assert (header.width, header.height, header.taken_at) == (1600, 1200, "2019-05-01T09:15:30")


@pytest.mark.parametrize("make, model, expected", [
    ("Canon", "Canon EOS R6", "Canon EOS R6"),
    ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
    ("Apple", "iPhone 12", "Apple iPhone 12"),
    ("FUJIFILM", None, "FUJIFILM"),
    (None, None, None),
])
def test_camera_name(make, model, expected):
    exif = Image.Exif()
    if make:
        exif[0x010F] = make + "\x00"
    if model:
        exif[0x0110] = model
    assert camera_name(exif) == expected


def test_display_draft_covers_the_screen_and_full_has_every_pixel_upright(tmp_path):
    data = read_file(rotated_jpeg(tmp_path / "r.jpg"))
    draft = decode_for_display(data, fit=(800, 600))
    # JPEG's DCT scaling: half of 1600 x 1200 is the smallest that still covers 800 x 600
    assert draft.pixels.shape == (600, 800, 3) and draft.is_draft
    assert (draft.width, draft.height) == (1600, 1200)
    full = decode_for_display(data)
    assert full.pixels.shape == (1200, 1600, 3) and not full.is_draft
    for shown in (draft, full):  # upright: the red half on the left
        left, right = shown.pixels[:, : shown.pixels.shape[1] // 4], shown.pixels[:, -shown.pixels.shape[1] // 4:]
        assert left[..., 0].mean() > 180 and left[..., 2].mean() < 60
        assert abs(float(right[..., 0].mean()) - 220) > 20 or right[..., 2].mean() > 60
    # a box bigger than the photo: every pixel (never enlarged)
    assert not decode_for_display(data, fit=(4000, 4000)).is_draft


def test_display_reduces_formats_without_a_draft_mode(tmp_path):
    data = read_file(photos.save(photos.scene(2, (1600, 1200)), tmp_path / "p.png"))
    draft = decode_for_display(data, fit=(500, 500))  # fitted: 500 x 375
    # reduced by 3 (rounded up): the most that still covers it
    assert draft.pixels.shape == (400, 534, 3) and draft.is_draft


def test_display_of_a_bad_file_is_a_decode_error(tmp_path):
    data = read_file(rotated_jpeg(tmp_path / "r.jpg"))
    with pytest.raises(DecodeError, match="truncated file|corrupt image data"):
        decode_for_display(data[:600] + b"\0" * 2000, fit=(800, 600))
    with pytest.raises(DecodeError, match="not an image"):
        decode_for_display(b"plain text, no photo" * 10)
    with pytest.raises(DecodeError, match="empty file"):
        decode_for_display(b"")


def test_display_of_a_dng_uses_the_raw_path(tmp_path):
    pytest.importorskip("rawpy")
    pytest.importorskip("tifffile")
    from tests.test_raw import is_red, write_dng

    path = write_dng(tmp_path / "cam.dng", orientation=6)  # red on the left of the sensor: on top, upright
    shown = decode_for_display(read_file(path))
    assert (shown.width, shown.height) == (600, 900) and shown.pixels.shape[:2] == (900, 600)
    top = shown.pixels[: shown.pixels.shape[0] // 5].reshape(-1, 3).mean(0)
    assert is_red(top)
    info = read_photo_info(path)
    assert info.format.startswith("RAW") and (info.width, info.height) == (600, 900)


def _info(path, **facts):
    return PhotoInfo(path, **facts)


def test_sort_orders_keep_similarity_for_ties_and_put_unknowns_last():
    paths = ["/b/1.jpg", "/a/2.jpg", "/b/0.jpg", "/c/3.jpg"]  # most similar first
    infos = {
        "/b/1.jpg": _info("/b/1.jpg", file_size=100, width=10, height=10, taken_at="2020-01-01T00:00:00"),
        "/a/2.jpg": _info("/a/2.jpg", file_size=300, width=30, height=30, taken_at="2010-01-01T00:00:00"),
        "/b/0.jpg": _info("/b/0.jpg", file_size=300, width=20, height=20),
        "/c/3.jpg": _info("/c/3.jpg", problem="file not found"),
    }
    assert set(SORT_ORDERS) == {"similarity", "date", "size", "resolution", "folder"}
    assert sort_order(paths, infos, "similarity") == [0, 1, 2, 3]
    assert sort_order(paths, infos, "size") == [1, 2, 0, 3]  # largest first, the tie by similarity
    assert sort_order(paths, infos, "resolution") == [1, 2, 0, 3]
    assert sort_order(paths, infos, "date") == [1, 0, 2, 3]  # oldest first, undated last
    assert sort_order(paths, infos, "folder") == [1, 2, 0, 3]
    assert sort_order(paths, {}, "size") == [0, 1, 2, 3]  # nothing known: as ranked
    with pytest.raises(ValueError):
        sort_order(paths, infos, "colour")


def test_draft_pixels_match_the_full_decode_scaled(tmp_path):
    """The draft is the same picture as every pixel, not a different crop or orientation."""
    data = read_file(rotated_jpeg(tmp_path / "r.jpg"))
    draft = decode_for_display(data, fit=(800, 600)).pixels.astype(np.float32)
    full = Image.fromarray(decode_for_display(data).pixels).resize((800, 600), Image.Resampling.BOX)
    assert np.abs(draft - np.asarray(full, np.float32)).mean() < 6
