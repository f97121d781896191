"""Query by image: exact Hamming top-k (or radius) over packed codes, then a fine re-rank.

Coarse: the Hamming distance from the query code to every live code, keeping a pool of the
closest (or every code within a radius). Fine: the pool only, in the space a model version
names (FeatureSpace: cosine on the float16 features; CodeSpace: the hash head's own space,
tanh(q W + b) against the stored bits). Both stages are exact for what they compute; ties
go to the lower slot. A Probe carries a refined query (several photos, similar and
dissimilar examples): several seeds for the coarse stage, one vector for the fine one
(search_probe); search() is the one-photo case.

Coarse kernel (numba, one thread, one read of the codes, no distance array): the codes are
scanned in blocks of 64 rows; a vectorised loop (vpopcntq where the CPU has it) turns a block
into a 64-bit mask of the rows within the current threshold t, and only set bits are visited.
Kept rows go to a buffer in slot order and into a histogram of distances; t drops as soon as
k kept rows are closer than it, and rows at t itself stop being kept once enough are, so
after the first blocks almost every block is rejected by the mask alone. A counting sort of
the buffer by distance then gives (distance, slot) order. The starting t is guessed from 64
sampled blocks (a low guess is detected and the scan redone from the top). One thread each,
on a shared 2-core AVX-512 machine, it took 0.2-0.45 of faiss IndexBinaryFlat's time at
1e6 codes and 0.35-0.85 at 1e7 (64 to 256 bits).

The numpy path (numba missing or not loaded yet): uint8 distances in cache-sized chunks over
word planes, a threshold from a strided sample of them, ``flatnonzero``, a stable argsort,
and a full histogram when the sample guessed low; 3-4x slower than the kernel.

numba is never imported at module import. With the default backend "auto", calls use numpy
until :func:`warm_up` has loaded the kernels (0.5-1 s in a fresh process even from numba's
on-disk cache: numba's import, then its first cache load imports scipy; 8-20 s the very
first time, compiling), so a one-shot CLI
query never pays for it and the GUI calls warm_up() in a background thread at start.
``set_backend("numba")`` loads them on first use instead; ``LOOKALIKE_SEARCH_BACKEND``
presets the backend. The numba cache goes to the user cache directory (platformdirs) unless
NUMBA_CACHE_DIR is set, so a read-only install works.

Re-rank gathers only the pool rows, in slot order (a memory-mapped feature file is read
forward), four rows at a time so their cache misses overlap, and converts float16 to float32
inside the numba kernel: numpy's float16 cast costs about 7 ns an element here (5-9 ms for a
pool of 1,000 at D=1280, the numpy path) against 0.5-0.9 ms for the whole kernel.

Pool: :func:`default_pool` = max(2000, 1.25 sqrt(N)), scaling gently with N, because the
pool that reaches recall@10 >= 0.95 against exact cosine search grows with the density of
the library. Measured with tests/bench/bench_search.py (clustered synthetic features: 1,000
clusters varying along 32-dim subspaces; 64-bit codes; 100-200 fresh queries):

    N    D    codes  pool for 0.95   recall@10 at the default pool
    1e4  256  LSH    2000            0.954 (2000)  sparse: 10 rows a cluster
    1e4  256  ITQ    3000            0.934 (2000)
    1e5  256  both   100             0.998-1.0 (2000)
    1e6  256  LSH    500             0.995 (2000)
    1e6  256  ITQ    300-500         0.999 (2000)
    1e7  128  LSH    3000-5000       ~0.96 (3953; 0.947 at 3000, 0.977 at 5000)
    1e7  128  ITQ    2000            ~0.99 (3953; 0.950 at 2000, 0.985 at 3000)

A fixed 2,000 would give LSH 0.91 at 1e7. An isotropic Gaussian mixture (the order within a
cluster is noise the codes cannot see) is the hard case: at 1e6, ITQ needs about the cluster
size (recall 0.991 at 1,000), LSH 5,000 (0.885 at 2,000). Cost of the default: at 1e6 x 64
bits, coarse + re-rank took 1.8 ms p50 at D=256 on the shared machine; a pool of 2,000
re-ranks in about 1 ms at D=1280.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from engine.errors import EnvironmentProblem

MIN_POOL = 2000  # the default pool below 2.56e6 codes (see the module docstring)
# Feature cosine from which a candidate counts as a copy of the query (resized, recompressed,
# 4% cropped, rotated score well above it with the default model, distinct photos rarely pass
# it; DESIGN.md has the measurement): ranked first whatever the fine stage.
COPY_COSINE = 0.90

_BLOCK = 64  # rows per vectorised hit test; small so a hit costs little to walk


RERANK_CHOICES = ("auto", "features", "code", "none")
SPACES = ("features", "code")  # what a model version's manifest may name as its fine stage


@dataclass(frozen=True)
class SearchParams:
    """How a query is answered; the defaults suit a personal photo library."""

    k: int = 20  # results returned
    pool: int | None = None  # coarse candidates kept by Hamming distance; None: default_pool(N)
    radius: int | None = None  # if set, the pool is every code within this Hamming radius
    max_pool: int = 100_000  # cap on the pool (matters with a radius)
    # The fine stage: "auto" (or True) ranks the pool in the space the active model version's
    # manifest names, "features" by cosine on the stored features, "code" in the hash head's
    # own space (see CodeSpace), "none" (or False) by Hamming distance only (ties by slot).
    rerank: bool | str = True

    def rerank_choice(self) -> str:
        """``rerank`` as one of RERANK_CHOICES (True is "auto", False is "none")."""
        if self.rerank is True:
            return "auto"
        if self.rerank is False:
            return "none"
        if self.rerank not in RERANK_CHOICES:
            raise ValueError(f"rerank is one of {RERANK_CHOICES} (or True/False), not {self.rerank!r}")
        return self.rerank


@dataclass(frozen=True)
class SearchResult:
    """Best first: ``slots`` (int64), ``hamming`` (int32) and ``score`` (float32): the cosine,
    or the code agreement when ranked in a head's space; ``cosine`` (float32) is then the feature
    cosine to the query (what tells a copy there), else None."""

    slots: np.ndarray
    hamming: np.ndarray
    score: np.ndarray
    cosine: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.slots)


def default_pool(n: int) -> int:
    """Coarse candidates for n codes: max(2000, 1.25 sqrt(n)), at most n."""
    return min(int(n), max(MIN_POOL, round(1.25 * float(n) ** 0.5)))


# -- backend selection ---------------------------------------------------------------------

_BACKENDS = ("auto", "numba", "numpy")
_backend = os.environ.get("LOOKALIKE_SEARCH_BACKEND", "auto")
if _backend not in _BACKENDS:
    _backend = "auto"
_kernels = None  # the jitted kernels once loaded; False if numba does not import
_warm = False  # warm_up() has loaded every kernel: "auto" uses them from then on
_kernels_lock = threading.Lock()


def set_backend(name: str) -> None:
    """Choose the scan: "auto", "numba" (loaded on first use, synchronously) or "numpy".

    "auto" uses numpy until :func:`warm_up` has loaded the numba kernels, then numba, so no
    call ever waits for numba to load.
    """
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, not {name!r}")
    _backend = name


def backend() -> str:
    """The backend the next call will use: "numba" or "numpy"."""
    return "numba" if _active_kernels() else "numpy"


def warm_up() -> str:
    """Import numba and load every kernel (compile them, the first time ever); thread-safe.

    Returns the backend "auto" will use from now on. Slow even with a warm cache (numba's
    import and its first cache load, which imports scipy; docs/BENCHMARKS.md, "Search"):
    the GUI calls it in a background thread at start, searches meanwhile run on numpy.
    """
    global _warm
    kern = _load_kernels()
    if not kern:
        return "numpy"
    for w in (1, 2, 4, 3):
        flat = _readonly(np.zeros(3 * w, np.uint64))
        kern.select(w)(flat, _readonly(np.zeros(w, np.uint64)), 1, 64 * w, _NO_LIVE, False)
    fbits = _readonly(np.zeros((3, 4), np.uint16))
    rows = _readonly(np.arange(2, dtype=np.int64))
    kern.rerank(fbits, rows, _readonly(np.zeros(4, np.float32)), np.empty(2, np.float32))
    _warm = True
    return "numba"


def _active_kernels():
    """The numba kernels if this call should use them, else None (numpy)."""
    if _backend == "numpy":
        return None
    if _backend == "auto":
        return _kernels if _warm else None
    kern = _load_kernels()
    if not kern:
        raise EnvironmentProblem("the numba search backend was asked for, but numba does not import")
    return kern


def numba_popcount():
    """numba's popcount intrinsic, for other engine kernels to compile with (numba's cache folder
    set up as the search kernels have it), or None when numba does not import."""
    return _nb_popcount if _load_kernels() else None


def _load_kernels():
    global _kernels
    if _kernels is None:
        with _kernels_lock:
            if _kernels is None:
                _kernels = _load_numba()
    return _kernels


def _load_numba():
    """Jit the kernels below (loaded from numba's on-disk cache after the first run)."""
    cache_dir = None
    if not os.environ.get("NUMBA_CACHE_DIR"):
        # numba's default cache sits beside the source, which a bundled app cannot write
        try:
            import platformdirs

            cache_dir = os.path.join(platformdirs.user_cache_dir("lookalike", appauthor=False), "numba")
            os.environ["NUMBA_CACHE_DIR"] = cache_dir
        except ImportError:
            pass
    try:  # why: numba takes seconds to import; a search without the jitted kernels never needs it
        import numba
        from numba import types
        from numba.core import cgutils
        from numba.extending import intrinsic
    except ImportError:
        return False
    if cache_dir and not numba.config.CACHE_DIR:
        numba.config.CACHE_DIR = cache_dir  # numba was imported before the variable was set

    @intrinsic
    def popcount(typingctx, x):
        # LLVM's ctpop: one popcnt, or vpopcntq once the loop is vectorised
        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return types.int64(types.uint64), codegen

    @intrinsic
    def lowest_bit(typingctx, x):
        # index of the lowest set bit (tzcnt); x is never 0 here
        def codegen(context, builder, signature, args):
            return builder.cttz(args[0], cgutils.true_bit)

        return types.int64(types.uint64), codegen

    @intrinsic
    def f32_from_bits(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float32))

        return types.float32(types.uint32), codegen

    g = globals()
    g["_nb_popcount"] = popcount
    g["_nb_lowest_bit"] = lowest_bit
    g["_nb_f32_from_bits"] = f32_from_bits
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)
    for name in ("_row_distance", "_start", "_collect", "_finish"):
        g["_nb" + name] = jit(g[name])
    selects = {w: jit(g[f"_select_w{w}"]) for w in (1, 2, 4)}
    generic = jit(_select_wn)
    g["_nb_f16_to_f32"] = numba.njit(cache=True, inline="always")(_f16_to_f32)
    rerank = numba.njit(
        cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract", "nsz"}
    )(_rerank_rows)

    class Kernels:
        @staticmethod
        def select(w):
            return selects.get(w, generic)

    Kernels.rerank = staticmethod(rerank)
    return Kernels


# Globals the kernels call; bound to jitted versions by _load_numba before the first compile.
_nb_popcount = _nb_lowest_bit = _nb_f32_from_bits = _nb_f16_to_f32 = None
_nb_start = _nb_collect = _nb_finish = _nb_row_distance = None


# -- numba kernels (plain Python until _load_numba jits them) ------------------------------
# A scan keeps rows in slot order in (buf_s, buf_d); hist[d] counts kept rows at distance d,
# t is the threshold and `closer` the number of kept rows closer than t. Invariant: every
# live row closer than t is kept, and so are the first rows (slot order) at distance t, at
# least as many as the top k needs; t drops whenever k kept rows are closer than it.

_SAMPLE_BLOCKS = 64  # blocks of _BLOCK rows read to guess the starting threshold
_GUESS_MIN_ROWS = 8 * _SAMPLE_BLOCKS * _BLOCK  # below this, start from tmax


def _row_distance(flat, i, q):
    w = q.shape[0]
    d = 0
    for c in range(w):
        d += _nb_popcount(flat[w * i + c] ^ q[c])
    return d


def _start(flat, q, k, tmax, live, guess):
    """Starting threshold: tmax, or a guess from a sample of blocks spread over the codes."""
    nrows = flat.shape[0] // q.shape[0]
    hist = np.zeros(tmax + 2, np.int64)
    t = tmax
    if guess and nrows >= _SAMPLE_BLOCKS * _BLOCK:
        # with t = tmax every early block is a hit; a threshold guessed a little high costs
        # nothing (it tightens as usual), one too low costs a second scan (the caller's)
        sample = 0
        stride = nrows // _SAMPLE_BLOCKS
        for b in range(_SAMPLE_BLOCKS):
            for i in range(b * stride, b * stride + _BLOCK):
                if live.shape[0] == 0 or live[i]:
                    d = _nb_row_distance(flat, i, q)
                    if d <= tmax:
                        hist[d] += 1
                sample += 1
        need = max(16.0, (4.0 * k + 256.0) * sample / nrows)
        cum = 0
        for d in range(tmax + 1):
            cum += hist[d]
            if cum >= need:
                t = d
                break
        hist[:] = 0
    # no growth: reassigning arrays in the scan loop costs refcounting on every block
    cap = max(1, min(nrows, 2 * k + 64))
    return t, hist, np.empty(cap, np.int64), np.empty(cap, np.int32)


def _collect(mask, start, flat, q, live, k, n, t, closer, hist, buf_s, buf_d):
    """Keep the rows of one block flagged in ``mask`` that the top k may need."""
    has_live = live.shape[0] > 0
    while mask:
        j = _nb_lowest_bit(mask)
        mask &= mask - np.uint64(1)
        i = start + j
        if has_live and not live[i]:
            continue
        d = _nb_row_distance(flat, i, q)
        if d > t or (d == t and closer + hist[d] >= k):
            continue  # beyond t, or enough rows at t already (all at lower slots)
        if n == buf_s.shape[0]:
            # drop rows the threshold has since passed by: at most k rows are within t, and
            # the buffer holds 2k (or every row), so this frees at least half of it
            w = 0
            for r in range(n):
                if buf_d[r] <= t:
                    buf_s[w] = buf_s[r]
                    buf_d[w] = buf_d[r]
                    w += 1
            n = w
        buf_s[n] = i
        buf_d[n] = d
        n += 1
        hist[d] += 1
        if d < t:
            closer += 1
            while closer >= k:  # k rows beat t: nothing at t or beyond can make the top k
                t -= 1
                closer -= hist[t]
    return n, t, closer


def _finish(n, t, hist, buf_s, buf_d, k, t0):
    """Counting sort of the kept rows by distance (stable: they were kept in slot order).

    Also returns the starting threshold: a result shorter than k from a guessed start below
    tmax may be missing rows, and the caller scans again from tmax.
    """
    pos = np.zeros(t + 2, np.int64)
    for d in range(t + 1):
        pos[d + 1] = pos[d] + hist[d]
    total = min(k, pos[t + 1])
    out_s = np.empty(total, np.int64)
    out_d = np.empty(total, np.int32)
    for r in range(n):
        d = buf_d[r]
        if d <= t:
            p = pos[d]
            if p < total:
                out_s[p] = buf_s[r]
                out_d[p] = d
            pos[d] = p + 1
    return out_s, out_d, t0


# The scans differ only in how a block's distances are computed: word by word with the
# words of the query in registers, so LLVM vectorises the block (vpopcntq where there is one).
# te is the threshold for this block: rows at t itself are useless once enough are kept.


def _select_w1(flat, q, k, tmax, live, guess):
    t, hist, buf_s, buf_d = _nb_start(flat, q, k, tmax, live, guess)
    t0 = t
    n = 0
    closer = 0
    q0 = q[0]
    for start in range(0, flat.shape[0], _BLOCK):
        chunk = flat[start : start + _BLOCK]  # a slice, so LLVM sees j >= 0 and vectorises
        te = t if closer + hist[t] < k else t - 1
        mask = np.uint64(0)
        for j in range(chunk.shape[0]):
            mask |= np.uint64(_nb_popcount(chunk[j] ^ q0) <= te) << np.uint64(j)
        if mask:
            n, t, closer = _nb_collect(
                mask, start, flat, q, live, k, n, t, closer, hist, buf_s, buf_d
            )
    return _nb_finish(n, t, hist, buf_s, buf_d, k, t0)


def _select_w2(flat, q, k, tmax, live, guess):
    t, hist, buf_s, buf_d = _nb_start(flat, q, k, tmax, live, guess)
    t0 = t
    n = 0
    closer = 0
    q0 = q[0]
    q1 = q[1]
    for start in range(0, flat.shape[0] // 2, _BLOCK):
        chunk = flat[2 * start : 2 * (start + _BLOCK)]
        te = t if closer + hist[t] < k else t - 1
        mask = np.uint64(0)
        for j in range(chunk.shape[0] // 2):
            d = _nb_popcount(chunk[2 * j] ^ q0) + _nb_popcount(chunk[2 * j + 1] ^ q1)
            mask |= np.uint64(d <= te) << np.uint64(j)
        if mask:
            n, t, closer = _nb_collect(
                mask, start, flat, q, live, k, n, t, closer, hist, buf_s, buf_d
            )
    return _nb_finish(n, t, hist, buf_s, buf_d, k, t0)


def _select_w4(flat, q, k, tmax, live, guess):
    t, hist, buf_s, buf_d = _nb_start(flat, q, k, tmax, live, guess)
    t0 = t
    n = 0
    closer = 0
    q0 = q[0]
    q1 = q[1]
    q2 = q[2]
    q3 = q[3]
    for start in range(0, flat.shape[0] // 4, _BLOCK):
        chunk = flat[4 * start : 4 * (start + _BLOCK)]
        te = t if closer + hist[t] < k else t - 1
        mask = np.uint64(0)
        for j in range(chunk.shape[0] // 4):
            d = _nb_popcount(chunk[4 * j] ^ q0) + _nb_popcount(chunk[4 * j + 1] ^ q1)
            d += _nb_popcount(chunk[4 * j + 2] ^ q2) + _nb_popcount(chunk[4 * j + 3] ^ q3)
            mask |= np.uint64(d <= te) << np.uint64(j)
        if mask:
            n, t, closer = _nb_collect(
                mask, start, flat, q, live, k, n, t, closer, hist, buf_s, buf_d
            )
    return _nb_finish(n, t, hist, buf_s, buf_d, k, t0)


def _select_wn(flat, q, k, tmax, live, guess):
    t, hist, buf_s, buf_d = _nb_start(flat, q, k, tmax, live, guess)
    t0 = t
    n = 0
    closer = 0
    w = q.shape[0]
    for start in range(0, flat.shape[0] // w, _BLOCK):
        chunk = flat[w * start : w * (start + _BLOCK)]
        te = t if closer + hist[t] < k else t - 1
        mask = np.uint64(0)
        for j in range(chunk.shape[0] // w):
            d = 0
            for c in range(w):
                d += _nb_popcount(chunk[w * j + c] ^ q[c])
            mask |= np.uint64(d <= te) << np.uint64(j)
        if mask:
            n, t, closer = _nb_collect(
                mask, start, flat, q, live, k, n, t, closer, hist, buf_s, buf_d
            )
    return _nb_finish(n, t, hist, buf_s, buf_d, k, t0)


def _f16_to_f32(h):
    # float16 bits (as uint32) to float32, exact for zeros, subnormals and normals (features
    # are finite): numpy's own cast is the slow part of a re-rank otherwise
    normal = _nb_f32_from_bits(((h & np.uint32(0x7FFF)) << np.uint32(13)) + np.uint32(112 << 23))
    sub = np.float32(np.int32(h & np.uint32(0x3FF))) * np.float32(5.9604644775390625e-08)
    v = sub if (h & np.uint32(0x7C00)) == 0 else normal
    return -v if (h & np.uint32(0x8000)) != 0 else v


def _rerank_rows(fbits, rows, q, out):
    # four rows at a time: four independent streams of cache misses overlap (about 1.7x
    # faster than one row at a time on a pool gathered from a large feature array)
    n = rows.shape[0]
    r = 0
    while r + 4 <= n:
        a = fbits[rows[r]]
        b = fbits[rows[r + 1]]
        c = fbits[rows[r + 2]]
        d = fbits[rows[r + 3]]
        sa = np.float32(0.0)
        sb = np.float32(0.0)
        sc = np.float32(0.0)
        sd = np.float32(0.0)
        for j in range(q.shape[0]):
            qj = q[j]
            sa += _nb_f16_to_f32(np.uint32(a[j])) * qj
            sb += _nb_f16_to_f32(np.uint32(b[j])) * qj
            sc += _nb_f16_to_f32(np.uint32(c[j])) * qj
            sd += _nb_f16_to_f32(np.uint32(d[j])) * qj
        out[r] = sa
        out[r + 1] = sb
        out[r + 2] = sc
        out[r + 3] = sd
        r += 4
    while r < n:
        a = fbits[rows[r]]
        sa = np.float32(0.0)
        for j in range(q.shape[0]):
            sa += _nb_f16_to_f32(np.uint32(a[j])) * q[j]
        out[r] = sa
        r += 1


# -- numpy paths --------------------------------------------------------------------------

_CHUNK = 1 << 15  # rows per numpy chunk: the temporaries stay in L2


def _distance_dtype(words: int):
    return np.uint8 if 64 * words < 256 else np.uint16


def hamming_distances(codes, query_words) -> np.ndarray:
    """Hamming distance from the query to every code, uint8 (or uint16 when W >= 4); numpy."""
    codes, q = _check(codes, query_words)
    n, w = codes.shape
    out = np.empty(n, _distance_dtype(w))
    tmp = np.empty(min(n, _CHUNK), np.uint64)
    cnt = np.empty(min(n, _CHUNK), np.uint8)
    for s in range(0, n, _CHUNK):
        block = codes[s : s + _CHUNK]
        m = len(block)
        o = out[s : s + m]
        # word planes, not a row-wise sum: bitwise_count(...).sum(axis=1) is 15-25x slower
        np.bitwise_xor(block[:, 0], q[0], out=tmp[:m])
        np.bitwise_count(tmp[:m], out=cnt[:m])
        o[...] = cnt[:m]
        for c in range(1, w):
            np.bitwise_xor(block[:, c], q[c], out=tmp[:m])
            np.bitwise_count(tmp[:m], out=cnt[:m])
            o += cnt[:m]
    return out


def _numpy_select(codes, q, k, tmax, live):
    d = hamming_distances(codes, q)
    n = len(d)
    step = max(1, n // 8192)
    sample = np.bincount(d[::step], minlength=tmax + 1)[: tmax + 1]
    expected = np.cumsum(sample) * (n / len(d[::step]))
    # aim for twice k so the guess rarely falls short; a short guess costs one full histogram
    t = min(tmax, int(np.searchsorted(expected, 2 * k + 64)))
    cand = np.flatnonzero(d <= t)
    if live is not None:
        cand = cand[live[cand]]
    if len(cand) < k and t < tmax:
        full = np.bincount(d if live is None else d[live], minlength=tmax + 1)[: tmax + 1]
        t = min(tmax, int(np.searchsorted(np.cumsum(full), k)))
        cand = np.flatnonzero(d <= t)
        if live is not None:
            cand = cand[live[cand]]
    dc = d[cand]
    order = np.argsort(dc, kind="stable")[:k]  # stable: ties stay in slot order
    return cand[order], dc[order].astype(np.int32)


# -- public API ---------------------------------------------------------------------------

_NO_LIVE = np.zeros(0, bool)
_NO_LIVE.flags.writeable = False


def _readonly(a: np.ndarray) -> np.ndarray:
    # one kernel specialisation for writable arrays and read-only memmaps alike
    a = np.asarray(a)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _check(codes, query_words):
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint64:
        raise ValueError(f"codes must be a (N, W) uint64 array, not {codes.dtype} {codes.shape}")
    q = np.ascontiguousarray(query_words, dtype=np.uint64).reshape(-1)
    if q.shape[0] != codes.shape[1]:
        raise ValueError(f"the query has {q.shape[0]} words, the codes {codes.shape[1]}")
    return codes, q


def _check_live(live, n):
    if live is None:
        return None
    live = np.asarray(live)
    if live.dtype != np.bool_ or live.shape != (n,):
        raise ValueError(f"live must be a bool array of shape ({n},), not {live.dtype} {live.shape}")
    return live


def _select(codes, query_words, k, tmax, live):
    """Exact top k of the live rows with distance <= tmax, in (distance, slot) order."""
    codes, q = _check(codes, query_words)
    n, w = codes.shape
    live = _check_live(live, n)
    k = min(int(k), n)
    tmax = min(int(tmax), 64 * w)
    if k <= 0 or n == 0 or tmax < 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    kern = _active_kernels()
    if not kern:
        return _numpy_select(codes, q, k, tmax, live)
    if not codes.flags.c_contiguous:
        codes = np.ascontiguousarray(codes)
    flat = _readonly(codes).reshape(-1)
    lv = _NO_LIVE if live is None else _readonly(np.ascontiguousarray(live))
    q = _readonly(q)
    scan = kern.select(w)
    guess = n >= _GUESS_MIN_ROWS
    slots, dist, t0 = scan(flat, q, k, tmax, lv, guess)
    if len(slots) < k and t0 < tmax:
        slots, dist, t0 = scan(flat, q, k, tmax, lv, False)  # the guess was too low: rare
    return slots, dist


def hamming_topk(codes, query_words, k, live=None) -> tuple[np.ndarray, np.ndarray]:
    """The k live codes nearest the query: (slots int64, distances int32), by (distance, slot)."""
    return _select(codes, query_words, k, 1 << 30, live)


def hamming_within(codes, query_words, radius, live=None, limit=None) -> tuple[np.ndarray, np.ndarray]:
    """Live codes within ``radius`` of the query, by (distance, slot); the first ``limit`` if set."""
    n = np.asarray(codes).shape[0]
    return _select(codes, query_words, n if limit is None else limit, radius, live)


def rerank(features, query_feature, slots) -> np.ndarray:
    """Cosine of the query to the features of ``slots`` (unit rows, unit query): float32."""
    slots = np.asarray(slots, dtype=np.int64).reshape(-1)
    q = np.ascontiguousarray(query_feature, dtype=np.float32).reshape(-1)
    features = np.asarray(features)  # a memmap stays a view; no copy
    if features.ndim != 2 or features.shape[1] != q.shape[0]:
        raise ValueError(f"features {features.shape} do not match a query of {q.shape[0]} dims")
    if len(slots) == 0:
        return np.zeros(0, np.float32)
    order = np.argsort(slots, kind="stable")  # read the feature file forward
    rows = slots[order]
    if rows[0] < 0 or rows[-1] >= features.shape[0]:
        raise IndexError("a slot is outside the feature array")
    scores = np.empty(len(rows), np.float32)
    kern = _active_kernels() if features.dtype == np.float16 else None
    if kern and features.flags.c_contiguous:
        kern.rerank(_readonly(features.view(np.uint16)), _readonly(rows), _readonly(q), scores)
    elif features.dtype == np.float32 and not isinstance(features, np.memmap) and 4 * len(rows) >= len(features):
        scores[...] = (features @ q)[rows]  # most rows of an in-memory array: no gather
    else:
        scores[...] = features[rows].astype(np.float32, copy=False) @ q
    out = np.empty_like(scores)
    out[order] = scores
    return out


# -- the fine stage ------------------------------------------------------------------------
# A space turns features into the vectors a query is compared in (embed) and scores a pool of
# slots against a query vector (scores). Relevance feedback and several query photos combine
# embedded vectors (refined_vector); the coarse stage is the same Hamming scan for all.


def _unit(vector) -> np.ndarray:
    v = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class FeatureSpace:
    """Cosine on the stored features (the backbone's L2-normalised output): what the zero-label
    default ranks by, because a near-duplicate is closest there (DESIGN.md)."""

    name = "features"

    def embed(self, features) -> np.ndarray:
        """float32 rows [n, D] for features [n, D] (or [D]): unit already (the model contract)."""
        return np.asarray(features, dtype=np.float32)

    def finish(self, vector: np.ndarray) -> np.ndarray:
        """A combined query vector made unit, so that its scores are cosines."""
        return _unit(vector)

    def scores(self, codes, features, slots, vector) -> np.ndarray:
        """Dot product of each slot's (unit) feature with ``vector``: cosine for a unit vector."""
        return rerank(features, vector, slots)


class CodeSpace:
    """A linear hash head's own space, scored asymmetrically: the query side is the head's
    continuous code tanh(f W + b), the database side the stored sign bits s in {-1, +1}, and
    the score is sum_k t_k s_k / sum_k |t_k|, in [-1, 1] (1 when every bit agrees; bits the
    query is unsure of count less). It reads only the pool's codes, never its features.

    Chosen over the cosine of tanh(f W + b) on both sides, which needs every pool row's
    feature (a 2,000 x 1,280 float16 gather and a matrix product per query) and ranked the
    same (docs/TRAINING.md, "The fine stage after training").
    """

    name = "code"

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        bias = np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ValueError(f"a head is W [D, K] and b [K], not {weight.shape} and {bias.shape}")
        self.weight, self.bias = weight, bias

    @property
    def bits(self) -> int:
        return self.weight.shape[1]

    def embed(self, features) -> np.ndarray:
        """tanh(f W + b): float32 [n, K] for features [n, D] (or [K] for [D])."""
        return np.tanh(np.asarray(features, dtype=np.float32) @ self.weight + self.bias)

    def finish(self, vector: np.ndarray) -> np.ndarray:
        """A combined query vector as is (scores divide by its L1 norm)."""
        return np.ascontiguousarray(vector, dtype=np.float32)

    def scores(self, codes, features, slots, vector) -> np.ndarray:
        """Asymmetric score of each slot's stored code against the continuous ``vector``, float32."""
        v = np.ascontiguousarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.bits:
            raise ValueError(f"a {self.bits}-bit head cannot score a query of {v.shape[0]} values")
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        if len(slots) == 0:
            return np.zeros(0, np.float32)
        words = np.ascontiguousarray(np.asarray(codes)[slots], dtype="<u8")
        bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :self.bits]
        # s . v = 2 (bits . v) - sum(v): one product of the 0/1 bits, no sign array
        dot = 2.0 * (bits.astype(np.float32) @ v) - float(v.sum())
        return (dot / max(float(np.abs(v).sum()), 1e-12)).astype(np.float32)


def refined_vector(photos: np.ndarray, like: np.ndarray | None = None,
                   unlike: np.ndarray | None = None) -> np.ndarray:
    """Rocchio's query point movement in a space: mean(photos) + mean(like) - mean(unlike).

    All three are embedded vectors [n, E] (the query photos, then examples marked similar and
    dissimilar). Weights 1, 1, 1: on the person's case they did better than SMART's standard
    weights (1, 0.75, 0.15) and as well as heavier example weights. Several query photos are
    one query through their mean ("like all of these"), which beat the minimum of their
    cosines. The figures: docs/TRAINING.md, "Instant feedback".
    """
    photos = np.atleast_2d(np.asarray(photos, dtype=np.float32))
    if photos.shape[0] == 0:
        raise ValueError("a query needs at least one photo")
    vector = photos.mean(axis=0)
    for examples, sign in ((like, 1.0), (unlike, -1.0)):
        if examples is not None and len(examples):
            vector = vector + sign * np.atleast_2d(np.asarray(examples, dtype=np.float32)).mean(axis=0)
    return vector.astype(np.float32)


@dataclass(frozen=True)
class Probe:
    """A query as the two stages see it (one photo, several, refined by examples or not).

    ``seeds`` uint64 [S, W]: the coarse stage unites the Hamming pools of these codes (the
    query photos' and the similar examples'), each candidate keeping its smallest distance.
    ``vector``: the query in the fine stage's space. ``feature`` [D], unit: what ``score``
    shows when ranking by Hamming only (cosine to it). ``exclude``: slots never returned.
    """

    seeds: np.ndarray
    vector: np.ndarray
    feature: np.ndarray
    exclude: np.ndarray | tuple = ()


def _space_for(params: SearchParams, space):
    """The fine stage params.rerank asks for: ``space`` stands for "auto" (the version's own)."""
    choice = params.rerank_choice()
    if choice == "none":
        return None
    if choice == "features" or (choice == "auto" and space is None):
        return FeatureSpace()
    if choice == "code" and not isinstance(space, CodeSpace):
        raise ValueError("re-ranking by code needs the head: pass space=CodeSpace(W, b)")
    return space


def _merge_pools(pools: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Union of (slots, distances) pools, each slot once with its smallest distance, by slot."""
    if len(pools) == 1:
        return pools[0]
    slots = np.concatenate([p[0] for p in pools])
    ham = np.concatenate([p[1] for p in pools])
    order = np.lexsort((ham, slots))
    slots, ham = slots[order], ham[order]
    first = np.ones(len(slots), dtype=bool)
    first[1:] = slots[1:] != slots[:-1]
    return slots[first], ham[first]


def search_probe(codes, features, probe: Probe, params=SearchParams(), live=None, *, space) -> SearchResult:
    """The one search: coarse Hamming pools of ``probe.seeds`` (live slots not excluded), then
    the fine stage in ``space`` (None: Hamming order); best first.

    Ties: score desc, Hamming asc, slot asc. Without a space the order is (Hamming, slot) and
    ``score`` is the cosine of each result's feature to ``probe.feature``.
    """
    codes = np.asarray(codes)
    k = max(0, int(params.k))
    n = codes.shape[0] if codes.ndim == 2 else 0
    live = _check_live(live, n)
    exclude = np.asarray(probe.exclude, dtype=np.int64).reshape(-1)
    exclude = exclude[(exclude >= 0) & (exclude < n)]
    if len(exclude):
        live = np.ones(n, dtype=bool) if live is None else live.copy()
        live[exclude] = False
    seeds = np.atleast_2d(np.asarray(probe.seeds, dtype=np.uint64))
    if space is None:
        want = k
    elif params.radius is not None:
        want = max(k, int(params.max_pool))
    else:
        pool = default_pool(n) if params.pool is None else int(params.pool)
        want = max(k, min(pool, int(params.max_pool)))
    pools = []
    for seed in seeds:
        if params.radius is not None:
            pools.append(hamming_within(codes, seed, params.radius, live, limit=want))
        else:
            pools.append(hamming_topk(codes, seed, want, live))
    slots, ham = _merge_pools(pools)
    if space is None:
        order = np.lexsort((slots, ham))[:k]
        slots, ham = slots[order], ham[order]
        score = rerank(features, probe.feature, slots)
        return SearchResult(slots=slots, hamming=ham, score=score)
    score = space.scores(codes, features, slots, probe.vector)
    key, tie = score, np.zeros_like(score)
    if space.name == "code":
        # A learned code gives many photos the same score (a trained head saturates), and an
        # edited copy of the query can lose a bit or two: copies (feature cosine >= COPY_COSINE)
        # come first, by cosine, then the rest by score, ties by cosine.
        tie = rerank(features, probe.feature, slots)
        key = np.where(tie >= COPY_COSINE, np.float32(2) + tie, score)
    if 0 < k < len(key):
        # only the k best need ordering: keep those at or above the k-th best key
        # (ties included), as lexsort of a whole pool costs more than the re-rank
        kth = np.partition(key, len(key) - k)[len(key) - k]
        keep = np.flatnonzero(key >= kth)
        slots, ham, score, key, tie = slots[keep], ham[keep], score[keep], key[keep], tie[keep]
    order = np.lexsort((slots, ham, -tie, -key))[:k]  # key desc, then cosine desc, hamming asc, slot asc
    return SearchResult(slots=slots[order], hamming=ham[order], score=score[order],
                        cosine=tie[order] if space.name == "code" else None)


def search(codes, features, query_words, query_feature, params=SearchParams(), live=None, *,
           space=None) -> SearchResult:
    """One query photo: coarse Hamming pool, then the fine stage; best first.

    ``space`` is the fine stage when ``params.rerank`` is "auto" (or True) or names it
    (FeatureSpace when not given; "code" needs a CodeSpace); "none" (or False) ranks by Hamming.
    """
    space = _space_for(params, space)
    feature = np.ascontiguousarray(query_feature, dtype=np.float32).reshape(-1)
    vector = feature if space is None else space.embed(feature)
    probe = Probe(seeds=np.ascontiguousarray(query_words, dtype=np.uint64).reshape(1, -1),
                  vector=vector, feature=feature)
    return search_probe(codes, features, probe, params, live, space=space)
