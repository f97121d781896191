"""The search controls on the window's left: candidates (pool or radius), re-rank, and the folder filter."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QSpinBox, QWidget

from engine.paths import display_path


def path_setting(path: str | None):
    """A path as QSettings keeps it: text, or the name's bytes when they are not UTF-8."""
    if not path:
        return ""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def setting_path(value) -> str | None:
    if isinstance(value, (bytes, bytearray)) or type(value).__name__ == "QByteArray":
        return os.fsdecode(bytes(value)) or None
    return str(value or "") or None


class SearchPanel(QWidget):
    """How the window's query is answered; ``changed`` is emitted (and the choice remembered
    in the settings) whenever a control changes what a search returns."""

    changed = Signal()

    SEARCH_CANDIDATES = "search/candidates"  # "pool" or "radius"
    SEARCH_POOL = "search/pool"              # 0: automatic (engine.search.default_pool)
    SEARCH_RADIUS = "search/radius"
    SEARCH_RERANK = "search/rerank"
    SEARCH_FOLDER = "search/folder"          # "" or a folder: results only from under it
    CHOOSE_FOLDER = "\0choose"

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.candidates_combo = QComboBox()
        self.candidates_combo.addItem("Nearest codes", "pool")
        self.candidates_combo.addItem("Within radius", "radius")
        self.candidates_combo.setToolTip("Which photos the fast code comparison passes on to be re-ranked: a "
                                         "number of the nearest, or all within a Hamming distance")
        self.pool_spin = QSpinBox()
        self.pool_spin.setRange(0, 100_000)
        self.pool_spin.setSingleStep(500)
        self.pool_spin.setSpecialValueText("Auto")
        self.pool_spin.setKeyboardTracking(False)
        self.pool_spin.setToolTip("Candidates to re-rank; Auto grows with the library (at least 2,000)")
        self.radius_spin = QSpinBox()
        self.radius_spin.setRange(0, 256)
        self.radius_spin.setSuffix(" bits")
        self.radius_spin.setKeyboardTracking(False)
        self.radius_spin.setToolTip("Every photo whose code differs in at most this many bits")
        self.rerank_check = QCheckBox("Re-rank by features")
        self.rerank_check.setToolTip("Order the candidates by their full features (better), not by code distance alone")
        self.folder_combo = QComboBox()
        self.folder_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder_combo.setMinimumContentsLength(12)
        self.folder_combo.setToolTip("Only show photos from under this folder")
        candidates_row = QHBoxLayout()
        candidates_row.addWidget(self.candidates_combo, 1)
        candidates_row.addWidget(self.pool_spin)
        candidates_row.addWidget(self.radius_spin)
        grid.addWidget(QLabel("Candidates:"), 0, 0)
        grid.addLayout(candidates_row, 0, 1)
        grid.addWidget(self.rerank_check, 1, 1)
        grid.addWidget(QLabel("Folder:"), 2, 0)
        grid.addWidget(self.folder_combo, 2, 1)
        grid.setColumnStretch(1, 1)

        mode = str(settings.value(self.SEARCH_CANDIDATES, "pool"))
        self.candidates_combo.setCurrentIndex(max(0, self.candidates_combo.findData(mode)))
        self.pool_spin.setValue(int(settings.value(self.SEARCH_POOL, 0, type=int)))
        self.radius_spin.setValue(int(settings.value(self.SEARCH_RADIUS, 12, type=int)))
        self.rerank_check.setChecked(bool(settings.value(self.SEARCH_RERANK, True, type=bool)))
        self._folder_roots: list[str] = []
        self._folder_choices: list[str] = []
        self.set_folder_roots([], selected=setting_path(settings.value(self.SEARCH_FOLDER, "")))
        self._update_candidate_widgets()

        self.candidates_combo.currentIndexChanged.connect(self._on_controls_changed)
        self.pool_spin.valueChanged.connect(self._on_controls_changed)
        self.radius_spin.valueChanged.connect(self._on_controls_changed)
        self.rerank_check.toggled.connect(self._on_controls_changed)
        self.folder_combo.activated.connect(self._on_folder_activated)

    def search_options(self) -> dict:
        """The search controls as SearchParams fields plus ``folder`` (what SearchWorker.search takes)."""
        options: dict = {"rerank": self.rerank_check.isChecked()}
        if self.candidates_combo.currentData() == "radius":
            options["radius"] = self.radius_spin.value()
        elif self.pool_spin.value() > 0:
            options["pool"] = self.pool_spin.value()
        folder = self.search_folder()
        if folder:
            options["folder"] = folder
        return options

    def search_folder(self) -> str | None:
        # The folders themselves are kept here: item data is Qt text, which cannot hold every name.
        index = self.folder_combo.currentIndex() - 1
        return self._folder_choices[index] if 0 <= index < len(self._folder_choices) else None

    def set_search_folder(self, folder: str | os.PathLike | None) -> None:
        """Restrict results to photos under ``folder`` (None: every folder); emits ``changed``."""
        self.set_folder_roots(self._folder_roots, selected=None if folder is None else os.path.abspath(folder))
        self._on_controls_changed()

    def set_folder_roots(self, roots: list[str], selected: str | None | bool = False) -> None:
        """Rebuild the folder list: every folder, the library's roots, the chosen folder, "Choose folder…"."""
        if selected is False:
            selected = self.search_folder()
        self._folder_roots = list(roots)
        choices = list(roots)
        if selected and selected not in choices:
            choices.append(selected)
        self._folder_choices = choices
        combo = self.folder_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All folders", "")
        for folder in choices:
            combo.addItem(display_path(folder), display_path(folder))
        combo.addItem("Choose folder…", self.CHOOSE_FOLDER)
        combo.setCurrentIndex(choices.index(selected) + 1 if selected else 0)
        combo.blockSignals(False)

    def _on_folder_activated(self, index: int) -> None:
        if self.folder_combo.itemData(index) == self.CHOOSE_FOLDER:
            previous = setting_path(self.settings.value(self.SEARCH_FOLDER, ""))
            folder = QFileDialog.getExistingDirectory(self, "Show only photos under", previous or "")
            self.set_search_folder(folder or previous)
            return
        self._on_controls_changed()

    def _update_candidate_widgets(self) -> None:
        radius = self.candidates_combo.currentData() == "radius"
        self.pool_spin.setVisible(not radius)
        self.radius_spin.setVisible(radius)
        self.pool_spin.setEnabled(self.rerank_check.isChecked())  # without re-ranking the pool is just k

    def _on_controls_changed(self, *args) -> None:
        self._update_candidate_widgets()
        settings = self.settings
        settings.setValue(self.SEARCH_CANDIDATES, self.candidates_combo.currentData())
        settings.setValue(self.SEARCH_POOL, self.pool_spin.value())
        settings.setValue(self.SEARCH_RADIUS, self.radius_spin.value())
        settings.setValue(self.SEARCH_RERANK, self.rerank_check.isChecked())
        settings.setValue(self.SEARCH_FOLDER, path_setting(self.search_folder()))
        self.changed.emit()
