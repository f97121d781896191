"""`lookalike --self-test`: passes on a working install, names the failed step and exits 1 otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("LOOKALIKE_CACHE_DIR", None)
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_self_test_passes_and_reports_providers_and_versions(tmp_path):
    proc = run(["-m", "app", "--self-test"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "providers available:" in out and "CPUExecutionProvider" in out
    assert "Versions: numpy" in out and "PySide6" in out
    for step in ("photos", "decode", "model", "encode", "index", "search", "search kernels", "window"):
        assert f"ok    {step} " in out, out
    assert out.rstrip().endswith("Self-test passed")
    # the temporary folder held the library and the models; only numba's compiled kernels stay
    cached = {p.relative_to(tmp_path / "cache").parts[:2] for p in (tmp_path / "cache").rglob("*") if p.is_file()}
    assert cached <= {("lookalike", "numba")}, cached


def test_a_failing_step_is_named_and_the_exit_code_is_1(tmp_path):
    proc = run(["-c", "import sys, engine.imageio as io\n"
                      "def broken(*a, **k): raise RuntimeError('decoder broken on purpose')\n"
                      "io.decode_path = broken\n"
                      "from app.self_test import run\nsys.exit(run())\n"], tmp_path)
    assert proc.returncode == 1
    assert "FAIL  decode: RuntimeError: decoder broken on purpose" in proc.stdout
    assert "Self-test FAILED: decode" in proc.stdout
