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


@pytest.mark.slow
def test_full_mode_eval_fine_tunes_per_method_and_reports_its_features(tmp_path, default_model_dir):
    """Full mode on digits at 32 px: the tuned network codes queries and database itself."""
    result = run_eval("digits", ["dlbhc", "itq"], [16], tmp_path / "out", model_dir=default_model_dir,
                      cache_dir=tmp_path / "cache", queries_per_class=5, train_size=100, database_size=200,
                      mode="full", full_options={"input_size": 32, "epochs": 2, "tuned_blocks": 2})
    rows = {row["method"]: row for row in result["rows"]}
    assert rows["dlbhc"]["mode"] == "full" and rows["itq"]["mode"] == "head"  # nothing to fine-tune for ITQ
    assert 0.0 < rows["dlbhc"]["map_all"] <= 1.0
    assert 0.0 < rows["dlbhc"]["feature_map_all"] <= 1.0
    assert rows["dlbhc"]["map_all"] > 0.2  # chance is 0.1: the tuned codes carry the classes
    report = (tmp_path / "out" / "results.md").read_text()
    assert "dlbhc (full)" in report and "tuned features" in report
