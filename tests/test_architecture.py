"""The import rules of DESIGN.md: engine stays free of Qt, torch, app and trainer, and engine and trainer are layered."""

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
