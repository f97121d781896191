"""The import rules: engine stays free of Qt, torch, app and trainer; engine, trainer and the app are layered (no import circles)."""

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is part of the dev dependencies"
    proc = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_engine_and_trainer_are_layered_with_every_module_placed():
    """The layers contracts that lint-imports checks above: one per package, exhaustive (a
    module left out of the layers, or importing one above its own, fails the run)."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layered = {tuple(c["containers"]): c for c in contracts if c["type"] == "layers"}
    for package in ("engine", "trainer"):
        contract = layered[(package,)]
        assert contract.get("exhaustive") is True
        placed = {name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}
        modules = {p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
        modules |= {p.parent.name for p in (ROOT / package).glob("*/__init__.py")}
        assert placed == modules, (package, sorted(placed ^ modules))


def test_importing_every_engine_module_loads_no_torch_and_no_qt():
    modules = sorted(p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('engine.' + name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'PySide6', 'app', 'trainer'))\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def _lint_copy(tmp_path: Path, plant: dict[str, str]) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the packages and pyproject.toml, with ``plant`` appended to
    the named app modules (only the import graph is read: nothing is executed)."""
    for package in ("engine", "trainer", "app"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, line in plant.items():
        with open(tmp_path / "app" / f"{module}.py", "a", encoding="utf-8") as handle:
            handle.write(f"\n{line}\n")
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    return subprocess.run([lint, "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})


def test_an_import_circle_in_the_app_breaks_its_layers_contract(tmp_path):
    """The layers contract is what keeps circles out: a worker importing the window (the
    window already imports the workers) is reported, and so is a module no layer names."""
    proc = _lint_copy(tmp_path, {"workers": "import app.main_window  # planted", "stray": "import app.workers"})
    assert proc.returncode != 0
    assert "app's layers" in proc.stdout and "BROKEN" in proc.stdout
    assert "app.workers -> app.main_window" in proc.stdout
    assert "app.stray" in proc.stdout  # exhaustive: a new module must be given its layer


def test_the_command_line_may_not_import_the_window(tmp_path):
    proc = _lint_copy(tmp_path, {"cli": "import app.main  # planted"})
    assert proc.returncode != 0 and "the command line loads no Qt and no window BROKEN" in proc.stdout
