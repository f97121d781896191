"""The results grid's model and tiles: search hits, thumbnails loaded lazily off the GUI thread, marks."""

from __future__ import annotations

import os

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QIcon, QImage, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.preview import info_lines
from app.workers import ImageLoader, ResultItem
from engine.paths import display_path
from engine.similarity import DEFAULT_FLOOR, EXPLANATIONS, LABELS, SAME, SIMILAR, VERY, split_at

PathRole = Qt.ItemDataRole.UserRole + 1  # the path as text to show; the file itself: ResultsModel.item(row).path
ScoreRole = Qt.ItemDataRole.UserRole + 2
HammingRole = Qt.ItemDataRole.UserRole + 3
MarkRole = Qt.ItemDataRole.UserRole + 4  # 1 marked similar, -1 dissimilar, 0 not marked
SimilarityRole = Qt.ItemDataRole.UserRole + 10  # the engine.similarity level, or None
# 0: a lookalike (at or above the floor), 1: the first result below it (the dividing line), 2: another below
BelowFloorRole = Qt.ItemDataRole.UserRole + 11
KeeperRole = Qt.ItemDataRole.UserRole + 5  # True on the photo "Select all but the best" keeps

# Saturated mid-tones with a white glyph: they stand out on the light and the dark palette alike.
MARK_COLOURS = {1: QColor("#1f9d55"), -1: QColor("#d93b3b")}
MARK_NAMES = {1: "similar", -1: "dissimilar"}


class ResultsModel(QAbstractListModel):
    """Rows are ResultItems; a row's thumbnail is requested the first time a view asks for it."""

    def __init__(self, icon_size: QSize = QSize(160, 160), parent: QObject | None = None):
        super().__init__(parent)
        self._items: list[ResultItem] = []
        self._icons: dict[int, QIcon] = {}
        self._requested: set[int] = set()
        self._marks: dict[str, int] = {}  # path -> 1 / -1; kept across result lists
        self._infos: dict = {}  # path -> engine.photo_info.PhotoInfo, when read (app.photo_details)
        self._floor = DEFAULT_FLOOR  # results below this similarity level are set apart
        self._split = 0  # rows before the first one below the floor
        self.technical = False  # tooltips name the score and the code distance too (Advanced open)
        self._keeper: str | None = None  # the photo "Select all but the best" keeps (app.file_actions)
        self.loader = ImageLoader(icon_size, threads=2, parent=self)
        self.loader.loaded.connect(self._on_loaded)
        pixmap = QPixmap(icon_size)
        pixmap.fill(QColor(128, 128, 128, 60))
        self.placeholder = QIcon(pixmap)

    # ------------------------------------------------------------------ data

    def set_results(self, items: list[ResultItem]) -> None:
        self.beginResetModel()
        self.loader.reset()
        self._items = list(items)
        self._split = self._split_row()
        self._keeper = None
        self._icons.clear()
        self._requested.clear()
        self.endResetModel()

    def set_floor(self, level: int) -> None:
        """Results below this similarity level (engine.similarity) are set apart, dimmed after a line."""
        self._floor = level
        self._split = self._split_row()
        if self._items:
            self.dataChanged.emit(self.index(0), self.index(len(self._items) - 1),
                                  [BelowFloorRole, Qt.ItemDataRole.ToolTipRole])

    def floor(self) -> int:
        return self._floor

    def lookalike_count(self) -> int:
        """Results at or above the floor (with re-ranking, the rows before the dividing line)."""
        return sum(1 for item in self._items if self._at_or_above(item))

    def _at_or_above(self, item: ResultItem) -> bool:
        return item.similarity is None or item.similarity >= self._floor

    def _split_row(self) -> int:
        levels = [item.similarity for item in self._items]
        if any(level is None for level in levels):
            return len(levels)  # no words for these results: nothing to set apart
        return split_at(levels, self._floor)

    def set_marks(self, marks: dict[str, int]) -> None:
        """The marked photos (path -> 1 similar, -1 dissimilar); their tiles repaint."""
        changed = set(marks.items()) ^ set(self._marks.items())
        self._marks = dict(marks)
        paths = {path for path, _ in changed}
        for row, item in enumerate(self._items):
            if item.path in paths:
                index = self.index(row)
                self.dataChanged.emit(index, index, [MarkRole, Qt.ItemDataRole.ToolTipRole])

    def set_keeper(self, path: str | None) -> None:
        """Frame the photo to keep (None: none); its tile and the previous keeper's repaint."""
        previous, self._keeper = self._keeper, path
        for row in {self.row_of(p) for p in (previous, path) if p} - {-1}:
            self.dataChanged.emit(self.index(row), self.index(row), [KeeperRole])

    def keeper(self) -> str | None:
        return self._keeper

    MAX_REMOVALS = 64  # runs of rows removed one by one (keeping selection and place); more: a reset

    def remove_paths(self, paths) -> int:
        """Drop the rows showing ``paths`` (trashed or moved away), keeping the other rows'
        thumbnails, selection and place; how many rows went."""
        gone = set(paths)
        rows = [row for row, item in enumerate(self._items) if item.path in gone]
        if not rows:
            return 0
        self.loader.reset()  # loads in flight name rows by number: they would land on the wrong tile
        runs: list[list[int]] = []  # contiguous rows, one removal each (a row at a time was O(n^2) in the view)
        for row in rows:
            if runs and runs[-1][1] == row - 1:
                runs[-1][1] = row
            else:
                runs.append([row, row])
        if len(runs) > self.MAX_REMOVALS:  # scattered rows: one reset costs less than thousands of removals
            self.beginResetModel()
            kept = [row for row in range(len(self._items)) if self._items[row].path not in gone]
            self._icons = {new: self._icons[old] for new, old in enumerate(kept) if old in self._icons}
            self._items = [self._items[row] for row in kept]
            self.endResetModel()
        else:
            for first, last in reversed(runs):
                self.beginRemoveRows(QModelIndex(), first, last)
                del self._items[first:last + 1]
                width = last - first + 1
                self._icons = {(r - width if r > last else r): icon for r, icon in self._icons.items()
                               if not first <= r <= last}
                self.endRemoveRows()
        self._requested = set(self._icons)  # the others are asked for again when shown
        if self._keeper in gone:
            self._keeper = None
        return len(rows)

    def mark(self, row: int) -> int:
        return self._marks.get(self._items[row].path, 0)

    def row_of(self, path: str) -> int:
        """The row showing ``path``, or -1."""
        return next((row for row, item in enumerate(self._items) if item.path == path), -1)

    def item(self, row: int) -> ResultItem:
        return self._items[row]

    def thumbnail_loaded(self, row: int) -> bool:
        return row in self._icons

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        row = index.row()
        item = self._items[row]
        # Qt text cannot hold a name that is not UTF-8 (it would drop those bytes silently):
        # show it with replacement characters, and keep the real path on the Python side.
        if role == Qt.ItemDataRole.DisplayRole:
            return display_path(os.path.basename(item.path))
        if role == Qt.ItemDataRole.DecorationRole:
            icon = self._icons.get(row)
            if icon is None:
                if row not in self._requested:
                    self._requested.add(row)
                    # The cached thumbnail first; the photo itself when the cache lacks it.
                    self.loader.request(row, item.thumb, item.path)
                return self.placeholder
            return icon
        if role == Qt.ItemDataRole.ToolTipRole:
            mark = self._marks.get(item.path)
            marked = f"\nMarked {MARK_NAMES[mark]} (U unmarks)" if mark else ""
            words = (f"{LABELS[item.similarity]}: {EXPLANATIONS[item.similarity]}\n"
                     if item.similarity is not None else "")
            technical = (f"\nscore {item.score:.3f} · Hamming distance {item.hamming}"
                         if self.technical or item.similarity is None else "")
            return (f"{words}{display_path(os.path.basename(item.path))}{technical}\n"
                    f"{display_path(item.path)}{marked}") + self._details(item)
        if role == PathRole:
            return display_path(item.path)
        if role == ScoreRole:
            return item.score
        if role == HammingRole:
            return item.hamming
        if role == MarkRole:
            return self._marks.get(item.path, 0)
        if role == SimilarityRole:
            return item.similarity
        if role == BelowFloorRole:
            # By the words, not the place: in Hamming order (re-ranking off) they need not fall
            # down the list, and a lookalike after the line is still one.
            return 0 if self._at_or_above(item) else 1 if row == self._split else 2
        if role == KeeperRole:
            return item.path == self._keeper
        return None

    def set_infos(self, infos: dict) -> None:
        """The photos' facts (path -> PhotoInfo) the tooltips show; the dict is read, not copied."""
        self._infos = infos

    def _details(self, item: ResultItem) -> str:
        info = self._infos.get(item.path)
        if info is None:
            return ""
        # the facts between the name and the folder (the tooltip shows the path; its words lead it)
        return "\n\n" + "\n".join(info_lines(info)[1:-1])

    def reorder(self, order: list[int]) -> None:
        """Show the rows in another order (``order[i]``: the row now shown at i), without a new
        search; thumbnails, marks and the selection (persistent indexes) follow their photos."""
        if sorted(order) != list(range(len(self._items))):
            raise ValueError("an order must name every row once")
        if order == list(range(len(self._items))):
            return
        self.layoutAboutToBeChanged.emit()
        new_row = {old: new for new, old in enumerate(order)}
        self._items = [self._items[old] for old in order]
        self._split = self._split_row()  # the first row below the floor, in the new order
        self._icons = {new_row[row]: icon for row, icon in self._icons.items()}
        self.loader.reset()  # thumbnails in flight were asked for by their old rows: asked again
        self._requested = set(self._icons)
        persistent = self.persistentIndexList()
        self.changePersistentIndexList(persistent, [self.index(new_row[index.row()]) for index in persistent])
        self.layoutChanged.emit()

    def _on_loaded(self, generation: int, row: object, image: QImage) -> None:
        if generation != self.loader.generation or not isinstance(row, int) or row >= len(self._items):
            return
        if image.isNull():
            return  # unreadable: the placeholder stays
        self._icons[row] = QIcon(QPixmap.fromImage(image))
        index = self.index(row)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def shutdown(self) -> None:
        self.loader.shutdown()


class MarkDelegate(QStyledItemDelegate):
    """Draws a tile as usual, and a marked one with a coloured frame and a corner badge
    (a tick for similar, a cross for dissimilar): the mark reads without colour too."""

    FRAME = 3  # pixels

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        self.paint_tile(painter, option, index)
        paint_similarity(painter, option, index)
        if index.data(KeeperRole):
            self._paint_keeper(painter, option)
        mark = index.data(MarkRole)
        colour = MARK_COLOURS.get(mark)
        if colour is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(option.rect).adjusted(1.5, 1.5, -1.5, -1.5)
        painter.setPen(QPen(colour, self.FRAME))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, 4, 4)
        side = max(14.0, min(22.0, option.rect.width() / 7))
        badge = QRectF(rect.left() + 4, rect.top() + 4, side, side)
        painter.setPen(QPen(QColor("white"), 1.5))
        painter.setBrush(colour)
        painter.drawEllipse(badge)
        glyph = QPen(QColor("white"), max(2.0, side / 8))
        glyph.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(glyph)
        x, y, s = badge.left(), badge.top(), side
        if mark == 1:
            painter.drawPolyline([QPointF(x + 0.28 * s, y + 0.52 * s), QPointF(x + 0.44 * s, y + 0.68 * s),
                                  QPointF(x + 0.72 * s, y + 0.34 * s)])
        else:
            painter.drawLine(QPointF(x + 0.33 * s, y + 0.33 * s), QPointF(x + 0.67 * s, y + 0.67 * s))
            painter.drawLine(QPointF(x + 0.67 * s, y + 0.33 * s), QPointF(x + 0.33 * s, y + 0.67 * s))
        painter.restore()

    # ------------------------------------------------------------------ the tile's own geometry
    # Drawn here, not by the style's item layout: that sized a tile from the first photo's
    # icon and clipped the others to it (landscape photos cut to squares, names gone once the
    # view had been narrow). A tile is a photo box of the view's icon width and 3/4 of its
    # height, the photo fitted inside it with its aspect ratio, standing on its name: landscape
    # photos (most cameras' 4:3 and 3:2) fill the box, so rows pack without gaps; portrait and
    # square ones are whole, only smaller.

    PAD = 6  # pixels around the photo box and under the name
    BOX_ASPECT = 0.75  # the photo box's height over its width
    MAX_TEXT_LINES = 3

    def photo_box(self, tile: QRect, side: int) -> QRect:
        """Where a tile's photo may go: ``side`` wide, centred, under the top padding."""
        height = round(side * self.BOX_ASPECT)
        return QRect(tile.left() + (tile.width() - side) // 2, tile.top() + self.PAD, side, height)

    @staticmethod
    def fit(box: QRect, picture: QSize) -> QRect:
        """The largest rectangle of ``picture``'s aspect ratio inside ``box``, centred
        across and standing on the box's bottom edge (so a row's names line up)."""
        if picture.isEmpty():
            return QRect(box)
        scale = min(box.width() / picture.width(), box.height() / picture.height())
        width, height = max(1, round(picture.width() * scale)), max(1, round(picture.height() * scale))
        return QRect(box.left() + (box.width() - width) // 2, box.bottom() + 1 - height, width, height)

    def text_lines(self, index: QModelIndex) -> list[str]:
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        return str(text).split("\n")[:self.MAX_TEXT_LINES] or [""]

    def tile_size(self, side: int, lines: int = 1, option: QStyleOptionViewItem | None = None) -> QSize:
        """A tile's size for photos ``side`` wide and ``lines`` lines of text under them."""
        if option is not None:
            metrics = option.fontMetrics
        else:
            view = self.parent()
            metrics = QFontMetrics(view.font() if hasattr(view, "font") else QApplication.font())
        height = self.PAD + round(side * self.BOX_ASPECT) + 4 + lines * metrics.height() + self.PAD
        return QSize(side + 2 * self.PAD, height)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return self.tile_size(self._side(option), len(self.text_lines(index)), option)

    def _side(self, option: QStyleOptionViewItem) -> int:
        view = self.parent()
        size = view.iconSize() if hasattr(view, "iconSize") else option.decorationSize
        return max(16, size.width())

    def photo_rect(self, option: QStyleOptionViewItem, index: QModelIndex) -> QRect:
        """Where the tile of ``index`` in ``option.rect`` draws its photo (or the placeholder)."""
        side = self._side(option)
        box = self.photo_box(option.rect, side)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        if not isinstance(icon, QIcon) or icon.isNull():
            return box
        return self.fit(box, icon.actualSize(QSize(4 * side, 4 * side)))

    def name_rect(self, option: QStyleOptionViewItem, index: QModelIndex) -> QRect:
        """Where the tile's text (the file name first) is drawn."""
        side = self._side(option)
        box = self.photo_box(option.rect, side)
        lines = len(self.text_lines(index))
        return QRect(option.rect.left() + 2, box.bottom() + 1 + 4, option.rect.width() - 4,
                     lines * option.fontMetrics.height())

    def paint_tile(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        """The selection or hover panel, the photo fitted in its box, the name under it."""
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        opt.text = ""
        opt.icon = QIcon()
        opt.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, widget)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        icon = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(icon, QIcon) and not icon.isNull():
            target = self.photo_rect(option, index)
            painter.drawPixmap(target, icon.pixmap(icon.actualSize(QSize(4 * target.width(), 4 * target.height()))))
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        group = (QPalette.ColorGroup.Normal if option.state & QStyle.StateFlag.State_Active
                 else QPalette.ColorGroup.Inactive)
        painter.setPen(option.palette.color(group, QPalette.ColorRole.HighlightedText if selected
                                            else QPalette.ColorRole.Text))
        painter.setFont(option.font)
        metrics = option.fontMetrics
        text = self.name_rect(option, index)
        for number, line in enumerate(self.text_lines(index)):
            row = QRect(text.left(), text.top() + number * metrics.height(), text.width(), metrics.height())
            painter.drawText(row, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter),
                             metrics.elidedText(line, Qt.TextElideMode.ElideMiddle, row.width()))
        painter.restore()
        if option.state & QStyle.StateFlag.State_HasFocus:
            focus = QStyleOptionViewItem(opt)
            focus.rect = option.rect
            style.drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, focus, painter, widget)

    KEEPER = QColor("#2f6fde")  # blue: neither of the marks' colours

    def _paint_keeper(self, painter: QPainter, option: QStyleOptionViewItem) -> None:
        """The photo "Select all but the best" keeps: a blue frame and a "Keep" tag in its top left corner."""
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(option.rect).adjusted(1.5, 1.5, -1.5, -1.5)
        painter.setPen(QPen(self.KEEPER, self.FRAME, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, 4, 4)
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        tag = QRectF(0, 0, painter.fontMetrics().horizontalAdvance("Keep") + 12, painter.fontMetrics().height() + 4)
        tag.moveTopLeft(rect.topLeft() + QPointF(4, 4))  # the top right holds the similarity's words
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.KEEPER)
        painter.drawRoundedRect(tag, 3, 3)
        painter.setPen(QColor("white"))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, "Keep")
        painter.restore()


# The words' pills: blue, strongest for the closest (the marks' green and red stay the marks').
SIMILARITY_COLOURS = {SAME: QColor("#1d4f91"), VERY: QColor("#2f6fc0"), SIMILAR: QColor("#5b86b8")}
OTHER_COLOUR = QColor("#808080")
BELOW_CAPTION = "Less alike"


def paint_similarity(painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
    """A tile's similarity in words (a pill in its top right corner); a tile below the floor dimmed,
    and the first of them with the dividing line on its left and a "Less alike" caption."""
    level = index.data(SimilarityRole)
    if level is None:
        return
    below = index.data(BelowFloorRole) or 0
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    rect = QRectF(option.rect)
    palette = option.palette
    if below:
        veil = QColor(palette.base().color())
        veil.setAlpha(150)
        painter.fillRect(rect, veil)
    font = painter.font()
    font.setPointSizeF(max(6.5, font.pointSizeF() * 0.82))
    painter.setFont(font)
    metrics = painter.fontMetrics()
    text = LABELS[level]
    width = min(rect.width() - 8, metrics.horizontalAdvance(text) + 10)
    height = metrics.height() + 2
    pill = QRectF(rect.right() - 4 - width, rect.top() + 4, width, height)
    colour = QColor(SIMILARITY_COLOURS.get(level, OTHER_COLOUR))
    if below:
        colour.setAlpha(170)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawRoundedRect(pill, height / 2, height / 2)
    painter.setPen(QColor("white"))
    painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, metrics.elidedText(text, Qt.TextElideMode.ElideRight,
                                                                            int(width) - 6))
    if below == 1:
        accent = palette.highlight().color()
        painter.setPen(QPen(accent, 3))
        painter.drawLine(QPointF(rect.left() + 1.5, rect.top() + 2), QPointF(rect.left() + 1.5, rect.bottom() - 2))
        bold = painter.font()
        bold.setBold(True)
        painter.setFont(bold)
        label = f"{BELOW_CAPTION} ▸"
        caption = QRectF(rect.left() + 6, rect.top() + 4, painter.fontMetrics().horizontalAdvance(label) + 10, height)
        if caption.right() + 4 > pill.left():  # a small tile: under the pill, not over it
            caption.moveTop(pill.bottom() + 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(accent)
        painter.drawRoundedRect(caption, 3, 3)
        painter.setPen(palette.highlightedText().color())
        painter.drawText(caption, Qt.AlignmentFlag.AlignCenter, label)
    painter.restore()
