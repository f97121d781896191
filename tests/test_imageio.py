"""Tests for engine.imageio: reading files untouched, decoding every format, failing politely."""

import hashlib
import io
import os
import stat
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from engine import imageio
from engine.errors import DecodeError
from engine.imageio import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    REASON_PREFIXES,
    Decoded,
    content_hash,
    decode_image,
    decode_path,
    read_file,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def quadrants(w: int, h: int) -> np.ndarray:
    """An upright test photo: red top-left, green top-right, blue bottom-left, white bottom-right."""
    a = np.empty((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = RED
    a[: h // 2, w // 2 :] = GREEN
    a[h // 2 :, : w // 2] = BLUE
    a[h // 2 :, w // 2 :] = WHITE
    return a


def assert_quadrants(pixels: np.ndarray, tol: int = 40) -> None:
    h, w, _ = pixels.shape
    for (y, x), colour in {
        (h // 4, w // 4): RED,
        (h // 4, 3 * w // 4): GREEN,
        (3 * h // 4, w // 4): BLUE,
        (3 * h // 4, 3 * w // 4): WHITE,
    }.items():
        got = pixels[y, x].astype(int)
        assert np.abs(got - colour).max() <= tol, f"pixel at {(y, x)} is {got}, want {colour}"


def encode(a, fmt: str, **kwargs) -> bytes:
    im = a if isinstance(a, Image.Image) else Image.fromarray(a)
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def decode_error(data: bytes, **kwargs) -> str:
    with pytest.raises(DecodeError) as info:
        decode_image(data, **kwargs)
    reason = info.value.reason
    assert reason.startswith(REASON_PREFIXES), reason
    return reason


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bilevel_png(w: int, h: int) -> bytes:
    """A real, valid 1-bit PNG of w x h black pixels; a few KB however large it is."""
    z = zlib.compressobj(9)
    rows = bytes((1 + (w + 7) // 8) * 500)  # 500 rows of filter byte 0 + packed bits
    assert h % 500 == 0
    idat = b"".join(z.compress(rows) for _ in range(h // 500)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


# ---------------------------------------------------------------------------- formats


def _heif_bytes(a: np.ndarray) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    try:
        return encode(a, "HEIF", quality=95)
    except (OSError, ValueError, KeyError, RuntimeError) as e:  # pragma: no cover
        pytest.skip(f"installed pillow-heif cannot encode HEIC ({e}); {pillow_heif.libheif_info()}")


def _avif_bytes(a: np.ndarray) -> bytes:
    if ".avif" not in IMAGE_SUFFIXES:
        pytest.skip("no AVIF decoder in this Pillow / pillow-heif build")
    try:
        return encode(a, "AVIF", quality=95)
    except (OSError, ValueError, KeyError) as e:  # pragma: no cover
        pytest.skip(f"this Pillow build decodes AVIF but cannot encode it ({e})")


FORMATS = {
    "jpeg": lambda a: encode(a, "JPEG", quality=95),
    "png": lambda a: encode(a, "PNG"),
    "webp": lambda a: encode(a, "WEBP", quality=95),
    "webp-lossless": lambda a: encode(a, "WEBP", lossless=True),
    "tiff": lambda a: encode(a, "TIFF"),
    "tiff-lzw": lambda a: encode(a, "TIFF", compression="tiff_lzw"),
    "bmp": lambda a: encode(a, "BMP"),
    "gif": lambda a: encode(a, "GIF"),
    "heic": _heif_bytes,
    "avif": _avif_bytes,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_upright(fmt, tmp_path):
    data = FORMATS[fmt](quadrants(160, 120))
    path = tmp_path / f"photo.{fmt.split('-')[0]}"
    path.write_bytes(data)
    d = decode_path(path, size=64, resize="squash")
    assert isinstance(d, Decoded)
    assert d.pixels.shape == (64, 64, 3) and d.pixels.dtype == np.uint8
    assert d.pixels.flags.c_contiguous
    assert (d.width, d.height) == (160, 120)
    assert_quadrants(d.pixels)
    thumb = Image.open(io.BytesIO(d.thumbnail))
    assert thumb.format == "JPEG" and thumb.size == (160, 120)  # never upscaled


def test_suffixes_are_lower_case_with_dot():
    assert {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"} <= IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    try:
        import pillow_heif  # noqa: F401
    except ImportError:  # pragma: no cover
        return
    assert {".heic", ".heif"} <= IMAGE_SUFFIXES


def test_heic_without_pillow_heif_is_unsupported(monkeypatch):
    data = _heif_bytes(quadrants(64, 48))
    # What the engine does when pillow-heif is missing: HEIF is not among its formats.
    monkeypatch.setattr(imageio, "_FORMATS", tuple(f for f in imageio._FORMATS if f != "HEIF"))
    assert decode_error(data).startswith("unsupported format")


def test_gif_uses_first_frame():
    frames = [Image.new("RGB", (40, 30), RED), Image.new("RGB", (40, 30), BLUE)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    d = decode_image(buf.getvalue(), size=16)
    assert np.abs(d.pixels.astype(int) - RED).max() <= 2


# ------------------------------------------------------------------- geometry and orientation


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores when it tags them with this EXIF orientation.

    From the EXIF definition of where row 0 and column 0 of the stored image lie on screen.
    """
    return {
        1: lambda u: u,
        2: lambda u: u[:, ::-1],  # row 0 at top, column 0 at the right
        3: lambda u: u[::-1, ::-1],  # rotated 180
        4: lambda u: u[::-1],  # row 0 at the bottom
        5: lambda u: u.transpose(1, 0, 2),  # row 0 is the left side, column 0 the top
        6: lambda u: np.rot90(u, 1),  # row 0 is the right side: display rotates 90 CW
        7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),  # row 0 right, column 0 bottom
        8: lambda u: np.rot90(u, -1),  # row 0 is the left side, column 0 the bottom
    }[orientation](upright)


def jpeg_with_exif(a: np.ndarray, orientation: int | None = None, **tags) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    for tag, value in tags.items():
        if tag == "original":
            exif.get_ifd(0x8769)[0x9003] = value
        elif tag == "datetime":
            exif[0x0132] = value
    return encode(np.ascontiguousarray(a), "JPEG", quality=95, exif=exif)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_upright_pixels(orientation):
    upright = quadrants(120, 80)
    data = jpeg_with_exif(stored_for_orientation(upright, orientation), orientation)
    for resize in ("squash", "center-crop"):
        d = decode_image(data, size=48, resize=resize)
        assert (d.width, d.height) == (120, 80)
        assert_quadrants(d.pixels)
    thumb = Image.open(io.BytesIO(d.thumbnail))
    assert thumb.size == (120, 80)
    assert_quadrants(np.asarray(thumb.convert("RGB")))


def test_orientation_with_jpeg_draft_reports_full_size():
    upright = quadrants(1000, 2000)
    data = jpeg_with_exif(stored_for_orientation(upright, 6), 6)
    d = decode_image(data, size=64, resize="squash", thumb_size=100)
    assert (d.width, d.height) == (1000, 2000)
    assert_quadrants(d.pixels)
    thumb = Image.open(io.BytesIO(d.thumbnail))
    assert thumb.size == (50, 100)
    assert_quadrants(np.asarray(thumb))


def test_big_jpeg_is_drafted(monkeypatch):
    h, w = 3000, 4000
    a = np.zeros((h, w, 3), np.uint8)
    a[:, :, 0] = np.arange(w, dtype=np.uint32)[None, :] * 255 // w
    a[:, :, 1] = np.arange(h, dtype=np.uint32)[:, None] * 255 // h
    data = encode(a, "JPEG", quality=85)
    loaded = []
    real_resize = Image.Image.resize

    def spy(self, *args, **kwargs):
        loaded.append(self.size)
        return real_resize(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", spy)
    d = decode_image(data)
    assert d.pixels.shape == (224, 224, 3)
    assert (d.width, d.height) == (4000, 3000)
    # 1/8 DCT scaling: 500 x 375 still covers 224 px pixels and a 256 px thumbnail.
    assert loaded and all(s == (500, 375) for s in loaded)
    assert Image.open(io.BytesIO(d.thumbnail)).size == (256, 192)
    # The centre crop of a horizontal red ramp: red goes from about 1/8 to 7/8 of 255.
    red = d.pixels[112, :, 0].astype(int)
    assert 20 < red[0] < 50 and 205 < red[-1] < 235


def test_center_crop_and_squash():
    a = np.empty((100, 300, 3), np.uint8)
    a[:, :100], a[:, 100:200], a[:, 200:] = RED, GREEN, BLUE
    crop = decode_image(encode(a, "PNG"), size=30, resize="center-crop", thumb_size=0)
    assert crop.thumbnail is None
    # Only the green third is kept (the outermost columns feel the filter's reach).
    assert np.abs(crop.pixels[:, 1:-1].astype(int) - GREEN).max() <= 2
    squash = decode_image(encode(a, "PNG"), size=30, resize="squash")
    assert tuple(squash.pixels[15, 3]) == RED and tuple(squash.pixels[15, 26]) == BLUE


def test_small_image_is_upscaled_for_the_model():
    d = decode_image(encode(quadrants(10, 8), "PNG"), size=224)
    assert d.pixels.shape == (224, 224, 3)
    assert Image.open(io.BytesIO(d.thumbnail)).size == (10, 8)


def test_unknown_resize_is_a_bug():
    with pytest.raises(ValueError):
        decode_image(encode(quadrants(8, 8), "PNG"), resize="stretch")


# -------------------------------------------------------------------------------- modes


def test_alpha_is_composited_over_white():
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black
    rgba[:, 10:] = (255, 0, 0, 128)  # half-transparent red on the right
    d = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"), size=20, resize="squash")
    assert tuple(d.pixels[10, 2]) == WHITE
    assert np.abs(d.pixels[10, 17].astype(int) - (255, 127, 127)).max() <= 2


def test_la_is_composited_over_white():
    la = np.zeros((20, 20, 2), np.uint8)
    la[:, 10:] = (0, 255)  # opaque black on the right
    d = decode_image(encode(Image.fromarray(la, "LA"), "PNG"), size=20, resize="squash")
    assert tuple(d.pixels[10, 2]) == WHITE and tuple(d.pixels[10, 17]) == (0, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_white(fmt):
    p = Image.new("P", (20, 20), 0)
    p.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (10, 0, 20, 20))  # blue on the right, index 0 (black) transparent
    d = decode_image(encode(p, fmt, transparency=0), size=20, resize="squash")
    assert tuple(d.pixels[10, 2]) == WHITE and tuple(d.pixels[10, 17]) == BLUE


def test_16_bit_grayscale_is_scaled_not_clipped():
    a = np.full((16, 16), 32768, np.uint16)
    a[:, 8:] = 65535
    im = Image.fromarray(a)
    data = encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    d = decode_image(data, size=16, resize="squash")
    assert tuple(d.pixels[8, 2]) == (128, 128, 128) and tuple(d.pixels[8, 13]) == WHITE


def test_float_tiff_is_scaled():
    a = np.full((16, 16), 0.5, np.float32)
    d = decode_image(encode(Image.fromarray(a, "F"), "TIFF"), size=16)
    assert tuple(d.pixels[8, 8]) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["1", "L", "CMYK", "YCbCr"])
def test_other_modes_become_rgb(mode):
    im = Image.new("RGB", (32, 32), WHITE).convert(mode)
    fmt = "JPEG" if mode in ("CMYK", "YCbCr") else "PNG"
    d = decode_image(encode(im, fmt), size=8)
    assert np.abs(d.pixels.astype(int) - 255).max() <= 3


def test_cmyk_jpeg_colours():
    im = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red ink
    data = encode(im, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    d = decode_image(data, size=8)
    assert np.abs(d.pixels[4, 4].astype(int) - RED).max() <= 10


# --------------------------------------------------------------------------- bad input


def test_empty():
    assert decode_error(b"") == "empty file"


@pytest.mark.parametrize("data", [b"hello, this is not a photo\n" * 10, bytes(range(256)) * 4])
def test_not_an_image(data, tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(data)
    with pytest.raises(DecodeError) as info:
        decode_path(path)
    assert info.value.reason == "not an image"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 40])
def test_truncated(fmt, keep):
    rng = np.random.default_rng(1)
    data = encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), fmt)
    cut = int(len(data) * keep) if keep < 1 else keep
    assert decode_error(data[:cut]) == "truncated file"


def test_corrupt_png_data():
    data = bytearray(encode(quadrants(64, 64), "PNG"))
    i = data.index(b"IDAT") + 20
    data[i : i + 8] = b"\xff" * 8  # damage inside a well-formed file (CRC now wrong)
    assert decode_error(bytes(data)) == "corrupt image data"


def test_damaged_files_only_raise_decode_error():
    data = encode(quadrants(48, 32), "JPEG")
    rng = np.random.default_rng(2)
    for _ in range(40):
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), 4):
            bad[i] = int(rng.integers(0, 256))
        try:
            decode_image(bytes(bad), size=16)
        except DecodeError as e:
            assert e.reason.startswith(REASON_PREFIXES)


def test_bomb_over_pillow_limit_is_refused_before_decoding():
    data = bilevel_png(20000, 20000)  # 400 MP in a few hundred KB: over Pillow's own limit
    assert len(data) < 1_000_000
    reason = decode_error(data)
    assert reason.startswith("image too large (400 megapixels")


def test_big_image_over_max_pixels_refused_without_warning():
    data = bilevel_png(10000, 10000)  # 100 MP: Pillow would only warn (an error with -W error)
    assert decode_error(data, max_pixels=50_000_000) == "image too large (100 megapixels; limit 50)"
    assert MAX_PIXELS >= 100_000_000


def test_small_max_pixels():
    data = encode(quadrants(100, 100), "PNG")
    assert decode_error(data, max_pixels=5000).startswith("image too large")
    assert decode_image(data, max_pixels=10_000).width == 100


# ------------------------------------------------------------------------------ taken_at


@pytest.mark.parametrize(
    ("tags", "want"),
    [
        ({"original": "2021:07:04 18:30:05"}, "2021-07-04T18:30:05"),
        ({"datetime": "2019:01:02 03:04:05"}, "2019-01-02T03:04:05"),
        ({"original": "2021:07:04 18:30:05", "datetime": "2022:01:01 00:00:00"}, "2021-07-04T18:30:05"),
        ({"original": "0000:00:00 00:00:00", "datetime": "2019:01:02 03:04:05"}, "2019-01-02T03:04:05"),
        ({"original": "    :  :     :  :  "}, None),
        ({"original": "yesterday"}, None),
        ({"original": "2021:13:45 18:30:05"}, None),
        ({}, None),
    ],
)
def test_taken_at(tags, want):
    data = jpeg_with_exif(quadrants(16, 16), **tags)
    assert decode_image(data, size=8).taken_at == want


def test_taken_at_absent_without_exif():
    assert decode_image(encode(quadrants(16, 16), "PNG"), size=8).taken_at is None


# ---------------------------------------------------------------------------- read_file


def test_read_file_returns_bytes_untouched(tmp_path):
    path = tmp_path / "a.jpg"
    data = encode(quadrants(32, 32), "JPEG")
    path.write_bytes(data)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_100_000_000_000_000_000))
    before = os.stat(path)
    assert read_file(path) == data
    assert read_file(str(path)) == data
    after = os.stat(path)
    assert path.read_bytes() == data
    assert after.st_mtime_ns == before.st_mtime_ns and after.st_size == before.st_size


@pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="O_NOATIME is Linux-only")
def test_read_file_asks_for_noatime_and_falls_back(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    path.write_bytes(b"abc")
    flags_seen = []
    real_open = os.open

    def fake_open(p, flags, *args):
        flags_seen.append(flags)
        if flags & os.O_NOATIME:  # what Linux says when we do not own the file
            raise PermissionError(1, "Operation not permitted")
        return real_open(p, flags, *args)

    monkeypatch.setattr(os, "open", fake_open)
    assert read_file(path) == b"abc"
    assert flags_seen[0] & os.O_NOATIME and not flags_seen[1] & os.O_NOATIME
    assert all(not f & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC) for f in flags_seen)


def read_error(path) -> str:
    with pytest.raises(DecodeError) as info:
        read_file(path)
    assert info.value.reason.startswith(REASON_PREFIXES)
    return info.value.reason


def test_read_file_failures(tmp_path):
    assert read_error(tmp_path / "missing.jpg") == "file not found"
    assert read_error(tmp_path / "missing" / "a.jpg") == "file not found"
    assert read_error(tmp_path).startswith("unreadable")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert read_error(tmp_path / "broken.jpg") == "file not found"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_error(tmp_path / "empty.jpg") == "empty file"
    (tmp_path / "file").write_bytes(b"x")
    assert read_error(tmp_path / "file" / "a.jpg") == "file not found"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.timeout(10)
def test_read_file_does_not_hang_on_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    assert read_error(tmp_path / "pipe.jpg") == "unreadable: not a regular file"


def test_read_file_permission_denied_simulated(tmp_path, monkeypatch):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"abc")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", deny)
    assert read_error(path) == "permission denied"


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="root (or Windows) reads files whatever their mode")
def test_read_file_permission_denied_for_real(tmp_path):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"abc")
    path.chmod(0)
    try:
        assert read_error(path) == "permission denied"
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


# ------------------------------------------------------------------------- content_hash


def test_content_hash():
    h = content_hash(b"photo bytes")
    assert len(h) == 32 and int(h, 16) >= 0
    assert h == content_hash(bytes(b"photo bytes"))
    assert h != content_hash(b"photo bytes!")
    assert h == hashlib.blake2b(b"photo bytes", digest_size=16).hexdigest()


def test_decoded_is_frozen():
    d = decode_image(encode(quadrants(8, 8), "PNG"), size=8)
    with pytest.raises(AttributeError):
        d.width = 3


@pytest.mark.parametrize("dims", [(640, 480), (4000, 3000), (300, 260)])
def test_model_pixels_do_not_depend_on_the_thumbnail_size(dims):
    # The indexer decodes with a thumbnail and a query without one: both must see the same pixels.
    import io as _io

    from tests import photos

    buf = _io.BytesIO()
    photos.scene(7, dims).save(buf, "JPEG", quality=90)
    with_thumb = decode_image(buf.getvalue(), size=224, thumb_size=256)
    without = decode_image(buf.getvalue(), size=224, thumb_size=0)
    np.testing.assert_array_equal(with_thumb.pixels, without.pixels)
    assert without.thumbnail is None and with_thumb.thumbnail


def test_jpeg_xl_decodes_when_its_plugin_is_installed(tmp_path):
    pytest.importorskip("pillow_jxl", reason="JPEG XL needs the optional pillow-jxl-plugin (extra jxl)")
    from engine.imageio import IMAGE_SUFFIXES, decode_path

    path = tmp_path / "photo.jxl"
    Image.new("RGB", (400, 300), (200, 40, 40)).save(path, "JXL")
    decoded = decode_path(path)
    assert ".jxl" in IMAGE_SUFFIXES and (decoded.width, decoded.height) == (400, 300)
    assert decoded.pixels[..., 0].mean() > 150 > decoded.pixels[..., 2].mean()
