"""Similarity in words (engine.similarity): the thresholds, their order, and what a search of planted copies reads."""

from __future__ import annotations

import json

import pytest

from engine import similarity
from engine.library import Library, Query
from engine.search import COPY_COSINE, SearchParams
from engine.similarity import (DEFAULT_FLOOR, LOOSE, SAME, SIMILAR, UNLIKE, VERY, describe, split_at)
from tests.similar_photos import indexed_planted


@pytest.mark.parametrize(("score", "level"), [
    (1.0, SAME), (0.95, SAME), (0.949, VERY), (0.82, VERY), (0.819, SIMILAR), (0.62, SIMILAR),
    (0.619, LOOSE), (0.45, LOOSE), (0.449, UNLIKE), (0.0, UNLIKE), (-0.3, UNLIKE)])
def test_feature_cosine_thresholds(score, level):
    assert describe(score, "features").level == level
    assert describe(score, None).level == level  # Hamming order: the score is the cosine too


@pytest.mark.parametrize(("score", "cosine", "level"), [
    (1.0, 0.99, SAME), (0.2, 0.96, SAME), (0.2, COPY_COSINE, VERY),  # a copy, told by its cosine
    (1.0, 0.5, VERY), (0.9, None, VERY), (0.899, 0.5, SIMILAR), (0.7, 0.5, SIMILAR),
    (0.699, 0.5, LOOSE), (0.45, 0.5, LOOSE), (0.449, 0.5, UNLIKE)])
def test_code_agreement_thresholds(score, cosine, level):
    assert describe(score, "code", cosine).level == level


def test_levels_are_ordered_and_worded():
    assert SAME > VERY > SIMILAR > LOOSE > UNLIKE and DEFAULT_FLOOR == SIMILAR
    assert [similarity.LABELS[level] for level in similarity.LEVELS] == [
        "Same photo", "Very similar", "Similar", "Loosely similar", "Not alike"]
    floors = [similarity.FEATURE_FLOORS[level] for level in (SAME, VERY, SIMILAR, LOOSE)]
    assert floors == sorted(floors, reverse=True)
    # in the code space a copy (ranked first there) never reads below a non-copy
    assert min(describe(0.0, "code", c).level for c in (COPY_COSINE, 0.97)) >= max(
        describe(s, "code", 0.5).level for s in (0.0, 0.5, 0.9, 1.0))


def test_split_at_is_the_first_result_below_the_floor():
    assert split_at([SAME, VERY, SIMILAR, LOOSE, UNLIKE], SIMILAR) == 3
    assert split_at([SAME, SAME], SAME) == 2
    assert split_at([LOOSE, SAME], SIMILAR) == 0
    assert split_at([], VERY) == 0


@pytest.fixture(scope="module")
def planted_library(tmp_path_factory, default_model_dir):
    return indexed_planted(tmp_path_factory.mktemp("similarity"), default_model_dir)


@pytest.mark.parametrize("rerank", ["auto", "code", "none"])
def test_planted_copies_read_alike_and_unrelated_photos_fall_below_the_line(planted_library, rerank):
    path, photos = planted_library
    with Library(path) as library:
        hits = library.search_query(Query((library.example_from_file(photos["query"]),)),
                                    SearchParams(k=20, rerank=rerank))
    words = {hit.path: hit.similarity for hit in hits}
    copies = [str(p) for p in photos["copies"].values()]
    unrelated = [str(p) for p in photos["unrelated"].values()]
    assert words[str(photos["query"])].level == SAME
    assert all(words[p].level >= VERY for p in copies), {p: words[p].label for p in copies}
    assert all(words[p].level < DEFAULT_FLOOR for p in unrelated), {p: words[p].label for p in unrelated}
    if rerank != "none":  # ranked by the score: the words never rise down the list
        levels = [hit.similarity.level for hit in hits]
        assert levels == sorted(levels, reverse=True)
        assert split_at(levels, DEFAULT_FLOOR) == 1 + len(copies)


def test_the_command_line_prints_the_words(planted_library, capsys):
    from app.cli import main

    path, photos = planted_library
    assert main(["search", "--library", str(path), "-k", "11", str(photos["query"])]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert "Same photo" in lines[0] and all("Not alike" in line or "Loosely" in line for line in lines[5:])
    assert main(["search", "--json", "--library", str(path), "-k", "11", str(photos["query"])]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert set(results[0]) >= {"path", "hamming", "score", "similarity"}  # a field added, none changed
    assert results[0]["similarity"] == "Same photo"
