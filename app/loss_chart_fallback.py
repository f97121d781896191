"""The loss chart's stand-in when QtCharts (PySide6-Addons, part of the training extra) is not installed."""

from __future__ import annotations

import math

from PySide6.QtWidgets import QLabel, QWidget

REDRAW_MS = 250


class LossChart(QLabel):
    """LossChart's interface with a line of text instead of a curve: the latest loss."""

    series = step_axis = loss_axis = None  # no chart objects here

    def __init__(self, parent: QWidget | None = None, *, redraw_ms: int | None = REDRAW_MS):
        super().__init__(parent)
        self.setWordWrap(True)
        self._points: list[tuple[float, float]] = []
        self._steps = 0
        self.clear()

    def clear(self) -> None:
        self._points.clear()
        self._steps = 0
        self.setText("Training loss: the curve needs PySide6-Addons (part of the training extra).")

    def set_steps(self, steps: int) -> None:
        self._steps = max(self._steps, steps)

    def add(self, step: float, loss: float) -> None:
        if math.isfinite(loss):
            self._points.append((float(step), float(loss)))

    def flush(self) -> None:
        if self._points:
            step, loss = self._points[-1]
            of = f" of {self._steps}" if self._steps else ""
            self.setText(f"Training loss {loss:.4g} at step {step:.0f}{of}")

    def points(self) -> list[tuple[float, float]]:
        return list(self._points)

    @property
    def logarithmic(self) -> bool:
        return False
