"""Radius search over 64-bit perceptual hashes: a packed uint64 array scanned in blocks.

Why not a BK-tree: at the radii that catch re-encodes and resizes (about 10 of 64 bits),
a BK-tree over perceptual hashes visits a large share of its nodes per query, and in Python
each visit costs a microsecond or more; XOR + popcount over a contiguous uint64 array does
the same exact search at memory speed (1,000 queries against 100,000 stored hashes in well
under a second, see benchmarks/results/images.md). New memes are queried against the stored ones, never all
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

    def query(self, queries: np.ndarray, radius: int, *, self_offset: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query row, stored position, distance) of every stored hash within `radius`.

        `self_offset`: the queries are themselves stored from that position on (query row r at
        `self_offset + r`); then each pair among them is returned once (stored position after
        the query's own) and the query itself is left out, which halves an all-against-all
        search. Works in tiles of `block` queries × 4,096 stored hashes, so the temporaries
        (8 MB) stay in cache; the distances are exact.
        """
        stored = self.hashes
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        qs, ps, ds = [], [], []
        tile = 4096
        for start in range(0, len(queries), self.block):
            q = queries[start:start + self.block, None]
            for b in range(0, len(stored), tile):
                if self_offset is not None and self_offset <= b and b + tile <= self_offset + start:
                    continue  # all of these are queries before this block: pairs seen already
                d = np.bitwise_count(np.bitwise_xor(q, stored[None, b:b + tile]))
                r, c = np.nonzero(d <= radius)
                if not len(r):
                    continue
                dist = d[r, c]
                r = r + start
                c = c + b
                if self_offset is not None:
                    own = self_offset + r
                    keep = (c < self_offset) | (c > own)
                    r, c, dist = r[keep], c[keep], dist[keep]
                qs.append(r)
                ps.append(c)
                ds.append(dist)
        if not qs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.uint8)
        return np.concatenate(qs), np.concatenate(ps), np.concatenate(ds)
