"""Training and evaluation data: Fashion-MNIST and digits, class folders, retrieval splits, label pairs to groups."""

from __future__ import annotations

import gzip
import os
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.errors import EnvironmentProblem, UserError
from engine.imageio import IMAGE_SUFFIXES
from engine.pairs import pair_key

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_ENV = "LOOKALIKE_FASHION_MNIST"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# IDX type codes (http://yann.lecun.com/exdb/mnist/): multi-byte values are big-endian.
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Same filter as engine.imageio's decoder, so pixels made here equal what indexing a saved
# copy of the image would give (trainer.images keeps the same promise for files).
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


class DatasetMissing(EnvironmentProblem):
    """A dataset the trainer needs is not installed (or its files are unreadable)."""


# --------------------------------------------------------------------------------------
# IDX files and the bundled datasets


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file (the MNIST format; gzipped or plain, told apart by content) as a native-endian array.

    Raises ValueError when the header is malformed or the data is shorter or longer than the header says.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; truncation is EOFError
            raise ValueError(f"{path}: damaged gzip data ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype = _IDX_TYPES.get(raw[2])
    if dtype is None:
        raise ValueError(f"{path}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares no dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header is cut short")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: IDX dimensions {dims} need {expected} bytes of data, the file holds {len(raw) - header}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header)
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(dims)  # writable, native order


def fashion_mnist_dir(root: str | os.PathLike | None = None) -> Path:
    """Where Fashion-MNIST is read from: ``root``, else ``$LOOKALIKE_FASHION_MNIST``, else Debian's path."""
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DIR


def _idx_file(root: Path, name: str) -> Path:
    for candidate in (root / f"{name}.gz", root / name):
        if candidate.is_file():
            return candidate
    raise DatasetMissing(
        f"Fashion-MNIST is not installed: {root / (name + '.gz')} is missing. Install Debian's"
        " dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or point"
        f" ${FASHION_MNIST_ENV} at a folder holding the four IDX files"
    )


def load_fashion_mnist(root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All of Fashion-MNIST, training set then test set: images uint8 [N, 28, 28], labels int64 [N].

    N is 70,000 for the real dataset. Raises DatasetMissing when the files are absent or unreadable.
    """
    root = fashion_mnist_dir(root)
    images, labels = [], []
    for part in ("train", "t10k"):
        img_path = _idx_file(root, f"{part}-images-idx3-ubyte")
        lab_path = _idx_file(root, f"{part}-labels-idx1-ubyte")
        try:
            x, y = read_idx(img_path), read_idx(lab_path)
        except ValueError as e:
            raise DatasetMissing(f"Fashion-MNIST is damaged ({e}); reinstall dataset-fashion-mnist") from None
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DatasetMissing(f"{img_path}: expected uint8 images [N, 28, 28], found {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
            raise DatasetMissing(f"{lab_path}: expected {len(x)} labels in 0..9")
        images.append(x)
        labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (1,797 of them): images uint8 [N, 8, 8] in 0..255, labels int64 [N]."""
    from sklearn.datasets import load_digits  # why: scikit-learn is slow to import; only when asked

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    return images, digits.target.astype(np.int64)


def to_rgb_pixels(images: np.ndarray, size: int, *, resample: str = "bicubic") -> np.ndarray:
    """Gray uint8 [N, h, w] (or RGB [N, h, w, 3]) to model input uint8 [N, size, size, 3].

    Resized image by image with Pillow, so the result is deterministic and, with the default
    bicubic filter, equals what engine.imageio makes of the same image saved as a PNG
    (square images; non-square ones are stretched, not centre-cropped). ``resample`` may be
    ``"bilinear"``. About 0.1 ms per image at 112 px.
    """
    x = np.asarray(images)
    if x.dtype != np.uint8 or not (x.ndim == 3 or (x.ndim == 4 and x.shape[3] == 3)):
        raise ValueError(f"images must be uint8 [N, h, w] or [N, h, w, 3], not {x.dtype} {x.shape}")
    if resample not in _RESAMPLE:
        raise ValueError(f"resample is one of {sorted(_RESAMPLE)}, not {resample!r}")
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be positive, not {size}")
    gray = x.ndim == 3
    out = np.empty((len(x), size, size, 3), dtype=np.uint8)
    if x.shape[1:3] == (size, size):
        out[...] = x[..., None] if gray else x
        return out
    filt = _RESAMPLE[resample]
    chunk = 1024  # the gray-to-RGB broadcast runs once per chunk, not once per image
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        small = np.empty((len(block), size, size) + (() if gray else (3,)), dtype=np.uint8)
        for i, img in enumerate(block):
            small[i] = np.asarray(Image.fromarray(img).resize((size, size), filt))
        out[start : start + len(block)] = small[..., None] if gray else small
    return out


# --------------------------------------------------------------------------------------
# class folders


def _visible(name: str) -> bool:
    return not name.startswith(".")


def load_class_folders(folder: str | os.PathLike) -> tuple[list[str], np.ndarray, list[str]]:
    """Images under ``folder/<class>/`` (any depth): (paths, labels int64, class names).

    Classes are the visible subfolders holding at least one image (by suffix, as the indexer:
    engine.imageio.IMAGE_SUFFIXES), sorted by name; label i is ``class_names[i]``. Paths are
    sorted within a class; hidden files and folders, and images directly in ``folder``, are
    ignored. Raises UserError when the folder is missing or holds fewer than two classes.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder")
    classes: list[tuple[str, list[str]]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and _visible(p.name)):
        found = []
        for dirpath, dirnames, filenames in os.walk(sub):
            dirnames[:] = [d for d in dirnames if _visible(d)]  # prune hidden folders in place
            found += [
                os.path.join(dirpath, f)
                for f in filenames
                if _visible(f) and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
            ]
        if found:
            classes.append((sub.name, sorted(found)))
    if len(classes) < 2:
        raise UserError(
            f"{root} needs at least two class subfolders with images in them (found {len(classes)}):"
            " one subfolder per class"
        )
    paths = [p for _, files in classes for p in files]
    labels = np.concatenate([np.full(len(files), i, dtype=np.int64) for i, (_, files) in enumerate(classes)])
    return paths, labels, [name for name, _ in classes]


# --------------------------------------------------------------------------------------
# retrieval splits


@dataclass(frozen=True)
class Split:
    """Index arrays (sorted, int64) into one labelled set: queries, database, training subset of the database."""

    query: np.ndarray
    database: np.ndarray
    train: np.ndarray


def _stratified_counts(sizes: np.ndarray, total: int) -> np.ndarray:
    """Per-class counts proportional to ``sizes`` summing to ``total`` (largest remainder, ties to lower class)."""
    quota = sizes * (total / sizes.sum())
    counts = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:short]] += 1
    return np.minimum(counts, sizes)


def _stratified_sample(idx: np.ndarray, labels: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    classes, sizes = np.unique(labels[idx], return_counts=True)
    counts = _stratified_counts(sizes, total)
    picked = [rng.permutation(idx[labels[idx] == c])[:k] for c, k in zip(classes, counts)]
    return np.sort(np.concatenate(picked))


def retrieval_split(
    labels,
    *,
    queries_per_class: int = 100,
    train_size: int | None = 5000,
    database_size: int | None = None,
    seed: int = 0,
) -> Split:
    """The deep-hashing papers' CIFAR-10 protocol (DPSH, DSH, ...) on any single-label set.

    ``queries_per_class`` random images of every class are the queries; the rest is the
    database, optionally subsampled (stratified) to ``database_size``; ``train_size``
    training images (stratified; None: the whole database) are drawn from the database, as
    DPSH does. Stratified counts are proportional to class sizes (largest remainder), so
    balanced classes get equal shares. Query and database are disjoint; train is a subset
    of the database; the same labels and seed give the same split.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one class per item [N], not shape {labels.shape}")
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    if queries_per_class < 0 or (sizes <= queries_per_class).any():
        small = classes[sizes <= queries_per_class]
        raise ValueError(
            f"every class needs more than {queries_per_class} items to give that many queries;"
            f" too small: {small.tolist()[:10]}"
        )
    query_parts, db_parts = [], []
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        query_parts.append(members[:queries_per_class])
        db_parts.append(members[queries_per_class:])
    query = np.sort(np.concatenate(query_parts)).astype(np.int64)
    database = np.sort(np.concatenate(db_parts)).astype(np.int64)
    if database_size is not None:
        if not 0 < database_size <= len(database):
            raise ValueError(f"database_size must be in 1..{len(database)}, not {database_size}")
        database = _stratified_sample(database, labels, int(database_size), rng)
    if train_size is None:
        train = database.copy()
    else:
        if not 0 < train_size <= len(database):
            raise ValueError(f"train_size must be in 1..{len(database)} (the database), not {train_size}")
        train = _stratified_sample(database, labels, int(train_size), rng)
    return Split(query=query, database=database, train=train)


# --------------------------------------------------------------------------------------
# a person's pair labels


def _latest_labels(pairs) -> dict[tuple[str, str], bool]:
    """Unordered pair -> similar?, the last label of a pair winning (as the store keeps it); self pairs dropped."""
    latest: dict[tuple[str, str], bool] = {}
    for p in pairs:
        a, b, s = p[0], p[1], p[2]  # store rows carry more fields after these three
        if a == b:
            continue
        latest[pair_key(a, b)] = s > 0
    return latest


def groups_from_pairs(pairs) -> dict[str, int]:
    """Similar/dissimilar pair labels ``(a, b, +1|-1)`` to groups: item -> group id (0..G-1).

    As DESIGN.md says: connected components of "similar", split where a "dissimilar" label
    falls inside one. A component with such conflicts is split in two steps:

    1. every endpoint of a conflicting dissimilar pair seeds its own group, and every other
       item joins the seed nearest by similar-edge hops (one breadth-first search from all
       seeds at once, seeds in sorted order, so a tie goes to the earlier seed);
    2. groups joined by a similar edge merge (edges in sorted order) unless a dissimilar
       pair lies between them, which undoes over-splitting between seeds.

    So no group holds a dissimilar pair, and every group is connected by similar labels. For
    a ~ b ~ c with a !~ c the groups are {a, b} and {c}. Items only in dissimilar pairs are
    singletons. A pair labelled twice keeps its last label; self pairs are ignored. Group ids
    are numbered by each group's smallest item, so they do not depend on the pairs' order.
    """
    latest = _latest_labels(pairs)
    items = sorted({x for key in latest for x in key})
    similar = sorted(k for k, s in latest.items() if s)
    dissimilar = [k for k, s in latest.items() if not s]

    neighbours: dict[str, list[str]] = {x: [] for x in items}
    for a, b in similar:  # sorted edges give sorted neighbour lists: deterministic searches
        neighbours[a].append(b)
        neighbours[b].append(a)
    apart: dict[str, set[str]] = {x: set() for x in items}
    for a, b in dissimilar:
        apart[a].add(b)
        apart[b].add(a)

    group: dict[str, str] = {}  # item -> representative (a group's seed or first item)
    seen: set[str] = set()
    for start in items:
        if start in seen:
            continue
        component = _component(start, neighbours)
        seen.update(component)
        members = set(component)
        seeds = sorted({x for x in component if apart[x] & members})
        if not seeds:
            for x in component:
                group[x] = start
            continue
        _split_component(seeds, neighbours, apart, group)

    ids: dict[str, int] = {}
    for x in items:  # sorted, so a group's first item met is its smallest
        ids.setdefault(group[x], len(ids))
    return {x: ids[group[x]] for x in items}


def _component(start: str, neighbours: dict[str, list[str]]) -> list[str]:
    found, queue = [start], deque([start])
    seen = {start}
    while queue:
        for y in neighbours[queue.popleft()]:
            if y not in seen:
                seen.add(y)
                found.append(y)
                queue.append(y)
    return found


def _split_component(seeds, neighbours, apart, group) -> None:
    """Steps 1 and 2 of groups_from_pairs for one component; writes item -> representative into ``group``."""
    owner = {s: s for s in seeds}
    queue = deque(seeds)
    while queue:  # multi-source BFS: items go to the nearest seed, ties to the earlier seed
        x = queue.popleft()
        for y in neighbours[x]:
            if y not in owner:
                owner[y] = owner[x]
                queue.append(y)
    # Only seeds have dissimilar partners inside the component, so each cell starts conflict-free.
    members: dict[str, set[str]] = {s: set() for s in seeds}
    for x, s in owner.items():
        members[s].add(x)
    parent = {s: s for s in seeds}

    def find(s):
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    edges = sorted({(x, y) for x in owner for y in neighbours[x] if x < y})
    for x, y in edges:
        gx, gy = find(owner[x]), find(owner[y])
        if gx == gy:
            continue
        if any(apart[m] & members[gy] for m in members[gx]):
            continue
        lo, hi = sorted((gx, gy))
        parent[hi] = lo
        members[lo] |= members.pop(hi)
    for x in owner:
        group[x] = find(owner[x])


def pairs_to_index(pairs, keys) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair labels ``(a, b, +1|-1)`` to index arrays (i, j, s) into ``keys``, int64, s = 1 similar, 0 dissimilar.

    Pairs with a key not in ``keys`` are dropped, as are self pairs; a pair labelled twice keeps
    its last label. Pairs come out in the order of their first label, with ``i < j``.
    """
    position = {k: n for n, k in enumerate(keys)}
    latest = _latest_labels(p for p in pairs if p[0] in position and p[1] in position)
    i = np.fromiter((min(position[a], position[b]) for a, b in latest), dtype=np.int64, count=len(latest))
    j = np.fromiter((max(position[a], position[b]) for a, b in latest), dtype=np.int64, count=len(latest))
    s = np.fromiter((1 if v else 0 for v in latest.values()), dtype=np.int64, count=len(latest))
    return i, j, s
