"""The key of a pair label: its two content hashes in ascending order, so (a, b) and (b, a) are one pair.

The catalog enforces it (labels: CHECK (hash_a < hash_b)); everything that keys, stores,
looks up or counts pairs orders them here, never by hand.
"""

from __future__ import annotations

from typing import TypeVar

P = TypeVar("P")


def pair_key(hash_a: str, hash_b: str) -> tuple[str, str]:
    """(a, b) with a < b."""
    return (hash_b, hash_a) if hash_b < hash_a else (hash_a, hash_b)


def pair_key_with(hash_a: str, hash_b: str, extra_a: P, extra_b: P) -> tuple[str, str, P, P]:
    """``pair_key`` with something that goes with each hash (its path) swapped along."""
    return (hash_b, hash_a, extra_b, extra_a) if hash_b < hash_a else (hash_a, hash_b, extra_a, extra_b)
