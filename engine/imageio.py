"""Reading photo files without touching them, and decoding them to model-input pixels."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import os
import re
import stat
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.errors import DecodeError

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HAVE_HEIF = True
except ImportError:  # the engine still works, HEIC files are reported as unsupported
    _HAVE_HEIF = False


def _have_avif() -> bool:
    try:
        from PIL import features  # why: only asked once, guarded against an odd Pillow build

        return bool(features.check_module("avif"))
    except Exception:  # an odd Pillow build must not break importing the engine
        return False


_HAVE_AVIF = _have_avif()

try:  # JPEG XL: the optional pillow-jxl-plugin (pip install 'lookalike[jxl]') registers "JXL"
    import pillow_jxl  # noqa: F401

    _HAVE_JXL = True
except ImportError:
    _HAVE_JXL = False

try:  # camera RAW: LibRaw through rawpy (a base dependency; still optional to the engine)
    import rawpy

    _HAVE_RAW = True
except ImportError:
    _HAVE_RAW = False

# Camera raw formats LibRaw reads (one family in the wizard); a file of one that LibRaw
# cannot read after all is skipped with its reason, like any undecodable photo.
RAW_SUFFIXES: tuple[str, ...] = (
    ".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".iiq", ".k25", ".kdc", ".mef", ".mos", ".mrw",
    ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".x3f")
# A RAW file's embedded preview is used when its shorter side reaches this many pixels (and
# the model's input size): a camera's large preview is the photo as the camera rendered it,
# decoded in milliseconds; a small one (a 160 x 120 index thumbnail) would blur the input.
RAW_PREVIEW_MIN_SIDE = 512

# Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS), so the default refuses exactly what
# Pillow would refuse; about 13,400 x 13,400. Pillow's global is left alone because its
# nested checks (TIFF tiles, GIF frames) protect us too; a caller who wants a max_pixels
# above this must also raise Image.MAX_IMAGE_PIXELS.
MAX_PIXELS: int = 178_956_970

# Files larger than this are not read at all (each decoder reads a whole file into memory):
# 1 GiB, the size of an uncompressed 16-bit RGB image at the pixel limit above (MAX_PIXELS x 6
# bytes), so every photo that limit lets through fits, the largest real ones included (a
# 150-megapixel 16-bit TIFF from a medium-format back is about 900 MB, a 100 MP one 600 MB,
# a film scan at 4000 dpi 300-700 MB, a stitched PNG panorama a few hundred MB). A bigger
# "photo" is a disk image, a video or a damaged file: skipped, "file too large".
MAX_FILE_BYTES: int = 1 << 30

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    [".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"]
    + ([".heic", ".heif"] if _HAVE_HEIF else [])
    + ([".avif"] if _HAVE_AVIF else [])
    + ([".jxl"] if _HAVE_JXL else [])
    + (list(RAW_SUFFIXES) if _HAVE_RAW else [])
)

# Every DecodeError reason starts with one of these, so `lookalike status` can group them.
# "image too large" and "unreadable" and "unsupported format" carry details after them.
REASON_PREFIXES: tuple[str, ...] = (
    "file not found",
    "permission denied",
    "unreadable",
    "empty file",
    "not an image",
    "unsupported format",
    "truncated file",
    "corrupt image data",
    "image too large",
    "file too large",
    "out of memory",
    "decoder crashed",  # the decoder process died on it, twice (engine.workers)
)

# Reasons that may pass by themselves (a permission fixed, a file back in place, memory
# freed): a file skipped for one of these is tried again on the next run even when its size
# and modification time did not change. The others ("not an image", "truncated file" ...)
# hold until the file changes.
TRANSIENT_PREFIXES: tuple[str, ...] = (
    "file not found",
    "permission denied",
    "unreadable",
    "out of memory",
    "decoder crashed",
)


def is_transient(reason: str | None) -> bool:
    """Whether a skip for ``reason`` is worth trying again although the file did not change."""
    return reason is not None and reason.startswith(TRANSIENT_PREFIXES)

# Only formats we mean to index: Image.open would otherwise also try EPS (which runs
# Ghostscript) and a dozen formats no camera writes.
_FORMATS: tuple[str, ...] = (
    ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "DIB", "GIF")  # JPEG also opens MPO
    + (("HEIF",) if _HAVE_HEIF else ())
    + (("AVIF",) if _HAVE_AVIF else ())
    + (("JXL",) if _HAVE_JXL else ())
)

# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

RESIZES: tuple[str, ...] = ("center-crop", "squash")  # a model manifest's "resize" (docs/ARCHITECTURE.md)
_RESIZES = RESIZES
_RESAMPLE = Image.Resampling.BICUBIC
_REDUCING_GAP = 3.0  # box-reduce first, then bicubic: much faster, visually identical
_THUMB_QUALITY = 85

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_ORIENTATION = 0x0112
_EXIF_DATE = re.compile(rb"\s*(\d{4})[:\-/.](\d\d)[:\-/.](\d\d)[ T](\d\d):(\d\d):(\d\d)")

_O_NOATIME = getattr(os, "O_NOATIME", 0)
_O_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
# O_NONBLOCK so that a FIFO named like a photo cannot hang the indexer on open.
_O_FLAGS |= getattr(os, "O_NONBLOCK", 0)


def read_file(path: str | os.PathLike, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a whole file without writing or touching it (O_NOATIME where allowed).

    Raises DecodeError('file not found' / 'permission denied' / 'unreadable: <why>' /
    'empty file' / 'file too large (...)' / 'out of memory'); a file over ``max_bytes`` is
    not read.
    """
    try:
        try:
            fd = os.open(path, _O_FLAGS | _O_NOATIME)
        except PermissionError:
            if not _O_NOATIME:
                raise
            # O_NOATIME is refused (EPERM) on files we do not own; plain read-only then.
            fd = os.open(path, _O_FLAGS)
        with os.fdopen(fd, "rb", buffering=0, closefd=True) as f:
            st_mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(st_mode):
                raise DecodeError("unreadable: is a directory")
            if not stat.S_ISREG(st_mode):
                raise DecodeError("unreadable: not a regular file")
            size = os.fstat(fd).st_size
            if size > max_bytes:
                raise DecodeError(_file_too_large(size, max_bytes))
            data = f.readall()
            if len(data) > max_bytes:  # it grew while being read
                raise DecodeError(_file_too_large(len(data), max_bytes))
    except (FileNotFoundError, NotADirectoryError):
        raise DecodeError("file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except IsADirectoryError:
        raise DecodeError("unreadable: is a directory") from None
    except OSError as e:
        raise DecodeError(f"unreadable: {(e.strerror or str(e)).lower()}") from None
    except MemoryError:
        raise DecodeError("out of memory") from None
    if not data:
        raise DecodeError("empty file")
    return data


def content_hash(data: bytes) -> str:
    """The image's identity: blake2b with a 16-byte digest, as 32 hex characters."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays field-wise would raise
class Decoded:
    """One decoded image: model-input pixels plus what the catalog keeps about it."""

    pixels: np.ndarray  # uint8 (size, size, 3) RGB, C-contiguous: model input
    width: int  # full-resolution size, after EXIF orientation
    height: int
    taken_at: str | None  # 'YYYY-MM-DDTHH:MM:SS' from EXIF, None if absent or garbled
    thumbnail: bytes | None  # JPEG, upright, longest side thumb_size (never upscaled)


def decode_image(
    data: bytes,
    *,
    size: int = 224,
    resize: str = "center-crop",
    thumb_size: int = 256,
    max_pixels: int = MAX_PIXELS,
) -> Decoded:
    """Decode bytes to model-input pixels (and a thumbnail). Raises DecodeError only.

    resize: "center-crop" scales the shorter side to ``size`` and keeps the centre square;
    "squash" scales to size x size ignoring the aspect ratio. thumb_size=0: no thumbnail.
    Thumbnails of images smaller than thumb_size keep their size.
    """
    # Bad arguments are bugs in the caller, not bad input: ValueError, not DecodeError.
    if resize not in _RESIZES:
        raise ValueError(f"resize must be one of {_RESIZES}, not {resize!r}")
    if size < 1 or thumb_size < 0:
        raise ValueError(f"bad size={size} or thumb_size={thumb_size}")
    if not data:
        raise DecodeError("empty file")
    return _classified(data, max_pixels, lambda: _decode(data, size, resize, thumb_size, max_pixels))


def _classified(data: bytes, max_pixels: int, decode, *, quiet: bool = True):
    """``decode()``, with every failure turned into a DecodeError whose reason names it.

    quiet: silence Pillow's warnings (odd metadata, big images). Indexing decodes in worker
    processes, where that is safe; catch_warnings is not thread-safe, so a decode in a thread
    of the window passes quiet=False."""
    with warnings.catch_warnings() if quiet else contextlib.nullcontext():
        if quiet:
            warnings.simplefilter("ignore")
        try:
            return decode()
        except DecodeError:
            raise
        except Image.DecompressionBombError as e:
            # Pillow's own limit struck first (it checks inside Image.open).
            m = re.search(r"\((\d+) pixels\)", str(e))
            limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
            raise DecodeError(_too_large(int(m.group(1)), limit) if m
                              else "image too large") from None
        except UnidentifiedImageError:
            raise DecodeError(_unidentified_reason(data)) from None
        except MemoryError:
            raise DecodeError("out of memory") from None
        except Exception as e:  # bad input must never crash the indexer: classify it
            raise DecodeError(_failure_reason(data, e)) from None


def decode_path(path: str | os.PathLike, **kwargs) -> Decoded:
    """read_file + decode_image."""
    return decode_image(read_file(path), **kwargs)


def _decode(data: bytes, size: int, resize: str, thumb_size: int, max_pixels: int) -> Decoded:
    if _HAVE_RAW and _raw_signature(data) is not None:
        decoded = _decode_raw(data, size, resize, thumb_size, max_pixels)
        if decoded is not None:
            return decoded
    im = Image.open(io.BytesIO(data), formats=_FORMATS)
    full_w, full_h = im.size
    if full_w * full_h > max_pixels:  # checked before anything is allocated
        raise DecodeError(_too_large(full_w * full_h, max_pixels))
    if full_w < 1 or full_h < 1:
        raise DecodeError("corrupt image data")
    # DCT-domain downscaling for JPEG (and embedded thumbnails for HEIF): the decoded
    # image keeps both sides >= size. The draft depends on ``size`` alone, never on the
    # thumbnail, so a query (decoded without one) gets exactly the pixels its indexed copy
    # got; a thumbnail of a small photo may come out a little under thumb_size.
    im.draft("RGB", (size, size))
    im.load()

    exif = _exif(im)
    transpose = _orientation_transpose(exif)
    if transpose in _SIDEWAYS:
        full_w, full_h = full_h, full_w

    return _finish(_to_rgb(im), full_w, full_h, transpose, _taken_at(exif), size, resize, thumb_size)


def _finish(rgb: Image.Image, full_w: int, full_h: int, transpose, taken_at: str | None,
            size: int, resize: str, thumb_size: int) -> Decoded:
    """Model pixels and a thumbnail from the decoded (still sideways) RGB image."""
    # Resample the sideways image, then turn the small results upright: cheaper, and the
    # same pixels, as resampling is separable and the crop box is centred.
    w, h = rgb.size
    if resize == "center-crop":
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    else:
        box = (0, 0, w, h)
    small = rgb.resize((size, size), _RESAMPLE, box=box, reducing_gap=_REDUCING_GAP)
    if transpose is not None:
        small = small.transpose(transpose)
    pixels = np.ascontiguousarray(np.asarray(small, dtype=np.uint8))

    thumbnail = None
    if thumb_size:
        scale = thumb_size / max(w, h)
        thumb = rgb
        if scale < 1:
            tsize = (max(1, round(w * scale)), max(1, round(h * scale)))
            thumb = rgb.resize(tsize, _RESAMPLE, reducing_gap=_REDUCING_GAP)
        if transpose is not None:
            thumb = thumb.transpose(transpose)
        buf = io.BytesIO()
        thumb.save(buf, "JPEG", quality=_THUMB_QUALITY)
        thumbnail = buf.getvalue()

    return Decoded(pixels, full_w, full_h, taken_at, thumbnail)


# LibRaw's orientation ("flip") -> the transpose that makes the image upright.
_RAW_FLIP = {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}
_SIDEWAYS = (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90,
             Image.Transpose.ROTATE_270)


def _raw_signature(data: bytes) -> str | None:
    """The camera RAW format the first bytes announce, or None (a TIFF is RAW when it says DNG
    or carries a maker's sub-images; _decode_raw then lets LibRaw decide)."""
    head = data[:16]
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if head[4:8] == b"ftyp" and head[8:12] == b"crx ":
        return "CR3"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if head[:4] == b"IIU\x00":
        return "RW2"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        if head[8:10] == b"CR":
            return "CR2"
        # DNGVersion (50706) or SubIFDs (330) in the first IFD: a DNG, NEF, ARW or the like.
        # Plain TIFFs from scanners and editors carry neither.
        if _first_ifd_tags(data) & {50706, 330}:
            return "TIFF-RAW"
    return None


def _first_ifd_tags(data: bytes) -> set[int]:
    """The tag numbers of a classic TIFF's first IFD (empty when it is cut or odd)."""
    order = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[offset:offset + 2], order)
    entries = data[offset + 2:offset + 2 + 12 * min(count, 1024)]
    return {int.from_bytes(entries[i:i + 2], order) for i in range(0, len(entries) - 1, 12)}


def _open_raw(data: bytes, max_pixels: int):
    """LibRaw's reading of a camera RAW: (raw, kind, upright width, upright height, transpose),
    the caller to close ``raw``; None when LibRaw does not take a TIFF-like file (it is then a
    plain TIFF). A file LibRaw cannot read, or too large, raises DecodeError."""
    kind = _raw_signature(data)
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except (rawpy.LibRawFileUnsupportedError, rawpy.LibRawNoThumbnailError):
        if kind == "TIFF-RAW":
            return None
        raise DecodeError(f"unsupported format: {kind} (LibRaw does not know this camera)") from None
    except rawpy.LibRawIOError:
        raise DecodeError("truncated file") from None
    except rawpy.LibRawError:
        if kind == "TIFF-RAW":
            return None
        raise DecodeError("corrupt image data") from None
    try:
        sizes = raw.sizes
        full_w, full_h = sizes.width, sizes.height
        if full_w < 1 or full_h < 1:
            raise DecodeError("corrupt image data")
        if full_w * full_h > max_pixels:
            raise DecodeError(_too_large(full_w * full_h, max_pixels))
    except BaseException:
        raw.close()
        raise
    transpose = _RAW_FLIP.get(sizes.flip)
    if transpose in _SIDEWAYS:
        full_w, full_h = full_h, full_w
    return raw, kind, full_w, full_h, transpose


def _decode_raw(data: bytes, size: int, resize: str, thumb_size: int, max_pixels: int) -> Decoded | None:
    """A camera RAW file: its embedded preview when large enough, else a half-size demosaic.

    None when LibRaw does not take a TIFF-like file (it is then decoded as a plain TIFF).
    """
    opened = _open_raw(data, max_pixels)
    if opened is None:
        return None
    raw, kind, full_w, full_h, transpose = opened
    with raw:
        taken_at = _raw_taken_at(data, kind)
        preview = _raw_preview(raw, max(size, RAW_PREVIEW_MIN_SIDE))
        if preview is not None:
            rgb, own_transpose, preview_taken = preview
            if own_transpose is not None:  # the preview's own EXIF says how it stands
                transpose = own_transpose
            return _finish(rgb, full_w, full_h, transpose, taken_at or preview_taken, size, resize, thumb_size)
        rgb = _demosaic(raw, half=True)
        return _finish(rgb, full_w, full_h, transpose, taken_at, size, resize, thumb_size)


def _demosaic(raw, *, half: bool) -> Image.Image:
    """The sensor data as an RGB image (LibRaw's demosaic, camera white balance; half: a quarter of
    the pixels, four times faster), as stored: the caller turns it upright."""
    try:
        pixels = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8, user_flip=0,
                                 no_auto_bright=False)
    except rawpy.LibRawIOError:
        raise DecodeError("truncated file") from None
    except rawpy.LibRawError:
        raise DecodeError("corrupt image data") from None
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")


def _raw_preview(raw, min_side: int):
    """(RGB image, transpose from its own EXIF or None, taken_at) of the embedded preview, or
    None when there is none, it cannot be read, or its shorter side is under ``min_side``."""
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = Image.open(io.BytesIO(thumb.data), formats=("JPEG",))
            if min(im.size) < min_side:
                return None
            im.draft("RGB", (min_side, min_side))
            im.load()
            exif = _exif(im)
            orientation = exif.get(_ORIENTATION, 1) if exif is not None else 1
            own = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
            return _to_rgb(im), own, _taken_at(exif)
        if thumb.format == rawpy.ThumbFormat.BITMAP:
            array = np.asarray(thumb.data)
            if array.ndim != 3 or array.shape[2] < 3 or min(array.shape[:2]) < min_side:
                return None
            return Image.fromarray(np.ascontiguousarray(array[..., :3].astype(np.uint8)), "RGB"), None, None
    except Exception:  # a damaged preview: the sensor data may still be good
        return None
    return None


def _raw_taken_at(data: bytes, kind: str | None) -> str | None:
    """DateTimeOriginal of a TIFF-based RAW (DNG, CR2, NEF, ARW), from its first IFD's EXIF
    (Pillow's TIFF reader cannot open the sensor data, but its EXIF parser reads the tags)."""
    if kind not in ("TIFF-RAW", "CR2"):
        return None
    try:
        exif = Image.Exif()
        exif.load(data)
        return _taken_at(exif)
    except Exception:  # broken EXIF is common and harmless
        return None


def _orientation_transpose(exif: Image.Exif | None) -> Image.Transpose | None:
    """The transpose that makes the stored pixels upright, by the EXIF orientation tag."""
    orientation = exif.get(_ORIENTATION, 1) if exif is not None else 1
    return _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None


def _exif(im: Image.Image) -> Image.Exif | None:
    # Broken EXIF is common and harmless: the pixels are still good.
    try:
        return im.getexif()
    except Exception:
        return None


def _taken_at(exif: Image.Exif | None) -> str | None:
    if exif is None:
        return None
    try:
        value = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
    except Exception:
        value = None
    for v in (value, exif.get(_DATETIME)):
        iso = _parse_exif_date(v)
        if iso:
            return iso
    return None


def _parse_exif_date(value) -> str | None:
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if not isinstance(value, bytes):
        return None
    m = _EXIF_DATE.match(value)
    if not m:
        return None
    y, mo, d, hh, mm, ss = (int(g) for g in m.groups())
    # Cameras without a set clock write 0000:00:00; reject impossible dates (leap
    # seconds: 60 is accepted by EXIF, not by ISO 8601, so it is clamped).
    try:
        t = datetime.datetime(y, mo, d, hh, mm, min(ss, 59))
    except ValueError:
        return None
    if y < 1800:
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(im)), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        # Composite over white: transparent regions are background, not black.
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise DecodeError(f"unsupported format: {mode} colour mode") from None


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale a 16-bit, 32-bit or float single-channel image to 0..255."""
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 1:  # the usual float convention
            return np.round(a * 255).astype(np.uint8)
        if hi == lo:
            return np.zeros(a.shape, np.uint8)
        return np.round((a - lo) * (255 / (hi - lo))).astype(np.uint8)
    a = a.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 65535:  # 16-bit data (Pillow opens 16-bit PNG/TIFF as I;16 or I)
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    return ((a - lo) * 255 // (hi - lo)).astype(np.uint8)


def _too_large(pixels: int, limit: int) -> str:
    return f"image too large ({pixels / 1e6:.0f} megapixels; limit {limit / 1e6:.0f})"


def _file_too_large(size: int, limit: int) -> str:
    return f"file too large ({_bytes(size)}; limit {_bytes(limit)})"


def _bytes(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _signature(data: bytes) -> str | None:
    """The image format the first bytes announce, whether or not we can decode it."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JXL"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"crx ":
            return "CR3"
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIF"
    return None


def _looks_cut(data: bytes, fmt: str | None) -> bool:
    """Whether a file of this format visibly stops before its end."""
    tail = data[-32:]
    if fmt == "JPEG":
        return b"\xff\xd9" not in tail
    if fmt == "PNG":
        return b"IEND" not in tail
    if fmt == "GIF":
        return b";" not in tail[-4:]
    if fmt == "WEBP":
        return int.from_bytes(data[4:8], "little") + 8 > len(data)
    return False


def _unidentified_reason(data: bytes) -> str:
    fmt = _signature(data)
    if fmt is None:
        return "not an image"
    if fmt not in _FORMATS:
        return f"unsupported format: {fmt}"
    # A known signature Pillow could not parse: the header itself is cut or damaged.
    return "truncated file" if _looks_cut(data, fmt) else "corrupt image data"


def _failure_reason(data: bytes, e: Exception) -> str:
    if isinstance(e, EOFError) or "truncated" in str(e).lower():
        return "truncated file"
    if _looks_cut(data, _signature(data)):
        return "truncated file"
    return "corrupt image data"


# ------------------------------------------------------------------ for the screen (the window's preview)


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarrays field-wise would raise
class DisplayImage:
    """A photo decoded to be looked at: upright RGB pixels, and the photo's own size."""

    pixels: np.ndarray  # uint8 (h, w, 3) RGB, upright, C-contiguous; smaller than the photo for a draft
    width: int  # the photo's full-resolution size, upright
    height: int

    @property
    def is_draft(self) -> bool:
        """Fewer pixels than the photo has (decoded for a screen, not for zooming in)."""
        return self.pixels.shape[1] < self.width or self.pixels.shape[0] < self.height


@dataclass(frozen=True)
class Header:
    """What a photo's header says, its pixels not decoded."""

    width: int  # upright
    height: int
    format: str  # "JPEG", "PNG", "HEIF", "RAW (CR2)" ...
    taken_at: str | None  # 'YYYY-MM-DDTHH:MM:SS' (DateTimeOriginal, else DateTime)
    exif: Image.Exif | None  # the rest of the EXIF (camera make and model...), when there is any


def decode_for_display(data: bytes, *, fit: tuple[int, int] | None = None,
                       max_pixels: int = MAX_PIXELS) -> DisplayImage:
    """Decode a photo upright (EXIF orientation, HEIF, camera RAW), as decode_image does, for a screen.

    fit=(width, height): a draft for a screen that size: the photo is decoded at the smallest
    scale the format does cheaply (JPEG in the DCT domain, 1/2 to 1/8; a RAW's embedded
    preview; other formats reduced by a whole factor after decoding) that still covers the
    photo fitted into the box, so it looks sharp there. None: every pixel. Raises DecodeError only.
    """
    if not data:
        raise DecodeError("empty file")
    if fit is not None and (fit[0] < 1 or fit[1] < 1):
        raise ValueError(f"bad fit={fit}")
    # Called from the window's threads: Pillow's warnings are not silenced (not thread-safe).
    return _classified(data, max_pixels, lambda: _decode_for_display(data, fit, max_pixels), quiet=False)


def _fitted(width: int, height: int, fit: tuple[int, int]) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` photo fitted into the box ``fit`` (never enlarged)."""
    scale = min(1.0, fit[0] / width, fit[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode_for_display(data: bytes, fit: tuple[int, int] | None, max_pixels: int) -> DisplayImage:
    if _HAVE_RAW and _raw_signature(data) is not None:
        shown = _raw_for_display(data, fit, max_pixels)
        if shown is not None:
            return shown
    im = Image.open(io.BytesIO(data), formats=_FORMATS)
    stored_w, stored_h = im.size
    if stored_w * stored_h > max_pixels:
        raise DecodeError(_too_large(stored_w * stored_h, max_pixels))
    if stored_w < 1 or stored_h < 1:
        raise DecodeError("corrupt image data")
    transpose = _orientation_transpose(_exif(im))
    sideways = transpose in _SIDEWAYS
    full_w, full_h = (stored_h, stored_w) if sideways else (stored_w, stored_h)
    if fit is not None:
        fit_w, fit_h = _fitted(full_w, full_h, fit)
        wanted = (fit_h, fit_w) if sideways else (fit_w, fit_h)  # in stored orientation
        im.draft("RGB", wanted)  # JPEG: the DCT scale that keeps both sides >= wanted
        im.load()
        factor = min(im.size[0] // wanted[0], im.size[1] // wanted[1])
        if factor >= 2:  # formats without a draft mode: a whole-factor box reduction
            im = im.reduce(factor)
    else:
        im.load()
    rgb = _to_rgb(im)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    return DisplayImage(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), full_w, full_h)


def _raw_for_display(data: bytes, fit: tuple[int, int] | None, max_pixels: int) -> DisplayImage | None:
    """A camera RAW for the screen: its embedded preview when it covers ``fit``, else the sensor
    data demosaiced (half size when that still covers ``fit``). None: LibRaw does not take it."""
    opened = _open_raw(data, max_pixels)
    if opened is None:
        return None
    raw, kind, full_w, full_h, transpose = opened
    with raw:
        half = False
        if fit is not None:
            fit_w, fit_h = _fitted(full_w, full_h, fit)
            preview = _raw_preview(raw, min(fit_w, fit_h))
            if preview is not None:
                rgb, own_transpose, _ = preview
                if own_transpose is not None:
                    transpose = own_transpose
                if transpose is not None:
                    rgb = rgb.transpose(transpose)
                return DisplayImage(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), full_w, full_h)
            half = min(full_w, full_h) // 2 >= min(fit_w, fit_h)
        rgb = _demosaic(raw, half=half)
        if transpose is not None:
            rgb = rgb.transpose(transpose)
        return DisplayImage(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), full_w, full_h)


def read_header(path: str | os.PathLike) -> Header:
    """A photo's size (upright), format, date taken and EXIF from its header, without decoding
    its pixels (a camera RAW is read whole: LibRaw reads no less). Raises DecodeError only."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            # the file's last bytes too: a failure's reason tells a cut file by its end
            size = os.fstat(f.fileno()).st_size
            if size > len(head):
                f.seek(max(len(head), size - 32))
                tail = f.read(32)
            else:
                tail = b""
    except (FileNotFoundError, NotADirectoryError):
        raise DecodeError("file not found") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as e:
        raise DecodeError(f"unreadable: {(e.strerror or str(e)).lower()}") from None
    if not head:
        raise DecodeError("empty file")
    if _HAVE_RAW and _raw_signature(head) is not None:
        data = read_file(path)
        header = _classified(data, MAX_PIXELS, lambda: _raw_header(data), quiet=False)
        if header is not None:
            return header

    def from_pillow() -> Header:
        with Image.open(path, formats=_FORMATS) as im:
            width, height = im.size
            exif = _exif(im)
            if _orientation_transpose(exif) in _SIDEWAYS:
                width, height = height, width
            fmt = "HEIF" if im.format == "HEIF" else (im.format or "?")
            return Header(width, height, fmt, _taken_at(exif), exif)

    return _classified(head + tail, MAX_PIXELS, from_pillow, quiet=False)


def _raw_header(data: bytes) -> Header | None:
    kind = _raw_signature(data)
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawError:
        if kind == "TIFF-RAW":
            return None
        raise
    with raw:
        sizes = raw.sizes
        width, height = sizes.width, sizes.height
        if _RAW_FLIP.get(sizes.flip) in _SIDEWAYS:
            width, height = height, width
    exif = None
    if kind in ("TIFF-RAW", "CR2"):
        try:
            exif = Image.Exif()
            exif.load(data)
        except Exception:  # broken EXIF is common and harmless
            exif = None
    name = kind if kind not in (None, "TIFF-RAW") else "DNG/NEF/ARW"
    return Header(width, height, f"RAW ({name})", _raw_taken_at(data, kind), exif)
