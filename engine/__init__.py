"""Lookalike's engine: decode, encode, store, search and index photos (no Qt, no torch)."""

__version__ = "0.1.0"
