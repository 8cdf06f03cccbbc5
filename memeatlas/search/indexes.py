"""Search indexes on disk beside the store, kept in step with it.

A store `corpus.duckdb` gets a folder `corpus.duckdb.search/` holding one folder per
embedding space (`vec-…`: vectors, optional HNSW graph) and per lexical recipe (`lex-…`:
annotator + fields → BM25 counts). Each has a `manifest.json` naming what it indexes:

- the space's *fingerprint*: name, kind, model, dimension, recipe and when the space was
  (re)created. Replacing a space (`embed … --force`) changes it, and the index is rebuilt;
- the *state* of what it indexed: row count and an order-free hash of (meme, time written,
  input hash) for a space, of (meme, annotation text) for a lexical index, computed by DuckDB
  in one aggregate. Every open compares it with the store: equal → the index is used as is;
  different → the memes added, changed or removed are applied (new rows appended, old ones
  tombstoned), so an index is never silently stale and never rebuilt for a small change.

Writes go to temporary files that replace the old ones, the manifest last, under a lock
file; a manifest that does not match its files (an interrupted update) means a rebuild.
Nothing here writes to the store: searching works on read-only and sandboxed stores.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.errors import InputError, NotFoundError
from memeatlas.search.lexical import LexicalIndex
from memeatlas.search.vectors import ANN_THRESHOLD, VectorIndex, check_backend
from memeatlas.store.memory import capped_memory

FORMAT = 2  # 2: rows as NumPy arrays (ids/stamps/keys/order.npy), not Parquet
#: Tombstones above this share of rows trigger a compacting rebuild.
MAX_DEAD_SHARE = 0.25


def index_root(store) -> Path:
    """`<store file>.search/`, the folder of the store's search indexes."""
    return Path(str(store.path) + ".search")


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _encode(values, chunk: int = 100_000) -> np.ndarray:
    """Strings (a list or an Arrow array) as one fixed-width UTF-8 bytes array, converted in
    blocks so a million ids never exist as Python strings all at once."""
    n = len(values)
    blocks = []
    for a in range(0, n, chunk):
        part = values[a:a + chunk]
        if hasattr(part, "to_pylist"):
            part = part.to_pylist()
        blocks.append(np.array([v.encode("utf-8") for v in part], dtype=bytes))
    if not blocks:
        return np.zeros(0, "S1")
    width = max(b.dtype.itemsize for b in blocks)
    return np.concatenate([b.astype(f"S{width}") for b in blocks])


def _write_rows(folder: Path, ids: np.ndarray, stamps: np.ndarray, alive: np.ndarray) -> None:
    """ids.npy and stamps.npy (bytes, by row), and keys.npy/order.npy: the live rows' ids
    sorted, and their rows, for lookups by binary search (all memory-mapped when read)."""
    live = np.flatnonzero(alive)
    order = live[np.argsort(ids[live], kind="stable")].astype(np.int64)
    for name, arr in (("ids", ids), ("stamps", stamps), ("keys", ids[order]), ("order", order)):
        tmp = folder / f"{name}.tmp{os.getpid()}.npy"
        np.save(tmp, arr)
        os.replace(tmp, folder / f"{name}.npy")


def _read_rows(folder: Path, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.load(folder / "ids.npy", mmap_mode="r")
    stamps = np.load(folder / "stamps.npy", mmap_mode="r")
    if len(ids) != n_rows or len(stamps) != n_rows:
        raise ValueError("rows do not match the manifest")
    return ids, stamps


class RowMap:
    """meme_id ↔ row of an index, held as memory-mapped NumPy arrays (no Python dict or
    list of a million strings): `ids` by row, and the live rows' ids sorted (`keys`) with
    their rows (`order`) for np.searchsorted. Reads like the dict it replaces: `m in pos`,
    `pos[m]`, `pos.get(m)`, `len(pos)` (live rows)."""

    def __init__(self, ids: np.ndarray, keys: np.ndarray, order: np.ndarray) -> None:
        self.ids = ids
        self.keys = keys
        self.order = order

    @classmethod
    def load(cls, folder: Path) -> RowMap:
        return cls(np.load(folder / "ids.npy", mmap_mode="r"),
                   np.load(folder / "keys.npy", mmap_mode="r"),
                   np.load(folder / "order.npy", mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.order)

    def rows(self, meme_ids) -> np.ndarray:
        """Row of each meme id (-1 where it has none), vectorised."""
        want = meme_ids if isinstance(meme_ids, np.ndarray) else _encode(list(meme_ids))
        if len(self.keys) == 0 or len(want) == 0:
            return np.full(len(want), -1, np.int64)
        i = np.searchsorted(self.keys, want)
        i[i >= len(self.keys)] = 0
        found = np.asarray(self.keys[i] == want)
        return np.where(found, np.asarray(self.order)[i], -1).astype(np.int64)

    def get(self, meme: str, default=None):
        r = int(self.rows([meme])[0])
        return default if r < 0 else r

    def __contains__(self, meme: object) -> bool:
        return isinstance(meme, str) and self.get(meme) is not None

    def __getitem__(self, meme: str) -> int:
        r = self.get(meme)
        if r is None:
            raise KeyError(meme)
        return r

    def rows_of(self, meme_ids) -> np.ndarray:
        r = self.rows(meme_ids)
        return np.sort(r[r >= 0])


class IdColumn:
    """The meme id of a row, decoded on demand from the memory-mapped bytes."""

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, row) -> str:
        return bytes(self._ids[int(row)]).decode("utf-8")


@dataclass
class Update:
    """What bringing an index up to date did."""

    action: str = "fresh"   # fresh | built | updated
    added: int = 0
    removed: int = 0
    seconds: float = 0.0


def _diff(ids: np.ndarray, stamps: np.ndarray, alive: np.ndarray, cur_ids: np.ndarray,
          cur_stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in cur_* to (re)insert, rows to tombstone) to make the index hold the
    current (id, stamp) pairs; `cur_ids` sorted. All vectorised."""
    live = np.flatnonzero(alive)
    lid, lst = np.asarray(ids[live]), np.asarray(stamps[live])
    if len(cur_ids):
        j = np.searchsorted(cur_ids, lid)
        j[j >= len(cur_ids)] = 0
        same = (cur_ids[j] == lid) & (cur_stamps[j] == lst)
    else:
        same = np.zeros(len(live), bool)
    stale = live[~same]
    kept = np.zeros(len(cur_ids), bool)
    if len(cur_ids):
        kept[j[same]] = True
    return np.flatnonzero(~kept), stale


# --- vector indexes ---------------------------------------------------------------------

def space_fingerprint(store, space: str) -> dict[str, Any]:
    """What identifies a space's vectors beyond the rows: replacing the space changes it."""
    row = store.fetchone("SELECT kind, model, dim, params, created_at FROM embedding_spaces "
                         "WHERE space = ?", [space])
    if row is None:
        from memeatlas.embed import list_spaces

        names = ", ".join(s.space for s in list_spaces(store)) or \
            "none yet; run `memeatlas embed text` or `embed image`"
        raise NotFoundError(f"no embedding space {space!r}; spaces here: {names}")
    kind, model, dim, params, created = row
    recipe = (json.loads(params) if params else {}).get("recipe")
    return {"space": space, "kind": kind, "model": model, "dim": int(dim), "recipe": recipe,
            "created_at": str(created)}


def space_state(store, space: str) -> list:
    """[count, order-free hash] of the space's rows (one aggregate in DuckDB)."""
    n, h = store.fetchone(
        "SELECT count(*), coalesce(bit_xor(hash(meme_id, created_at, input_hash)), 0) "
        "FROM embeddings WHERE space = ?", [space])
    return [int(n), str(h)]


def _space_stamps(store, space: str) -> tuple[np.ndarray, np.ndarray]:
    """(meme ids sorted, stamps) of the space's rows, as bytes arrays."""
    cur = store.con.cursor()
    try:
        t = cur.sql("SELECT meme_id, strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f') || '|' || "
                    "coalesce(input_hash, '') AS stamp FROM embeddings WHERE space = $s "
                    "ORDER BY meme_id", params={"s": space}).to_arrow_table()
    finally:
        cur.close()
    ids = _encode(t.column("meme_id"))
    stamps = _encode(t.column("stamp"))
    del t
    order = np.argsort(ids, kind="stable")  # bytes order (DuckDB's collation may differ)
    return ids[order], stamps[order]


def _read_vectors(store, space: str, ids: np.ndarray, dim: int) -> np.ndarray:
    """Vectors of `ids` (bytes) in that order, read in blocks (bounded memory at 10⁶ rows)."""
    from memeatlas.embed import load_space

    out = np.empty((len(ids), dim), np.float32)
    for a in range(0, len(ids), 100_000):
        part = [bytes(m).decode("utf-8") for m in ids[a:a + 100_000]]
        got, mat = load_space(store, space, meme_ids=part)
        where = {m: i for i, m in enumerate(got)}
        out[a:a + len(part)] = mat[[where[m] for m in part]]
    return out


#: DuckDB's memory limit while an index build reads the store. Left at its default (80% of
#: RAM) DuckDB's buffer pool kept the blocks a 10⁶-meme build had scanned (1.5 GB of
#: vectors, then the annotations' window sort) resident in the building process; a build
#: only streams rows, so a small pool costs nothing (benchmarks/results/search.md).
BUILD_DUCKDB_MEMORY = "256MB"
#: Rows per block read from the store during a build.
BUILD_BLOCK = 50_000


def _stream_vectors(store, space: str, dim: int, block: int | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(meme ids, stamps, float32 [b, dim] vectors) of the space's rows in blocks, in the
    order DuckDB scans them: one pass over the table, each block converted from Arrow
    without Python objects (the ids and stamps become bytes arrays)."""
    import pyarrow.compute as pc

    from memeatlas.errors import MismatchError

    cur = store.con.cursor()
    try:
        rel = cur.sql("SELECT meme_id, strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f') || '|' || "
                      "coalesce(input_hash, '') AS stamp, vector FROM embeddings "
                      "WHERE space = $s", params={"s": space})
        for batch in rel.fetch_record_batch(block or BUILD_BLOCK):
            n = batch.num_rows
            if n == 0:
                continue
            flat = pc.list_flatten(batch.column(2)).to_numpy(zero_copy_only=False)
            if flat.size != n * dim:
                raise MismatchError(f"space {space!r} has vectors of mixed length (expected "
                                    f"{dim}-d); re-embed it with --force")
            yield (_encode(batch.column(0)), _encode(batch.column(1)),
                   np.asarray(flat, np.float32).reshape(n, dim))
    finally:
        cur.close()


def _concat(blocks: list[np.ndarray]) -> np.ndarray:
    """Bytes arrays of different widths as one."""
    if not blocks:
        return np.zeros(0, "S1")
    width = max(b.dtype.itemsize for b in blocks)
    return np.concatenate([b.astype(f"S{width}") for b in blocks])


@dataclass
class OpenVectors:
    """A vector index ready to query, with its meme ids by row."""

    space: str
    fingerprint: dict[str, Any]
    index: VectorIndex
    ids: IdColumn
    pos: RowMap
    backend: str
    update: Update

    def rows_of(self, meme_ids) -> np.ndarray:
        return self.pos.rows_of(meme_ids)


def open_vectors(store, space: str, *, backend: str = "auto", progress=None) -> OpenVectors:
    """The space's vector index, built or brought up to date first when needed."""
    check_backend(backend)
    t0 = time.perf_counter()
    fp = space_fingerprint(store, space)
    state = space_state(store, space)
    folder = index_root(store) / f"vec-{_slug(space)}"
    man = _read_manifest(folder)
    usable = (man is not None and man.get("format") == FORMAT and man.get("fingerprint") == fp
              and man.get("backend") == backend)
    if usable and man["state"] == state:
        return _load_vectors(folder, man, space, fp, Update("fresh"))
    try:
        with _locked(folder):
            man = _read_manifest(folder)  # another process may have updated it meanwhile
            usable = (man is not None and man.get("format") == FORMAT
                      and man.get("fingerprint") == fp and man.get("backend") == backend)
            if usable and man["state"] == state:
                return _load_vectors(folder, man, space, fp, Update("fresh"))
            if usable:
                up = _update_vectors(store, folder, man, space, fp, state, backend)
            else:
                up = _build_vectors(store, folder, space, fp, state, backend)
            up.seconds = time.perf_counter() - t0
            return _load_vectors(folder, _read_manifest(folder), space, fp, up)
    except OSError as exc:
        raise InputError(f"cannot write the search index in {folder.parent} ({exc.strerror}); "
                         f"make that folder writable (searching keeps its index beside the "
                         f"store)") from None


def _wants_graph(backend: str, n: int) -> bool:
    return backend == "usearch" or (backend == "auto" and n > ANN_THRESHOLD)


def _build_vectors(store, folder: Path, space: str, fp: dict, state: list, backend: str
                   ) -> Update:
    for f in ("manifest.json", "vectors.f32", "graph.usearch", "rows.parquet", "ids.npy",
              "stamps.npy", "keys.npy", "order.npy"):
        with contextlib.suppress(FileNotFoundError):
            (folder / f).unlink()
    idx = VectorIndex.create(folder, fp["dim"])
    graph = _wants_graph(backend, state[0])
    if graph:
        idx.start_graph()  # blocks go to the file and the graph at once
    id_blocks, stamp_blocks = [], []
    with capped_memory(store, BUILD_DUCKDB_MEMORY):
        for bid, bstamp, vecs in _stream_vectors(store, space, fp["dim"]):
            idx.append(vecs)
            id_blocks.append(bid)
            stamp_blocks.append(bstamp)
            del vecs
    ids, stamps = _concat(id_blocks), _concat(stamp_blocks)
    del id_blocks, stamp_blocks
    idx.save_graph()
    _write_rows(folder, ids, stamps, idx.alive)
    np.save(folder / "alive.npy", idx.alive)
    _write_json(folder / "manifest.json", {
        "format": FORMAT, "kind": "vectors", "fingerprint": fp, "state": state,
        "backend": backend, "graph": graph, "n_rows": idx.n_rows, "dim": fp["dim"],
        "built_at": time.time()})
    return Update("built", added=len(ids))


def _update_vectors(store, folder: Path, man: dict, space: str, fp: dict, state: list,
                    backend: str) -> Update:
    try:
        ids, stamps = _read_rows(folder, man["n_rows"])
        alive = np.load(folder / "alive.npy")
    except (OSError, ValueError):
        return _build_vectors(store, folder, space, fp, state, backend)
    if len(alive) != man["n_rows"]:
        return _build_vectors(store, folder, space, fp, state, backend)
    cur_ids, cur_stamps = _space_stamps(store, space)
    todo, stale = _diff(ids, stamps, alive, cur_ids, cur_stamps)
    dead = (len(alive) - int(alive.sum())) + len(stale)
    if dead > MAX_DEAD_SHARE * max(len(alive) + len(todo), 1) or (
            not man["graph"] and _wants_graph(backend, len(cur_ids))):
        return _build_vectors(store, folder, space, fp, state, backend)
    # Drop any bytes past n_rows left by an interrupted append before appending again.
    with open(folder / "vectors.f32", "r+b") as fh:
        fh.truncate(man["n_rows"] * fp["dim"] * 4)
    idx = VectorIndex.open(folder, fp["dim"], man["n_rows"], alive, graph=man["graph"],
                           writable=True)
    idx.remove(stale)
    if len(todo):
        idx.append(_read_vectors(store, space, cur_ids[todo], fp["dim"]))
    idx.save_graph()
    width = max(ids.dtype.itemsize, cur_ids.dtype.itemsize)
    swidth = max(stamps.dtype.itemsize, cur_stamps.dtype.itemsize)
    _write_rows(folder, np.concatenate([ids, cur_ids[todo]]).astype(f"S{width}"),
                np.concatenate([stamps, cur_stamps[todo]]).astype(f"S{swidth}"), idx.alive)
    np.save(folder / "alive.npy", idx.alive)
    _write_json(folder / "manifest.json", {**man, "state": state, "n_rows": idx.n_rows,
                                           "updated_at": time.time()})
    return Update("updated", added=len(todo), removed=len(stale))


def _load_vectors(folder: Path, man: dict, space: str, fp: dict, up: Update) -> OpenVectors:
    alive = np.load(folder / "alive.npy")
    idx = VectorIndex.open(folder, man["dim"], man["n_rows"], alive, graph=man["graph"])
    rows = RowMap.load(folder)
    return OpenVectors(space, fp, idx, IdColumn(rows.ids), rows,
                       "usearch" if man["graph"] else "exact", up)


# --- lexical indexes ---------------------------------------------------------------------

@dataclass
class OpenLexical:
    """A BM25 index over one annotator's fields, with meme ids by row."""

    annotator: str
    fields: tuple[str, ...]
    index: LexicalIndex
    ids: IdColumn
    pos: RowMap
    update: Update

    def rows_of(self, meme_ids) -> np.ndarray:
        return self.pos.rows_of(meme_ids)


def lexical_state(store, annotator: str) -> list:
    """[count, order-free hash of (meme, annotation fields)] of the annotator's newest
    annotations: any text change changes it."""
    n, h = store.fetchone(
        "SELECT count(*), coalesce(bit_xor(hash(meme_id, created_at, description, ocr_text, "
        "intent, template, tone, entities::VARCHAR, raw::VARCHAR)), 0) "
        "FROM latest_annotations WHERE annotator = ?", [annotator])
    return [int(n), str(h)]


def _text_stamp(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def _text_blocks(store, annotator: str, fields: tuple[str, ...]
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """(meme ids, text stamps, texts) of the annotator's non-empty annotation texts, in
    blocks streamed from the store."""
    from memeatlas.corpus.texts import iter_annotation_texts

    for rows in iter_annotation_texts(store, annotator, fields, block=BUILD_BLOCK):
        rows = [(m, t) for m, t in rows if t]
        if rows:
            yield (_encode([m for m, _ in rows]), _encode([_text_stamp(t) for _, t in rows]),
                   [t for _, t in rows])


def _build_lexical(store, folder: Path, annotator: str, fields: tuple[str, ...]
                   ) -> tuple[LexicalIndex, np.ndarray, np.ndarray]:
    """A new BM25 index, fed block by block (rows in the order the store returns them)."""
    id_blocks, stamp_blocks = [], []

    def texts() -> Iterator[list[str]]:
        for bid, bstamp, btexts in _text_blocks(store, annotator, fields):
            id_blocks.append(bid)
            stamp_blocks.append(bstamp)
            yield btexts

    lex = LexicalIndex.empty()
    with capped_memory(store, BUILD_DUCKDB_MEMORY):
        lex.add_blocks(texts())
    return lex, _concat(id_blocks), _concat(stamp_blocks)


def _update_lexical(store, folder: Path, man: dict, annotator: str, fields: tuple[str, ...]
                    ) -> tuple[LexicalIndex, np.ndarray, np.ndarray, Update] | None:
    """The saved index brought up to date (changed texts tombstoned, new ones appended), or
    None when it must be rebuilt. Only the texts it lacks are kept while the store is read."""
    try:
        ids, stamps = _read_rows(folder, man["n_rows"])
        lex = LexicalIndex.load(folder)
        have = RowMap.load(folder)
    except (OSError, ValueError):
        return None
    if len(ids) != lex.counts.shape[0]:
        return None
    id_blocks, stamp_blocks, pending = [], [], {}
    with capped_memory(store, BUILD_DUCKDB_MEMORY):
        for bid, bstamp, btexts in _text_blocks(store, annotator, fields):
            id_blocks.append(bid)
            stamp_blocks.append(bstamp)
            r = have.rows(bid)
            same = r >= 0
            same[same] = np.asarray(stamps[r[same]]) == bstamp[same]
            for i in np.flatnonzero(~same).tolist():
                pending[bytes(bid[i])] = btexts[i]
    cur_ids, cur_stamps = _concat(id_blocks), _concat(stamp_blocks)
    order = np.argsort(cur_ids, kind="stable")
    cur_ids, cur_stamps = cur_ids[order], cur_stamps[order]
    todo, stale = _diff(ids, stamps, lex.alive, cur_ids, cur_stamps)
    dead = (len(ids) - lex.n_live) + len(stale)
    if dead > MAX_DEAD_SHARE * max(len(ids) + len(todo), 1):
        return None
    lex.remove(stale)
    lex.add([pending[bytes(cur_ids[i])] for i in todo])
    w = max(ids.dtype.itemsize, cur_ids.dtype.itemsize)
    sw = max(stamps.dtype.itemsize, cur_stamps.dtype.itemsize)
    ids = np.concatenate([ids, cur_ids[todo]]).astype(f"S{w}")
    stamps = np.concatenate([stamps, cur_stamps[todo]]).astype(f"S{sw}")
    return lex, ids, stamps, Update("updated", added=len(todo), removed=len(stale))


def open_lexical(store, annotator: str, fields: tuple[str, ...]) -> OpenLexical:
    """The BM25 index of `annotator`'s `fields`, built or brought up to date first."""
    t0 = time.perf_counter()
    key = {"annotator": annotator, "fields": list(fields)}
    state = lexical_state(store, annotator)
    folder = index_root(store) / f"lex-{_slug(json.dumps(key, sort_keys=True))}"
    man = _read_manifest(folder)
    if man and man.get("format") == FORMAT and man.get("key") == key and man["state"] == state:
        return _load_lexical(folder, annotator, fields, Update("fresh"))
    try:
        with _locked(folder):
            man = _read_manifest(folder)
            ok = man is not None and man.get("format") == FORMAT and man.get("key") == key
            if ok and man["state"] == state:
                return _load_lexical(folder, annotator, fields, Update("fresh"))
            got = _update_lexical(store, folder, man, annotator, fields) if ok else None
            if got is not None:
                lex, ids, stamps, up = got
            else:
                lex, ids, stamps = _build_lexical(store, folder, annotator, fields)
                up = Update("built", added=len(ids))
            lex.save(folder)
            _write_rows(folder, ids, stamps, lex.alive)
            _write_json(folder / "manifest.json", {
                "format": FORMAT, "kind": "lexical", "key": key, "state": state,
                "n_rows": len(ids), "updated_at": time.time()})
            del lex
            up.seconds = time.perf_counter() - t0
            return _load_lexical(folder, annotator, fields, up)
    except OSError as exc:
        raise InputError(f"cannot write the search index in {folder.parent} ({exc.strerror}); "
                         f"make that folder writable") from None


def _load_lexical(folder: Path, annotator: str, fields: tuple[str, ...], up: Update
                  ) -> OpenLexical:
    lex = LexicalIndex.load(folder)
    rows = RowMap.load(folder)
    return OpenLexical(annotator, fields, lex, IdColumn(rows.ids), rows, up)


def remove_all(store) -> bool:
    """Delete the store's search folder (it is rebuilt on the next search)."""
    root = index_root(store)
    if root.exists():
        shutil.rmtree(root)
        return True
    return False
