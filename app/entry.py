"""The `lookalike` program: no arguments opens the window, one photo opens it searching for that photo, anything else is a command."""

from __future__ import annotations

import os
import sys

from app import cli


def opens_the_window(words: list[str]) -> bool:
    """No words, or one that names a file and is not a command ("Open with Lookalike" from a file manager)."""
    if not words:
        return True
    return len(words) == 1 and os.path.isfile(words[0]) and words[0] not in cli.command_names()


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words == ["--self-test"]:
        # Qt and the window are part of what it checks: it runs here, not in the Qt-free CLI
        from app.self_test import run as self_test

        return self_test()
    if not opens_the_window(words):
        return cli.main(words)
    cli.print_names_as_bytes()
    # Qt: imported only when the window opens, so a command never loads it
    from app.main import main as window_main

    return window_main(query=os.path.abspath(words[0]) if words else None)


if __name__ == "__main__":
    sys.exit(main())
