"""What `lookalike train` offers (methods, modes, backbones), readable without importing torch."""

from __future__ import annotations

CLASSICAL = ("lsh", "pcah", "itq", "sh")
LEARNED = ("dpsh", "dlbhc", "ninh", "drsch", "dsrh", "dh", "sdh", "cnnh", "exponentiated")
METHODS = LEARNED + CLASSICAL
DEFAULT_METHOD = "dpsh"
MODES = ("head", "full")
DEFAULT_MODE = "head"  # see docs/TRAINING.md, "Choosing the mode"
# trainer.backbones' registry names (a test checks they match).
FULL_MODE_BACKBONES = ("efficientnet-lite0", "nin-latent")
BACKBONE_HELP = "full mode: the network to fine-tune (nin-latent: seed 001's small network, trained from scratch)"
