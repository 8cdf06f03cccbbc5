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


@numba.njit(inline="always")
def _insert(bi, bs, s, w):
    """Put similarity s of point w into one point's k best (`bs` descending, ties to the
    smaller index), if it belongs there."""
    k = bi.shape[0]
    if s < bs[k - 1] or (s == bs[k - 1] and w >= bi[k - 1]):
        return
    q = k - 1
    while q > 0 and (bs[q - 1] < s or (bs[q - 1] == s and bi[q - 1] > w)):
        bs[q] = bs[q - 1]
        bi[q] = bi[q - 1]
        q -= 1
    bs[q] = s
    bi[q] = w


@numba.njit(nogil=True, cache=True)
def merge_block(sims, pts, cols, best_i, best_s):
    """Insert row r of `sims` (similarities of point pts[r] to the points `cols`) into that
    point's k best (`best_s` descending, ties to the smaller index; empty places hold −inf
    and a larger index than any point). Each point appears at most once in `pts`.

    Serial and without the GIL: `knn.ivf_knn` runs one scan per core in Python threads, each
    into its own k-best arrays, merged by `merge_best` at the end."""
    k = best_i.shape[1]
    for r in range(sims.shape[0]):
        p = pts[r]
        bi = best_i[p]
        bs = best_s[p]
        row = sims[r]
        thr = bs[k - 1]  # most entries fail this one comparison
        for c in range(row.shape[0]):
            s = row[c]
            if s >= thr:
                _insert(bi, bs, s, cols[c])
                thr = bs[k - 1]


@numba.njit(parallel=True, cache=True)
def merge_best(parts_i, parts_s, best_i, best_s):
    """Fold the k-best arrays of several scans (parts_i[t], parts_s[t]) into `best_i`,
    `best_s` (the first part's, updated in place). The k best of a point are the k best of
    its candidates under one total order (similarity, then index), and no candidate is in two
    parts, so the result does not depend on how the lists were split."""
    k = best_i.shape[1]
    for p in numba.prange(best_i.shape[0]):
        bi = best_i[p]
        bs = best_s[p]
        for t in range(parts_i.shape[0]):
            for c in range(k):
                if parts_s[t, p, c] == -np.inf:
                    break
                _insert(bi, bs, parts_s[t, p, c], parts_i[t, p, c])


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


@numba.njit(cache=True)
def _reverse(idx, dist):
    """(rev_ptr, rev): for each point u, the points v that list u among their neighbours
    (self excluded), nearest first (ties: smaller v first), at most k - 1 of them; rev_ptr
    int64 [n + 1] delimits each point's part of rev (int32)."""
    n, k = idx.shape
    counts = np.zeros(n, dtype=np.int64)
    for v in range(n):
        for a in range(1, k):
            u = idx[v, a]
            if u >= 0:
                counts[u] += 1
    start = np.zeros(n + 1, dtype=np.int64)
    for u in range(n):
        start[u + 1] = start[u] + counts[u]
    src = np.empty(start[n], dtype=np.int32)
    dd = np.empty(start[n], dtype=np.float32)
    fill = start[:n].copy()
    for v in range(n):  # ascending v: each point's sources arrive in index order
        for a in range(1, k):
            u = idx[v, a]
            if u >= 0:
                src[fill[u]] = v
                dd[fill[u]] = dist[v, a]
                fill[u] += 1
    rev_ptr = np.zeros(n + 1, dtype=np.int64)
    for u in range(n):
        rev_ptr[u + 1] = rev_ptr[u] + min(counts[u], k - 1)
    rev = np.empty(rev_ptr[n], dtype=np.int32)
    for u in range(n):
        a, b = start[u], start[u + 1]
        for i in range(a + 1, b):  # stable insertion sort by distance (index order kept)
            s, w = src[i], dd[i]
            j = i
            while j > a and dd[j - 1] > w:
                src[j] = src[j - 1]
                dd[j] = dd[j - 1]
                j -= 1
            src[j] = s
            dd[j] = w
        for i in range(rev_ptr[u + 1] - rev_ptr[u]):
            rev[rev_ptr[u] + i] = src[a + i]
    return rev_ptr, rev


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
    # Reverse neighbours (v lists u, so u looks through v too), at most k - 1 per point, the
    # nearest first: the direction a partial search misses most.
    rev_ptr, rev = _reverse(idx, dist)
    out_i = idx.copy()
    out_d = dist.copy()
    marks[:] = 0
    _refine(x, idx, rev_ptr, rev, out_i, out_d, marks)
    return out_i, out_d
