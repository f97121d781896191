"""Loss settings on scikit-learn's digits: the evidence for the loss options in trainer/methods.py's REGISTRY.

    .venv/bin/python tests/bench/bench_heads_digits.py

Features from the default model (cached by trainer.run_eval); 300 queries, the rest as the
database; heads fitted with trainer.fit.fit_head. Prints mAP@all of Hamming ranking for ITQ
(the floor) and for DPSH's quantization weight eta and DH's independence weight lambda2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.default_model import build_default_model, default_model_cache  # noqa: E402
from engine.codes import codes_from_logits  # noqa: E402
from engine.hashing import ITQ  # noqa: E402
from trainer.data import load_digits_images  # noqa: E402
from trainer.evaluate import mean_average_precision  # noqa: E402
from trainer.fit import HeadConfig, fit_head  # noqa: E402
from trainer.run_eval import dataset_features  # noqa: E402


def main() -> None:
    images, labels = load_digits_images()
    features = dataset_features(images, build_default_model(64), default_model_cache() / "features", "digits")
    order = np.random.default_rng(0).permutation(len(labels))
    queries, database = order[:300], order[300:]
    rng = np.random.default_rng(1)
    labelled = np.concatenate([rng.choice(database[labels[database] == c], 12, replace=False) for c in range(10)])

    def score(weight, bias) -> float:
        return mean_average_precision(codes_from_logits(features[queries] @ weight + bias),
                                      codes_from_logits(features[database] @ weight + bias),
                                      labels[queries], labels[database])

    print("| bits | head | training images | mAP@all |")
    print("|---|---|---|---|")
    itq = ITQ(64).fit(features[database]).linear()
    print(f"| 64 | ITQ (no labels) | {len(database)} | {score(*itq):.3f} |")
    for eta in (0.5, 0.1, 0.01):
        w, b, _ = fit_head(features[labelled], labels[labelled],
                           HeadConfig(method="dpsh", bits=64, loss_options={"eta": eta}), init=itq)
        print(f"| 64 | DPSH eta {eta} | {len(labelled)} | {score(w, b):.3f} |")
    train = database[:600]
    itq32 = ITQ(32).fit(features[train]).linear()
    print(f"| 32 | ITQ (no labels) | {len(train)} | {score(*itq32):.3f} |")
    for lambda2 in (0.01, 1e-4, 0.0):
        w, b, _ = fit_head(features[train], None, HeadConfig(method="dh", bits=32, loss_options={"lambda2": lambda2}))
        print(f"| 32 | DH lambda2 {lambda2} | {len(train)} | {score(w, b):.3f} |")


if __name__ == "__main__":
    main()
