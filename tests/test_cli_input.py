"""The command line refuses what makes no sense in one line (exit 2: the person's input; exit 3: the
library or machine), and says what a label import really did."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app import cli
from engine.index import Indexer
from engine.library import Library
from tests import photos


@pytest.fixture(scope="module")
def library(tmp_path_factory, default_model_dir):
    """A small indexed library, so that a bad option is the only thing wrong with a command."""
    base = tmp_path_factory.mktemp("cli-input")
    root = base / "photos"
    for i in range(6):
        photos.save(photos.scene(1200 + i, (320, 240)), root / f"p{i}.jpg")
    with Library(base / "library") as lib:
        lib.install_model(default_model_dir)
        Indexer(lib, workers=0).run([root])
    return base / "library", root


BAD_INPUT = [
    ["search", "-k", "0", "{photo}"],
    ["search", "-k", "-1", "{photo}"],
    ["search", "--radius", "-1", "{photo}"],
    ["search", "--pool", "0", "{photo}"],
    ["index", "--workers", "-3", "{root}"],
    ["index", "--batch-size", "0", "{root}"],
    ["status", "--limit", "-1"],
    ["model", "activate", "0"],
    ["train", "--bits", "0"],
    ["train", "--bits", "7"],
    ["train", "--steps", "-5"],
    ["train", "--mode", "full", "--epochs", "0"],
    ["train", "--mode", "full", "--size", "-1"],
    ["train", "--budget", "-5m"],
    ["train", "--budget", "soon"],
    ["train", "--seed", "-1"],
    ["labels", "import", "--per-photo", "0", "{root}"],
    ["eval", "--dataset", "digits", "--bits", "0,16"],
    ["eval", "--dataset", "digits", "--queries-per-class", "0"],
    ["search", "-k", "many", "{photo}"],
    ["no-such-command"],
]


@pytest.mark.parametrize("words", BAD_INPUT, ids=[" ".join(w).replace("{", "").replace("}", "") for w in BAD_INPUT])
def test_a_nonsensical_option_is_refused_in_one_line_with_exit_2(library, words, monkeypatch, capsys):
    library_dir, root = library
    monkeypatch.setenv("LOOKALIKE_LIBRARY", str(library_dir))
    argv = [w.format(photo=root / "p0.jpg", root=root) for w in words]
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == cli.EXIT_USER
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: "), err
    assert "Traceback" not in err


def _run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_exporting_labels_into_a_missing_folder_is_one_line(library, tmp_path):
    library_dir, _ = library
    proc = _run("labels", "export", str(tmp_path / "no" / "such" / "dir" / "x.csv"), "--library", str(library_dir))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: cannot write ") and "No such file" in lines[0]


def test_a_label_import_counts_duplicates_and_conflicts_and_says_how_they_were_resolved(library, tmp_path):
    import shutil

    library_dir, root = library
    copy = tmp_path / "library"
    shutil.copytree(library_dir, copy)
    rows = ["a,b,label"]
    rows += [f"p0.jpg,p1.jpg,similar"] * 3  # the same pair three times
    rows += ["p1.jpg,p0.jpg,1"]  # and once more, the other way round
    rows += ["p2.jpg,p3.jpg,similar", "p3.jpg,p2.jpg,dissimilar"]  # a contradiction: the last line wins
    rows += ["p4.jpg,p5.jpg,dissimilar"]
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    try:
        proc = _run("labels", "import", str(root / "pairs.csv"), "--library", str(copy))
    finally:
        (root / "pairs.csv").unlink()
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line == ("Imported 3 labelled pairs from 7 lines (3 new, 0 replaced a different label, 0 already so); "
                    "3 lines repeated a pair; 1 pair was labelled both similar and dissimilar: "
                    "its last line's label was kept")
    exported = _run("labels", "export", "--library", str(copy)).stdout.splitlines()
    pairs = {(frozenset(line.split(",")[:2]), line.split(",")[2]) for line in exported[1:]}
    assert pairs == {(frozenset({f"{root}/p0.jpg", f"{root}/p1.jpg"}), "similar"),
                     (frozenset({f"{root}/p2.jpg", f"{root}/p3.jpg"}), "dissimilar"),
                     (frozenset({f"{root}/p4.jpg", f"{root}/p5.jpg"}), "dissimilar")}


def test_a_refused_label_import_counts_its_problems_by_kind(library, tmp_path):
    library_dir, root = library
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(f"a,b,label\n{root}/p0.jpg,{root}/nope.jpg,similar\n{root}/p1.jpg,{root}/gone.jpg,1\n"
                        f"{root}/p0.jpg,{root}/p0.jpg,similar\n{root}/p0.jpg,{root}/p2.jpg,maybe\n")
    proc = _run("labels", "import", str(csv_file), "--library", str(library_dir))
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == ("lookalike: nothing imported: 2 paths that are not indexed photos, 1 pair of a photo with "
                    "itself, 1 unknown label (the lines are listed above)")


@pytest.mark.parametrize("change", [{"format": 2}, {"resize": "stretch"}, {"input_size": "big"}],
                         ids=["format", "resize", "input_size"])
def test_an_unknown_manifest_format_or_resize_is_one_line_with_exit_3(library, tmp_path, change):
    import shutil

    library_dir, root = library
    copy = tmp_path / "library"
    shutil.copytree(library_dir, copy)
    manifest_path = copy / "models" / "0001" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(change)
    manifest_path.write_text(json.dumps(manifest))
    proc = _run("search", str(root / "p0.jpg"), "--library", str(copy))
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: ") and "manifest" in lines[0]
    assert os.path.basename(str(manifest_path.parent)) in lines[0]
