"""Selections of memes that travel between commands: read an ids file, write members.

`memeatlas search -f ids`, the report's selection download and `export --run R --cluster C`
/ `export --ids FILE` all speak one format: a table with a `meme_id` column (CSV with a
header, JSONL, or Parquet), optionally `source_id` and `label`, which `classify
import-labels`, `curate move --memes-file` and `report --ids` read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from memeatlas.errors import InputError, NotFoundError

ID_COLUMNS = ("meme_id", "id")


def read_ids(path: str | Path) -> list[str]:
    """meme_ids from a CSV (header row), JSONL or Parquet file with a meme_id (or id) column,
    in file order, duplicates dropped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise InputError(f"{path}: not a Parquet file ({exc})") from None
        col = next((c for c in ID_COLUMNS if c in t.column_names), None)
        if col is None:
            raise InputError(f"{path}: needs a meme_id column (found {', '.join(t.column_names)})")
        values = [str(v) for v in t.column(col).to_pylist() if v is not None]
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; give CSV, JSONL or Parquet") from None
        if suffix in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
            values = []
            for ln, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{ln}: not a JSON object ({exc.msg})") from None
                col = next((c for c in ID_COLUMNS if isinstance(obj, dict) and c in obj), None)
                if col is None:
                    raise InputError(f"{path}:{ln}: no meme_id field")
                values.append(str(obj[col]))
        else:
            reader = csv.DictReader(text.splitlines())
            names = [n.strip().lower() for n in reader.fieldnames or []]
            col = next((c for c in ID_COLUMNS if c in names), None)
            if col is None:
                raise InputError(f"{path}: needs a meme_id column (found "
                                 f"{', '.join(names) or 'no header'})")
            key = (reader.fieldnames or [])[names.index(col)]
            values = [(row.get(key) or "").strip() for row in reader]
    ids = list(dict.fromkeys(v.strip() for v in values if v and v.strip()))
    if not ids:
        raise InputError(f"{path}: no meme ids")
    return ids


FORMATS = ("csv", "parquet", "jsonl")


def export_members(store, out: str | Path, fmt: str, *, run: str | None = None,
                   cluster: int | None = None, ids: list[str] | None = None,
                   label: str | None = None) -> int:
    """Write the members of a selection (a run's cluster, and/or a list of ids) as CSV,
    Parquet or JSONL: meme_id, source_id, path, label (the given `label`, else the
    cluster's label, else `cluster C`), and with a run: run_id, cluster, probability.
    Returns the row count; unknown ids or an empty selection are errors and write nothing."""
    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; use one of {', '.join(FORMATS)}")
    if run is None and ids is None:
        raise InputError("give --run R --cluster C and/or --ids FILE")
    if cluster is not None and run is None:
        raise InputError("--cluster needs --run")
    out = Path(out)
    if out.is_dir() or not out.parent.exists():
        raise InputError(f"cannot write {out}: give a file in an existing folder")
    params: dict = {"label": label}
    where = ["true"]
    if run is not None:
        if not store.scalar("SELECT count(*) FROM cluster_runs WHERE run_id = ?", [run]):
            raise NotFoundError(f"no cluster run {run!r}")
        params["run"] = run
        if cluster is not None:
            clusters = [r[0] for r in store.fetchall(
                "SELECT DISTINCT cluster FROM cluster_assignments WHERE run_id = ? ORDER BY 1",
                [run])]
            if cluster not in clusters:
                raise NotFoundError(f"run {run} has no cluster {cluster}; clusters: "
                                    f"{', '.join(map(str, clusters[:30]))}")
            params["cluster"] = cluster
            where.append("a.cluster = $cluster")
    if ids is not None:
        known = {r[0] for r in store.fetchall(
            "SELECT meme_id FROM memes WHERE meme_id IN (SELECT unnest($ids::VARCHAR[]))",
            {"ids": ids})}
        missing = [m for m in ids if m not in known]
        if missing:
            raise NotFoundError(f"{len(missing)} of {len(ids)} ids are not memes of this store "
                                f"(e.g. {', '.join(m[:16] for m in missing[:3])})")
        params["ids"] = ids
        where.append("m.meme_id IN (SELECT unnest($ids::VARCHAR[]))")
    if run is not None:
        sql = ("SELECT m.meme_id, m.source_id, m.path, coalesce($label, l.label, "
               "'cluster ' || a.cluster) AS label, a.run_id, a.cluster, a.probability "
               "FROM cluster_assignments a JOIN memes m USING (meme_id) LEFT JOIN cluster_labels "
               "l ON l.run_id = a.run_id AND l.cluster = a.cluster WHERE a.run_id = $run AND "
               + " AND ".join(where))
    else:
        sql = ("SELECT m.meme_id, m.source_id, m.path, $label::VARCHAR AS label FROM memes m "
               "WHERE " + " AND ".join(where))
        if label is None:
            sql = sql.replace(", $label::VARCHAR AS label", "")
            params.pop("label")
    cur = store.con.cursor()
    try:
        table = cur.sql(sql + " ORDER BY m.meme_id", params=params).to_arrow_table()
    finally:
        cur.close()
    if table.num_rows == 0:
        raise NotFoundError("the selection is empty; nothing written")
    if ids is not None:  # keep the file's order (a search's ranking)
        import pyarrow as pa

        order = {m: i for i, m in enumerate(ids)}
        table = table.take(pa.array(sorted(range(table.num_rows), key=lambda i: order[
            table.column("meme_id")[i].as_py()])))
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, tmp)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, tmp)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in table.to_pylist():
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    tmp.replace(out)
    return table.num_rows
