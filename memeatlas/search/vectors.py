"""Nearest vectors of a space: exact (a matrix product) or approximate (an HNSW graph).

Every index keeps the space's vectors as one raw float32 file (`vectors.f32`, row r = the
r-th meme added, memory-mapped), an `alive` mask (a removed or re-embedded meme leaves a
tombstone; its new vector is appended), and for large spaces an HNSW graph over the same
rows (usearch, vectors quantised to int8 inside the graph; the candidates it returns are
re-scored exactly on the float32 rows). Exact search reads every live row: at 384-d it
is fast enough up to about `ANN_THRESHOLD` vectors on two cores (benchmarks/search.py), and
it also serves filtered searches (`rows=`) over a small enough selection.

Backends, chosen by name: `exact`, `usearch`, and `auto` (usearch above ANN_THRESHOLD live
vectors, exact below).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from memeatlas.errors import BackendError

BACKENDS = ("auto", "exact", "usearch")
#: Above this many vectors `auto` builds an HNSW graph (measured: benchmarks/search.py).
ANN_THRESHOLD = 200_000
#: A filtered search scores its rows exactly when there are at most this many.
EXACT_FILTER_MAX = 200_000
# HNSW parameters (usearch): graph degree, build and search breadth. Measured on MiniLM
# caption vectors (benchmarks/search.py, benchmarks/results/search.md): at 10⁵ recall@10
# after exact re-scoring is 0.98 with expansion_search 200; at 10⁶ (same int8 graph) it is
# 0.735 with 200, 0.84 with 400, 0.92 with 800, 0.954 with 1,600 (p50 4.9 ms) and 0.974 with
# 3,200 (p50 11 ms). Recall is bounded by the breadth of the walk, not by how many
# candidates are re-scored (40, 100 or 200 candidates gave the same recall), so the breadth
# grows with the graph: n / 300, between 400 (recall 1.000 at 10⁵) and 4,096 (3,333 at 10⁶).
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH_MIN = 400
EXPANSION_SEARCH_MAX = 4096
RERANK = 10  # candidates per wanted hit fetched from the graph, then re-scored exactly
MIN_CANDIDATES = 100
#: Rows per block of an exact scan (bounded temporaries).
EXACT_BLOCK = 262_144


def check_backend(name: str) -> str:
    """The backend name, or a BackendError listing the valid ones."""
    if name not in BACKENDS:
        raise BackendError(f"unknown index backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def search_breadth(n: int) -> int:
    """usearch's expansion_search for a graph of n vectors (see the constants above)."""
    return int(min(EXPANSION_SEARCH_MAX, max(EXPANSION_SEARCH_MIN, n // 300)))


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class VectorIndex:
    """Rows of one space on disk, with an optional HNSW graph (see the module docstring)."""

    def __init__(self, folder: Path, dim: int, n_rows: int, alive: np.ndarray,
                 graph: object | None = None) -> None:
        self.folder = folder
        self.dim = dim
        self.n_rows = n_rows
        self.alive = alive
        self.graph = graph
        self._matrix: np.ndarray | None = None
        self._scan: np.ndarray | None = None

    # --- files ----------------------------------------------------------------------------
    @property
    def matrix(self) -> np.ndarray:
        """float32 [n_rows, dim], memory-mapped (read on demand by the OS)."""
        if self._matrix is None or self._matrix.shape[0] != self.n_rows:
            path = self.folder / "vectors.f32"
            if self.n_rows == 0:
                self._matrix = np.zeros((0, self.dim), np.float32)
            else:
                self._matrix = np.memmap(path, dtype=np.float32, mode="r",
                                         shape=(self.n_rows, self.dim))
        return self._matrix

    def take(self, rows: np.ndarray) -> np.ndarray:
        """float32 [len(rows), dim] of the given rows, read with pread: re-scoring touches a
        few scattered rows, and through the memory map the kernel's fault-around (64 KB
        around each row, MADV_RANDOM or not) made 200 queries at 10⁶ page in most of the
        1.5 GB file as resident memory."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.dim), np.float32)
        size = self.dim * 4
        fd = os.open(self.folder / "vectors.f32", os.O_RDONLY)
        try:
            for i, r in enumerate(rows.tolist()):
                buf = os.pread(fd, size, r * size)
                if len(buf) != size:
                    raise IndexError(f"row {r} is past the end of the vectors file")
                out[i] = np.frombuffer(buf, np.float32)
        finally:
            os.close(fd)
        return out

    @property
    def scan_matrix(self) -> np.ndarray:
        """The same rows mapped with the kernel's default read-ahead, for full scans (exact
        search): once resident, a scan of 10⁵ rows takes milliseconds, where reading the
        file per query took 10× longer on the busy VM."""
        if self._scan is None or self._scan.shape[0] != self.n_rows:
            if self.n_rows == 0:
                self._scan = np.zeros((0, self.dim), np.float32)
            else:
                self._scan = np.memmap(self.folder / "vectors.f32", dtype=np.float32, mode="r",
                                       shape=(self.n_rows, self.dim))
        return self._scan

    @classmethod
    def create(cls, folder: Path, dim: int) -> VectorIndex:
        (folder / "vectors.f32").write_bytes(b"")
        return cls(folder, dim, 0, np.zeros(0, bool))

    @classmethod
    def open(cls, folder: Path, dim: int, n_rows: int, alive: np.ndarray, *, graph: bool,
             writable: bool = False) -> VectorIndex:
        """Open files written by `save`; the graph is memory-mapped unless `writable`."""
        g = None
        if graph:
            from usearch.index import Index

            path = folder / "graph.usearch"
            g = Index.restore(str(path), view=not writable)
            if g is None:
                raise FileNotFoundError(path)
            g.expansion_search = search_breadth(n_rows)  # not kept in the file: set on every load
        return cls(folder, dim, n_rows, alive, g)

    def append(self, vectors: np.ndarray) -> np.ndarray:
        """Append rows (to the file and the graph, if any); returns their row numbers."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        start = self.n_rows
        with open(self.folder / "vectors.f32", "ab") as fh:
            fh.write(vectors.tobytes())
        self.n_rows += len(vectors)
        if self.graph is not None:
            self.graph.expansion_search = search_breadth(self.n_rows)
        self.alive = np.concatenate([self.alive, np.ones(len(vectors), bool)])
        self._matrix = self._scan = None
        rows = np.arange(start, self.n_rows, dtype=np.uint64)
        if self.graph is not None and len(vectors):
            self.graph.add(rows, vectors, threads=_threads())
        return rows.astype(np.int64)

    def remove(self, rows: np.ndarray) -> None:
        """Tombstone rows (and drop them from the graph)."""
        rows = np.asarray(rows, dtype=np.int64)
        self.alive[rows] = False
        if self.graph is not None and rows.size:
            self.graph.remove(rows.astype(np.uint64))

    def start_graph(self) -> None:
        """An empty HNSW graph: rows appended from now on are added to it as well (a build
        streams its blocks into the file and the graph at once, never reading the file
        back)."""
        from usearch.index import Index

        self.graph = Index(ndim=self.dim, metric="ip", dtype="i8", connectivity=CONNECTIVITY,
                           expansion_add=EXPANSION_ADD,
                           expansion_search=EXPANSION_SEARCH_MIN)

    def save_graph(self) -> None:
        if self.graph is not None:
            self.graph.save(str(self.folder / "graph.usearch"))

    # --- querying -------------------------------------------------------------------------
    def vector(self, row: int) -> np.ndarray:
        return self.take(np.asarray([row]))[0]

    def exact(self, q: np.ndarray, k: int, rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (rows, cosine) by brute force over live rows (or `rows`)."""
        if rows is None:
            cand = None
            scores = np.empty(self.n_rows, np.float32)
            m = self.scan_matrix
            for a in range(0, self.n_rows, EXACT_BLOCK):  # bounded temporaries
                scores[a:a + EXACT_BLOCK] = m[a:a + EXACT_BLOCK] @ q
            scores[~self.alive] = -np.inf
        else:
            cand = np.asarray(rows, dtype=np.int64)
            cand = cand[self.alive[cand]]
            scores = self.matrix[np.sort(cand)] @ q if cand.size else np.zeros(0, np.float32)
            cand = np.sort(cand)
        k = min(k, scores.size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.isfinite(scores[top])]
        order = top[np.lexsort((top, -scores[top]))]
        hit = order if cand is None else cand[order]
        return hit.astype(np.int64), scores[order].astype(np.float32)

    def search(self, q: np.ndarray, k: int, rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (rows, cosine), best first; through the graph when there is one and the
        search is not restricted to a small selection."""
        q = np.ascontiguousarray(q, dtype=np.float32).reshape(-1)
        if self.graph is None or (rows is not None and len(rows) <= EXACT_FILTER_MAX):
            return self.exact(q, k, rows)
        want = max(MIN_CANDIDATES, k * RERANK)
        if rows is not None:
            want *= max(1, int(np.ceil(self.alive.sum() / max(len(rows), 1))))
        want = int(min(want, 20_000))
        res = self.graph.search(q, want)
        cand = np.asarray(res.keys, dtype=np.int64).reshape(-1)
        if rows is None and cand.size < want and cand.size < int(self.alive.sum()):
            # The graph stopped short of rows it holds: a small graph built on several threads
            # can leave some unreachable (on 60 vectors, a third of searches returned fewer
            # than all 60). Asked for more than that, the exact scan is the answer.
            return self.exact(q, k)
        if rows is not None:
            cand = cand[np.isin(cand, rows)]
            if cand.size < k:  # the selection is rare among the graph's answers
                return self.exact(q, k, rows)
        cand = cand[self.alive[cand]]
        if cand.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        cand = np.sort(cand)
        scores = self.take(cand) @ q
        order = np.lexsort((cand, -scores))[:k]
        return cand[order], scores[order].astype(np.float32)
