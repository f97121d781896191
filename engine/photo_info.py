"""What the window tells about a photo beside its pixels: file size, resolution, format, date taken, camera; and the result orders they give."""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import DecodeError
from engine.imageio import read_header

_MAKE = 0x010F
_MODEL = 0x0110


@dataclass(frozen=True)
class PhotoInfo:
    """One photo's facts, read from its file system entry and its header (no pixels decoded).

    A fact the file does not give is None; ``problem`` says why the header could not be read
    (the file is gone, not an image...), and the file's own facts may still be there.
    """

    path: str
    file_size: int | None = None  # bytes
    modified: float | None = None  # seconds since the epoch
    width: int | None = None  # as shown: after the EXIF orientation
    height: int | None = None
    format: str | None = None  # "JPEG", "PNG", "HEIF", "RAW (CR2)" ...
    taken_at: str | None = None  # 'YYYY-MM-DDTHH:MM:SS', EXIF DateTimeOriginal (else DateTime)
    camera: str | None = None  # "Canon EOS R6": make and model, the make not repeated
    problem: str | None = None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)


def read_photo_info(path: str | os.PathLike) -> PhotoInfo:
    """The facts of the photo at ``path``; never raises for a bad or missing file (see ``problem``)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            return PhotoInfo(path, problem="file not found")
        return PhotoInfo(path, problem=f"unreadable: {(e.strerror or str(e)).lower()}")
    try:
        header = read_header(path)
    except DecodeError as e:
        return PhotoInfo(path, st.st_size, st.st_mtime, problem=str(e))
    return PhotoInfo(path, st.st_size, st.st_mtime, header.width, header.height, header.format,
                     header.taken_at, camera_name(header.exif))


def camera_name(exif) -> str | None:
    """"Make Model" from EXIF, the make left out when the model already says it ("Canon" +
    "Canon EOS R6" is "Canon EOS R6"); None when neither is there."""
    if exif is None:
        return None
    make, model = (_text(exif.get(tag)) for tag in (_MAKE, _MODEL))
    if make and model and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(part for part in (make, model) if part) or None


def _text(value) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


# ------------------------------------------------------------------ orders


SORT_ORDERS: dict[str, str] = {
    "similarity": "Similarity",
    "date": "Date taken (oldest first)",
    "size": "File size (largest first)",
    "resolution": "Resolution (largest first)",
    "folder": "Folder",
}


def sort_order(paths: list[str], infos: dict[str, PhotoInfo], by: str) -> list[int]:
    """The positions of ``paths`` (given most similar first) in the order ``by`` (a SORT_ORDERS
    key). A photo without the fact sorts last; ties keep the similarity order, so a sort is
    stable and "similarity" is the order given."""
    if by not in SORT_ORDERS:
        raise ValueError(f"unknown order {by!r}; one of {', '.join(SORT_ORDERS)}")
    if by == "similarity":
        return list(range(len(paths)))

    def key(position: int):
        info = infos.get(paths[position])
        if by == "folder":
            return (0, os.path.dirname(paths[position]), os.path.basename(paths[position]), position)
        value = None
        if info is not None:
            value = {"date": info.taken_at, "size": -info.file_size if info.file_size is not None else None,
                     "resolution": -info.pixels if info.pixels else None}[by]
        return (1, "", position) if value is None else (0, value, position)

    return sorted(range(len(paths)), key=key)
