"""Radius search over 64-bit perceptual hashes: a packed uint64 array scanned in blocks.

Why not a BK-tree: at the radii that catch re-encodes and resizes (about 10 of 64 bits),
a BK-tree over perceptual hashes visits a large share of its nodes per query, and in Python
each visit costs a microsecond or more; XOR + popcount over a contiguous uint64 array does
the same exact search at memory speed (100,000 stored hashes: ~1 ms per query batch row,
see benchmarks/images.py). New memes are queried against the stored ones, never all
against all again, which is what makes re-runs incremental.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def parse_hashes(hex_hashes: Iterable[str]) -> np.ndarray:
    """16-hex-digit pHashes (memes.phash) as uint64."""
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise (broadcast) Hamming distance of uint64 arrays."""
    return np.bitwise_count(np.bitwise_xor(a, b))


class HashIndex:
    """Exact Hamming-radius search over stored uint64 hashes (append-only)."""

    def __init__(self, hashes: np.ndarray | None = None, block: int = 256) -> None:
        self._chunks: list[np.ndarray] = []
        self._flat = np.zeros(0, dtype=np.uint64)
        self.block = block
        if hashes is not None and len(hashes):
            self.add(hashes)

    def __len__(self) -> int:
        return len(self._flat) + sum(len(c) for c in self._chunks)

    def add(self, hashes: np.ndarray) -> None:
        """Append hashes; their positions continue after the stored ones."""
        self._chunks.append(np.ascontiguousarray(hashes, dtype=np.uint64))

    @property
    def hashes(self) -> np.ndarray:
        if self._chunks:
            self._flat = np.concatenate([self._flat, *self._chunks])
            self._chunks = []
        return self._flat

    def query(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, stored position, distance) of every stored hash within `radius`.

        Scans the stored array once per block of queries; the [block, n] distance matrix is
        uint8, so a block of 256 queries against 100,000 hashes takes 25 MB.
        """
        stored = self.hashes
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        qs, ps, ds = [], [], []
        for start in range(0, len(queries), self.block):
            q = queries[start:start + self.block]
            d = hamming(q[:, None], stored[None, :])
            r, c = np.nonzero(d <= radius)
            qs.append(r + start)
            ps.append(c)
            ds.append(d[r, c])
        if not qs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.uint8)
        return np.concatenate(qs), np.concatenate(ps), np.concatenate(ds)
