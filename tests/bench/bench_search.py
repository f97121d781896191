"""Search: our Hamming scan + re-rank against faiss IndexBinaryFlat and hnswlib, with recall.

    .venv/bin/python tests/bench/bench_search.py --quick
    .venv/bin/python tests/bench/bench_search.py --sizes 1e5,1e6,1e7 --bits 64,128 --queries 200
    .venv/bin/python tests/bench/bench_search.py --features feats.npy --bits 64

Data (seeded): clustered synthetic features, or real ones from --features. Synthetic rows are
``centre[c] + A[c % 16] @ z + noise``, unit-normalised: 1,000 cluster centres drawn uniformly
on the sphere (--clusters), each cluster varying along one of 16 random 32-dimensional
subspaces with a decaying spectrum (z ~ N(0, I_32), scale i^-1/2, total variance 0.5) plus
isotropic noise of variance 0.05, so neighbours are near in a low-dimensional way, as image
features are. Rows are made in chunks of 250k and stored as float16, as the library does;
above 2e6 rows the dimension is cut to --large-dim (128) to keep memory sane. Queries are
--queries extra rows from the same generator, not in the database (a new photo).

Codes, per bit width, from the stored features: "lsh", the sign of a Gaussian random
projection of the centred features, and "itq", PCA to K dims then 50 iterations of ITQ
(orthogonal Procrustes, Gong & Lazebnik 2011) fitted on a 100k-row sample; ITQ needs
K <= D and is skipped otherwise.

For each (N, bits, codes) it prints, one thread everywhere (BLAS, faiss and hnswlib queries):
our coarse scan (hamming_topk of the default pool) p50/p95 ms, numba and numpy (p50) backends;
faiss IndexBinaryFlat on the same codes for the same k; the ratio ours/faiss (p50); the same
three p50 figures for k=100 (as in DESIGN.md's measured facts); our coarse
+ re-rank (search, k=10, default pool) p50/p95; recall@10 of that against exact float (cosine)
search; the pool; and peak RSS so far. Then recall@10 against pool size (the evidence behind
engine.search.default_pool), hnswlib over the float features (M=16, ef_construction=100, the
smallest ef with recall@10 >= 0.95; built only up to --hnsw-max rows, 1e6 by default, as the
build takes minutes above), the re-rank alone at D=1280 from a memory-mapped float16 file, and
the cold-start cost of the search module in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one-thread figures; set before numpy loads BLAS

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine import search as S  # noqa: E402
from engine.codes import pack_bits  # noqa: E402

CHUNK = 250_000  # rows per step when making, encoding or scoring: bounds the temporaries
RECALL_AT = 10
POOLS = (100, 200, 500, 1000, 2000, 3000, 5000, 10_000, 20_000)


# -- data ---------------------------------------------------------------------------------


def synthetic(n: int, dim: int, clusters: int, seed: int, latent: int = 32, spread: float = 0.5) -> np.ndarray:
    """n unit rows of clustered features, float16, made chunk by chunk (see the docstring)."""
    rng = np.random.default_rng(seed)
    bases = 16
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    scale = (np.arange(1, latent + 1) ** -0.5).astype(np.float32)
    scale *= np.sqrt(spread / max((scale**2).sum(), 1e-12))
    basis = rng.standard_normal((bases, latent, dim)).astype(np.float32) / np.sqrt(dim)
    basis *= scale[None, :, None]
    out = np.empty((n, dim), np.float16)
    for s in range(0, n, CHUNK):
        m = min(CHUNK, n - s)
        label = rng.integers(0, clusters, m)
        z = rng.standard_normal((m, latent), dtype=np.float32)
        x = centres[label]
        for b in range(bases):  # group by basis: one matmul each
            rows = np.flatnonzero(label % bases == b)
            x[rows] += z[rows] @ basis[b]
        noise = 0.05 if latent else spread  # latent 0: an isotropic Gaussian mixture
        x += rng.standard_normal((m, dim), dtype=np.float32) * np.float32(np.sqrt(noise / dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s : s + m] = x
    return out


def load_features(path: str, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real features: unit rows as float16; --queries random rows held out as queries."""
    raw = np.load(path, mmap_mode="r")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(raw), bool)
    held[rng.choice(len(raw), min(queries, len(raw) // 10), replace=False)] = True
    feats = np.empty((len(raw), raw.shape[1]), np.float16)
    for s in range(0, len(raw), CHUNK):
        x = np.array(raw[s : s + CHUNK], np.float32)  # a copy: the memmap is read-only
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        feats[s : s + len(x)] = x
    return feats[~held], feats[held]


def fit_lsh(sample: np.ndarray, bits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    return sample.mean(0), rng.standard_normal((sample.shape[1], bits)).astype(np.float32)


def fit_itq(sample: np.ndarray, bits: int, seed: int, iters: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """PCA to ``bits`` dims, then rotate to minimise the quantisation loss ||B - VR||."""
    rng = np.random.default_rng(seed + 2)
    mean = sample.mean(0)
    xc = (sample - mean).astype(np.float64)
    _, evecs = np.linalg.eigh(xc.T @ xc)
    pca = evecs[:, ::-1][:, :bits]
    v = xc @ pca
    r, _ = np.linalg.qr(rng.standard_normal((bits, bits)))
    for _ in range(iters):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)  # orthogonal Procrustes: R = U W^T
        r = u @ wt
    return mean, (pca @ r).astype(np.float32)


def encode(feats: np.ndarray, mean: np.ndarray, proj: np.ndarray) -> np.ndarray:
    words = (proj.shape[1] + 63) // 64
    out = np.empty((len(feats), words), np.uint64)
    for s in range(0, len(feats), CHUNK):
        x = feats[s : s + CHUNK].astype(np.float32) - mean
        out[s : s + len(x)] = pack_bits(x @ proj > 0)
    return out


def exact_topk(feats: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k by brute force over float32 copies of the stored rows, chunked."""
    q = queries.astype(np.float32)
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    for s in range(0, len(feats), CHUNK):
        sc = q @ feats[s : s + CHUNK].astype(np.float32).T
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, part, 1)], axis=1)
        cand_i = np.concatenate([best_i, part + s], axis=1)
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, top, 1)
        best_i = np.take_along_axis(cand_i, top, 1)
    return best_i


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(f[:k], t)) / k for f, t in zip(found, truth)]))


# -- measuring ----------------------------------------------------------------------------


def timed(fn, items, repeat: int = 1) -> tuple[np.ndarray, list]:
    """Milliseconds per call for each item (the best of ``repeat``), and the results."""
    times, results = [], []
    for it in items:
        best = np.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = fn(it)
            best = min(best, time.perf_counter() - t0)
        times.append(best * 1e3)
        results.append(r)
    return np.array(times), results


def pct(t: np.ndarray) -> str:
    return f"{np.percentile(t, 50):7.3f} {np.percentile(t, 95):7.3f}"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_info() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next(
            (ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), ""
        )
        cpu += " (avx512_vpopcntdq)" if "avx512_vpopcntdq" in flags else ""
    except OSError:
        cpu = platform.processor() or "?"
    import numba

    return (
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"cores {os.cpu_count()}, cpu {cpu}, load {os.getloadavg()[0]:.2f}"
    )


def cold_start() -> str:
    """Import + first search in fresh processes: the numba backend and the numpy one."""
    code = """
import sys, time
t0 = time.perf_counter()
import numpy as np
sys.path.insert(0, {root!r})
t1 = time.perf_counter()
from engine import search as S
t2 = time.perf_counter()
S.set_backend({backend!r})
codes = np.random.default_rng(0).integers(0, 2**63, (1_000_000, 1), dtype=np.uint64)
feats = np.zeros((1_000_000, 8), np.float16)
t3 = time.perf_counter()
S.search(codes, feats, codes[5], np.zeros(8, np.float32))
t4 = time.perf_counter()
S.search(codes, feats, codes[6], np.zeros(8, np.float32))
t5 = time.perf_counter()
print(f"numpy import {{1e3*(t1-t0):.0f}} ms, engine.search import {{1e3*(t2-t1):.0f}} ms, "
      f"first search {{1e3*(t4-t3):.0f}} ms, second {{1e3*(t5-t4):.1f}} ms (N=1e6 x 64 bits)")
"""
    lines = []
    for backend in ("numba", "numpy"):
        r = subprocess.run(
            [sys.executable, "-c", code.format(root=str(ROOT), backend=backend)],
            capture_output=True,
            text=True,
            check=False,
        )
        lines.append(f"  {backend:5}: " + (r.stdout.strip() or r.stderr.strip()[-300:]))
    return "\n".join(lines)


def rerank_1280(pool: int, queries: int) -> str:
    """The re-rank alone at the default model's D=1280, from a float16 memmap of 100k rows."""
    rng = np.random.default_rng(7)
    n, dim = 100_000, 1280
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.f16"
        mm = np.memmap(path, np.float16, "w+", shape=(n, dim))
        for s in range(0, n, 20_000):
            x = rng.standard_normal((20_000, dim), dtype=np.float32)
            mm[s : s + 20_000] = x / np.linalg.norm(x, axis=1, keepdims=True)
        mm.flush()
        del mm
        feats = np.memmap(path, np.float16, "r", shape=(n, dim))
        q = np.asarray(feats[0], np.float32)
        pools = [rng.choice(n, pool, replace=False) for _ in range(queries)]
        out = []
        for backend in ("numba", "numpy"):
            S.set_backend(backend)
            S.rerank(feats, q, pools[0])
            t, _ = timed(lambda p: S.rerank(feats, q, p), pools)
            out.append(f"{backend} {pct(t)}")
        S.set_backend("auto")
        del feats
    return f"re-rank of a pool of {pool} at D={dim} (memmap, p50 p95 ms): " + " | ".join(out)


def hnsw_row(feats: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> str:
    import hnswlib

    n, dim = feats.shape
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=1)
    t0 = time.perf_counter()
    index.set_num_threads(os.cpu_count() or 1)
    for s in range(0, n, CHUNK):
        index.add_items(feats[s : s + CHUNK].astype(np.float32), np.arange(s, min(n, s + CHUNK)))
    build = time.perf_counter() - t0
    index.set_num_threads(1)
    qf = queries.astype(np.float32)
    chosen = None
    for ef in (10, 20, 40, 80, 160, 320, 640, 1280):
        index.set_ef(max(ef, RECALL_AT))
        t, res = timed(lambda q: index.knn_query(q, k=RECALL_AT)[0][0], qf)
        rec = recall(res, truth)
        chosen = (ef, t, rec)
        if rec >= 0.95:
            break
    ef, t, rec = chosen
    return (
        f"hnswlib M=16 efC=100: build {build:.0f} s on {os.cpu_count()} threads; ef={ef}: "
        f"p50 p95 {pct(t)} ms, recall@{RECALL_AT} {rec:.3f}; peak RSS {peak_rss_mb():.0f} MB"
    )


def bench_codes(name, codes, feats, qcodes, qfeats, truth, args) -> None:
    import faiss

    n, words = codes.shape
    bits = 64 * words
    pool = S.default_pool(n)
    items = list(range(len(qcodes)))
    rep = args.repeat

    S.set_backend("numba")
    S.hamming_topk(codes, qcodes[0], pool)
    ours, _ = timed(lambda i: S.hamming_topk(codes, qcodes[i], pool), items, rep)
    S.set_backend("numpy")
    npy, _ = timed(lambda i: S.hamming_topk(codes, qcodes[i], pool), items[: max(5, len(items) // 4)], 1)
    S.set_backend("numba")

    faiss.omp_set_num_threads(1)
    index = faiss.IndexBinaryFlat(bits)
    index.add(codes.view(np.uint8).reshape(n, 8 * words))
    qb = qcodes.view(np.uint8).reshape(len(qcodes), 1, 8 * words)
    index.search(qb[0], pool)
    fa, _ = timed(lambda i: index.search(qb[i], pool), items, rep)
    fa100, _ = timed(lambda i: index.search(qb[i], 100), items, rep)  # DESIGN.md's figures are top-100
    ours100, _ = timed(lambda i: S.hamming_topk(codes, qcodes[i], 100), items, rep)
    del index

    params = S.SearchParams(k=RECALL_AT)
    full, res = timed(lambda i: S.search(codes, feats, qcodes[i], qfeats[i], params).slots, items, rep)
    ratio = np.percentile(ours, 50) / np.percentile(fa, 50)
    ratio100 = np.percentile(ours100, 50) / np.percentile(fa100, 50)
    print(
        f"{n:>9.0e} {bits:4d} {name:4} | {pct(ours)} | {np.percentile(npy, 50):7.3f} | {pct(fa)} | "
        f"{ratio:5.2f} | {np.percentile(ours100, 50):7.3f} {np.percentile(fa100, 50):7.3f} {ratio100:5.2f} | "
        f"{pct(full)} | {recall(res, truth):6.3f} | {pool:6d} | {peak_rss_mb():7.0f}",
        flush=True,
    )

    # recall@10 against pool size: the top P by (hamming, slot) then exact cosine among them
    pools = [p for p in POOLS if p <= n] + ([n] if n < POOLS[-1] else [])
    big = max(pools)
    curve = np.zeros(len(pools))
    for i in items:
        slots, _ = S.hamming_topk(codes, qcodes[i], big)
        score = S.rerank(feats, qfeats[i], slots)
        for j, p in enumerate(pools):
            top = slots[:p][np.argsort(-score[:p], kind="stable")[:RECALL_AT]]
            curve[j] += len(np.intersect1d(top, truth[i])) / RECALL_AT
    curve /= len(items)
    _CURVES.append((n, bits, name, dict(zip(pools, curve))))


_CURVES: list = []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e5,1e6,1e7", help="database sizes, comma separated")
    ap.add_argument("--bits", default="64,128", help="code lengths, comma separated")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dim", type=int, default=256, help="synthetic feature dimension")
    ap.add_argument("--large-dim", type=int, default=128, help="dimension used above 2e6 rows")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--latent", type=int, default=32, help="within-cluster dims; 0: isotropic mixture")
    ap.add_argument("--spread", type=float, default=0.5, help="within-cluster variance (centres are unit)")
    ap.add_argument("--codes", default="lsh,itq", help="code makers: lsh, itq")
    ap.add_argument("--features", help="N x D float .npy of real features instead of synthetic")
    ap.add_argument("--hnsw-max", type=float, default=1e6, help="build hnswlib only up to this N")
    ap.add_argument("--repeat", type=int, default=1, help="time each query this many times, keep the best")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="sizes 1e4,1e5, 64 bits, 50 queries")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.bits, args.queries = "1e4,1e5", "64", min(args.queries, 50)

    print(machine_info())
    print("(timings are one thread; a shared or loaded machine inflates them)")
    t0 = time.perf_counter()
    print("search backend after warm_up:", S.warm_up(), f"({time.perf_counter() - t0:.1f} s)", flush=True)
    print("cold start, fresh process:\n" + cold_start(), flush=True)
    print(rerank_1280(1000, 50 if args.quick else 200), flush=True)

    bit_list = [int(b) for b in args.bits.split(",")]
    makers = [m.strip() for m in args.codes.split(",")]
    if args.features:
        db, qf = load_features(args.features, args.queries, args.seed)
        datasets = [(len(db), db, qf, f"features {args.features}: {db.shape[1]} dims")]
    else:
        datasets = []
        for size in args.sizes.split(","):
            datasets.append((int(float(size)), None, None, None))

    header = (
        f"{'N':>9} {'bits':>4} {'code':4} | ours p50 p95 (ms)| numpy50 | faiss p50 p95   | ratio |"
        f" k=100: ours  faiss ratio | search p50 p95 | rec@{RECALL_AT} |   pool | RSS MB"
    )
    hnsw_lines = []
    for n, db, qf, what in datasets:
        if db is None:
            dim = args.dim if n <= 2_000_000 else min(args.dim, args.large_dim)
            t0 = time.perf_counter()
            data = synthetic(n + args.queries, dim, args.clusters, args.seed + n, args.latent, args.spread)
            db, qf = data[:n], data[n:]
            what = (
                f"synthetic: {n:.0e} x {dim} float16, {args.clusters} clusters, latent {args.latent}, "
                f"spread {args.spread} ({time.perf_counter() - t0:.0f} s)"
            )
        print(f"\n== {what}", flush=True)
        t0 = time.perf_counter()
        truth = exact_topk(db, qf, RECALL_AT)
        print(f"exact float top-{RECALL_AT}: {time.perf_counter() - t0:.1f} s for {len(qf)} queries", flush=True)
        sample = db[np.random.default_rng(args.seed).choice(len(db), min(len(db), 100_000), replace=False)]
        sample = sample.astype(np.float32)
        qf32 = qf.astype(np.float32)
        print(header)
        for bits in bit_list:
            for maker in makers:
                if maker == "itq" and bits > db.shape[1]:
                    print(f"{n:>9.0e} {bits:4d} itq  | skipped: ITQ needs bits <= dim ({db.shape[1]})")
                    continue
                fit = fit_itq if maker == "itq" else fit_lsh
                mean, proj = fit(sample, bits, args.seed)
                codes = encode(db, mean, proj)
                qcodes = encode(qf, mean, proj)
                bench_codes(maker, codes, db, qcodes, qf32, truth, args)
                del codes
        if n <= args.hnsw_max:
            hnsw_lines.append(f"N={n:.0e}: " + hnsw_row(db, qf, truth))
            print(hnsw_lines[-1], flush=True)
        else:
            hnsw_lines.append(f"N={n:.0e}: hnswlib skipped (build takes minutes above --hnsw-max={args.hnsw_max:.0e})")
            print(hnsw_lines[-1], flush=True)
        del db, qf, truth

    print(f"\nrecall@{RECALL_AT} against pool size (default pool: max({S.MIN_POOL}, 1.25 sqrt(N))):")
    for n, bits, name, curve in _CURVES:
        print(f"{n:>9.0e} {bits:4d} {name:4} " + "  ".join(f"{p}:{r:.3f}" for p, r in curve.items()))
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
