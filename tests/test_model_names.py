"""Model versions named for people (engine.models.plain_name), the technical name kept for the tooltip."""

from __future__ import annotations

import datetime as dt

from engine.models import plain_name, technical_name

DEFAULT = {"name": "efficientnet-lite0-itq", "bits": 64, "head": {"kind": "itq", "fitted_on": 295}}
TRAINED = {"name": "efficientnet-lite0-dpsh", "bits": 64, "rerank": "code",
           "head": {"kind": "dpsh", "mode": "head", "pairs": 36, "fitted_on": 70}}


def test_zero_label_versions_are_the_default_model():
    assert plain_name(DEFAULT, "2026-12-02T10:00:00+00:00") == "Default model"
    assert plain_name({"name": "x", "head": {"kind": "lsh"}}) == "Default model"


def test_a_trained_version_says_how_many_pairs_and_when():
    today = dt.date(2026, 12, 5)
    assert plain_name(TRAINED, "2026-12-02T12:00:00+00:00", today=today) == "Trained on 36 pairs, 2 Dec"
    assert plain_name(TRAINED, "2025-11-30T12:00:00+00:00", today=today) == "Trained on 36 pairs, 30 Nov 2025"
    assert plain_name({"head": {"pairs": 1}}, "not a date") == "Trained on 1 pair"


def test_the_technical_name_keeps_what_the_plain_one_leaves_out():
    assert technical_name(2, DEFAULT) == "v2 efficientnet-lite0-itq, 64-bit codes, itq head, re-ranked by features"
    assert technical_name(5, TRAINED) == ("v5 efficientnet-lite0-dpsh, 64-bit codes, dpsh head (head mode), "
                                          "re-ranked by code")
