"""The zero-label default model: EfficientNet-Lite0 features with a centred random-hyperplane (LSH) head."""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.atomic import write_json_atomic
from engine.default_model import BACKBONE_NAME, NAME, lsh_head_from_centre
from trainer.backbones import Backbone, get_backbone
from trainer.export import check_parity, export_onnx, onnx_outputs, replace_head
from trainer.images import image_pixels, open_rgb
from trainer.model import HashingNet

log = logging.getLogger(__name__)

BACKBONE = BACKBONE_NAME

# Natural photos bundled with scikit-image (read straight from its data folder, no pooch):
# colour ones plus a few greyscale ones, since a library holds both. Synthetic test charts,
# silhouettes and scanned text are left out: they would pull the centre away from photos.
CALIBRATION_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
    "camera.png", "coins.png", "moon.png", "grass.png", "gravel.png", "brick.png",
)
# Parity is checked on one calibration view in PARITY_STRIDE: the torch pass is the slow
# part of the build, and with 8 views per photo this still covers every photo twice.
PARITY_STRIDE = 4


def skimage_data_dir() -> Path:
    import skimage.data  # why: scikit-image is slow to import; only the sample photos need it

    return Path(os.path.dirname(skimage.data.__file__))


def _views(image: Image.Image) -> list[Image.Image]:
    """The photo plus simple augmentations (flip, corner and centre crops) for a steadier centre."""
    w, h = image.size
    cw, ch = int(w * 0.75), int(h * 0.75)
    views = [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    for left, top in ((0, 0), (w - cw, 0), (0, h - ch), (w - cw, h - ch), ((w - cw) // 2, (h - ch) // 2)):
        views.append(image.crop((left, top, left + cw, top + ch)))
    views.append(views[-1].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return views


def calibration_pixels(size: int = 224) -> np.ndarray:
    """uint8 [N, size, size, 3]: the bundled photos and their augmentations, center-crop resized."""
    folder = skimage_data_dir()
    pixels = []
    for name in CALIBRATION_PHOTOS:
        path = folder / name
        if not path.exists():  # a future scikit-image may drop one; the rest still give a centre
            log.warning("calibration photo %s is missing; skipped", path)
            continue
        pixels.extend(image_pixels(view, size) for view in _views(open_rgb(path)))
    if not pixels:
        raise FileNotFoundError(f"no calibration photos found in {folder}")
    return np.stack(pixels)


def backbone_id(backbone: Backbone) -> str:
    """First 16 hex digits of the sha256 of the backbone's weights file."""
    if backbone.weights_path is None:
        raise ValueError(f"backbone {backbone.name!r} has no weights file to identify it")
    digest = hashlib.sha256()
    with open(backbone.weights_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def lsh_head(features: np.ndarray, bits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random unit hyperplanes through the features' mean: (W [D, K], b [K]) (see the engine's twin)."""
    return lsh_head_from_centre(feature_centre(features), bits, seed)


def feature_centre(features: np.ndarray) -> np.ndarray:
    """The calibration features' mean (float64 [D]): with it the engine derives any code length."""
    return features.astype(np.float64).mean(axis=0)


def _created_at() -> str:
    """Now, or SOURCE_DATE_EPOCH's time when set (a reproducible build writes the same manifest)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (_dt.datetime.fromtimestamp(int(epoch), _dt.UTC) if epoch else _dt.datetime.now(_dt.UTC))
    return moment.replace(microsecond=0).isoformat()


def build_default_model(out_dir: str | os.PathLike, *, bits: int = 64, seed: int = 0,
                        centre_path: str | os.PathLike | None = None) -> dict:
    """Build the default model version folder (model.onnx + manifest.json); return the manifest.

    manifest.json is written last, so a folder with a manifest is complete. ``centre_path``
    also saves the calibration features' mean there (.npy), as the shipped model carries it.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A stale manifest would vouch for the half-written model.onnx if this build failed.
    (out_dir / "manifest.json").unlink(missing_ok=True)
    backbone = get_backbone(BACKBONE, packaged_weights=True)
    model = HashingNet(backbone, bits).eval()

    pixels = calibration_pixels(backbone.input_size)
    onnx_path = out_dir / "model.onnx"
    # Export first and take the calibration features from onnxruntime: it runs this network
    # about twice as fast as eager torch on a CPU, and the head is a pure initializer swap.
    export_onnx(model, onnx_path)
    _, features = onnx_outputs(onnx_path, pixels)
    centre = feature_centre(features)
    weight, bias = lsh_head_from_centre(centre, bits, seed)
    if centre_path is not None:
        np.save(centre_path, centre, allow_pickle=False)
    with torch.no_grad():
        model.head_weight.copy_(torch.from_numpy(weight))
        model.head_bias.copy_(torch.from_numpy(bias))
    replace_head(onnx_path, weight, bias)
    log.info("calibrated on %d views in %.1f s", len(pixels), time.monotonic() - started)

    parity = check_parity(model, onnx_path, pixels[::PARITY_STRIDE])
    log.info("exported %s (%.1f MB), parity %s", onnx_path, onnx_path.stat().st_size / 1e6, parity)

    manifest = {
        "format": 1,
        "name": NAME,
        "backbone": BACKBONE,
        "backbone_id": backbone_id(backbone),
        "input_size": backbone.input_size,
        "resize": "center-crop",
        "bits": bits,
        "feature_dim": backbone.feature_dim,
        "head": {"kind": "lsh", "fitted_on": int(len(pixels)), "seed": seed},
        "created_at": _created_at(),
        "metrics": {"parity": parity},
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    log.info("default model built in %.1f s", time.monotonic() - started)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.default_model",
                                     description="Build the zero-label default model; print its manifest as JSON.")
    parser.add_argument("out_dir", help="model version folder to write (created if missing)")
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--centre", help="also save the calibration features' mean to this .npy file")
    args = parser.parse_args(argv)
    # stdout carries only the manifest (the app parses it); everything else goes to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    manifest = build_default_model(args.out_dir, bits=args.bits, seed=args.seed, centre_path=args.centre)
    sys.stdout.write(json.dumps(manifest) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
