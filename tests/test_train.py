"""Learning from a person's labels, end to end: import pairs, train, unseen queries rank better, roll back."""

import itertools
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.codes import codes_from_logits
from engine.index import Indexer
from engine.library import Library
from trainer.data import load_digits_images
from trainer.evaluate import mean_average_precision
from trainer.fit import HeadConfig, fit_head
from trainer.library_train import PairSet, pair_accuracy

LABELLED_PER_CLASS = 12
QUERIES_PER_CLASS = 6
DATABASE_PER_CLASS = 18


@pytest.fixture(scope="module")
def digits_library(tmp_path_factory, default_model_dir):
    """A library of digit photos (PNG files) whose class only the test knows."""
    images, labels = load_digits_images()
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("digits")
    classes = {}
    per_class = LABELLED_PER_CLASS + QUERIES_PER_CLASS + DATABASE_PER_CLASS
    for digit in range(10):
        chosen = rng.choice(np.flatnonzero(labels == digit), per_class, replace=False)
        for n, index in enumerate(chosen):
            role = "labelled" if n < LABELLED_PER_CLASS else "query" if n < LABELLED_PER_CLASS + QUERIES_PER_CLASS else "db"
            path = root / role / f"d{digit}_{index:04d}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(images[index]).resize((64, 64), Image.Resampling.NEAREST).save(path)
            classes[str(path)] = digit
    lib_dir = tmp_path_factory.mktemp("lib") / "library"
    with Library(lib_dir) as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=2).run([root])
    # The person labels pairs among the labelled photos: similar within a digit, some dissimilar.
    labelled = sorted(p for p in classes if "/labelled/" in p)
    lines = ["a,b,label"]
    for k, a in enumerate(labelled):
        for b in labelled[k + 1:]:
            same = classes[a] == classes[b]
            if same or rng.random() < 0.08:
                lines.append(f"{a},{b},{'similar' if same else 'dissimilar'}")
    (root / "pairs.csv").write_text("\n".join(lines) + "\n")
    return lib_dir, root, classes


def _unseen_query_map(lib_dir, classes) -> float:
    """mAP of Hamming ranking for queries the labels never mentioned, over the db photos."""
    with Library(lib_dir, create=False) as lib:
        codes = lib.codes()
        slot = {p: lib.store.image_by_path(p).slot for p in classes}
    queries = [p for p in classes if "/query/" in p]
    database = [p for p in classes if "/db/" in p]
    return mean_average_precision(codes[[slot[p] for p in queries]], codes[[slot[p] for p in database]],
                                  np.array([classes[p] for p in queries]), np.array([classes[p] for p in database]))


def _cli(lib_dir, *args):
    env = dict(os.environ, LOOKALIKE_LIBRARY=str(lib_dir))
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_dpsh_from_labelled_pairs_beats_the_zero_label_default_on_unseen_queries(digits_library):
    lib_dir, root, classes = digits_library
    before = _unseen_query_map(lib_dir, classes)
    assert _cli(lib_dir, "labels", "import", str(root / "pairs.csv")).returncode == 0
    proc = _cli(lib_dir, "train", "--method", "dpsh", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert any(e["event"] == "epoch" for e in events)
    done = events[-1]
    assert done["activated"] and done["held_out_accuracy_after"] >= done["held_out_accuracy_before"]
    assert done["percentile_after"] >= done["percentile_before"] and done["rerank"] == "code"
    assert {"top10_before", "top10_after", "map_before", "map_after", "gate_searches"} <= set(done)
    after = _unseen_query_map(lib_dir, classes)
    assert after >= before + 0.08, (before, after)

    # What `search` shows follows the head's space now, not the backbone's features.
    with Library(lib_dir, create=False) as lib:
        assert lib.active_model().manifest["rerank"] == "code"
    queries = sorted(p for p in classes if "/query/" in p)[::6]
    auto = _cli(lib_dir, "search", "--json", "-k", "30", *queries).stdout
    assert auto == _cli(lib_dir, "search", "--json", "-k", "30", "--rerank", "code", *queries).stdout
    assert auto != _cli(lib_dir, "search", "--json", "-k", "30", "--rerank", "features", *queries).stdout

    # Rolling back restores the zero-label codes exactly.
    assert _cli(lib_dir, "model", "rollback").returncode == 0
    assert _unseen_query_map(lib_dir, classes) == pytest.approx(before)


def test_the_gate_uses_the_search_figures_of_pairs_nothing_else_saw(digits_library, tmp_path, monkeypatch):
    """Selection and gate get disjoint pairs; activation follows the gate's search figures, not pair accuracy."""
    import trainer.library_train as lt
    from app.cli import _check_summary
    from engine.labels import import_csv

    lib_src, root, _ = digits_library
    shutil.copytree(lib_src, tmp_path / "library")
    with Library(tmp_path / "library", create=False) as lib:
        import_csv(lib.store, root / "pairs.csv")
        data = lt.labelled_photos(lib, 0)
    pairs = [{(int(a), int(b)) for a, b in zip(p.i, p.j)} for p in (data.train, data.select, data.gate)]
    assert all(len(x & y) == 0 for x, y in itertools.combinations(pairs, 2)) and pairs[1] and pairs[2]

    seen = {"select": [], "gate": []}
    real_selection, real_gate = lt.selection_percentile, lt.gate_figures

    def selection(check, *args):
        seen["select"].append(check)
        return real_selection(check, *args)

    def gate(library, data, check, *args):
        seen["gate"].append(check)
        figures = real_gate(library, data, check, *args)
        # the candidate (second call) is called better by pair accuracy, worse by where partners rank
        if len(seen["gate"]) == 2:
            figures.update(percentile=0.0, pair_accuracy=1.0)
        return figures

    monkeypatch.setattr(lt, "selection_percentile", selection)
    monkeypatch.setattr(lt, "gate_figures", gate)
    events = []
    with Library(tmp_path / "library", create=False) as lib:
        active = lib.active_model().id
        report = lt.train_library(lib, HeadConfig(method="dpsh", bits=64, steps=60), progress=events.append)
        assert lib.active_model().id == active != report["version"]  # not activated
    gate_queries = {int(q) for q in data.check(data.gate).queries}
    select_queries = {int(q) for q in data.check(data.select).queries}
    assert all({int(q) for q in check.queries} == select_queries for check in seen["select"])
    assert len(seen["select"]) == 31 and len(seen["gate"]) == 2
    assert all({int(q) for q in check.queries} == gate_queries for check in seen["gate"])
    assert not report["activated"] and report["percentile_after"] == 0.0
    assert report["held_out_accuracy_after"] == 1.0 > report["held_out_accuracy_before"]
    evaluated = next(e for e in events if e["event"] == "evaluated")
    assert not evaluated["not_worse"] and not evaluated["accepted"]
    assert "ranks ahead of" in _check_summary(report) and "in the top 10" in _check_summary(report)


def test_ten_pairs_all_train_and_the_new_version_is_said_to_be_unchecked(digits_library, tmp_path):
    lib_src, root, classes = digits_library
    shutil.copytree(lib_src, tmp_path / "library")
    with Library(tmp_path / "library", create=False) as lib:  # other tests of this module labelled it
        for row in lib.store.label_rows():
            lib.store.delete_label(row.hash_a, row.hash_b)
    labelled = sorted(p for p in classes if "/labelled/" in p)
    by_digit = {d: [p for p in labelled if classes[p] == d] for d in range(5)}
    lines = ["a,b,label"] + [f"{by_digit[d][0]},{by_digit[d][1]},similar" for d in range(5)]
    lines += [f"{by_digit[d][0]},{by_digit[(d + 1) % 5][0]},dissimilar" for d in range(5)]
    (tmp_path / "ten.csv").write_text("\n".join(lines) + "\n")
    assert _cli(tmp_path / "library", "labels", "import", str(tmp_path / "ten.csv")).returncode == 0
    proc = _cli(tmp_path / "library", "train", "--steps", "20", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    start, done = events[0], events[-1]
    assert (start["train_pairs"], start["selection_pairs"], start["gate_pairs"]) == (10, 0, 0)
    assert done["activated"] and np.isnan(done["percentile_after"]) and np.isnan(done["top10_after"])
    from app.cli import _check_summary

    assert "unchecked" in _check_summary(done)


def test_training_without_enough_labels_is_a_clear_user_error(tmp_path, default_model_dir):
    with Library(tmp_path / "lib") as lib:
        lib.install_model(default_model_dir)
    proc = _cli(tmp_path / "lib", "train")
    assert proc.returncode == 2 and "needs at least" in proc.stderr and "Traceback" not in proc.stderr


def test_pair_accuracy_picks_the_threshold_on_training_pairs():
    # Four 64-bit codes: 0 and 1 are 2 bits apart, 2 and 3 are 40 bits apart.
    codes = np.zeros((4, 1), dtype=np.uint64)
    codes[1, 0] = 0b11
    codes[3, 0] = (1 << 40) - 1
    train = PairSet(np.array([0, 2]), np.array([1, 3]), np.array([1, -1]))
    test = PairSet(np.array([0, 2, 0]), np.array([1, 3, 3]), np.array([1, -1, 1]))
    # Threshold from training: 2 <= t < 40; the third test pair (40 bits) is then called dissimilar.
    assert pair_accuracy(codes, train, test) == pytest.approx(2 / 3)


def test_a_head_fit_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((120, 16)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    groups = np.repeat(np.arange(6), 20)
    config = HeadConfig(method="dpsh", bits=8, steps=30, seed=3)
    w1, b1, _ = fit_head(features, groups, config)
    w2, b2, _ = fit_head(features, groups, config)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(b1, b2)


def test_a_head_fit_keeps_the_head_the_held_out_score_likes_best():
    """A small label set that training would over-fit leaves the starting head as it was."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((120, 16)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    groups = np.repeat(np.arange(6), 20)
    start = (rng.standard_normal((16, 8)).astype(np.float32), np.zeros(8, np.float32))
    config = HeadConfig(method="dpsh", bits=8, steps=60, seed=3)
    start_codes = codes_from_logits(features @ start[0] + start[1])

    def likes_the_start(w, b):  # share of photos whose code is unchanged
        return float(np.mean(np.all(codes_from_logits(features @ w + b) == start_codes, axis=1)))

    w, b, info = fit_head(features, groups, config, init=start, score=likes_the_start)
    assert info["best_step"] == 0 and info["held_out_accuracy"] == 1.0
    np.testing.assert_array_equal(codes_from_logits(features @ w + b), start_codes)

    calls = []

    def likes_progress(w, b):  # every check scores higher than the one before
        calls.append(1)
        return float(len(calls))

    w, b, info = fit_head(features, groups, config, init=start, score=likes_progress)
    assert info["best_step"] == 60 and len(calls) == 1 + 30  # the start, then SCORE_CHECKS checks
    w_plain, b_plain, _ = fit_head(features, groups, config, init=start)
    np.testing.assert_array_equal(w, w_plain)  # the last head, as without a score


def test_a_new_code_length_writes_a_working_model(digits_library, tmp_path):
    lib_dir, root, classes = digits_library
    assert _cli(lib_dir, "labels", "import", str(root / "pairs.csv")).returncode == 0
    proc = _cli(lib_dir, "train", "--bits", "48", "--steps", "200", "--force", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    query = next(p for p in classes if "/query/" in p)
    out = json.loads(_cli(lib_dir, "search", "--json", "-k", "3", query).stdout)
    assert out["results"][0]["path"] == query and out["results"][0]["hamming"] == 0
    with Library(lib_dir, create=False) as lib:
        assert lib.active_model().bits == 48


# ------------------------------------------------------------------ full mode


def test_full_mode_fine_tunes_exports_and_encodes_the_library_again(digits_library, tmp_path):
    lib_src, root, classes = digits_library
    lib_dir = tmp_path / "library"
    shutil.copytree(lib_src, lib_dir)
    assert _cli(lib_dir, "labels", "import", str(root / "pairs.csv")).returncode == 0
    with Library(lib_dir, create=False) as lib:
        old = lib.active_model()
    proc = _cli(lib_dir, "train", "--mode", "full", "--epochs", "2", "--size", "64", "--force", "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    phases = {e["phase"] for e in events if e["event"] == "phase"}
    assert phases == {"decode", "train", "export", "encode"}
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2] and all(0 <= e["held_out_accuracy"] <= 1 for e in epochs)
    done = events[-1]
    assert done["event"] == "done" and done["activated"] and done["device"] == "cpu"

    with Library(lib_dir, create=False) as lib:
        model = lib.active_model()
        assert model.id == done["version"] and model.backbone_id != old.backbone_id
        assert model.manifest["input_size"] == 64 and model.manifest["head"]["mode"] == "full"
        assert model.manifest["metrics"]["parity"]["bit_agreement"] >= 0.99
        assert "held_out_pair_accuracy" in model.manifest["metrics"]
        # the space its selection pairs favoured, and the figures of both
        assert model.manifest["rerank"] == done["rerank"] in ("features", "code")
        assert set(model.manifest["metrics"]["selection_percentile_by_space"]) == {"features", "code"}
        assert 0 <= done["percentile_after"] <= 1 and 0 <= done["top10_after"] <= 1
        n = lib.store.next_slot
        features = np.asarray(lib.features(), dtype=np.float32)
        assert features.shape == (n, 1280) and np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-2)
    # A query is decoded and encoded by the new network exactly as its indexed copy was.
    query = next(p for p in classes if "/query/" in p)
    out = json.loads(_cli(lib_dir, "search", "--json", "-k", "3", query).stdout)
    assert out["results"][0]["path"] == query and out["results"][0]["hamming"] == 0

    # Rolling back needs no decoding: the old backbone's features are still there.
    assert _cli(lib_dir, "model", "rollback").returncode == 0
    with Library(lib_dir, create=False) as lib:
        assert lib.active_model().id == old.id


def test_choose_device_prefers_cuda_and_falls_back_to_the_cpu(monkeypatch):
    import torch

    from engine.errors import EnvironmentProblem
    from trainer.full import choose_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device("auto").type == "cpu"
    assert choose_device("cpu").type == "cpu"
    with pytest.raises(EnvironmentProblem, match="no CUDA device"):
        choose_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")
    assert choose_device("auto").type == "cuda"
    assert choose_device("cpu").type == "cpu"


def test_a_full_fit_is_deterministic_for_a_seed():
    from trainer.full import FullConfig, fit_full

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    groups = np.repeat(np.arange(3), 4)
    config = FullConfig(bits=8, input_size=32, epochs=1, batch_size=6, seed=5, device="cpu")
    first, _ = fit_full(pixels, groups, config)
    second, _ = fit_full(pixels, groups, config)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch_equal(a, b), name


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_ninh_divides_and_encodes_learned_features_only():
    """Full mode masks the head (bit k sees slice k); head mode learns the folded map whole."""
    from trainer.fit import initial_head

    features = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    config = HeadConfig(method="ninh", bits=4, seed=0)
    _, _, mask = initial_head(features, config, learned_features=True)
    assert mask.shape == (12, 4) and mask.sum(dim=1).eq(1).all()  # each feature feeds one bit
    assert mask[:3, 0].eq(1).all() and mask[3:, 0].eq(0).all()
    weight, _, mask = initial_head(features, config, learned_features=False)
    assert mask is None and weight.shape == (12, 4)
