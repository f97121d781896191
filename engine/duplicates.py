"""Library-wide duplicate groups: a multi-index Hamming self-join, feature verification, complete-link groups.

Three strictness levels (STRICTNESS):

- ``exact``: the same bytes (content hash).
- ``near``: copies of one photo (resized, recompressed, re-encoded, EXIF-rotated, lightly
  cropped). ``similar``: looser, shots that look alike.

How near and similar pairs are found, without comparing every photo with every other:

1. Candidates: every pair of live codes within Hamming radius r, by multi-index hashing. The
   K code bits are cut into m substrings; if two codes differ in at most r bits, one of the
   m substrings differs in at most s = floor(r / m) bits (pigeonhole). Each substring is a
   table (counting sort of its keys: bucket offsets over 2^L keys, rows in key order with
   their codes beside them, so a bucket is read sequentially); each row probes, in each
   table, the buckets of every key within s bits of its own, and checks the full distance
   of what it finds. A pair is reported by the first table whose substring is within s, so
   no pair comes out twice. m is chosen per (N, K, r) by the expected work on uniform codes
   (``plan``): at 1e6 x 64 bits and r = 8 that is 3 tables of 21-22 bits probing 254 keys.
2. Verification by a second signal: a candidate pair is an edge only if the cosine of the
   two photos' stored features reaches the level's ``edge_cosine``.
3. Groups without chaining: edges are taken strongest first (agglomerative, like Kruskal),
   and two groups merge only if *every* photo of one is within ``group_cosine`` of every
   photo of the other (complete link), so A~B and B~C never put A with C when A and C are
   far apart. ``group_cosine`` is a little looser than ``edge_cosine``: the members of a
   group were each verified against one member, and two edits of one photo (a crop and a
   rotation) are further from each other than each is from the original. A group stops
   growing at MAX_GROUP photos (a merge past it is refused: bursts of thousands are not
   copies a person reviews one by one).

Thresholds were calibrated on 550 photos (150 generated scenes, 100 Fashion-MNIST garments
upscaled: look-alikes of one kind, 50 of them with the five edits of tests.photos.COPY_EDITS
and a byte copy) with the default model: copies lie within 9 bits (64-bit ITQ codes;
resized, recompressed, PNG and rotated copies within 1 bit, 5% crops up to 8-9) at cosine
0.85-1.0; distinct photos at 1-53 bits and cosine up to 0.89 (garments of one kind). See
docs/BENCHMARKS.md, "Duplicate groups".
"""

from __future__ import annotations

import datetime
import math
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from engine.errors import Cancelled, DecodeError, UserError

MAX_GROUP = 1000  # photos in one group at most (complete-link merges past it are refused)
MAX_KEY_BITS = 24  # a table's substring: bucket offsets over 2^L keys (128 MB of int64 at 24)
ROWS_PER_CALL = 1 << 15  # rows joined per kernel call: progress and cancel between calls


@dataclass(frozen=True)
class Strictness:
    """How alike two photos must be to share a group: ``radius`` (Hamming, per 64 code bits),
    ``edge_cosine`` (a pair's feature cosine), ``group_cosine`` (every pair in a group)."""

    name: str
    radius: int
    edge_cosine: float
    group_cosine: float

    def radius_for(self, bits: int) -> int:
        return max(0, round(self.radius * bits / 64))


STRICTNESS = {
    "exact": Strictness("exact", 0, 1.0, 1.0),
    "near": Strictness("near", 8, 0.90, 0.80),
    "similar": Strictness("similar", 12, 0.80, 0.70),
}


# -------------------------------------------------------------------- the Hamming self-join


@dataclass(frozen=True)
class Plan:
    """A multi-index layout: ``tables`` substrings of the code (start bit, length), radius ``s`` in each."""

    radius: int
    tables: tuple[tuple[int, int], ...]
    probe_radius: int

    @property
    def probes(self) -> int:
        """Keys probed per row and table: every key within probe_radius bits of the row's own."""
        longest = max(length for _, length in self.tables)
        return sum(math.comb(longest, k) for k in range(self.probe_radius + 1))


def plan(n: int, bits: int, radius: int) -> Plan:
    """The number of substrings m with the least expected work for n uniform codes:
    n m (probes + probes n / 2^L) key lookups and candidate checks, substrings of at most
    MAX_KEY_BITS bits."""
    best = None
    for m in range(max(1, math.ceil(bits / MAX_KEY_BITS)), bits + 1):
        length = math.ceil(bits / m)
        s = radius // m
        probes = sum(math.comb(length, k) for k in range(s + 1))
        cost = n * m * probes * (1 + n / 2.0 ** (bits // m))
        if best is None or cost < best[0]:
            best = (cost, m)
    m = best[1]
    edges = np.linspace(0, bits, m + 1).round().astype(int)
    return Plan(radius, tuple((int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:])), radius // m)


def _substring_keys(codes: np.ndarray, start: int, length: int) -> np.ndarray:
    """Bits [start, start + length) of each packed code (little-endian words), as uint64 keys."""
    word, offset = divmod(start, 64)
    keys = codes[:, word] >> np.uint64(offset)
    if offset + length > 64:
        keys = keys | (codes[:, word + 1] << np.uint64(64 - offset))
    return keys & np.uint64((1 << length) - 1) if length < 64 else keys


def _substring_mask(words: int, start: int, length: int) -> np.ndarray:
    mask = np.zeros(words, np.uint64)
    for bit in range(start, start + length):
        mask[bit // 64] |= np.uint64(1 << (bit % 64))
    return mask


def _probe_keys(length: int, radius: int) -> np.ndarray:
    """Every length-bit pattern with at most ``radius`` bits set, 0 first."""
    out = [0]
    for k in range(1, radius + 1):
        out += [sum(1 << b for b in bits) for bits in combinations(range(length), k)]
    return np.array(out, np.uint64)


@dataclass
class _Table:
    keys: np.ndarray      # (N,) uint64: the substrings in key order
    offsets: np.ndarray   # (2^L + 1,) int64: bucket starts in key order
    order: np.ndarray     # (N,) int64: rows in key order
    sorted_codes: np.ndarray  # (N, W) uint64: codes in key order
    probes: np.ndarray    # keys within probe_radius of 0


class MultiIndex:
    """Hamming tables over packed codes (N, W): all pairs within the plan's radius, or the
    codes within it of one query. ``live``: rows that count (None: all). ``bits``: the code
    length (default 64 W); the substrings cover only those bits, since the unused high bits
    are zero in every code and a table over them would put every row in a few buckets."""

    def __init__(self, codes: np.ndarray, radius: int, live: np.ndarray | None = None, *,
                 bits: int | None = None, plan_for: Plan | None = None):
        codes = np.ascontiguousarray(codes, dtype=np.uint64)
        if codes.ndim != 2:
            raise ValueError(f"codes must be (N, W) uint64, not {codes.shape}")
        self.codes = codes
        n, words = codes.shape
        bits = 64 * words if bits is None else int(bits)
        if not 0 < bits <= 64 * words:
            raise ValueError(f"{bits} bits do not fit codes of {words} words")
        self.plan = plan_for or plan(n, bits, radius)
        self.live = (np.ones(n, dtype=bool) if live is None else np.ascontiguousarray(live[:n], dtype=bool))
        self.masks = np.stack([_substring_mask(words, s, length) for s, length in self.plan.tables])
        self.tables = [self._build(start, length) for start, length in self.plan.tables]

    def _build(self, start: int, length: int) -> _Table:
        keys = _substring_keys(self.codes, start, length)
        counts = np.bincount(keys.astype(np.int64), minlength=1 << length)
        offsets = np.zeros((1 << length) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        order = np.argsort(keys, kind="stable")
        return _Table(keys[order], offsets, order, self.codes[order], _probe_keys(length, self.plan.probe_radius))

    def pairs(self, *, progress: Callable[[int, int], None] | None = None,
              cancel: threading.Event | None = None, threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair (i < j) of live rows within the radius, once: (i, j, distance) arrays, i ascending
        within each table's share. The kernels release the GIL: ``threads`` (default: one per core)
        join chunks of rows at once."""
        kern = _kernels()
        n = self.codes.shape[0]
        tasks = [(t, start) for t in range(len(self.tables)) for start in range(0, n, ROWS_PER_CALL)]

        def run(task):
            t, start = task
            if cancel is not None and cancel.is_set():
                return None
            table, stop = self.tables[t], min(n, start + ROWS_PER_CALL)
            capacity = 1 << 14
            while True:
                out_i = np.empty(capacity, np.int64)
                out_j = np.empty(capacity, np.int64)
                out_d = np.empty(capacity, np.int32)
                count = kern.join(self.live, table.keys, table.offsets, table.order, table.sorted_codes,
                                  table.probes, self.masks, t, self.plan.probe_radius, self.plan.radius,
                                  start, stop, out_i, out_j, out_d)
                if count >= 0:
                    return stop - start, out_i[:count].copy(), out_j[:count].copy(), out_d[:count].copy()
                capacity *= 8  # rare: more pairs in these rows than the buffer holds

        found = []
        done, total = 0, n * len(self.tables)
        workers = threads or os.cpu_count() or 1
        if workers > 1 and kern is not _PythonKernels and len(tasks) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                results = pool.map(run, tasks)
                for result in results:
                    found.append(result)
                    if result is not None:
                        done += result[0]
                        if progress is not None:
                            progress(done, total)
        else:
            for task in tasks:
                found.append(run(task))
                if found[-1] is not None:
                    done += found[-1][0]
                    if progress is not None:
                        progress(done, total)
        if cancel is not None and cancel.is_set():
            raise Cancelled("the duplicate search was cancelled")
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
        return tuple(np.concatenate([f[k] for f in found]) for k in (1, 2, 3))

    def within(self, query_words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Live rows within the radius of one query code: (rows by (distance, row), distances)."""
        kern = _kernels()
        q = np.ascontiguousarray(query_words, dtype=np.uint64).reshape(1, -1)
        rows_out, dist_out = [], []
        for t, table in enumerate(self.tables):
            start, length = self.plan.tables[t]
            key = _substring_keys(q, start, length)
            capacity = 1 << 12
            while True:
                out_j = np.empty(capacity, np.int64)
                out_d = np.empty(capacity, np.int32)
                count = kern.probe(q[0], key, self.live, table.offsets, table.order, table.sorted_codes,
                                   table.probes, self.masks, t, self.plan.probe_radius, self.plan.radius,
                                   out_j, out_d)
                if count >= 0:
                    break
                capacity *= 8
            rows_out.append(out_j[:count].copy())
            dist_out.append(out_d[:count].copy())
        rows, dist = np.concatenate(rows_out), np.concatenate(dist_out)
        order = np.lexsort((rows, dist))
        return rows[order], dist[order]


# Kernels: plain Python until _kernels() jits them with numba (the Python versions serve
# when numba does not import: correct, only slow).


def _popcount_py(x):
    return int(x).bit_count()


_nb_popcount = _popcount_py


def _first_table(x, masks, t, s):
    """True when table t is the first whose substring of x (the codes' XOR) is within s bits."""
    words = x.shape[0]
    for u in range(t):
        d = 0
        for w in range(words):
            d += _nb_popcount(x[w] & masks[u, w])
        if d <= s:
            return False
    return True


def _join(live, sorted_keys, offsets, order, sorted_codes, probes, masks, t, s, radius, start, stop,
          out_i, out_j, out_d):
    """Pairs (i, j), i the row at key-order positions [start, stop), i < j, both live, within
    ``radius``, first found by table t; returns how many, or -1 when the buffers are too small.

    Probe by probe over rows in key order: the buckets key ^ probe are then visited nearly in
    order, so the offsets and the sorted codes are read almost sequentially (in row order,
    every probe was a cache miss: 80 ns, and 62 s at 1e6 codes).
    """
    words = sorted_codes.shape[1]
    x = np.empty(words, np.uint64)
    count = 0
    capacity = out_i.shape[0]
    for p in range(probes.shape[0]):
        probe = probes[p]
        for a in range(start, stop):
            i = order[a]
            if not live[i]:
                continue
            bucket = np.int64(sorted_keys[a] ^ probe)  # uint64 + int would be a float in numba
            for k in range(offsets[bucket], offsets[bucket + 1]):
                j = order[k]
                if j <= i or not live[j]:
                    continue
                d = 0
                for w in range(words):
                    x[w] = sorted_codes[a, w] ^ sorted_codes[k, w]
                    d += _nb_popcount(x[w])
                if d > radius or not _nb_first_table(x, masks, t, s):
                    continue
                if count >= capacity:
                    return -1
                out_i[count] = i
                out_j[count] = j
                out_d[count] = d
                count += 1
    return count


def _probe(q, key, live, offsets, order, sorted_codes, probes, masks, t, s, radius, out_j, out_d):
    """Live rows within ``radius`` of q first found by table t; -1 when the buffers are too small."""
    words = q.shape[0]
    x = np.empty(words, np.uint64)
    count = 0
    for p in range(probes.shape[0]):
        bucket = np.int64(key[0] ^ probes[p])
        for k in range(offsets[bucket], offsets[bucket + 1]):
            j = order[k]
            if not live[j]:
                continue
            d = 0
            for w in range(words):
                x[w] = q[w] ^ sorted_codes[k, w]
                d += _nb_popcount(x[w])
            if d > radius or not _nb_first_table(x, masks, t, s):
                continue
            if count >= out_j.shape[0]:
                return -1
            out_j[count] = j
            out_d[count] = d
            count += 1
    return count


_nb_first_table = _first_table
_loaded = None
_load_lock = threading.Lock()


class _PythonKernels:
    join = staticmethod(_join)
    probe = staticmethod(_probe)


def _kernels():
    """The jitted kernels (numba's on-disk cache, as engine.search sets it up), else the Python ones."""
    global _loaded
    if _loaded is None:
        with _load_lock:
            if _loaded is None:
                _loaded = _jit() or _PythonKernels
    return _loaded


def _jit():
    from engine.search import numba_popcount

    popcount = numba_popcount()  # sets numba's cache folder as the search kernels have it
    if popcount is None:
        return None
    import numba

    g = globals()
    g["_nb_popcount"] = popcount
    jit = numba.njit(cache=True, nogil=True, boundscheck=False)
    g["_nb_first_table"] = jit(_first_table)

    class Kernels:
        join = staticmethod(jit(_join))
        probe = staticmethod(jit(_probe))

    return Kernels


# ------------------------------------------------------------------------------ grouping


def pair_cosines(features, i: np.ndarray, j: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Cosine of the unit feature rows i[k] and j[k]: float32, read in chunks (features may be a memmap)."""
    out = np.empty(len(i), np.float32)
    for start in range(0, len(i), chunk):
        a = np.asarray(features[i[start:start + chunk]], np.float32)
        b = np.asarray(features[j[start:start + chunk]], np.float32)
        out[start:start + chunk] = np.einsum("ij,ij->i", a, b)
    return out


def complete_link_groups(features, i: np.ndarray, j: np.ndarray, edge_score: np.ndarray, group_cosine: float,
                         *, max_group: int = MAX_GROUP) -> list[tuple[np.ndarray, float]]:
    """Groups of rows from verified edges, strongest first, merged only when every cross pair
    reaches ``group_cosine``: [(rows, weakest pair cosine)], biggest first, then by first row."""
    parent: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    weakest: dict[int, float] = {}
    vectors: dict[int, np.ndarray] = {}

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def add(x: int) -> None:
        if x not in parent:
            parent[x] = x
            members[x] = [x]
            weakest[x] = 1.0
            vectors[x] = np.asarray(features[x], np.float32)[None, :]

    for k in np.argsort(-edge_score, kind="stable"):
        a, b = int(i[k]), int(j[k])
        add(a)
        add(b)
        ra, rb = root(a), root(b)
        if ra == rb or len(members[ra]) + len(members[rb]) > max_group:
            continue
        cross = vectors[ra] @ vectors[rb].T
        low = float(cross.min())
        if low < group_cosine:
            continue
        if len(members[ra]) < len(members[rb]):
            ra, rb = rb, ra
        parent[rb] = ra
        members[ra] += members.pop(rb)
        vectors[ra] = np.concatenate([vectors[ra], vectors.pop(rb)])
        weakest[ra] = min(weakest[ra], weakest.pop(rb), low)
    groups = [(np.array(sorted(rows), np.int64), weakest[r]) for r, rows in members.items()]
    groups.sort(key=lambda g: (-len(g[0]), int(g[0][0])))
    return groups


def group_codes(codes: np.ndarray, features, strictness: Strictness, live: np.ndarray | None = None, *,
                bits: int | None = None, progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> list[tuple[np.ndarray, float]]:
    """Near or similar groups of rows from codes (N, W) of ``bits`` bits (default 64 W) and unit
    features (N, D): see the module docstring."""
    codes = np.asarray(codes)
    bits = 64 * codes.shape[1] if bits is None else bits
    index = MultiIndex(codes, strictness.radius_for(bits), live, bits=bits)
    i, j, _ = index.pairs(progress=progress, cancel=cancel)
    score = pair_cosines(features, i, j)
    keep = score >= strictness.edge_cosine
    return complete_link_groups(features, i[keep], j[keep], score[keep], strictness.group_cosine)


# ------------------------------------------------------------------ keepers and the library


@dataclass(frozen=True)
class Member:
    """One photo of a group as a keep-best rule sees it."""

    path: str
    size: int
    mtime_ns: int
    pixels: int
    taken_at: str | None = None  # EXIF date taken, 'YYYY-MM-DDTHH:MM:SS' (engine.imageio.read_header)

    def age(self) -> tuple:
        """Larger is older: a photo with a date taken before one without (copies sent through a
        chat app or an editor often lose their EXIF), the earlier date taken, then the earlier
        modification time (a copy's file is usually the newer one)."""
        taken = _timestamp(self.taken_at)
        return (taken is not None, -(taken or 0.0), -self.mtime_ns)


def _timestamp(taken_at: str | None) -> float | None:
    if not taken_at:
        return None
    try:
        return datetime.datetime.fromisoformat(taken_at).replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:  # a camera's "0000:00:00 00:00:00" and the like
        return None


def member(path: str) -> Member:
    """A photo's file size, modification time, pixel count and date taken (its header only)."""
    from engine.imageio import read_header  # Pillow, its plugins and LibRaw: when groups are kept

    st = os.stat(path)
    try:
        header = read_header(path)
    except DecodeError:  # a header that cannot be read only makes it a poor keeper
        return Member(path, st.st_size, st.st_mtime_ns, 0)
    return Member(path, st.st_size, st.st_mtime_ns, header.width * header.height, header.taken_at)


@dataclass(frozen=True)
class KeepRule:
    """Which photo of a group to keep: the best by ``key`` (larger is better), ties by path."""

    name: str
    description: str
    key: Callable[[Member], tuple]

    def choose(self, members: Sequence[Member]) -> Member:
        return min(members, key=lambda m: (tuple(-v for v in self.key(m)), m.path))


KEEP_RULES = {
    "largest": KeepRule("largest", "largest resolution, then largest file, then oldest",
                        lambda m: (m.pixels, m.size, *m.age())),
    "biggest-file": KeepRule("biggest-file", "largest file, then largest resolution, then oldest",
                             lambda m: (m.size, m.pixels, *m.age())),
    "oldest": KeepRule("oldest", "oldest (date taken, else modification time), then largest resolution, "
                       "then largest file", lambda m: (*m.age(), m.pixels, m.size)),
}


def preferring(rule: KeepRule, *, formats: Sequence[str] = (), folders: Sequence[str] = ()) -> KeepRule:
    """``rule`` after a preference: a photo of one of ``formats`` (suffixes, ".jpg" or "jpg",
    any case) is kept before one that is not, then one under one of ``folders``, then ``rule``."""
    suffixes = {("." + f.lower().lstrip(".")) for f in formats if f.strip(".")}
    roots = [os.path.abspath(f).rstrip(os.sep) + os.sep for f in folders]
    if not suffixes and not roots:
        return rule

    def key(m: Member) -> tuple:
        in_format = os.path.splitext(m.path)[1].lower() in suffixes
        in_folder = any(m.path.startswith(root) for root in roots)
        return (in_format, in_folder, *rule.key(m))

    wanted = [", ".join(sorted(suffixes))] * bool(suffixes) + ["under " + ", ".join(folders)] * bool(roots)
    return KeepRule(f"{rule.name}+preferred", f"preferred ({'; '.join(wanted)}), then {rule.description}", key)


@dataclass(frozen=True)
class Group:
    """Copies of one photo: the one to keep, the others, and the weakest pair similarity (1.0: same bytes)."""

    keep: Member
    others: tuple[Member, ...]
    score: float

    @property
    def paths(self) -> list[str]:
        return [self.keep.path, *(m.path for m in self.others)]


def find_duplicates(library, strictness: str = "near", *, keep: str | KeepRule = "largest",
                    progress: Callable[[int, int], None] | None = None,
                    cancel: threading.Event | None = None) -> list[Group]:
    """Groups of copies among the library's searchable photos (live, under a reachable root,
    still on disk), biggest groups first; see the module docstring."""
    if strictness not in STRICTNESS:
        raise UserError(f"strictness is one of {', '.join(STRICTNESS)}, not {strictness!r}")
    rule = keep if isinstance(keep, KeepRule) else KEEP_RULES.get(keep)
    if rule is None:
        raise UserError(f"--keep is one of {', '.join(KEEP_RULES)}, not {keep!r}")
    store = library.store
    live = library.searchable_mask()
    rows = [(slot, path, digest) for slot, path, digest in store.images_in_slot_range(0, live.size) if live[slot]]
    if strictness == "exact":
        by_hash: dict[str, list[int]] = {}
        for slot, _, digest in rows:
            by_hash.setdefault(digest, []).append(slot)
        slot_groups = [(np.array(s, np.int64), 1.0) for s in by_hash.values() if len(s) > 1]
        slot_groups.sort(key=lambda g: (-len(g[0]), int(g[0][0])))
    else:
        catalogued = np.zeros(live.size, dtype=bool)
        catalogued[[slot for slot, _, _ in rows]] = True
        slot_groups = group_codes(library.codes(), library.features(), STRICTNESS[strictness], catalogued,
                                  bits=library.active_model().bits, progress=progress, cancel=cancel)
    paths = {slot: path for slot, path, _ in rows}
    groups = []
    for slots, score in slot_groups:
        members = []
        for slot in slots:
            try:
                members.append(member(paths[int(slot)]))
            except OSError:  # gone since the last index run: not a copy anyone can act on
                continue
        if len(members) < 2:
            continue
        best = rule.choose(members)
        groups.append(Group(best, tuple(m for m in members if m is not best), round(float(score), 6)))
    return groups
