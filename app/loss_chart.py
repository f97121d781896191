"""The retrain dialog's training-loss chart: cheap to feed thousands of steps, log scale, the app's palette."""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
from PySide6.QtGui import QPainter, QPalette, QPen
from PySide6.QtWidgets import QWidget

try:  # QtCharts is in PySide6-Addons, which comes with the training extra (pyproject)
    from PySide6.QtCharts import QAbstractAxis, QChart, QChartView, QLineSeries, QLogValueAxis, QValueAxis

    HAVE_CHARTS = True
except ImportError:  # the lean install: the retrain dialog's versions work, with no curve to draw
    HAVE_CHARTS = False
    QChartView = QWidget  # LossChart below is then replaced by app.loss_chart_fallback's

REDRAW_MS = 250      # new points are drawn at most this often: the window stays responsive
MAX_POINTS = 500     # more than the chart has pixels across: beyond this, neighbours are averaged
EMPTY_STEPS = 10     # the step axis before any point


def step_ticks(steps: int) -> tuple[int, int]:
    """(interval, axis end) for a whole-number step axis reaching ``steps``: 1, 2 or 5 times a
    power of ten, about five intervals, the end a multiple of the interval."""
    steps = max(int(steps), 1)
    rough = steps / 5
    power = 10 ** max(int(math.floor(math.log10(rough))), 0) if rough >= 1 else 1
    interval = next((f * power for f in (1, 2, 5, 10) if f * power >= rough), 10 * power)
    return interval, interval * math.ceil(steps / interval)


def log_range(low: float, high: float) -> tuple[float, float]:
    """Whole decades around [low, high] (both > 0): the log axis labels 0.1, 1, 10, ... (a hair
    wider, or rounding in Qt's log10 of the end drops its label)."""
    bottom = 10.0 ** math.floor(math.log10(low))
    top = 10.0 ** math.ceil(math.log10(high))
    if top <= bottom:
        top = bottom * 10
    return bottom * (1 - 1e-6), top * (1 + 1e-6)


def linear_range(low: float, high: float) -> tuple[float, float]:
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


class LossChart(QChartView):
    """Loss against step for one training run.

    ``add(step, loss)`` only queues the point; a timer draws what was queued at most every
    REDRAW_MS, in one append, so the cost of a redraw (which walks the whole series) is paid a
    few times a second rather than once per step. Past MAX_POINTS, pairs of neighbours are
    averaged into one. The loss axis is logarithmic while every loss is positive (the first
    steps of a run are often ten or a hundred times the rest, which a linear axis would
    flatten into a line along the bottom), linear otherwise; the step axis has whole-number
    ticks. Colours follow the application palette, light or dark.
    """

    def __init__(self, parent: QWidget | None = None, *, redraw_ms: int | None = REDRAW_MS):
        """``redraw_ms`` None: the owner calls ``flush`` itself (with its other progress, at once)."""
        super().__init__(parent)
        self._chart = QChart()
        self.setChart(self._chart)
        self.series = QLineSeries()
        self.series.setName("loss")
        self._chart.addSeries(self.series)
        self._chart.legend().hide()
        self._chart.setTitle("Training loss")
        self.step_axis = QValueAxis()
        self.step_axis.setTitleText("step")
        self.step_axis.setLabelFormat("%d")
        self.step_axis.setTickType(QValueAxis.TickType.TicksDynamic)
        self.step_axis.setTickAnchor(0)
        self._chart.addAxis(self.step_axis, Qt.AlignmentFlag.AlignBottom)
        self.series.attachAxis(self.step_axis)
        self.loss_axis: QAbstractAxis = self._make_loss_axis(logarithmic=True)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(200)
        self._pending: list[tuple[float, float]] = []
        self._drawn: list[tuple[float, float]] = []  # what the series shows, after averaging
        self._stride = 1  # raw points per drawn point
        self._partial: list[tuple[float, float]] = []  # raw points not yet averaged into one
        self._steps = 0
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(redraw_ms or REDRAW_MS)
        self._auto_redraw = redraw_ms is not None
        self._redraw.timeout.connect(self.flush)
        self.clear()
        self._apply_palette()

    # ------------------------------------------------------------------ feeding

    def clear(self) -> None:
        """Empty the chart for a new run."""
        self._redraw.stop()
        self._pending.clear()
        self._drawn.clear()
        self._partial.clear()
        self._stride = 1
        self._steps = 0
        self.series.clear()
        if not self.logarithmic:
            self._replace_loss_axis(logarithmic=True)
        self.loss_axis.setRange(*log_range(0.1, 10))
        self._set_step_range(EMPTY_STEPS)

    def set_steps(self, steps: int) -> None:
        """The run's planned number of steps: the step axis spans it from the start."""
        if steps > self._steps:
            self._steps = steps
            self._set_step_range(steps)

    def add(self, step: float, loss: float) -> None:
        """Queue one point (drawn within REDRAW_MS, or at the owner's ``flush``); non-finite losses are skipped."""
        if not math.isfinite(loss):
            return
        self._pending.append((float(step), float(loss)))
        if self._auto_redraw and not self._redraw.isActive():
            self._redraw.start()

    def flush(self) -> None:
        """Draw the queued points now."""
        self._redraw.stop()
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        low = min(loss for _, loss in pending)
        if self.logarithmic and low <= 0:
            self._replace_loss_axis(logarithmic=False)  # a loss that can be negative: linear from now on
        new_points = self._average(pending)
        if len(self._drawn) + len(new_points) <= MAX_POINTS:
            self._drawn += new_points
            self.series.append([QPointF(x, y) for x, y in new_points])
        else:
            # Halve the resolution of what is drawn (one replace), then appends again for a while.
            drawn = self._drawn + new_points
            while len(drawn) > MAX_POINTS:
                drawn = [_mean(drawn[i:i + 2]) for i in range(0, len(drawn), 2)]
                self._stride *= 2
            self._drawn = drawn
            self.series.replace([QPointF(x, y) for x, y in drawn])
        if self._drawn:
            # The range of what is drawn (a few hundred points): a raw spike averaged away leaves no gap.
            self._update_loss_range(min(y for _, y in self._drawn), max(y for _, y in self._drawn))
        self._set_step_range(max(self._steps, int(math.ceil(pending[-1][0]))))

    def _average(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Raw points into drawn points of ``stride`` raw ones each; a remainder waits for more."""
        self._partial += points
        whole = len(self._partial) - len(self._partial) % self._stride
        drawn = [_mean(self._partial[i:i + self._stride]) for i in range(0, whole, self._stride)]
        del self._partial[:whole]
        return drawn

    def points(self) -> list[tuple[float, float]]:
        """What the chart draws, queued points included (tests, screenshots)."""
        self.flush()
        return [(p.x(), p.y()) for p in self.series.points()]

    # ------------------------------------------------------------------ axes

    def _set_step_range(self, steps: int) -> None:
        interval, end = step_ticks(steps)
        if self.step_axis.tickInterval() != interval:
            self.step_axis.setTickInterval(interval)
        if self.step_axis.max() != end or self.step_axis.min() != 0:
            self.step_axis.setRange(0, end)

    def _update_loss_range(self, low: float, high: float) -> None:
        wanted = log_range(low, high) if self.logarithmic else linear_range(low, high)
        if (self.loss_axis.min(), self.loss_axis.max()) != wanted:
            self.loss_axis.setRange(*wanted)

    def _make_loss_axis(self, *, logarithmic: bool) -> QAbstractAxis:
        if logarithmic:
            axis = QLogValueAxis()
            axis.setBase(10)
            axis.setLabelFormat("%g")
            axis.setMinorTickCount(-1)  # 2 to 9 within each decade, marked on the axis...
            axis.setMinorGridLineVisible(False)  # ...not drawn across the plot, where they crowd the curve
        else:
            axis = QValueAxis()
            axis.setLabelFormat("%.3g")
        axis.setTitleText("loss" + (" (log scale)" if logarithmic else ""))
        self._chart.addAxis(axis, Qt.AlignmentFlag.AlignLeft)
        self.series.attachAxis(axis)
        return axis

    def _replace_loss_axis(self, *, logarithmic: bool) -> None:
        old = self.loss_axis
        self.series.detachAxis(old)
        self._chart.removeAxis(old)
        old.deleteLater()
        self.loss_axis = self._make_loss_axis(logarithmic=logarithmic)
        self._apply_palette()

    @property
    def logarithmic(self) -> bool:
        return isinstance(self.loss_axis, QLogValueAxis)

    # ------------------------------------------------------------------ colours

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()

    def _apply_palette(self) -> None:
        """The chart's own theme is always light: take the colours from the palette instead."""
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        grid = palette.color(QPalette.ColorRole.Midlight)
        self.setBackgroundBrush(palette.color(QPalette.ColorRole.Window))
        self._chart.setBackgroundBrush(palette.color(QPalette.ColorRole.Base))
        self._chart.setBackgroundPen(QPen(palette.color(QPalette.ColorRole.Mid)))
        self._chart.setTitleBrush(text)
        for axis in (self.step_axis, self.loss_axis):
            axis.setLabelsBrush(text)
            axis.setTitleBrush(text)
            axis.setLinePenColor(palette.color(QPalette.ColorRole.Mid))
            axis.setGridLineColor(grid)
        pen = QPen(palette.color(QPalette.ColorRole.Highlight))
        pen.setWidthF(2.0)
        self.series.setPen(pen)


def _mean(points: list[tuple[float, float]]) -> tuple[float, float]:
    return (sum(x for x, _ in points) / len(points), sum(y for _, y in points) / len(points))


if not HAVE_CHARTS:
    from app.loss_chart_fallback import LossChart  # noqa: F811
