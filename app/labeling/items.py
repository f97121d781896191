"""What labelling passes around: the two label values, where a label came from, and the records the service hands the views."""

from __future__ import annotations

from dataclasses import dataclass

from engine.store import LabelRow
from engine.suggest import Boundary, PairSuggestion

SIMILAR, DISSIMILAR = 1, -1
PAIR_SOURCE = "pairs"  # labels written in the pair view
FEEDBACK_SOURCE = "feedback"  # labels written from a result's menu


@dataclass(frozen=True)
class PairItem:
    """A suggestion as the view shows it: the pair and its cached thumbnails."""

    pair: PairSuggestion
    thumb_a: str | None
    thumb_b: str | None
    boundary: Boundary | None


@dataclass(frozen=True)
class SuggestionBatch:
    """The worker's answer to a request for pairs; ``empty`` says why there are none."""

    items: list[PairItem]
    empty: str | None
    label_count: int


@dataclass(frozen=True)
class LabelEntry:
    """A label as the labels table shows it."""

    row: LabelRow
    thumb_a: str | None
    thumb_b: str | None
