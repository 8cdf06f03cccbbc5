"""File size of an embeddings-like table (FLOAT[] vectors, composite primary key) per DuckDB
storage format.

    python benchmarks/store_vectors.py --rows 100000 --dim 384
"""

import argparse
import os
import tempfile

import duckdb
import numpy as np
import pyarrow as pa

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=100000)
ap.add_argument("--dim", type=int, default=384)
ap.add_argument("--versions", default="v1.1.0,v1.4.0,v1.5.0,latest")
args = ap.parse_args()
n, dim = args.rows, args.dim
rng = np.random.default_rng(0)
vec = rng.normal(size=(n, dim)).astype(np.float32)
vec /= np.linalg.norm(vec, axis=1, keepdims=True)
t = pa.table({"meme_id": [f"{i:064x}" for i in range(n)],
              "vector": pa.array(list(vec), type=pa.list_(pa.float32()))})
with tempfile.TemporaryDirectory() as d:
    for v in args.versions.split(","):
        p = os.path.join(d, f"{v}.duckdb")
        con = duckdb.connect(p, config={"storage_compatibility_version": v})
        con.execute("CREATE TABLE e (meme_id VARCHAR, space VARCHAR, vector FLOAT[] NOT NULL, "
                    "PRIMARY KEY (meme_id, space))")
        con.register("t", t)
        con.execute("INSERT INTO e SELECT meme_id, 't', vector FROM t")
        con.close()
        print(f"{v:8s} {os.path.getsize(p) / 2**20:7.1f} MB  (raw float32: "
              f"{n * dim * 4 / 2**20:.1f} MB)")
