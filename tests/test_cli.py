"""The `lookalike` command line as other tools use it: its output contract and its errors."""

import json
import os
import subprocess
import sys

import pytest

from tests import photos


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory, default_model_dir):
    """Environment for CLI subprocesses: a prebuilt default model in the cache, a fresh library."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "models").mkdir()
    os.symlink(default_model_dir, cache / "models" / "efficientnet-lite0-lsh-64")
    env = dict(os.environ)
    env["LOOKALIKE_CACHE_DIR"] = str(cache)
    env["LOOKALIKE_LIBRARY"] = str(tmp_path_factory.mktemp("lib") / "library")
    return env


def run(env, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"lookalike {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def indexed(cli_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i in range(12):
        photos.save(photos.scene(300 + i), root / f"p{i:02d}.jpg", quality=90)
    photos.broken_files(root / "broken")
    run(cli_env, "index", "--json", "--workers", "2", str(root))
    return root


def test_version(cli_env):
    out = run(cli_env, "--version").stdout
    assert out.startswith("lookalike ")


def test_index_reports_counts_as_json(cli_env, indexed):
    report = json.loads(run(cli_env, "index", "--json", str(indexed)).stdout)
    assert report["unchanged"] == 16 and report["added"] == 0 and not report["cancelled"]


def test_a_sub_folder_named_with_its_root_is_indexed_once_and_said_so(cli_env, indexed):
    proc = run(cli_env, "index", str(indexed), str(indexed / "broken"))
    assert "16 unchanged" in proc.stderr and "0 reused" in proc.stderr
    assert f"{indexed / 'broken'} is inside {indexed}: indexed as part of it" in proc.stderr
    roots = json.loads(run(cli_env, "roots", "--json").stdout)
    assert [root["path"] for root in roots] == [str(indexed)]


def test_search_json_contract(cli_env, indexed):
    queries = [str(indexed / "p03.jpg"), str(indexed / "p07.jpg")]
    proc = run(cli_env, "search", "--json", "-k", "5", *queries)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2
    for query, line in zip(queries, lines):
        obj = json.loads(line)
        assert obj["query"] == query
        assert len(obj["results"]) == 5
        assert set(obj["results"][0]) == {"path", "hamming", "score", "similarity"}  # similarity: added, in words
        assert obj["results"][0]["path"] == query and obj["results"][0]["hamming"] == 0
        scores = [r["score"] for r in obj["results"]]
        assert scores == sorted(scores, reverse=True)


def test_status_json_lists_skipped_files_with_reasons(cli_env, indexed):
    status = json.loads(run(cli_env, "status", "--json").stdout)
    assert status["images"] == 12 and status["skipped"] == 4
    assert status["model"]["bits"] == 64
    reasons = {os.path.basename(s["path"]): s["reason"] for s in status["skipped_files"]}
    assert reasons["empty.jpg"] == "empty file"
    text = run(cli_env, "status").stdout
    assert "empty.jpg: empty file" in text


@pytest.mark.parametrize("case", ["missing", "not-an-image", "empty-library", "no-library", "not-a-folder"])
def test_user_mistakes_give_one_line_and_no_traceback(cli_env, indexed, tmp_path, case):
    env = dict(cli_env)
    if case == "missing":
        args = ["search", str(tmp_path / "nope.jpg")]
    elif case == "not-an-image":
        (tmp_path / "list.jpg").write_text("milk, eggs")
        args = ["search", str(tmp_path / "list.jpg")]
    elif case == "empty-library":
        run(env, "model", "build", "--library", str(tmp_path / "empty"))
        args = ["search", "--library", str(tmp_path / "empty"), str(indexed / "p01.jpg")]
    elif case == "no-library":
        args = ["search", "--library", str(tmp_path / "none"), str(indexed / "p01.jpg")]
    else:
        args = ["index", str(indexed / "p01.jpg")]
    proc = run(env, *args, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: ")


def test_search_does_not_import_torch(cli_env, indexed):
    code = (
        "import sys, app.cli\n"
        f"rc = app.cli.main(['search', '--json', {str(indexed / 'p00.jpg')!r}])\n"
        "assert rc == 0\n"
        "print('torch' in sys.modules, 'PySide6' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env, capture_output=True, text=True, check=True)
    assert proc.stderr.strip().splitlines()[-1] == "False False"


def test_model_list_and_refit(cli_env, indexed):
    too_few = run(cli_env, "model", "refit", "--kind", "itq", check=False)
    assert too_few.returncode != 0 and "Traceback" not in too_few.stderr
    run(cli_env, "model", "refit", "--kind", "lsh")
    models = json.loads(run(cli_env, "model", "list", "--json").stdout)
    active = [m for m in models if m["active"]]
    assert len(active) == 1 and active[0]["head"]["kind"] == "lsh" and len(models) == 2
    # Search still answers, from codes made from the stored features.
    out = json.loads(run(cli_env, "search", "--json", str(indexed / "p05.jpg")).stdout)
    assert out["results"][0]["path"] == str(indexed / "p05.jpg")


def test_rollback_returns_to_the_previous_model_and_search_still_works(cli_env, indexed):
    before = [m for m in json.loads(run(cli_env, "model", "list", "--json").stdout) if m["active"]][0]
    run(cli_env, "model", "refit", "--kind", "lsh")
    run(cli_env, "model", "rollback")
    after = [m for m in json.loads(run(cli_env, "model", "list", "--json").stdout) if m["active"]][0]
    assert after["version"] == before["version"]
    out = json.loads(run(cli_env, "search", "--json", str(indexed / "p02.jpg")).stdout)
    assert out["results"][0]["path"] == str(indexed / "p02.jpg")


def test_labels_import_reports_problems_in_one_error(cli_env, indexed, tmp_path):
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(f"a,b,label\n{indexed}/p00.jpg,{indexed}/nope.jpg,similar\n")
    proc = run(cli_env, "labels", "import", str(csv_file), check=False)
    assert proc.returncode == 2 and "line 2" in proc.stderr and "Traceback" not in proc.stderr
    csv_file.write_text(f"a,b,label\n{indexed}/p00.jpg,{indexed}/p01.jpg,similar\n")
    run(cli_env, "labels", "import", str(csv_file))
    exported = run(cli_env, "labels", "export").stdout.splitlines()
    assert exported == ["a,b,label", f"{indexed}/p00.jpg,{indexed}/p01.jpg,similar"]


def test_sigterm_stops_a_command_like_ctrl_c_and_runs_its_cleanup(monkeypatch, capsys):
    """The retrain dialog cancels with terminate(): the trainer must unwind, not vanish."""
    import signal
    import time

    from app import cli

    unwound = []

    def long_job(args):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
            return 0
        finally:
            unwound.append(True)

    monkeypatch.setattr(cli, "cmd_status", long_job)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["status"]) == cli.EXIT_CANCELLED
    assert unwound == [True]
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_photo_alone_opens_the_window_searching_for_it(monkeypatch, tmp_path):
    """What the desktop entry's "Open with Lookalike" runs: `lookalike PHOTO`."""
    import app.main
    from app import cli, entry

    photo = tmp_path / "status"  # a file named like a command is still a command
    photo.write_bytes(b"x")
    opened = []
    monkeypatch.setattr(app.main, "main", lambda argv=None, query=None: opened.append(query) or 0)
    photos.save(photos.scene(7), tmp_path / "beach.jpg")
    monkeypatch.chdir(tmp_path)
    assert entry.main(["beach.jpg"]) == 0
    assert opened == [str(tmp_path / "beach.jpg")]
    assert entry.main([]) == 0  # no arguments: the window, with no query
    assert opened == [str(tmp_path / "beach.jpg"), None]
    monkeypatch.setenv("LOOKALIKE_LIBRARY", str(tmp_path / "no-library"))
    assert entry.main(["status"]) == cli.EXIT_USER  # the command, though ./status exists
    with pytest.raises(SystemExit):  # not a photo, not a command: argparse's usage error
        entry.main(["no-such-file.jpg"])
    assert len(opened) == 2


def test_the_command_line_alone_never_opens_the_window(capsys):
    """`app.cli` is the commands only: no arguments is its help, and it loads no Qt."""
    from app import cli

    assert cli.main([]) == 0
    assert "usage:" in capsys.readouterr().out
    code = "import sys, app.cli; print(','.join(sorted(m for m in sys.modules if m.startswith(('PySide6', 'torch')))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_labels_import_of_class_folders(cli_env, indexed):
    """`labels import FOLDER`: the subfolders are the kinds; skipped files are reported, not fatal."""
    env = dict(cli_env, LOOKALIKE_LIBRARY=cli_env["LOOKALIKE_LIBRARY"] + "-kinds")
    kinds = indexed.parent / "kinds"
    for i in range(6):
        photos.save(photos.scene(500 + i), kinds / ("day" if i < 3 else "night") / f"k{i}.jpg", quality=90)
    run(env, "index", "-q", str(kinds))
    proc = run(env, "labels", "import", "--per-photo", "2", str(kinds))
    assert "Imported" in proc.stderr and "from the class folders" in proc.stderr
    exported = run(env, "labels", "export").stdout.splitlines()
    assert exported[0] == "a,b,label" and len(exported) > 6
    assert run(env, "labels", "import", "--per-photo", "0", str(kinds), check=False).returncode == 2


def _active_version(env) -> int:
    return next(m["version"] for m in json.loads(run(env, "model", "list", "--json").stdout) if m["active"])


def test_rollback_twice_goes_back_twice_and_delete_removes_a_version_but_no_label(cli_env, indexed):
    start = _active_version(cli_env)
    labels_before = run(cli_env, "labels", "export").stdout
    run(cli_env, "model", "refit", "--kind", "lsh")
    middle = _active_version(cli_env)
    run(cli_env, "model", "refit", "--kind", "lsh")
    newest = _active_version(cli_env)
    assert len({start, middle, newest}) == 3
    run(cli_env, "model", "rollback")
    assert _active_version(cli_env) == middle
    run(cli_env, "model", "rollback")
    assert _active_version(cli_env) == start  # not back to the newest

    library = cli_env["LOOKALIKE_LIBRARY"]
    refused = run(cli_env, "model", "delete", str(start), check=False)
    assert refused.returncode == 2 and "active" in refused.stderr and "Traceback" not in refused.stderr
    deleted = run(cli_env, "model", "delete", str(newest))
    assert f"v{newest}" in deleted.stderr
    assert newest not in [m["version"] for m in json.loads(run(cli_env, "model", "list", "--json").stdout)]
    assert not os.path.exists(os.path.join(library, "models", f"{newest:04d}"))
    assert not os.path.exists(os.path.join(library, "codes", f"{newest:04d}.u64"))
    assert run(cli_env, "labels", "export").stdout == labels_before
    out = json.loads(run(cli_env, "search", "--json", str(indexed / "p02.jpg")).stdout)
    assert out["results"][0]["path"] == str(indexed / "p02.jpg")
