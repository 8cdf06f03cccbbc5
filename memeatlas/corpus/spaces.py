"""Embedding spaces in the store: registry rows, vector writes, and the fast read API.

A space (`text:description+intent`, `image:clip-vit-base-patch32`) holds one vector per meme,
all from one model with one dimension. Vectors are stored as FLOAT[] (float32, L2-normalised)
and read back through Arrow without a per-row Python loop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memeatlas.errors import InputError, MismatchError, NotFoundError
from memeatlas.provenance import stable_json, utcnow


@dataclass
class SpaceInfo:
    """One row of `embedding_spaces` with its vector count."""

    space: str
    kind: str
    model: str
    dim: int
    n: int
    params: dict[str, Any]
    software: dict[str, Any]
    created_at: Any
    updated_at: Any


def _row_to_info(row: tuple) -> SpaceInfo:
    space, kind, model, dim, params, software, created, updated, n = row
    return SpaceInfo(space=space, kind=kind, model=model, dim=int(dim), n=int(n or 0),
                     params=json.loads(params) if params else {},
                     software=json.loads(software) if software else {},
                     created_at=created, updated_at=updated)


_SPACE_SQL = (
    "SELECT s.space, s.kind, s.model, s.dim, s.params, s.software, s.created_at, s.updated_at, "
    "(SELECT count(*) FROM embeddings e WHERE e.space = s.space) AS n FROM embedding_spaces s")


def list_spaces(store) -> list[SpaceInfo]:
    """Every space in the store, by name, with model, dimension and vector count."""
    return [_row_to_info(r) for r in store.fetchall(_SPACE_SQL + " ORDER BY s.space")]


def get_space(store, space: str) -> SpaceInfo | None:
    """The space's registry row, or None."""
    row = store.fetchone(_SPACE_SQL + " WHERE s.space = ?", [space])
    return _row_to_info(row) if row else None


def _unknown_space(store, space: str) -> NotFoundError:
    names = [s.space for s in list_spaces(store)]
    have = ", ".join(names) if names else "none yet; run `memeatlas embed text` or `embed image`"
    return NotFoundError(f"no embedding space {space!r}; spaces here: {have}")


# What is computed from a space's vectors, and so breaks or goes stale when they are
# replaced: (what, SQL selecting its ids for the space given as the one parameter).
_USERS = (
    ("cluster run", "SELECT run_id FROM cluster_runs WHERE space = $1 OR list_contains("
                    "json_extract_string(spaces, '$[*].space'), $1) ORDER BY created_at"),
    ("classifier", "SELECT model_id FROM classify_models WHERE list_contains("
                   "json_extract_string(spaces, '$[*]'), $1) ORDER BY created_at"),
    ("near-duplicate run", "SELECT run_id FROM dup_runs WHERE params ->> 'space' = $1 "
                           "ORDER BY created_at"),
    ("template run", "SELECT run_id FROM template_runs WHERE space = $1 ORDER BY created_at"),
)


def space_users(store, space: str) -> dict[str, list[str]]:
    """{what: ids} of the stored results computed from `space` (cluster runs, classifiers,
    near-duplicate and template runs); empty when nothing uses it."""
    out: dict[str, list[str]] = {}
    for what, sql in _USERS:
        ids = [r[0] for r in store.fetchall(sql, [space])]
        if ids:
            out[what] = ids
    return out


def check_replace(store, info: SpaceInfo | None, model: str, *, replace: bool = False) -> None:
    """Refuse to replace a space (another model, dimension or inputs) that stored results use.

    "Derive, never overwrite" for spaces: a run or classifier keeps naming the space it was
    computed from, so new vectors go into a new space name; `replace` (--replace-space) is the
    explicit way to overwrite one anyway, leaving those results stale.
    """
    if info is None or replace:
        return
    users = space_users(store, info.space)
    if not users:
        return
    parts = []
    for what, ids in users.items():
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        parts.append(f"{len(ids)} {what}{'s' if len(ids) > 1 else ''} ({shown})")
    users_text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    short = model.rstrip("/").split("/")[-1].split(":")[0]
    raise MismatchError(
        f"space {info.space!r} holds vectors from model {info.model} ({info.dim}-d) that "
        f"{users_text} were computed from; replacing them with model {model} would leave "
        f"those pointing at vectors they did not use (classify predict and assign would fail or "
        f"mislead). Pass a new --space name (e.g. --space {info.space}:{short}) to derive a new "
        f"space, or --replace-space to overwrite it anyway")


def check_model(store, space: str, model: str, *, force: bool = False,
                replace: bool = False) -> SpaceInfo | None:
    """Refuse another model in an existing space (before spending time loading it).

    With `force` the space is going to be replaced, which stored results using it forbid
    unless `replace` (`check_replace`).
    """
    info = get_space(store, space)
    if info is not None and info.model != model and not force:
        raise MismatchError(
            f"space {space!r} holds vectors from model {info.model} ({info.dim}-d); refusing to "
            f"add vectors from model {model}. Pass another --space, or --force to replace the "
            f"whole space")
    if info is not None and info.model != model:
        check_replace(store, info, model, replace=replace)
    return info


def check_recipe(info: SpaceInfo | None, recipe: dict[str, Any], *, force: bool = False) -> None:
    """Refuse to mix inputs built differently (other fields/template/annotator/preprocessing)."""
    if info is None or force:
        return
    stored = info.params.get("recipe") or {}
    keys = sorted(set(stored) | set(recipe))
    diff = {k: (stored.get(k), recipe.get(k)) for k in keys if stored.get(k) != recipe.get(k)}
    if diff:
        what = "; ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise MismatchError(
            f"space {info.space!r} was built with other inputs ({what}). Pass another --space, "
            f"or --force to replace the whole space")


def prepare_space(store, *, space: str, kind: str, model: str, dim: int,
                  recipe: dict[str, Any], params: dict[str, Any], software: dict[str, Any],
                  force: bool = False, replace: bool = False) -> bool:
    """Create or validate the space's registry row for vectors of `model` with `dim`.

    A different model or dimension raises MismatchError naming both; with `force` the space's
    old vectors are deleted and its row replaced, unless stored results use the space and
    `replace` is not given (`check_replace`). Returns True when the space was (re)created.
    """
    info = check_model(store, space, model, force=force, replace=replace)
    if info is not None and not force:
        if info.dim != dim:
            raise MismatchError(
                f"space {space!r} holds {info.dim}-d vectors from {info.model}; model {model} "
                f"gives {dim}-d vectors. Pass another --space, or --force to replace the space")
        if info.kind != kind:
            raise MismatchError(f"space {space!r} is a {info.kind} space; refusing {kind} "
                                f"vectors. Pass another --space")
        check_recipe(info, recipe)
    same = (info is not None and info.model == model and info.dim == dim and info.kind == kind
            and info.params.get("recipe") == recipe)
    if not same:
        check_replace(store, info, model, replace=replace)
    all_params = {**params, "recipe": recipe}
    with store.transaction() as con:
        if info is None or not same:
            con.execute("DELETE FROM embeddings WHERE space = ?", [space])
            con.execute("DELETE FROM embedding_spaces WHERE space = ?", [space])
            con.execute(
                "INSERT INTO embedding_spaces (space, kind, model, dim, params, software, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [space, kind, model, dim, stable_json(all_params), stable_json(software),
                 utcnow(), utcnow()])
            return True
        con.execute("UPDATE embedding_spaces SET params = ?, software = ?, updated_at = ? "
                    "WHERE space = ?",
                    [stable_json(all_params), stable_json(software), utcnow(), space])
    return False


def stored_inputs(store, space: str) -> dict[str, tuple[str, str | None]]:
    """meme_id → (model, input_hash) of what the space holds now."""
    return {m: (mod, h) for m, mod, h in store.fetchall(
        "SELECT meme_id, model, input_hash FROM embeddings WHERE space = ?", [space])}


def write_vectors(store, *, space: str, model: str, ids: Sequence[str], vectors: np.ndarray,
                  input_hashes: Sequence[str | None], annotator: str | None = None) -> None:
    """Replace the space's vectors for `ids` in one transaction (one commit per batch)."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
        raise ValueError(f"vectors of shape {vectors.shape} for {len(ids)} ids")
    n, dim = vectors.shape
    if n == 0:
        return
    if not np.isfinite(vectors).all():
        bad = [ids[i] for i in np.nonzero(~np.isfinite(vectors).all(axis=1))[0][:3]]
        raise InputError(f"model {model} produced non-finite vectors (e.g. for memes {bad}); "
                         f"nothing of this batch was stored")
    now = utcnow()
    batch = pa.table({
        "meme_id": pa.array(list(ids), pa.string()),
        "vector": pa.ListArray.from_arrays(
            pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32)),
            pa.array(vectors.reshape(-1), pa.float32())),
        "input_hash": pa.array(list(input_hashes), pa.string()),
    })
    with store.registered("_embed_batch", batch), store.transaction() as con:
        con.execute("DELETE FROM embeddings WHERE space = ? AND meme_id IN "
                    "(SELECT meme_id FROM _embed_batch)", [space])
        con.execute(
            "INSERT INTO embeddings (meme_id, space, model, dim, vector, input_hash, "
            "annotator, created_at) SELECT meme_id, ?, ?, ?, vector, input_hash, ?, ? "
            "FROM _embed_batch", [space, model, dim, annotator, now])
        con.execute("UPDATE embedding_spaces SET updated_at = ? WHERE space = ?", [now, space])


def load_space(store, space: str, *, meme_ids: Sequence[str] | None = None
               ) -> tuple[list[str], np.ndarray]:
    """(ids, matrix) of a space: ids sorted, matrix float32 [n, dim], rows L2-normalised.

    Reads through Arrow and reshapes the flattened list column, so 100k × 384 takes a fraction
    of a second. `meme_ids` restricts the result to those memes (order still by id).
    """
    import pyarrow.compute as pc

    info = get_space(store, space)
    if info is None:
        raise _unknown_space(store, space)
    sql = "SELECT meme_id, vector FROM embeddings WHERE space = $space"
    params: dict[str, Any] = {"space": space}
    if meme_ids is not None:
        sql += " AND meme_id IN (SELECT unnest($ids::VARCHAR[]))"
        params["ids"] = list(meme_ids)
    # A relation's to_arrow_table() skips the DB-API result copy; it runs on a cursor because
    # DuckDB refuses relations while the store's connection holds an unfinished result.
    cur = store.con.cursor()
    try:
        tbl = cur.sql(sql, params=params).to_arrow_table()
    finally:
        cur.close()
    n = tbl.num_rows
    if n == 0:
        return [], np.zeros((0, info.dim), dtype=np.float32)
    # Sorting in DuckDB would move every vector; sort the ids here and gather rows once.
    order = pc.sort_indices(tbl.column("meme_id")).to_numpy()
    flat = pc.list_flatten(tbl.column("vector"))
    chunks = [c.to_numpy(zero_copy_only=False) for c in flat.chunks]
    values = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    if values.size != n * info.dim:
        raise MismatchError(f"space {space!r} has vectors of mixed length (expected "
                            f"{info.dim}-d); re-embed it with --force")
    matrix = values.reshape(n, info.dim)
    if n > 1 and not bool(np.all(order[1:] > order[:-1])):  # gather only when out of order
        matrix = matrix[order]
        ids = tbl.column("meme_id").take(order).to_pylist()
    else:
        ids = tbl.column("meme_id").to_pylist()
    if not matrix.flags.writeable:  # zero-copy views of Arrow buffers are read-only
        matrix = matrix.copy()
    return ids, np.ascontiguousarray(matrix, dtype=np.float32)
