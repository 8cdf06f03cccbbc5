"""Store benchmarks: file size and query time per DuckDB storage format, conversion time,
and the cost of a sandboxed --where and `sql`.

    python benchmarks/store.py --memes 20000 --dim 384

Builds a synthetic store (memes with meta JSON, one annotation with entities each, one
embedding space of `dim` float32 vectors, one cluster run) once in DuckDB 2.0's own format
and once in the format memeatlas writes (storage_compatibility_version v1.1.0), then
converts the first with `memeatlas migrate --storage-version v1.1.0`'s code path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from memeatlas.corpus.where import where_ids
from memeatlas.store import Store, migrate
from memeatlas.store.convert import convert_storage
from memeatlas.store.query import run_readonly


def fill(con: duckdb.DuckDBPyConnection, n: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ids = [f"{i:064x}" for i in range(n)]
    memes = pa.table({
        "meme_id": ids, "path": [f"/data/m{i}.jpg" for i in range(n)],
        "source": ["folder"] * n, "has_image": [True] * n,
        "width": rng.integers(200, 1200, n).astype("int32"),
        "height": rng.integers(200, 1200, n).astype("int32"),
        "format": rng.choice(["JPEG", "PNG", "WEBP"], n),
        "meta": [json.dumps({"theme": f"t{i % 20}", "year": 2015 + i % 10}) for i in range(n)],
    })
    con.register("_m", memes)
    con.execute("INSERT INTO memes (meme_id, path, source, has_image, width, height, format, meta)"
                " SELECT * FROM _m")
    ents = [json.dumps([{"name": f"e{i % 50}", "role": "hero", "stands_for": "x"},
                        {"name": f"v{i % 30}", "role": "villain", "stands_for": "y"}])
            for i in range(n)]
    ann = pa.table({"meme_id": ids, "description": [f"a picture of thing {i % 97}" for i in range(n)],
                    "entities": ents})
    con.register("_a", ann)
    con.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, "
                "description, entities) SELECT meme_id, 'vlm@1', 'p', 's', description, entities "
                "FROM _a")
    vec = rng.normal(size=(n, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    emb = pa.table({"meme_id": ids, "vector": pa.array(list(vec), type=pa.list_(pa.float32()))})
    con.register("_e", emb)
    con.execute("INSERT INTO embedding_spaces (space, kind, model, dim) VALUES ('t', 'text', 'm', ?)",
                [dim])
    con.execute(f"INSERT INTO embeddings (meme_id, space, model, dim, vector) "
                f"SELECT meme_id, 't', 'm', {dim}, vector FROM _e")
    con.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster, probability) "
                "SELECT 'r', meme_id, (hash(meme_id) % 40)::INTEGER, 1.0 FROM _m")
    con.execute("INSERT INTO cluster_labels (run_id, cluster, label, text_annotator) "
                "SELECT 'r', c, 'label ' || c, 'vlm@1' FROM range(40) t(c)")


QUERIES = {
    "cluster_members": "SELECT cluster, count(*), any_value(description) FROM cluster_members "
                       "GROUP BY 1",
    "entity_roles": "SELECT role, name, count(*) FROM entity_roles GROUP BY ALL",
    "vectors": "SELECT avg(list_sum(vector)) FROM embeddings",
}


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memes", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--keep", type=Path, default=None,
                    help="Write the stores into this (new) folder and keep them.")
    args = ap.parse_args()
    out: dict = {"memes": args.memes, "dim": args.dim, "duckdb": duckdb.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or Path(tmp)
        d.mkdir(exist_ok=True)
        for label, cfg in (("2.0 format (latest)", {}),
                           ("v1.1.0 (memeatlas default)", {"storage_compatibility_version":
                                                           "v1.1.0"})):
            p = d / f"{'latest' if not cfg else 'v110'}.duckdb"
            con = duckdb.connect(str(p), config=cfg)
            migrate.apply(con)
            t0 = time.perf_counter()
            fill(con, args.memes, args.dim)
            con.close()
            row = {"write_s": round(time.perf_counter() - t0, 2),
                   "size_mb": round(p.stat().st_size / 2**20, 1)}
            con = duckdb.connect(str(p), read_only=True)
            for k, q in QUERIES.items():
                row[f"{k}_s"] = round(timed(lambda q=q, con=con: con.execute(q).fetchall()), 3)
            con.close()
            out[label] = row
        out["bytes per table (v1.1.0 / latest), MB"] = _table_sizes(d)
        src = d / "latest.duckdb"
        with Store.open(src):
            pass  # records the format, like a user's first command after upgrading
        c = convert_storage(src, "v1.1.0")
        out["convert latest -> v1.1.0"] = {"seconds": c["seconds"],
                                           "rows_checked": c["rows_checked"],
                                           "size_mb": round(src.stat().st_size / 2**20, 1)}
        with Store.open(d / "v110.duckdb") as s:
            t = timed(lambda: where_ids(s, "m.meta ->> 'theme' = 't3' AND m.width > 500"))
            out["where_ids_s"] = round(t, 3)
        t = timed(lambda: _sql(d / "v110.duckdb"))
        out["sql_open_and_query_s"] = round(t, 3)
    print(json.dumps(out, indent=2))


def _table_sizes(d: Path) -> dict[str, str]:
    """Storage per table (segments x block size share), to see where two formats differ."""
    sizes = {}
    for name in ("v110", "latest"):
        con = duckdb.connect(str(d / f"{name}.duckdb"), read_only=True)
        for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            n = con.execute(f"SELECT count(DISTINCT block_id) FROM pragma_storage_info('{t}') "
                            f"WHERE persistent").fetchone()[0]
            sizes.setdefault(t, []).append(round(n * 256 / 1024, 1))  # 256 KiB blocks
        con.close()
    return {t: f"{v[0]} / {v[1]}" for t, v in sizes.items() if max(v) > 0.5}


def _sql(path: Path) -> None:
    with Store.open(path, sandbox=True) as s:
        run_readonly(s, "SELECT count(*) FROM memes")


if __name__ == "__main__":
    main()
