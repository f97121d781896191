"""The trainer's command line as the retrain dialog runs it: `lookalike train ... --progress json --no-activate`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from trainer.catalog import LEARNED, MODES


def trainer_choices() -> tuple[list[str], list[str]]:
    """The methods and modes `lookalike train` accepts (the catalog its parser reads too)."""
    return list(LEARNED), list(MODES)


def default_launcher() -> list[str]:
    """How to run the `lookalike` command line from this process."""
    if getattr(sys, "frozen", False):
        # A bundled app: its executable is the command line when given arguments.
        return [sys.executable]
    return [sys.executable, "-m", "app.cli"]


def train_command(library_path: str | os.PathLike, *, method: str, bits: int, mode: str,
                  budget_minutes: int | None = None, extra_args: Sequence[str] = (),
                  launcher: Sequence[str] | None = None) -> list[str]:
    """The trainer's full command line (program first), as the dialog runs it.

    ``--no-activate``: the person decides after seeing the before/after accuracy.
    """
    command = [*(launcher or default_launcher()), "train", "--library", str(Path(library_path).absolute()),
               "--method", method, "--bits", str(bits), "--mode", mode, "--progress", "json", "--no-activate"]
    if budget_minutes:
        command += ["--budget", f"{int(budget_minutes)}m"]
    return command + list(extra_args)
