"""NIN-latent (seed 001) trained from scratch in full mode on Fashion-MNIST, by `lookalike eval`'s protocol.

    taskset -c 1 .venv/bin/python tests/bench/bench_nin_fashion.py [--lr 3e-3] [--epochs 2]

trainer.run_eval.run_eval in full mode: 100 queries per class, a 10,000-image stratified
database, 5,000 training images from it, 48 bits, DLBHC and DPSH, at 32 px with every block
trained (tuned_blocks=3) on one PyTorch thread. The frozen-cosine row is the default
EfficientNet-Lite0 model's float features (its features are cached after the first run).
Prints mAP@all of Hamming ranking, mAP of the tuned network's float features and the
seconds of the fine-tune alone and with encoding the queries and database, per method.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.default_model import build_default_model, default_model_cache  # noqa: E402
from trainer import data  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate of the network")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=32, help="input size in pixels")
    parser.add_argument("--methods", default="dlbhc,dpsh")
    parser.add_argument("--bits", type=int, default=48)
    parser.add_argument("--warmup", type=int, default=None, help="classifier-only epochs (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (one leaves a core free)")
    parser.add_argument("--out", default=None, help="report folder (default: a temporary one)")
    args = parser.parse_args()
    try:
        data.load_fashion_mnist()
    except data.DatasetMissing as exc:
        print(exc, file=sys.stderr)  # says: apt-get install dataset-fashion-mnist
        return 2

    import torch

    from trainer.run_eval import run_eval

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-nin-"))
    options = {"backbone": "nin-latent", "input_size": args.size, "tuned_blocks": 3, "lr": args.lr,
               "epochs": args.epochs, "threads": args.threads, "device": "cpu"}
    if args.warmup is not None:
        options["warmup_epochs"] = args.warmup
    fit_seconds: dict[str, float] = {}
    last_epoch: dict = {}

    def progress(event: dict) -> None:
        if event["event"] == "epoch":
            last_epoch.update(event)
            loss = "-" if event["loss"] is None else f"{event['loss']:.3f}"
            print(f"  epoch {event['epoch']}  loss {loss}  {event['elapsed']:.0f} s", file=sys.stderr, flush=True)
        elif event["event"] == "result" and event["mode"] == "full":
            fit_seconds[event["method"]] = last_epoch["elapsed"]

    result = run_eval("fashion-mnist", args.methods.split(","), [args.bits], out,
                      model_dir=build_default_model(64), cache_dir=default_model_cache() / "features",
                      database_size=10000, mode="full", full_options=options, progress=progress)
    print(f"Fashion-MNIST, full mode, {options}")
    for row in result["rows"]:
        bits = f"{row['bits']} bits" if row["bits"] else "float"
        extra = ""
        if "train_seconds" in row:
            extra = (f"  feature mAP {row.get('feature_map_all', float('nan')):.3f}  fit "
                     f"{fit_seconds.get(row['method'], float('nan')):.0f} s, with encoding {row['train_seconds']:.0f} s")
        print(f"{row['method']:<24s} {bits:>8s}  {row['mode']:<6s}  mAP@all {row['map_all']:.3f}{extra}")
    print(f"report: {result['paths']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
