"""Binary codes: packing K sign bits into 64-bit words and back.

Bit j of a code is bit (j % 64) of word j // 64 (little-endian within a word); unused high
bits of the last word are zero in every code, so they never add to a Hamming distance.
"""

import numpy as np


def words_for_bits(bits: int) -> int:
    """Number of 64-bit words that hold ``bits`` bits."""
    if bits <= 0:
        raise ValueError(f"a code needs at least one bit, not {bits}")
    return (bits + 63) // 64


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean array of shape (N, K) (or (K,)) into uint64 words of shape (N, W)."""
    bits = np.asarray(bits, dtype=bool)
    single = bits.ndim == 1
    if single:
        bits = bits[None, :]
    n, k = bits.shape
    width = words_for_bits(k)
    padded = np.zeros((n, width * 64), dtype=bool)
    padded[:, :k] = bits
    packed = np.packbits(padded, axis=1, bitorder="little")  # (N, W*8) bytes
    words = np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)
    return words[0] if single else words


def unpack_bits(words: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: uint64 words (N, W) to a boolean array (N, bits)."""
    words = np.asarray(words, dtype=np.uint64)
    single = words.ndim == 1
    if single:
        words = words[None, :]
    as_bytes = np.ascontiguousarray(words.astype("<u8", copy=False)).view(np.uint8)
    unpacked = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits].astype(bool)
    return unpacked[0] if single else unpacked


def codes_from_logits(logits: np.ndarray) -> np.ndarray:
    """Sign bits (logit > 0) of code logits (N, K), packed into (N, W) uint64 words."""
    return pack_bits(np.asarray(logits) > 0)
