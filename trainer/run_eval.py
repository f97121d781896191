"""`lookalike eval`: every method at every code length on a labelled dataset, by the papers' protocol.

Protocol (the CIFAR-10 one of the DPSH and DLBHC papers, documented in docs/TRAINING.md):
``queries_per_class`` images of each class are queries, the rest of the dataset is the
database, and the training images are sampled from the database (stratified). Features come
from the model version given (the default EfficientNet-Lite0) and are cached per dataset and
backbone, so a second evaluation fits heads in seconds.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.encoder import Encoder
from engine.codes import codes_from_logits
from engine.errors import UserError
from trainer import data
from trainer.evaluate import evaluate_codes, mean_average_precision, write_report
from trainer.fit import HeadConfig, fit_head
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
        if isinstance(chunk, np.ndarray):
            pixels = data.to_rgb_pixels(chunk, size)
        else:
            from engine.imageio import decode_path

            pixels = np.stack([decode_path(p, size=size, resize=encoder.info.resize, thumb_size=0).pixels
                               for p in chunk])
        out[start:start + len(chunk)] = encoder.encode(pixels)[1]
        if progress:
            progress({"event": "features", "done": start + len(chunk), "total": len(images),
                      "elapsed": time.monotonic() - started})
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npy")
    np.save(tmp, out)
    os.replace(tmp, cache)
    return out


def run_eval(dataset: str, methods: list[str], bits_list: list[int], out_dir: Path, *, model_dir: Path,
             cache_dir: Path, queries_per_class: int = 100, train_size: int = 5000,
             database_size: int | None = None, seed: int = 0, steps: int | None = None,
             progress: Callable[[dict], None] | None = None) -> dict:
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
            if method in CLASSICAL:
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
            rows.append({"method": method, "bits": bits, "mode": "head", "train_seconds": info["seconds"], **metrics})
            emit({"event": "result", **{k: v for k, v in rows[-1].items() if k != "pr"}})
    paths = write_report(rows, out_dir, title=f"Lookalike evaluation: {dataset}, {len(q)} queries, "
                                               f"{len(db)} database, {len(tr)} training images")
    return {"rows": rows, "paths": {k: str(v) for k, v in paths.items()}}


def _take(images, index):
    if isinstance(images, np.ndarray):
        return images[index]
    return [images[int(i)] for i in index]
