"""Where file dialogs open: the folder last chosen from, else the Pictures folder, else home."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, QStandardPaths

LAST_FOLDER = "dialogs/last_folder"


def start_folder(settings: QSettings) -> str:
    """The folder a file dialog should open in: the last one used while it exists, else the
    system's Pictures folder, else the home folder."""
    last = settings.value(LAST_FOLDER, "")
    if isinstance(last, (bytes, bytearray)) or type(last).__name__ == "QByteArray":
        last = os.fsdecode(bytes(last))
    if last and os.path.isdir(str(last)):
        return str(last)
    for place in (QStandardPaths.StandardLocation.PicturesLocation, QStandardPaths.StandardLocation.HomeLocation):
        folder = QStandardPaths.writableLocation(place)
        if folder and os.path.isdir(folder):
            return folder
    return os.path.expanduser("~")


def remember_folder(settings: QSettings, chosen: str | os.PathLike | None) -> None:
    """A dialog chose ``chosen`` (a file or a folder): the next dialog opens where it is."""
    if not chosen:
        return
    chosen = os.fspath(chosen)
    folder = chosen if os.path.isdir(chosen) else os.path.dirname(chosen)
    try:
        folder.encode("utf-8")
        settings.setValue(LAST_FOLDER, folder)
    except UnicodeEncodeError:  # QSettings text cannot hold such a name: its bytes
        settings.setValue(LAST_FOLDER, os.fsencode(folder))
