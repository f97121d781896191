"""`lookalike eval` end to end on scikit-learn's digits: every kind of method, the report files."""

import json

import pytest

from trainer.run_eval import run_eval


@pytest.mark.slow
def test_eval_on_digits_writes_the_report_and_learned_beats_unsupervised(tmp_path, default_model_dir):
    result = run_eval("digits", ["dpsh", "itq", "sh", "dh"], [16], tmp_path / "out", model_dir=default_model_dir,
                      cache_dir=tmp_path / "cache", queries_per_class=15, train_size=300, database_size=450,
                      steps=300)
    rows = {row["method"]: row for row in result["rows"]}
    assert set(rows) == {"float cosine (no codes)", "dpsh", "itq", "sh", "dh"}
    for method in ("dpsh", "itq", "sh", "dh"):
        assert 0.0 < rows[method]["map_all"] <= 1.0 and rows[method]["bits"] == 16
    assert rows["dpsh"]["map_all"] > rows["itq"]["map_all"] + 0.05
    assert rows["dh"]["map_all"] > 0.2  # no collapse to one code (chance is 0.1)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(saved["rows"]) == 5
    table = (tmp_path / "out" / "results.md").read_text()
    assert "dpsh" in table and "itq" in table
    assert (tmp_path / "out" / "pr.png").stat().st_size > 1000
    # Features are cached: a second evaluation does not encode again.
    assert any((tmp_path / "cache").iterdir())
