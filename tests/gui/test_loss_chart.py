"""The retrain dialog's loss chart: whole-number steps, log scale, few redraws, bounded points, the app's palette."""

from __future__ import annotations

import statistics

import pytest
from PySide6.QtCharts import QLogValueAxis, QValueAxis
from PySide6.QtGui import QColor, QImage, QPalette

from app import loss_chart
from app.loss_chart import MAX_POINTS, LossChart, step_ticks
from app.theme import palette


@pytest.fixture
def chart(qtbot):
    view = LossChart()
    view.resize(600, 320)
    qtbot.addWidget(view)
    view.show()
    return view


def _commonest(view) -> QColor:
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    pixels = [image.pixel(x, y) for y in range(0, image.height(), 5) for x in range(0, image.width(), 5)]
    return QColor.fromRgb(statistics.mode(pixels))


@pytest.mark.parametrize("steps, interval, end", [(1, 1, 1), (4, 1, 4), (10, 2, 10), (60, 20, 60), (750, 200, 800),
                                                 (3000, 1000, 3000), (3001, 1000, 4000), (12345, 5000, 15000)])
def test_step_ticks_are_whole_numbers(steps, interval, end):
    assert step_ticks(steps) == (interval, end)


def test_empty_chart_has_whole_number_step_ticks(chart):
    # It showed 0 2 5 7 10: "%d" of ticks at 2.5 and 7.5.
    assert chart.step_axis.tickType() == QValueAxis.TickType.TicksDynamic
    assert chart.step_axis.tickInterval() == 2 and chart.step_axis.max() == 10


def test_a_first_step_spike_does_not_flatten_the_curve(chart):
    chart.set_steps(3000)
    assert (chart.step_axis.min(), chart.step_axis.max(), chart.step_axis.tickInterval()) == (0, 3000, 1000)
    chart.add(1, 62.9)
    for step in range(2, 200):
        chart.add(step, 0.5 - step / 1000)
    chart.flush()
    assert isinstance(chart.loss_axis, QLogValueAxis)
    assert chart.loss_axis.min() <= 0.3 and chart.loss_axis.max() >= 62.9
    assert chart.loss_axis.min() >= 0.01  # decades, not down to zero: the tail keeps most of the height


def test_a_loss_below_zero_switches_to_a_linear_axis_and_a_new_run_back_to_log(chart):
    for step, loss in enumerate([3.0, 1.0, 0.2, -0.5], start=1):
        chart.add(step, loss)
    chart.flush()
    assert isinstance(chart.loss_axis, QValueAxis) and chart.loss_axis.min() <= -0.5 <= 3.0 <= chart.loss_axis.max()
    chart.clear()
    assert isinstance(chart.loss_axis, QLogValueAxis) and chart.series.count() == 0


def test_points_are_drawn_in_batches_not_one_redraw_per_step(chart, qtbot, monkeypatch):
    appends = []
    original = chart.series.append
    monkeypatch.setattr(chart.series, "append", lambda points: (appends.append(len(points)), original(points)))
    for step in range(1, 101):
        chart.add(step, 1.0 / step)
    assert chart.series.count() == 0  # queued, not yet drawn
    qtbot.waitUntil(lambda: chart.series.count() == 100, timeout=loss_chart.REDRAW_MS * 8)
    assert appends == [100]


def test_a_long_run_keeps_at_most_max_points_and_its_shape(chart):
    for step in range(1, 5001):
        chart.add(step, 10.0 / step)
        if step % 37 == 0:
            chart.flush()  # as the redraw timer would, part way through
    points = chart.points()
    assert MAX_POINTS // 2 <= len(points) <= MAX_POINTS
    xs = [x for x, _ in points]
    assert xs == sorted(xs) and xs[0] < 10 and xs[-1] > 4900
    assert points[0][1] > 1.0 and points[-1][1] < 0.01  # still falls from the start to the end
    highest = max(y for _, y in points)
    assert highest <= chart.loss_axis.max() <= 10.01 * highest  # the drawn curve fills the axis


def test_the_chart_follows_the_dark_palette(chart, qtbot):
    # It stayed white in the dark theme.
    chart.setPalette(palette("dark"))
    qtbot.waitUntil(lambda: _commonest(chart).lightness() < 80, timeout=5_000)
    dark = palette("dark")
    assert chart.chart().backgroundBrush().color() == dark.color(QPalette.ColorRole.Base)
    assert chart.step_axis.labelsBrush().color() == dark.color(QPalette.ColorRole.WindowText)
    assert chart.chart().titleBrush().color().lightness() > 180
    chart.setPalette(palette("light"))
    qtbot.waitUntil(lambda: _commonest(chart).lightness() > 200, timeout=5_000)
