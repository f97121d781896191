"""The deep-hashing losses, one module per paper (trainer.methods.REGISTRY maps a method name to its loss)."""

from trainer.losses.base import (
    binarize,
    pairs_from_labels,
    relaxed_hamming,
    resolve_pairs,
    similarity_from_labels,
    triplets_from_labels,
)
from trainer.losses.cnnh import CNNHLoss, factorize_similarity
from trainer.losses.dh import DHLoss, SDHLoss
from trainer.losses.dlbhc import DLBHCLoss
from trainer.losses.dpsh import DPSHLoss
from trainer.losses.drsch import DRSCHLoss
from trainer.losses.dsrh import DSRHLoss, similarity_levels
from trainer.losses.exponentiated import ExponentiatedHashingLoss
from trainer.losses.ninh import DivideAndEncodeHead, NINHTripletLoss

__all__ = [
    "CNNHLoss", "DHLoss", "DLBHCLoss", "DPSHLoss", "DRSCHLoss", "DSRHLoss", "DivideAndEncodeHead",
    "ExponentiatedHashingLoss", "NINHTripletLoss", "SDHLoss", "binarize", "factorize_similarity",
    "pairs_from_labels", "relaxed_hamming", "resolve_pairs", "similarity_from_labels", "similarity_levels",
    "triplets_from_labels",
]
