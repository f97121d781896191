"""`lookalike duplicates` on real files through the CLI's main(): edited copies grouped, distinct photos not."""

import json
import os
import shutil

import pytest

from app.cli import main
from tests import photos


@pytest.fixture(scope="module")
def dup_library(tmp_path_factory, default_model_dir):
    """A library of 10 distinct scenes; two have every edit of photos.COPY_EDITS, one a byte copy."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "models").mkdir()
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    root = tmp_path_factory.mktemp("photos")
    library = tmp_path_factory.mktemp("lib") / "library"
    copies = {}
    for i in range(10):
        image = photos.scene(700 + i)
        original = photos.save(image, root / f"scene{i}.jpg", quality=92)
        if i < 2:
            copies[str(original)] = {str(photos.copy_edit(image, edit, root / "edits" / f"scene{i}"))
                                     for edit in photos.COPY_EDITS}
    shutil.copyfile(root / "scene5.jpg", root / "backup-scene5.jpg")
    env = pytest.MonkeyPatch()
    env.setenv("LOOKALIKE_CACHE_DIR", str(cache))
    assert main(["index", "--library", str(library), "-q", "--workers", "0", str(root)]) == 0
    yield library, root, copies
    env.undo()


def _groups(capsys, library, *extra):
    capsys.readouterr()
    assert main(["duplicates", "--library", str(library), "--json", *extra]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines]


def test_near_groups_edited_copies_with_their_original(dup_library, capsys):
    library, root, copies = dup_library
    groups = _groups(capsys, library)
    members = [{g["keep"], *g["others"]} for g in groups]
    for original, edits in copies.items():
        (group,) = [m for m in members if original in m]
        assert edits <= group, f"missing: {edits - group}"
    assert {str(root / "scene5.jpg"), str(root / "backup-scene5.jpg")} in members
    # distinct photos are never grouped: every group is one original with its copies
    assert len(groups) == 3
    grouped = set().union(*members)
    assert not grouped & {str(root / f"scene{i}.jpg") for i in (3, 4, 6, 7, 8, 9)}


def test_json_lines_shape_and_keeper(dup_library, capsys):
    library, root, copies = dup_library
    for group in _groups(capsys, library):
        assert set(group) == {"keep", "others", "score"}
        assert isinstance(group["keep"], str) and group["others"] and all(isinstance(p, str) for p in group["others"])
        assert 0.0 < group["score"] <= 1.0
        if group["keep"].endswith("scene0.jpg") or "scene0" in group["keep"]:
            # largest resolution first: the 640x480 PNG or JPEG original, never the resized copy
            assert "resized" not in group["keep"] and "crop" not in group["keep"]


def test_exact_finds_only_byte_copies(dup_library, capsys):
    library, root, _ = dup_library
    groups = _groups(capsys, library, "--strictness", "exact")
    # same pixels, same size: the older file (the original; the copy was made after it) is kept
    assert groups == [{"keep": str(root / "scene5.jpg"), "others": [str(root / "backup-scene5.jpg")], "score": 1.0}]


def test_keep_rule_and_text_output(dup_library, capsys):
    library, root, copies = dup_library
    biggest = _groups(capsys, library, "--keep", "biggest-file")
    for group in biggest:
        sizes = {p: os.path.getsize(p) for p in [group["keep"], *group["others"]]}
        assert sizes[group["keep"]] == max(sizes.values())
    capsys.readouterr()
    assert main(["duplicates", "--library", str(library)]) == 0
    out, err = capsys.readouterr()
    assert out.count("Group ") == 3 and "keep " in out
    assert "3 groups (near)" in err


def test_the_command_offers_exactly_the_engines_levels_and_rules():
    from app.cli import build_parser
    from engine.duplicates import KEEP_RULES, STRICTNESS

    args = build_parser().parse_args(["duplicates"])
    assert (args.strictness, args.keep) == ("near", "largest")
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices and "duplicates" in a.choices)
    options = {a.dest: a.choices for a in sub.choices["duplicates"]._actions if a.choices}
    assert set(options["strictness"]) == set(STRICTNESS) and set(options["keep"]) == set(KEEP_RULES)


def test_ctrl_c_cancels_the_search_cleanly(dup_library, capsys, monkeypatch):
    """The first Ctrl-C sets the cancel event the join checks between chunks; exit 130, one line."""
    import signal

    from engine import duplicates

    real = duplicates.MultiIndex.pairs

    def interrupted(self, *, progress=None, cancel=None, threads=None):
        os.kill(os.getpid(), signal.SIGINT)  # the person presses Ctrl-C during the join
        assert cancel is not None and cancel.is_set()
        return real(self, progress=progress, cancel=cancel, threads=threads)

    monkeypatch.setattr(duplicates.MultiIndex, "pairs", interrupted)
    library, _, _ = dup_library
    capsys.readouterr()
    before = signal.getsignal(signal.SIGINT)  # pytest's, or SIG_IGN in a background job
    assert main(["duplicates", "--library", str(library)]) == 130
    err = capsys.readouterr().err
    assert "Cancelling the duplicate search" in err and "cancelled" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGINT) == before  # the handler is put back
