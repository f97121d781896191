"""Lookalike's face: the desktop window (PySide6) and the command line."""
