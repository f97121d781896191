"""`lookalike eval`: every method at every code length on a labelled dataset, by the papers' protocol.

Protocol (the CIFAR-10 one of the DPSH and DLBHC papers, documented in docs/TRAINING.md):
``queries_per_class`` images of each class are queries, the rest of the dataset is the
database, and the training images are sampled from the database (stratified). Features come
from the model version given (the default EfficientNet-Lite0) and are cached per dataset and
backbone, so a second evaluation fits heads in seconds.

In full mode (``mode="full"``) each learned method fine-tunes the backbone on the training
images at the full-mode input size (trainer/full.py, the recipe `lookalike train --mode full`
uses, with the classes as its groups) for a fixed number of epochs, and the queries and
database are encoded by the fine-tuned network: no held-out pairs exist here to stop on.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_path
from engine.encoder import Encoder
from engine.codes import codes_from_logits
from engine.errors import UserError
from engine.imageio import decode_path
from trainer import data
from trainer.evaluate import evaluate_codes, mean_average_precision, write_report
from trainer.fit import HeadConfig, fit_head
from trainer.full import FullConfig, fit_full
from trainer.methods import CLASSICAL
from engine.hashing import make_head


def load_dataset(name: str) -> tuple[np.ndarray | list[str], np.ndarray, str]:
    """(images uint8 [N, h, w] or file paths, labels, cache key) of a named dataset or class folder."""
    if name == "fashion-mnist":
        images, labels = data.load_fashion_mnist()
        return images, labels, "fashion-mnist"
    if name == "digits":
        images, labels = data.load_digits_images()
        return images, labels, "digits"
    if os.path.isdir(name):
        paths, labels, _classes = data.load_class_folders(name)
        key = "folder-" + hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
        return paths, labels, key
    raise UserError(f"unknown dataset {name!r}: use fashion-mnist, digits or a folder with one sub-folder per class")


def dataset_pixels(images, size: int, resize: str = "center-crop") -> np.ndarray:
    """Model input uint8 [N, size, size, 3] of gray arrays or image files."""
    if isinstance(images, np.ndarray):
        return data.to_rgb_pixels(images, size)
    return np.stack([decode_path(p, size=size, resize=resize, thumb_size=0).pixels for p in images])


def dataset_features(images, model_dir: Path, cache_dir: Path, key: str,
                     progress: Callable[[dict], None] | None = None) -> np.ndarray:
    """Unit features of every image from the model version at ``model_dir`` (cached)."""
    encoder = Encoder(model_dir, providers="auto")
    backbone = encoder.info.manifest["backbone_id"]
    cache = cache_dir / f"{key}-{backbone}-{len(images)}.npy"
    if cache.exists():
        return np.load(cache)
    size = encoder.info.input_size
    out = np.empty((len(images), encoder.info.feature_dim), dtype=np.float32)
    started = time.monotonic()
    for start in range(0, len(images), 256):
        chunk = images[start:start + 256]
        out[start:start + len(chunk)] = encoder.encode(dataset_pixels(chunk, size, encoder.info.resize))[1]
        if progress:
            progress({"event": "features", "done": start + len(chunk), "total": len(images),
                      "elapsed": time.monotonic() - started})
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        np.save(tmp, out)
    return out


def run_eval(dataset: str, methods: list[str], bits_list: list[int], out_dir: Path, *, model_dir: Path,
             cache_dir: Path, queries_per_class: int = 100, train_size: int = 5000,
             database_size: int | None = None, seed: int = 0, steps: int | None = None,
             mode: str = "head", full_options: dict | None = None,
             progress: Callable[[dict], None] | None = None) -> dict:
    """Evaluate ``methods`` x ``bits_list``; ``full_options`` are FullConfig fields for full mode."""
    if mode not in ("head", "full"):
        raise ValueError(f"mode is head or full, not {mode!r}")
    emit = progress or (lambda event: None)
    images, labels, key = load_dataset(dataset)
    split = data.retrieval_split(labels, queries_per_class=queries_per_class, train_size=train_size,
                                 database_size=database_size, seed=seed)
    used = np.concatenate([split.query, split.database])
    # Only the images the split uses are encoded (a database subsample saves most of the time).
    features_all = dataset_features(images if database_size is None else _take(images, used), model_dir,
                                    cache_dir, key if database_size is None else f"{key}-sub{seed}-{len(used)}",
                                    progress=emit)
    if database_size is not None:
        position = {int(i): n for n, i in enumerate(used)}
        remap = lambda idx: np.array([position[int(i)] for i in idx], dtype=np.int64)  # noqa: E731
        q, db, tr = remap(split.query), remap(split.database), remap(split.train)
        lab = np.empty(len(used), dtype=labels.dtype)
        lab[remap(used)] = labels[used]
    else:
        q, db, tr, lab = split.query, split.database, split.train, labels
    rows = []
    cosine = mean_average_precision(None, None, lab[q], lab[db], query_features=features_all[q],
                                    db_features=features_all[db])
    rows.append({"method": "float cosine (no codes)", "bits": None, "mode": "frozen", "map_all": cosine})
    emit({"event": "result", **rows[-1]})
    for method in methods:
        for bits in bits_list:
            config = HeadConfig(method=method, bits=bits, seed=seed)
            if steps is not None:
                config.steps = steps
            if mode == "full" and method not in CLASSICAL:
                query_codes, db_codes, info = _full_mode_codes(
                    images if database_size is None else _take(images, used), lab, tr, q, db,
                    FullConfig(method=method, bits=bits, seed=seed, **(full_options or {})), emit)
            elif method in CLASSICAL:
                # Fitted without labels on the training images; SH is not linear, so its
                # codes come from the head itself rather than from (W, b).
                started = time.monotonic()
                head = make_head(method, bits, seed=seed).fit(features_all[tr])
                info = {"seconds": time.monotonic() - started}
                query_codes, db_codes = head.codes(features_all[q]), head.codes(features_all[db])
            else:
                weight, bias, info = fit_head(features_all[tr], lab[tr], config)
                query_codes = codes_from_logits(features_all[q] @ weight + bias)
                db_codes = codes_from_logits(features_all[db] @ weight + bias)
            metrics = evaluate_codes(query_codes, db_codes, lab[q], lab[db], bits)
            row_mode = "full" if mode == "full" and method not in CLASSICAL else "head"
            rows.append({"method": method, "bits": bits, "mode": row_mode, "train_seconds": info["seconds"],
                         **({"feature_map_all": info["feature_map_all"]} if "feature_map_all" in info else {}),
                         **metrics})
            emit({"event": "result", **{k: v for k, v in rows[-1].items() if k != "pr"}})
    paths = write_report(rows, out_dir, title=f"Lookalike evaluation: {dataset}, {len(q)} queries, "
                                               f"{len(db)} database, {len(tr)} training images")
    return {"rows": rows, "paths": {k: str(v) for k, v in paths.items()}}


def _full_mode_codes(images, labels, tr, q, db, config, emit):
    """Fine-tune on the training images, then code queries and database with the tuned network."""
    started = time.monotonic()
    emit({"event": "phase", "phase": "decode", "done": 0, "total": len(tr)})
    pixels = dataset_pixels(_take(images, tr), config.input_size)
    groups = np.unique(labels[tr], return_inverse=True)[1]
    net, info = fit_full(pixels, groups, config, progress=emit)
    del pixels
    logits, features = [], []
    order = np.concatenate([q, db])
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with torch.inference_mode():
            for start in range(0, len(order), 256):
                chunk = dataset_pixels(_take(images, order[start:start + 256]), config.input_size)
                lo, fe = net(torch.from_numpy(chunk))
                logits.append(lo.numpy())
                features.append(fe.numpy())
                emit({"event": "phase", "phase": "encode", "done": start + len(chunk), "total": len(order)})
    finally:
        torch.set_num_threads(threads)
    codes = codes_from_logits(np.concatenate(logits))
    features = np.concatenate(features)
    feature_map = mean_average_precision(None, None, labels[q], labels[db], query_features=features[:len(q)],
                                         db_features=features[len(q):])
    info = {**info, "seconds": time.monotonic() - started, "feature_map_all": feature_map}
    return codes[:len(q)], codes[len(q):], info


def _take(images, index):
    if isinstance(images, np.ndarray):
        return images[index]
    return [images[int(i)] for i in index]
