"""How alike a search result is, in words a person reads: one mapping from a result's score, for the window and the CLI.

A result's score is the fine stage's: the feature cosine (re-rank by features, and with
Hamming only the cosine to the query too) or, for a version that re-ranks in its head's own
space, the code agreement in [-1, 1], with the feature cosine beside it for the copies that
space ranks first (engine.search.COPY_COSINE). The levels are calibrated on the default model
(docs/BENCHMARKS.md, "Similarity in words": tests/bench/bench_similarity_words.py) and pinned
by tests/test_similarity.py. They follow the ranking: with re-ranking on, a result never reads
more alike than one ranked above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.search import COPY_COSINE

# Levels: a higher number is more alike.
SAME, VERY, SIMILAR, LOOSE, UNLIKE = 4, 3, 2, 1, 0
LEVELS = (SAME, VERY, SIMILAR, LOOSE, UNLIKE)
LABELS = {SAME: "Same photo", VERY: "Very similar", SIMILAR: "Similar", LOOSE: "Loosely similar",
          UNLIKE: "Not alike"}
EXPLANATIONS = {
    SAME: "the same picture: resized, recompressed, rotated, mirrored or lightly retouched",
    VERY: "a heavier edit of the same picture, or another shot of the same scene",
    SIMILAR: "the same kind of picture: subject, colours and layout alike",
    LOOSE: "something in common, little more",
    UNLIKE: "the nearest the library has, but not alike",
}

# The lowest feature cosine of each level (default model). Copies scored 0.93 (median) and
# 0.95-1.0 for light edits; a second shot of one scene 0.90; unrelated real photos at most
# 0.50 (95% below 0.33); generated scenes of one style 0.45-0.87 (median 0.64).
FEATURE_FLOORS = {SAME: 0.95, VERY: 0.82, SIMILAR: 0.62, LOOSE: 0.45}
# The lowest code agreement of each level below SAME, for a head's own space (a copy is told by
# its feature cosine there, as that space ranks it). With the default 64-bit head unrelated
# real photos agreed at most 0.51 (95% below 0.30), copies 1.0 (median).
CODE_FLOORS = {VERY: 0.90, SIMILAR: 0.70, LOOSE: 0.45}

# Where the window draws the line between the lookalikes and the rest by default
DEFAULT_FLOOR = SIMILAR


@dataclass(frozen=True)
class Similarity:
    """A result's level (SAME ... UNLIKE) and its words."""

    level: int

    @property
    def label(self) -> str:
        return LABELS[self.level]

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self.level]

    def at_least(self, floor: int) -> bool:
        return self.level >= floor


def _level(value: float, floors: dict[int, float]) -> int:
    for level in LEVELS:
        if level in floors and value >= floors[level]:
            return level
    return UNLIKE


def describe(score: float, space: str | None = "features", cosine: float | None = None) -> Similarity:
    """The words for a result's ``score`` in the fine stage ``space`` ("features", "code", or
    None for Hamming order, whose score is the feature cosine); ``cosine``, the feature cosine
    to the query, tells a copy in the code space (ranked first there, as here)."""
    if space == "code":
        if cosine is not None and cosine >= COPY_COSINE:
            return Similarity(max(VERY, _level(cosine, FEATURE_FLOORS)))
        return Similarity(_level(score, CODE_FLOORS))
    return Similarity(_level(score, FEATURE_FLOORS))


def split_at(levels, floor: int) -> int:
    """How many results lead before the first one below ``floor`` (levels best first)."""
    for position, level in enumerate(levels):
        if level < floor:
            return position
    return len(levels)
