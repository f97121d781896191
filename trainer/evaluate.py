"""Retrieval metrics on packed binary codes (mAP, precision within a Hamming radius, PR curves) and result reports.

numpy only: the metrics read the same packed uint64 codes the engine searches (engine.codes),
so what is measured here is what the app ranks by.

Conventions (those of the deep-hashing papers' evaluation code, DPSH and DeepHash-pytorch):

- Ranking is by Hamming distance, ascending, ties broken by database index (a stable sort,
  as MATLAB's ``sort`` in the DPSH code). With float features the ranking is by cosine
  similarity, descending, ties by index as well.
- Relevance: single labels [N] are relevant when equal; multi-hot labels [N, C] when they
  share at least one label.
- AP@k of a query = mean of precision@i over the ranks i <= k holding a relevant item, i.e.
  normalised by the number of relevant items *retrieved in the top k* (DeepHash-pytorch's
  ``CalcTopMap``), not by min(k, all relevant). k = N gives the usual mAP@all. A query with
  no relevant item in its top k has AP 0 and still counts in the mean.
- Precision within Hamming radius r: a query that retrieves nothing within r has precision 0.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from engine.atomic import atomic_write, write_bytes

from engine.errors import EnvironmentProblem

# Query rows per block: a block's temporaries (xor words, sort order, relevance) stay near
# 2**21 elements of 8 bytes, so 1,000 queries x 69,000 database items never need more than
# a few tens of MB at once.
BLOCK_ELEMENTS = 1 << 21
MAP_TOPK = 1000


# --------------------------------------------------------------------------------------
# distances and relevance


def _as_codes(codes, name: str) -> np.ndarray:
    c = np.asarray(codes)
    if c.ndim == 1:
        c = c[None, :]
    if c.ndim != 2 or c.dtype != np.uint64:
        raise ValueError(f"{name} must be packed codes, uint64 [N, W], not {c.dtype} {c.shape}")
    return c


def _pair_codes(query_codes, db_codes) -> tuple[np.ndarray, np.ndarray]:
    q, db = _as_codes(query_codes, "query_codes"), _as_codes(db_codes, "db_codes")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"query codes have {q.shape[1]} words, database codes {db.shape[1]}")
    return q, db


def _block_rows(n_db: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(1, n_db))


def _hamming_block(q: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """uint16 [c, N] distances from query codes [c, W] to database planes [W, N]."""
    acc = np.zeros((q.shape[0], planes.shape[1]), dtype=np.uint16)
    for w in range(planes.shape[0]):  # one contiguous plane per word: the fast layout (DESIGN.md)
        acc += np.bitwise_count(q[:, w, None] ^ planes[w][None, :])
    return acc


def hamming_matrix(query_codes, db_codes) -> np.ndarray:
    """Hamming distances between packed codes: uint64 [Q, W] x [N, W] -> uint16 [Q, N]."""
    q, db = _pair_codes(query_codes, db_codes)
    planes = np.ascontiguousarray(db.T)
    out = np.empty((q.shape[0], db.shape[0]), dtype=np.uint16)
    step = _block_rows(db.shape[0])
    for start in range(0, q.shape[0], step):
        out[start : start + step] = _hamming_block(q[start : start + step], planes)
    return out


def relevance(query_labels, db_labels) -> np.ndarray:
    """bool [Q, N]: equal labels for labels [Q] x [N]; a shared label for multi-hot [Q, C] x [N, C]."""
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    if ql.ndim != dl.ndim or ql.ndim not in (1, 2) or (ql.ndim == 2 and ql.shape[1] != dl.shape[1]):
        raise ValueError(f"labels must be both [N] or both multi-hot [N, C], not {ql.shape} and {dl.shape}")
    if ql.ndim == 1:
        return ql[:, None] == dl[None, :]
    # float32 matmul runs in BLAS; counts of shared labels are small integers, exact in float32
    return (ql.astype(np.float32) @ dl.astype(np.float32).T) > 0


# --------------------------------------------------------------------------------------
# ranking and metrics


def _check(n_query: int, n_db: int, query_labels, db_labels) -> None:
    if n_query == 0 or n_db == 0:
        raise ValueError(f"need at least one query and one database item, not {n_query} and {n_db}")
    if len(query_labels) != n_query or len(db_labels) != n_db:
        raise ValueError(
            f"{n_query} queries and {n_db} database items, but {len(query_labels)} and {len(db_labels)} labels"
        )


def _unit(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, D], not {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, np.float32(1e-12))


def _ranked_relevance(query_codes, db_codes, query_labels, db_labels, topk, query_features, db_features):
    """Yield relevance in ranked order, bool [c, L] (L = topk or N), per block of queries."""
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    by_features = query_features is not None or db_features is not None
    if by_features:
        if query_features is None or db_features is None:
            raise ValueError("give both query_features and db_features, or neither")
        qf, df = _unit(query_features, "query_features"), _unit(db_features, "db_features")
        if qf.shape[1] != df.shape[1]:
            raise ValueError(f"query features are {qf.shape[1]}-d, database features {df.shape[1]}-d")
        n_query, n_db = len(qf), len(df)
    else:
        q, db = _pair_codes(query_codes, db_codes)
        planes = np.ascontiguousarray(db.T)
        n_query, n_db = len(q), len(db)
    _check(n_query, n_db, ql, dl)
    length = n_db if topk is None else min(int(topk), n_db)
    if length < 1:
        raise ValueError(f"topk must be positive, not {topk}")
    step = _block_rows(n_db)
    for start in range(0, n_query, step):
        rows = slice(start, start + step)
        if by_features:
            order = _stable_order(-(qf[rows] @ df.T))[:, :length]  # descending similarity
        else:
            order = _stable_order(_hamming_block(q[rows], planes))[:, :length]
        rel = relevance(ql[rows], dl)
        yield np.take_along_axis(rel, order, axis=1)


def _stable_order(key: np.ndarray) -> np.ndarray:
    """Row-wise ascending order of ``key`` [c, N], equal keys in index order (a stable argsort).

    uint16 distances: numpy's stable sort, a radix sort. float32 keys: numpy's stable sort is a
    merge sort, four times slower than sorting 64-bit integers made of an order-preserving
    image of the float (high half) and the index (low half), whose order is the same.
    """
    if key.dtype != np.float32 or key.shape[1] >= 1 << 32:
        return np.argsort(key, axis=1, kind="stable")
    bits = (key + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into +0.0, so they tie
    # IEEE-754 floats order like sign-magnitude integers: flip negatives, set the sign of positives.
    ordered = np.where(bits >> np.uint32(31) == 1, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    index = np.arange(key.shape[1], dtype=np.uint64)
    packed = np.sort((ordered << np.uint64(32)) | index, axis=1)
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)


def _average_precision(rel_sorted: np.ndarray) -> np.ndarray:
    """AP per row of ranked relevance [c, L]: mean precision at the relevant ranks; 0 with none."""
    cum = np.cumsum(rel_sorted, axis=1, dtype=np.int64)
    ranks = np.arange(1, rel_sorted.shape[1] + 1, dtype=np.float64)
    precision_sum = np.where(rel_sorted, cum / ranks, 0.0).sum(axis=1)
    hits = cum[:, -1]
    return np.where(hits > 0, precision_sum / np.maximum(hits, 1), 0.0)


def mean_average_precision(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    topk: int | None = None,
    query_features=None,
    db_features=None,
) -> float:
    """mAP of Hamming ranking (topk None: mAP@all; else mAP@topk, DeepHash's convention, see the module doc).

    With ``query_features`` and ``db_features`` the ranking is by cosine similarity on them
    instead and the codes are ignored (pass None): the real-valued baseline, measured the
    same way so that the numbers compare.
    """
    total, count = 0.0, 0
    for rel_sorted in _ranked_relevance(
        query_codes, db_codes, query_labels, db_labels, topk, query_features, db_features
    ):
        ap = _average_precision(rel_sorted)
        total += float(ap.sum())
        count += len(ap)
    return total / count


def _radius_counts(dist: np.ndarray, rel: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(retrieved, relevant retrieved), int64 [c, bits + 1]: items within Hamming radius r = 0..bits."""
    c = dist.shape[0]
    if dist.size and int(dist.max()) > bits:
        raise ValueError(f"a Hamming distance exceeds bits={bits}: codes have bits set beyond the code length")
    idx = dist.astype(np.int64) + (np.arange(c, dtype=np.int64) * (bits + 1))[:, None]
    size = c * (bits + 1)
    retrieved = np.bincount(idx.ravel(), minlength=size).reshape(c, bits + 1)
    hits = np.bincount(idx[rel], minlength=size).reshape(c, bits + 1)
    return np.cumsum(retrieved, axis=1), np.cumsum(hits, axis=1)


def _code_blocks(query_codes, db_codes, query_labels, db_labels):
    """Yield (distances uint16 [c, N], relevance bool [c, N]) per block of queries."""
    q, db = _pair_codes(query_codes, db_codes)
    ql, dl = np.asarray(query_labels), np.asarray(db_labels)
    _check(len(q), len(db), ql, dl)
    planes = np.ascontiguousarray(db.T)
    step = _block_rows(len(db))
    for start in range(0, len(q), step):
        rows = slice(start, start + step)
        yield _hamming_block(q[rows], planes), relevance(ql[rows], dl)


def precision_within_radius(query_codes, db_codes, query_labels, db_labels, radius: int = 2) -> float:
    """Mean over queries of the precision of the items within Hamming distance ``radius`` (hash lookup).

    A query that retrieves nothing within the radius has precision 0 (as in DPSH's tables), so
    long codes, which leave many queries empty-handed, are not flattered.
    """
    total, count = 0.0, 0
    for dist, rel in _code_blocks(query_codes, db_codes, query_labels, db_labels):
        within = dist <= radius
        retrieved = within.sum(axis=1)
        hits = (within & rel).sum(axis=1)
        total += float(np.where(retrieved > 0, hits / np.maximum(retrieved, 1), 0.0).sum())
        count += len(dist)
    return total / count


class _PRAccumulator:
    """Sums for the precision-recall curve over Hamming radii 0..bits."""

    def __init__(self, bits: int):
        self.bits = bits
        self.precision_sum = np.zeros(bits + 1)
        self.precision_n = np.zeros(bits + 1, dtype=np.int64)
        self.recall_sum = np.zeros(bits + 1)
        self.recall_n = 0

    def add(self, dist: np.ndarray, rel: np.ndarray) -> None:
        retrieved, hits = _radius_counts(dist, rel, self.bits)
        some = retrieved > 0
        self.precision_sum += np.where(some, hits / np.maximum(retrieved, 1), 0.0).sum(axis=0)
        self.precision_n += some.sum(axis=0)
        relevant = rel.sum(axis=1)
        has = relevant > 0
        self.recall_sum += (hits[has] / relevant[has, None]).sum(axis=0)
        self.recall_n += int(has.sum())

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(self.precision_n > 0, self.precision_sum / self.precision_n, np.nan)
        recall = self.recall_sum / self.recall_n if self.recall_n else np.full(self.bits + 1, np.nan)
        return precision, recall


def _bits_of(codes: np.ndarray, bits: int | None) -> int:
    width = codes.shape[1] * 64
    if bits is None:
        return width
    if not 0 < bits <= width:
        raise ValueError(f"bits must be in 1..{width} for {codes.shape[1]}-word codes, not {bits}")
    return int(bits)


def precision_recall_curve(
    query_codes, db_codes, query_labels, db_labels, *, bits: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall), float64 [bits + 1], of hash lookup within Hamming radius r = 0..bits.

    Both are means over queries: recall over the queries that have a relevant item at all,
    precision over the queries that retrieve something within r (NaN at a radius where none
    does). Unlike :func:`precision_within_radius`, empty lookups are left out here, so the
    curve shows the precision of what is returned. ``bits`` defaults to 64 per code word.
    """
    q = _as_codes(query_codes, "query_codes")
    acc = _PRAccumulator(_bits_of(q, bits))
    for dist, rel in _code_blocks(query_codes, db_codes, query_labels, db_labels):
        acc.add(dist, rel)
    return acc.result()


def evaluate_codes(query_codes, db_codes, query_labels, db_labels, bits: int) -> dict:
    """All code metrics in one pass: ``{"map_all", "map_1000", "p_r2", "pr": {"precision", "recall"}}``.

    Same conventions as the single-metric functions (module doc); PR lists hold floats, NaN
    where undefined.
    """
    q = _as_codes(query_codes, "query_codes")
    acc = _PRAccumulator(_bits_of(q, bits))
    ap_all = ap_top = p_r2 = 0.0
    n = 0
    for dist, rel in _code_blocks(query_codes, db_codes, query_labels, db_labels):
        order = _stable_order(dist)
        rel_sorted = np.take_along_axis(rel, order, axis=1)
        ap_all += float(_average_precision(rel_sorted).sum())
        ap_top += float(_average_precision(rel_sorted[:, :MAP_TOPK]).sum())
        acc.add(dist, rel)
        within = dist <= 2
        retrieved = within.sum(axis=1)
        p_r2 += float(np.where(retrieved > 0, (within & rel).sum(axis=1) / np.maximum(retrieved, 1), 0.0).sum())
        n += len(dist)
    precision, recall = acc.result()
    return {
        "map_all": ap_all / n,
        "map_1000": ap_top / n,
        "p_r2": p_r2 / n,
        "pr": {"precision": precision.tolist(), "recall": recall.tolist()},
    }


# --------------------------------------------------------------------------------------
# reports




def _plain(value):
    """JSON-safe copy: numpy scalars and arrays to Python, NaN and infinities to None, paths to str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _label(row: dict) -> str:
    method = str(row.get("method", "?"))
    mode = row.get("mode")
    return f"{method} ({mode})" if mode else method


def _bits_key(bits) -> tuple[int, int]:
    return (1, 0) if bits is None else (0, int(bits))  # real-valued rows (no bits) last


def _bits_header(bits) -> str:
    return "float" if bits is None else f"{bits} bits"


def _cell(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, float, np.number)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_tables(rows: list[dict], *, title: str) -> str:
    """The Markdown of results.md: mAP@all (methods x bits), then mAP@1000, P(r<=2) and training time per row."""
    labels = list(dict.fromkeys(_label(r) for r in rows))  # first appearance order
    all_bits = sorted({r.get("bits") for r in rows}, key=_bits_key)
    cells = {(_label(r), r.get("bits")): r for r in rows}  # a repeated row: the last one counts
    lines = [f"# {_md_escape(title)}", ""]
    lines += ["mAP@all (Hamming ranking, ties by database order; float rows: cosine ranking)", ""]
    lines.append("| method | " + " | ".join(_bits_header(b) for b in all_bits) + " |")
    lines.append("|---|" + "---:|" * len(all_bits))
    for label in labels:
        values = [_cell(cells[(label, b)].get("map_all")) if (label, b) in cells else "–" for b in all_bits]
        lines.append(f"| {_md_escape(label)} | " + " | ".join(values) + " |")
    tuned = any("feature_map_all" in r for r in rows)  # full mode: the tuned network's own features
    lines += ["", "mAP@1000, precision within Hamming radius 2 and training time"
              + ("; full mode also the float cosine mAP@all of the tuned features" if tuned else ""), ""]
    lines.append("| method | bits | mAP@1000 | P(r≤2) | train s |" + (" tuned features |" if tuned else ""))
    lines.append("|---|---:|---:|---:|---:|" + ("---:|" if tuned else ""))
    for label in labels:
        for b in all_bits:
            r = cells.get((label, b))
            if r is None:
                continue
            lines.append(
                f"| {_md_escape(label)} | {'–' if b is None else b} | {_cell(r.get('map_1000'))}"
                f" | {_cell(r.get('p_r2'))} | {_cell(r.get('train_seconds'), 1)} |"
                + (f" {_cell(r.get('feature_map_all'))} |" if tuned else "")
            )
    return "\n".join(lines) + "\n"


def _pr_curves(rows: list[dict]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(legend, recall, precision) per method, at the largest bits that method has a PR curve for."""
    best: dict[str, dict] = {}
    for r in rows:
        pr = r.get("pr") or {}
        if r.get("bits") is None or not pr.get("precision") or not pr.get("recall"):
            continue
        label = _label(r)
        if label not in best or int(r["bits"]) >= int(best[label]["bits"]):
            best[label] = r
    return [
        (f"{label}, {r['bits']} bits", _floats(r["pr"]["recall"]), _floats(r["pr"]["precision"]))
        for label, r in best.items()
    ]


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)  # None: NaN from JSON


def plot_pr(rows: list[dict], path, *, title: str) -> Path:
    """Draw the precision-recall curves of ``rows`` (see :func:`write_report`) to a PNG, atomically.

    matplotlib is imported only here, through its Agg canvas (no pyplot, no global backend
    switch, so it is safe inside the GUI process). Raises EnvironmentProblem without it.
    """
    try:
        # why: matplotlib is slow to import and only the plot needs it
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise EnvironmentProblem(
            f"drawing {Path(path).name} needs matplotlib, which is not installed (pip install matplotlib)"
        ) from e
    path = Path(path)
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for legend, recall, precision in _pr_curves(rows):
        ax.plot(recall, precision, marker=".", markersize=3, linewidth=1.2, label=legend)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{title}: hash lookup by Hamming radius")
    if ax.lines:
        ax.legend(loc="best", fontsize="small")
    with atomic_write(path) as f:
        fig.savefig(f, format="png")
    return path


def write_report(rows: list[dict], out_dir, *, title: str) -> dict[str, Path]:
    """Write results.json, results.md and pr.png into ``out_dir``; return {"json", "markdown", "png"} paths.

    ``rows`` are dicts like ``{"method": "dpsh", "bits": 48, "mode": "head", "map_all": ...,
    "map_1000": ..., "p_r2": ..., "train_seconds": ..., "pr": {"precision": [...], "recall": [...]}}``;
    ``bits`` None marks a real-valued baseline (its own column). Each file is written
    atomically. The JSON and Markdown are written first, so when matplotlib is missing (an
    EnvironmentProblem for the plot) the numbers are already saved.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "png": out / "pr.png"}
    text = json.dumps({"title": title, "rows": _plain(rows)}, indent=2, allow_nan=False)
    write_bytes(paths["json"], (text + "\n").encode("utf-8"))
    write_bytes(paths["markdown"], markdown_tables(rows, title=title).encode("utf-8"))
    plot_pr(rows, paths["png"], title=title)
    return paths
