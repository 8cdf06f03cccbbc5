"""BM25 over annotation text: a term × document count matrix that grows as memes are added.

Okapi BM25 (Robertson & Zaragoza 2009; Lucene's variant of idf):

    score(q, d) = Σ_t∈q idf(t) · tf(t,d)·(k1+1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl))
    idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))

Only raw counts are stored (a CSC matrix: one column of postings per term, plus document
lengths); idf and length normalisation are computed at query time from the live documents.
So adding memes appends rows and removing or changing one flips a tombstone: no stored
weight goes stale when the collection statistics change. Kept over bm25s 0.3 and tantivy 0.27
by measurement (`benchmarks/search.py lexical`, same tokens for all three): at 10⁶ captions it
builds fastest (19 s, against 35 s and 29 s) in the same memory as tantivy (~190 MB; bm25s
1 GB), ranks ImgFlip templates like tantivy (P@20 0.326; bm25s 0.320), and a query costs
2.9 ms (tantivy's pruned top-k 0.5 ms, bm25s 172 ms), well inside a hybrid query's budget;
bm25s cannot add or remove documents, and tantivy would add a compiled dependency and a
second index format for a gain of ~2 ms a query, and lose cheap row filters (`rows=`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from memeatlas.search.tokenize import terms

K1 = 1.2
B = 0.75


def _count(blocks: Iterable[Sequence[str]], vocab: dict[str, int]):
    """CSR counts (float32) of the documents of `blocks` over `vocab` (grown in place with
    their new terms), and their lengths. Token ids are gathered in array('i') (10⁶ captions
    hold ~2·10⁷ tokens: 80 MB here, 700 MB as Python ints)."""
    from array import array

    import scipy.sparse as sp

    indptr, indices, lens = array("q", [0]), array("i"), array("f")
    for texts in blocks:
        for text in texts:
            toks = terms(text)
            lens.append(len(toks))
            for t in toks:
                j = vocab.get(t)
                if j is None:
                    j = vocab[t] = len(vocab)
                indices.append(j)
            indptr.append(len(indices))
    ind = np.frombuffer(indices, np.int32) if len(indices) else np.zeros(0, np.int32)
    m = sp.csr_matrix((np.ones(len(ind), np.float32), ind, np.frombuffer(indptr, np.int64)),
                      shape=(len(lens), len(vocab)))
    m.sum_duplicates()  # repeated terms → counts
    return m, np.array(lens, dtype=np.float32)


class LexicalIndex:
    """Documents (rows) × terms (columns) counts with tombstones; see the module docstring."""

    def __init__(self, vocab: dict[str, int], counts, doc_len: np.ndarray, alive: np.ndarray
                 ) -> None:
        self.vocab = vocab
        self.counts = counts          # scipy.sparse.csc_matrix, float32, n_docs × n_terms
        self.doc_len = doc_len        # float32 [n_docs]
        self.alive = alive            # bool [n_docs]

    # --- building -------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> LexicalIndex:
        import scipy.sparse as sp

        return cls({}, sp.csc_matrix((0, 0), dtype=np.float32), np.zeros(0, np.float32),
                   np.zeros(0, bool))

    def add(self, texts: Sequence[str]) -> np.ndarray:
        """Append documents; returns their row numbers."""
        return self.add_blocks([texts])

    def add_blocks(self, blocks: Iterable[Sequence[str]]) -> np.ndarray:
        """Append the documents of every block (an iterator of text lists, read as it is
        consumed: a build over 10⁶ annotations never holds all their texts at once); returns
        their row numbers. The counts are gathered compactly and become one matrix at the
        end, so a build makes one CSC matrix instead of stacking one per block."""
        import scipy.sparse as sp

        start = self.counts.shape[0]
        new, lens = _count(blocks, self.vocab)
        if new.shape[0] == 0:
            return np.arange(start, start)
        if start == 0:
            self.counts = new.tocsc()
        else:
            old = self.counts
            if old.shape[1] < len(self.vocab):  # new terms: widen the old rows
                old = sp.csc_matrix((old.data, old.indices, np.concatenate(
                    [old.indptr, np.full(len(self.vocab) - old.shape[1], old.indptr[-1],
                                         old.indptr.dtype)])),
                    shape=(old.shape[0], len(self.vocab)))
            self.counts = sp.vstack([old, new], format="csc", dtype=np.float32)
        del new
        self.doc_len = np.concatenate([self.doc_len, lens])
        self.alive = np.concatenate([self.alive, np.ones(len(lens), bool)])
        return np.arange(start, start + len(lens))

    def remove(self, rows: Sequence[int] | np.ndarray) -> None:
        """Tombstone documents (they stop counting in scores and statistics)."""
        self.alive[np.asarray(rows, dtype=np.int64)] = False

    def compact(self) -> np.ndarray:
        """Drop tombstoned rows; returns the old row number of each kept row."""
        keep = np.flatnonzero(self.alive)
        self.counts = self.counts[keep].tocsc()
        self.doc_len = self.doc_len[keep]
        self.alive = np.ones(len(keep), bool)
        return keep

    # --- querying -------------------------------------------------------------------------
    @property
    def n_live(self) -> int:
        return int(self.alive.sum())

    def scores(self, query: str, *, rows: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rows, BM25 scores) of every live document sharing a term with `query`, and the
        query terms found in the index. `rows`: restrict to these documents (a filter)."""
        q = [t for t in dict.fromkeys(terms(query)) if t in self.vocab]
        n_docs = self.counts.shape[0]
        if not q or n_docs == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), q
        n = max(self.n_live, 1)
        avgdl = float(self.doc_len[self.alive].mean()) if self.n_live else 1.0
        acc = np.zeros(n_docs, np.float32)
        touched = np.zeros(n_docs, bool)
        c = self.counts
        for t in q:
            j = self.vocab[t]
            lo, hi = c.indptr[j], c.indptr[j + 1]
            docs = c.indices[lo:hi]
            tf = c.data[lo:hi]
            live = self.alive[docs]
            docs, tf = docs[live], tf[live]
            if docs.size == 0:
                continue
            idf = np.log1p((n - docs.size + 0.5) / (docs.size + 0.5))
            norm = K1 * (1 - B + B * self.doc_len[docs] / max(avgdl, 1e-9))
            acc[docs] += (idf * tf * (K1 + 1) / (tf + norm)).astype(np.float32)
            touched[docs] = True
        hit = np.flatnonzero(touched)
        if rows is not None:
            mask = np.zeros(n_docs, bool)
            mask[rows] = True
            hit = hit[mask[hit]]
        return hit, acc[hit], q

    def top(self, query: str, k: int, *, rows: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The `k` best (rows, scores), best first, and the query terms found."""
        hit, sc, q = self.scores(query, rows=rows)
        if hit.size > k:
            part = np.argpartition(-sc, k - 1)[:k]
            hit, sc = hit[part], sc[part]
        order = np.lexsort((hit, -sc))  # ties: earlier row first, so results are stable
        return hit[order], sc[order], q

    # --- files ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write `lexical.npz` and `vocab.json` into `folder` (the caller swaps folders)."""
        c = self.counts
        np.savez(folder / "lexical.npz", indptr=c.indptr, indices=c.indices, data=c.data,
                 shape=np.asarray(c.shape), doc_len=self.doc_len, alive=self.alive)
        terms_in_order = sorted(self.vocab, key=self.vocab.__getitem__)
        (folder / "vocab.json").write_text(json.dumps(terms_in_order, ensure_ascii=False),
                                           encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        import scipy.sparse as sp

        z = np.load(folder / "lexical.npz")
        counts = sp.csc_matrix((z["data"], z["indices"], z["indptr"]),
                               shape=tuple(int(v) for v in z["shape"]))
        words = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        return cls({w: i for i, w in enumerate(words)}, counts, z["doc_len"], z["alive"])
