"""numba kernels of the inverted-file k-NN (`knn.ivf_knn`): keeping each point's k best of a
block of similarities, and passes of "a neighbour of a neighbour is likely a neighbour".

The inverted-file search misses true neighbours that fell into a list it did not probe; many
of them are among the neighbours (and reverse neighbours) of those it found: the idea of
NN-descent (Dong et al. 2011). In both kernels every point writes only its own row, reading a
snapshot of the graph, so the result is the same for any number of threads; numba caches the
kernels on disk (unlike pynndescent's run-time closures, ~30 s of compilation in every new
process).
"""

from __future__ import annotations

import numpy as np

from memeatlas.cluster.numba_cache import configure_cache_dir

configure_cache_dir()  # before numba is imported: the kernel below is cached on disk

import numba  # noqa: E402


@numba.njit(parallel=True, cache=True)
def merge_block(sims, pts, cols, best_i, best_s):
    """Insert row r of `sims` (similarities of point pts[r] to the points `cols`) into that
    point's k best (`best_s` descending, ties to the smaller index; empty places hold −inf
    and a larger index than any point). Each point appears at most once in `pts`."""
    k = best_i.shape[1]
    for r in numba.prange(sims.shape[0]):
        p = pts[r]
        bi = best_i[p]
        bs = best_s[p]
        for c in range(sims.shape[1]):
            s = sims[r, c]
            w = cols[c]
            if s < bs[k - 1] or (s == bs[k - 1] and w >= bi[k - 1]):
                continue
            q = k - 1
            while q > 0 and (bs[q - 1] < s or (bs[q - 1] == s and bi[q - 1] > w)):
                bs[q] = bs[q - 1]
                bi[q] = bi[q - 1]
                q -= 1
            bs[q] = s
            bi[q] = w


@numba.njit(parallel=True, fastmath=True, cache=True)
def _refine(x, idx, rev_ptr, rev, out_i, out_d, marks):
    n, k = idx.shape
    dim = x.shape[1]
    for v in numba.prange(n):
        # marks[thread, w] == v + 1: w was already weighed for v. A point weighed once and
        # rejected stays rejected (the k-th distance only shrinks), so skipping it changes
        # nothing but the time.
        mark = marks[numba.get_thread_id()]
        tag = v + 1
        bi = out_i[v]
        bd = out_d[v]
        for c in range(k):
            if bi[c] >= 0:
                mark[bi[c]] = tag
        xv = x[v]
        n_fwd = k - 1
        for a in range(n_fwd + rev_ptr[v + 1] - rev_ptr[v]):
            u = idx[v, a + 1] if a < n_fwd else rev[rev_ptr[v] + a - n_fwd]
            if u < 0:
                continue
            for b in range(1, k):
                w = idx[u, b]
                if w < 0 or mark[w] == tag:
                    continue
                mark[w] = tag
                xw = x[w]
                dot = numba.float32(0.0)
                for d in range(dim):
                    dot += xv[d] * xw[d]
                dd = numba.float32(1.0) - dot
                if dd < numba.float32(0.0):
                    dd = numba.float32(0.0)
                # Sorted insertion (ties: smaller index first), keeping the self entry at 0.
                if dd > bd[k - 1] or (dd == bd[k - 1] and w > bi[k - 1]):
                    continue
                p = k - 1
                while p > 1 and (bd[p - 1] > dd or (bd[p - 1] == dd and bi[p - 1] > w)):
                    bd[p] = bd[p - 1]
                    bi[p] = bi[p - 1]
                    p -= 1
                bd[p] = dd
                bi[p] = w


def refine(x: np.ndarray, idx: np.ndarray, dist: np.ndarray, passes: int = 1
           ) -> tuple[np.ndarray, np.ndarray]:
    """(indices int32 [n, k], distances float32 [n, k]) after `passes` neighbour-of-neighbour
    passes (through each point's neighbours and reverse neighbours) over the k-NN (`idx`,
    `dist`: self first, then ascending 1 − cosine) of unit rows `x`."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    idx = np.ascontiguousarray(idx, dtype=np.int32)
    dist = np.ascontiguousarray(dist, dtype=np.float32)
    marks = np.zeros((numba.config.NUMBA_NUM_THREADS, idx.shape[0]), dtype=np.int32)
    for _ in range(passes):
        idx, dist = _one_pass(x, idx, dist, marks)
    return idx, dist


def _one_pass(x: np.ndarray, idx: np.ndarray, dist: np.ndarray, marks: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    n, k = idx.shape
    # Reverse neighbours (v lists u, so u looks through v too), at most k - 1 per point, the
    # nearest first: the direction a partial search misses most.
    src = np.repeat(np.arange(n, dtype=np.int32), k - 1)
    dst = idx[:, 1:].ravel()
    dd = dist[:, 1:].ravel()
    ok = dst >= 0
    src, dst, dd = src[ok], dst[ok], dd[ok]
    order = np.lexsort((src, dd, dst))
    src, dst = src[order], dst[order]
    counts = np.bincount(dst, minlength=n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(dst.size) - starts[dst]
    keep = rank < k - 1
    rev = np.ascontiguousarray(src[keep], dtype=np.int32)
    rev_ptr = np.concatenate([[0], np.cumsum(np.minimum(counts, k - 1))]).astype(np.int64)
    out_i = idx.copy()
    out_d = dist.copy()
    marks[:] = 0
    _refine(x, idx, rev_ptr, rev, out_i, out_d, marks)
    return out_i, out_d
