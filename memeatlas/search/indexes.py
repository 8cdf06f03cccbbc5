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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memeatlas.errors import InputError, NotFoundError
from memeatlas.search.lexical import LexicalIndex
from memeatlas.search.vectors import ANN_THRESHOLD, VectorIndex, check_backend

FORMAT = 1
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


def _write_rows(folder: Path, ids: Sequence[str], stamps: Sequence[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = folder / f"rows.parquet.tmp{os.getpid()}"
    pq.write_table(pa.table({"meme_id": pa.array(list(ids), pa.string()),
                             "stamp": pa.array(list(stamps), pa.string())}), tmp)
    os.replace(tmp, folder / "rows.parquet")


def _read_rows(folder: Path) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    t = pq.read_table(folder / "rows.parquet")
    return t.column("meme_id").to_pylist(), t.column("stamp").to_pylist()


@dataclass
class Update:
    """What bringing an index up to date did."""

    action: str = "fresh"   # fresh | built | updated
    added: int = 0
    removed: int = 0
    seconds: float = 0.0


@dataclass
class _Rows:
    """meme_id ↔ row bookkeeping shared by both index kinds."""

    ids: list[str] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)
    pos: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, ids: list[str], stamps: list[str], alive: np.ndarray) -> _Rows:
        pos = {ids[i]: int(i) for i in np.flatnonzero(alive)}
        return cls(ids, stamps, pos)

    def diff(self, current: dict[str, str]) -> tuple[list[str], list[int]]:
        """(memes to (re)insert, rows to tombstone) to make the index hold `current`."""
        stale = [r for m, r in self.pos.items() if current.get(m) != self.stamps[r]]
        todo = [m for m, s in current.items()
                if m not in self.pos or self.stamps[self.pos[m]] != s]
        return todo, stale


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


def _space_stamps(store, space: str) -> dict[str, str]:
    cur = store.con.cursor()
    try:
        t = cur.sql("SELECT meme_id, strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f') || '|' || "
                    "coalesce(input_hash, '') AS stamp FROM embeddings WHERE space = $s",
                    params={"s": space}).to_arrow_table()
    finally:
        cur.close()
    return dict(zip(t.column("meme_id").to_pylist(), t.column("stamp").to_pylist(),
                    strict=True))


def _read_vectors(store, space: str, ids: list[str], dim: int) -> np.ndarray:
    """Vectors of `ids` in that order, read in blocks (bounded memory at 10⁶ rows)."""
    from memeatlas.embed import load_space

    out = np.empty((len(ids), dim), np.float32)
    for a in range(0, len(ids), 100_000):
        part = ids[a:a + 100_000]
        got, mat = load_space(store, space, meme_ids=part)
        where = {m: i for i, m in enumerate(got)}
        out[a:a + len(part)] = mat[[where[m] for m in part]]
    return out


@dataclass
class OpenVectors:
    """A vector index ready to query, with its meme ids by row."""

    space: str
    fingerprint: dict[str, Any]
    index: VectorIndex
    ids: list[str]
    pos: dict[str, int]
    backend: str
    update: Update

    def rows_of(self, meme_ids) -> np.ndarray:
        return np.asarray(sorted(self.pos[m] for m in meme_ids if m in self.pos), np.int64)


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
    for f in ("manifest.json", "vectors.f32", "graph.usearch", "rows.parquet"):
        with contextlib.suppress(FileNotFoundError):
            (folder / f).unlink()
    stamps = _space_stamps(store, space)
    ids = sorted(stamps)
    idx = VectorIndex.create(folder, fp["dim"])
    for a in range(0, len(ids), 100_000):
        idx.append(_read_vectors(store, space, ids[a:a + 100_000], fp["dim"]))
    graph = _wants_graph(backend, len(ids))
    if graph:
        idx.build_graph()
        idx.save_graph()
    _write_rows(folder, ids, [stamps[m] for m in ids])
    np.save(folder / "alive.npy", idx.alive)
    _write_json(folder / "manifest.json", {
        "format": FORMAT, "kind": "vectors", "fingerprint": fp, "state": state,
        "backend": backend, "graph": graph, "n_rows": idx.n_rows, "dim": fp["dim"],
        "built_at": time.time()})
    return Update("built", added=len(ids))


def _update_vectors(store, folder: Path, man: dict, space: str, fp: dict, state: list,
                    backend: str) -> Update:
    ids, stamps = _read_rows(folder)
    alive = np.load(folder / "alive.npy")
    if len(ids) != man["n_rows"] or len(alive) != man["n_rows"]:
        return _build_vectors(store, folder, space, fp, state, backend)
    rows = _Rows.of(ids, stamps, alive)
    current = _space_stamps(store, space)
    todo, stale = rows.diff(current)
    dead = (len(alive) - int(alive.sum())) + len(stale)
    if dead > MAX_DEAD_SHARE * max(len(alive) + len(todo), 1) or (
            not man["graph"] and _wants_graph(backend, len(current))):
        return _build_vectors(store, folder, space, fp, state, backend)
    # Drop any bytes past n_rows left by an interrupted append before appending again.
    with open(folder / "vectors.f32", "r+b") as fh:
        fh.truncate(man["n_rows"] * fp["dim"] * 4)
    idx = VectorIndex.open(folder, fp["dim"], man["n_rows"], alive, graph=man["graph"],
                           writable=True)
    idx.remove(np.asarray(stale, np.int64))
    todo.sort()
    if todo:
        idx.append(_read_vectors(store, space, todo, fp["dim"]))
    idx.save_graph()
    _write_rows(folder, ids + todo, stamps + [current[m] for m in todo])
    np.save(folder / "alive.npy", idx.alive)
    _write_json(folder / "manifest.json", {**man, "state": state, "n_rows": idx.n_rows,
                                           "updated_at": time.time()})
    return Update("updated", added=len(todo), removed=len(stale))


def _load_vectors(folder: Path, man: dict, space: str, fp: dict, up: Update) -> OpenVectors:
    ids, _ = _read_rows(folder)
    alive = np.load(folder / "alive.npy")
    idx = VectorIndex.open(folder, man["dim"], man["n_rows"], alive, graph=man["graph"])
    pos = {ids[i]: int(i) for i in np.flatnonzero(alive)}
    return OpenVectors(space, fp, idx, ids, pos, "usearch" if man["graph"] else "exact", up)


# --- lexical indexes ---------------------------------------------------------------------

@dataclass
class OpenLexical:
    """A BM25 index over one annotator's fields, with meme ids by row."""

    annotator: str
    fields: tuple[str, ...]
    index: LexicalIndex
    ids: list[str]
    pos: dict[str, int]
    update: Update

    def rows_of(self, meme_ids) -> np.ndarray:
        return np.asarray(sorted(self.pos[m] for m in meme_ids if m in self.pos), np.int64)


def lexical_state(store, annotator: str) -> list:
    """[count, order-free hash of (meme, annotation fields)] of the annotator's newest
    annotations: any text change changes it."""
    n, h = store.fetchone(
        "SELECT count(*), coalesce(bit_xor(hash(meme_id, created_at, description, ocr_text, "
        "intent, template, tone, entities::VARCHAR, raw::VARCHAR)), 0) "
        "FROM latest_annotations WHERE annotator = ?", [annotator])
    return [int(n), str(h)]


def _texts(store, annotator: str, fields: tuple[str, ...]) -> dict[str, str]:
    from memeatlas.corpus.texts import annotation_texts

    rows, _ = annotation_texts(store, annotator, fields)
    return {m: t for m, t in rows}


def _text_stamp(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


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
            current = {m: t for m, t in _texts(store, annotator, fields).items()}
            up = Update("built")
            if ok:
                ids, stamps = _read_rows(folder)
                lex = LexicalIndex.load(folder)
                if len(ids) == man["n_rows"] == lex.counts.shape[0]:
                    stamped = {m: _text_stamp(t) for m, t in current.items() if t}
                    todo, stale = _Rows.of(ids, stamps, lex.alive).diff(stamped)
                    dead = (len(ids) - lex.n_live) + len(stale)
                    if dead <= MAX_DEAD_SHARE * max(len(ids) + len(todo), 1):
                        lex.remove(stale)
                        todo.sort()
                        lex.add([current[m] for m in todo])
                        ids, stamps = ids + todo, stamps + [stamped[m] for m in todo]
                        up = Update("updated", added=len(todo), removed=len(stale))
            if up.action == "built":
                ids = sorted(m for m, t in current.items() if t)
                lex = LexicalIndex.empty()
                lex.add([current[m] for m in ids])  # one matrix: no repeated stacking
                stamps = [_text_stamp(current[m]) for m in ids]
                up.added = len(ids)
            lex.save(folder)
            _write_rows(folder, ids, stamps)
            _write_json(folder / "manifest.json", {
                "format": FORMAT, "kind": "lexical", "key": key, "state": state,
                "n_rows": len(ids), "updated_at": time.time()})
            up.seconds = time.perf_counter() - t0
            return _load_lexical(folder, annotator, fields, up)
    except OSError as exc:
        raise InputError(f"cannot write the search index in {folder.parent} ({exc.strerror}); "
                         f"make that folder writable") from None


def _load_lexical(folder: Path, annotator: str, fields: tuple[str, ...], up: Update
                  ) -> OpenLexical:
    ids, _ = _read_rows(folder)
    lex = LexicalIndex.load(folder)
    pos = {ids[i]: int(i) for i in np.flatnonzero(lex.alive)}
    return OpenLexical(annotator, fields, lex, ids, pos, up)


def remove_all(store) -> bool:
    """Delete the store's search folder (it is rebuilt on the next search)."""
    root = index_root(store)
    if root.exists():
        shutil.rmtree(root)
        return True
    return False
