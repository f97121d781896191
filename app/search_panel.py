"""The search controls on the window's left: how alike results must be (Strict <-> Loose), the folder filter, and under Advanced the candidates (pool or radius) and re-ranking."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QSizePolicy,
                               QSlider, QSpinBox, QVBoxLayout, QWidget)

from app.dialog_folders import remember_folder, start_folder
from app.disclosure import Disclosure, note
from engine.paths import display_path
from engine.search import MIN_POOL, default_pool
from engine.similarity import DEFAULT_FLOOR, LOOSE, SAME, SIMILAR, VERY

# The Strict <-> Loose slider's stops: the least alike level shown among the lookalikes
STRICTNESS = (SAME, VERY, SIMILAR, LOOSE)
STRICTNESS_WORDS = {SAME: "Only the same photo", VERY: "Very similar or closer", SIMILAR: "Similar or closer",
                    LOOSE: "Loosely similar or closer"}


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
    floorChanged = Signal(int)  # the slider moved: results below this level are set apart (no new search)
    advancedToggled = Signal(bool)

    SEARCH_CANDIDATES = "search/candidates"  # "pool" or "radius"
    SEARCH_POOL = "search/pool"              # 0: automatic (engine.search.default_pool)
    SEARCH_RADIUS = "search/radius"
    SEARCH_RERANK = "search/rerank"
    SEARCH_FOLDER = "search/folder"          # "" or a folder: results only from under it
    SEARCH_FLOOR = "search/floor"            # an engine.similarity level: the Strict <-> Loose slider
    SEARCH_ADVANCED = "search/advanced"      # the Advanced section is open
    CHOOSE_FOLDER = "\0choose"

    def __init__(self, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.candidates_combo = QComboBox()
        self.candidates_combo.addItem("Nearest codes", "pool")
        self.candidates_combo.addItem("Within radius", "radius")
        self.candidates_combo.setToolTip("Which photos the fast code comparison passes on to be re-ranked: a "
                                         "number of the nearest codes, or every code within a Hamming radius")
        self.pool_spin = QSpinBox()
        self.pool_spin.setRange(0, 100_000)
        self.pool_spin.setSingleStep(500)
        self.pool_spin.setSpecialValueText("Auto")
        self.pool_spin.setKeyboardTracking(False)
        self.pool_spin.setToolTip("Candidates to re-rank; Auto: every photo up to 2,000, then a few more as "
                                  "the library grows")
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
        self.strictness_slider = QSlider(Qt.Orientation.Horizontal)
        self.strictness_slider.setRange(0, len(STRICTNESS) - 1)
        self.strictness_slider.setPageStep(1)
        self.strictness_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.strictness_slider.setToolTip("How alike a photo must be to count as a lookalike; the rest are set "
                                          "apart below a line, dimmed")
        self.strictness_slider.setAccessibleName("Strict to loose")
        self.strictness_caption = QLabel()
        self.strictness_caption.setWordWrap(True)
        self.folder_combo.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

        self.advanced_box = QWidget()
        advanced_grid = QGridLayout(self.advanced_box)
        advanced_grid.setContentsMargins(12, 0, 0, 0)
        # one above the other: side by side they would widen the panel past what a small window has
        candidates_row = QHBoxLayout()
        candidates_row.addWidget(self.pool_spin, 1)
        candidates_row.addWidget(self.radius_spin, 1)
        self.candidates_note = note("")
        self.rerank_note = note("The second pass orders them by the full description of each photo: "
                                 "better, and still fast. Off: by code distance alone.")
        advanced_grid.addWidget(QLabel("Candidates:"), 0, 0)
        advanced_grid.addWidget(self.candidates_combo, 0, 1)
        advanced_grid.addLayout(candidates_row, 1, 1)
        advanced_grid.addWidget(self.candidates_note, 2, 0, 1, 2)
        advanced_grid.addWidget(self.rerank_check, 3, 0, 1, 2)
        advanced_grid.addWidget(self.rerank_note, 4, 0, 1, 2)
        advanced_grid.setColumnStretch(1, 1)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        strict_row = QHBoxLayout()
        strict_row.addWidget(QLabel("Strict"))
        strict_row.addWidget(self.strictness_slider, 1)
        strict_row.addWidget(QLabel("Loose"))
        grid.addWidget(QLabel("Lookalikes:"), 0, 0)
        grid.addWidget(self.strictness_caption, 0, 1)
        grid.addLayout(strict_row, 1, 0, 1, 2)
        grid.addWidget(QLabel("Folder:"), 2, 0)
        grid.addWidget(self.folder_combo, 2, 1)
        grid.setColumnStretch(1, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(grid)
        self.advanced = Disclosure("Advanced", self.advanced_box,
                                   tooltip="How the search works: candidates, code distances, re-ranking")
        self.advanced_button = self.advanced.button
        column.addWidget(self.advanced)
        self._counts: tuple[int, int] | None = None
        self._bits = 64
        self._explain_candidates()

        mode = str(settings.value(self.SEARCH_CANDIDATES, "pool"))
        self.candidates_combo.setCurrentIndex(max(0, self.candidates_combo.findData(mode)))
        self.pool_spin.setValue(int(settings.value(self.SEARCH_POOL, 0, type=int)))
        self.radius_spin.setValue(int(settings.value(self.SEARCH_RADIUS, 12, type=int)))
        self.rerank_check.setChecked(bool(settings.value(self.SEARCH_RERANK, True, type=bool)))
        self._folder_roots: list[str] = []
        self._folder_choices: list[str] = []
        self.set_folder_roots([], selected=setting_path(settings.value(self.SEARCH_FOLDER, "")))
        floor = int(settings.value(self.SEARCH_FLOOR, DEFAULT_FLOOR, type=int))
        self.strictness_slider.setValue(STRICTNESS.index(floor) if floor in STRICTNESS else STRICTNESS.index(DEFAULT_FLOOR))
        self.advanced.set_open(bool(settings.value(self.SEARCH_ADVANCED, False, type=bool)))
        self._update_candidate_widgets()
        self._update_caption()

        self.strictness_slider.valueChanged.connect(self._on_strictness_changed)
        self.advanced.toggled.connect(self._on_advanced_toggled)
        self.candidates_combo.currentIndexChanged.connect(self._on_controls_changed)
        self.pool_spin.valueChanged.connect(self._on_controls_changed)
        self.radius_spin.valueChanged.connect(self._on_controls_changed)
        self.rerank_check.toggled.connect(self._on_controls_changed)
        self.folder_combo.activated.connect(self._on_folder_activated)

    def floor(self) -> int:
        """The least alike level counted among the lookalikes (engine.similarity)."""
        return STRICTNESS[self.strictness_slider.value()]

    def set_counts(self, lookalikes: int, total: int) -> None:
        """How many results are lookalikes at the slider's setting, of how many shown."""
        self._counts = (lookalikes, total)
        self._update_caption()

    def set_library(self, images: int, bits: int | None = None) -> None:
        """What "Auto" means for a library this size, and the radius's limit for its code length."""
        if images <= MIN_POOL:
            auto = "All photos"
        else:
            auto = f"Auto: {default_pool(images):,}"
        self.pool_spin.setSpecialValueText(auto)
        if bits:
            self._bits = int(bits)
            self.radius_spin.setMaximum(self._bits)
            self.radius_spin.setToolTip(f"Every photo whose {self._bits}-bit code differs from the query's in at "
                                        "most this many bits")
        self._explain_candidates()

    def _explain_candidates(self) -> None:
        self.candidates_note.setText(
            f"A fast first pass compares each photo's {self._bits}-bit code with the query's; the nearest (or all "
            "within the radius, in bits that differ) go on to the second pass.")

    def is_advanced_open(self) -> bool:
        return self.advanced.is_open()

    def _on_advanced_toggled(self, shown: bool) -> None:
        self.settings.setValue(self.SEARCH_ADVANCED, shown)
        self.advancedToggled.emit(shown)

    def _on_strictness_changed(self, position: int) -> None:
        self.settings.setValue(self.SEARCH_FLOOR, self.floor())
        self._update_caption()
        self.floorChanged.emit(self.floor())

    def _update_caption(self) -> None:
        text = STRICTNESS_WORDS[self.floor()]
        if self._counts is not None:
            lookalikes, total = self._counts
            text += f": {lookalikes:,} of {total:,} results"
        self.strictness_caption.setText(text)

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
            folder = QFileDialog.getExistingDirectory(self, "Show only photos under",
                                                      previous or start_folder(self.settings))
            remember_folder(self.settings, folder)
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
