"""Which DuckDB clients open a memeatlas store written in each storage format.

    python benchmarks/store_readers.py --clients 1.0.0,1.1.3,1.2.2,1.3.2,1.4.5,1.5.6

Writes one filled store per `storage_compatibility_version` (every table and view of the
schema, plus the pre-0006 `entity_roles` with WITH ORDINALITY), installs each client's wheel
into ~/.cache/memeatlas/duckdb-clients/duckdb-<version> (pip --target, once), and opens every
file with every client in a subprocess, running the README's view queries.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

from memeatlas.store import migrate

FORMATS = ["latest", "v1.5.0", "v1.4.0", "v1.1.0"]
OLD_VIEW = """CREATE OR REPLACE VIEW entity_roles AS
SELECT a.meme_id, a.annotator, a.prompt_hash, a.schema_hash, t.idx AS entity_index,
       t.e.name AS name, t.e.role AS role, t.e.stands_for AS stands_for
FROM annotations a,
     unnest(from_json(a.entities, '[{"name":"VARCHAR","role":"VARCHAR","stands_for":"VARCHAR"}]'))
        WITH ORDINALITY AS t(e, idx)"""

READ = """
import json, sys, duckdb
out = {}
for p in sys.argv[1:]:
    try:
        c = duckdb.connect(p, read_only=True)
        c.execute("SELECT count(*) FROM cluster_members").fetchall()
        c.execute("SELECT name, role, entity_index FROM entity_roles").fetchall()
        c.execute("SELECT meme_id FROM latest_annotations").fetchall()
        c.execute("SELECT vector, meta->>'k' FROM embeddings, memes").fetchall()
        c.close()
        out[p] = "yes"
    except Exception as e:
        out[p] = "no: " + str(e).splitlines()[0][:90]
print(json.dumps(out))
"""


def build(path: Path, version: str, old_view: bool) -> None:
    con = duckdb.connect(str(path), config={"storage_compatibility_version": version})
    migrate.apply(con)
    if old_view:
        con.execute(OLD_VIEW)
    con.execute("INSERT INTO memes (meme_id, source, has_image, meta) "
                "VALUES ('a', 'folder', true, '{\"k\": 1}')")
    con.execute("INSERT INTO annotations (meme_id, annotator, prompt_hash, schema_hash, entities) "
                "VALUES ('a', 'x', '', '', '[{\"name\": \"n\", \"role\": \"hero\"}]')")
    con.execute("INSERT INTO embeddings (meme_id, space, model, dim, vector) "
                "VALUES ('a', 's', 'm', 2, [0.5, 0.25]::FLOAT[])")
    con.execute("INSERT INTO cluster_assignments (run_id, meme_id, cluster) VALUES ('r', 'a', 0)")
    con.execute("INSERT INTO cluster_labels (run_id, cluster, text_annotator) VALUES ('r', 0, 'x')")
    con.close()


def client(version: str) -> Path:
    target = Path.home() / ".cache" / "memeatlas" / "duckdb-clients" / f"duckdb-{version}"
    if not (target / "duckdb").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(target), f"duckdb=={version}"], check=True)
    return target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="1.0.0,1.1.3,1.2.2,1.3.2,1.4.5,1.5.6")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        files = {}
        for v in FORMATS:
            for old in ((False, True) if v == "v1.1.0" else (False,)):
                label = v + (" + WITH ORDINALITY entity_roles" if old else "")
                p = Path(d) / f"{v}{'-old' if old else ''}.duckdb"
                build(p, v, old)
                files[label] = str(p)
        clients = args.clients.split(",")
        table = {label: {} for label in files}
        for c in clients:
            r = subprocess.run([sys.executable, "-c", READ, *files.values()], text=True,
                               capture_output=True, env={"PYTHONPATH": str(client(c))})
            res = json.loads(r.stdout)
            for label, p in files.items():
                table[label][c] = res[p]
        print("| file written with | " + " | ".join(clients) + " |")
        print("|---" * (len(clients) + 1) + "|")
        for label, row in table.items():
            print(f"| {label} | " + " | ".join(row[c][:3].strip(":") for c in clients) + " |")
        for label, row in table.items():
            for c in clients:
                if row[c] != "yes":
                    print(f"  {label} in {c}: {row[c]}")


if __name__ == "__main__":
    main()
