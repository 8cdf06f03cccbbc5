"""What a report tells about noise and membership, checked against the store (issue 22).

    memeatlas import-annotations memes-trainval.reconstructed.jsonl --format memecap --db M.duckdb
    memeatlas embed text --db M.duckdb
    memeatlas cluster --space text:description+intent --db M.duckdb
    memeatlas label --db M.duckdb && memeatlas report --db M.duckdb -o M.html
    python benchmarks/membership.py --db M.duckdb --report M.html

Prints the stored noise share beside what the page's header says, the clusters that grow most
from memes assigned out of noise, how many noise memes have a best soft membership below 0.1
(and how many of those the page still shows in a cluster), and, for every cluster panel, whether
its count equals the rows its SQL hint returns. Reports made before issue 22 (no
`members_sql` in the page) are checked against the hint their panels printed then
(`cluster_members … AND cluster = C`).
"""

from __future__ import annotations

import argparse
import json
import re

import duckdb


def page_data(html: str) -> dict:
    text = open(html, encoding="utf-8").read()
    m = re.search(r'<script type="application/json" id="memeatlas-data">(.*?)</script>', text,
                  re.S)
    return json.loads(m.group(1))


def hint(d: dict, run_id: str, c: int) -> str:
    q = d.get("members_sql")
    if q:
        return q["noise"] if c == -1 else q["cluster"].replace("CLUSTER", str(c))
    return f"SELECT * FROM cluster_members WHERE run_id = '{run_id}' AND cluster = {c}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--report", required=True)
    a = ap.parse_args()
    d = page_data(a.report)
    con = duckdb.connect(a.db, read_only=True)
    rid = d["run"]["run_id"]
    n, nf = con.execute("SELECT n_items, noise_fraction FROM cluster_runs WHERE run_id = ?",
                        [rid]).fetchone()
    total = d["sample"]["total"] if d.get("sample") else len(d["memes"]["id"])
    sizes = {c["cluster"]: c["size"] for c in d["clusters"]}
    print(f"run {rid}: {n} memes, stored noise share {100 * nf:.1f} %")
    mb = d.get("membership")
    if mb:
        print(f"header: HDBSCAN noise {100 * mb['hdbscan_noise'] / total:.1f} %, assigned from "
              f"noise {100 * mb['assigned'] / total:.1f} % (floor {mb['assign_floor']}), shown "
              f"as noise {100 * mb['noise'] / total:.1f} %")
    else:
        print(f"header: noise {100 * sizes.get(-1, 0) / total:.1f} %")
    hard = dict(con.execute("SELECT cluster, count(*) FROM cluster_assignments WHERE run_id = ? "
                            "GROUP BY 1", [rid]).fetchall())
    growth = sorted(((sizes[c] - hard.get(c, 0), c) for c in sizes if c >= 0), reverse=True)[:3]
    print("largest growth from assignment: " + ", ".join(
        f"cluster {c} {hard.get(c, 0)} -> {sizes[c]} (+{g})" for g, c in growth))
    low, n_noise = con.execute("SELECT count(*) FILTER (WHERE soft_probability < 0.1), count(*) "
                               "FROM cluster_assignments WHERE run_id = ? AND cluster < 0",
                               [rid]).fetchone()
    low_ids = {r[0] for r in con.execute(
        "SELECT meme_id FROM cluster_assignments WHERE run_id = ? AND cluster < 0 AND "
        "soft_probability < 0.1", [rid]).fetchall()}
    shown = sum(1 for m, c in zip(d["memes"]["id"], d["memes"]["cluster"], strict=True)
                if c >= 0 and m in low_ids)
    print(f"noise memes with best membership < 0.1: {low} of {n_noise}; shown in a cluster: "
          f"{shown}")
    bad = []
    for c in sorted(sizes, key=lambda c: (c == -1, -sizes[c])):
        got = len(con.execute(hint(d, rid, c)).fetchall())
        if got != sizes[c]:
            bad.append(f"{c}: panel {sizes[c]}, SQL {got}")
    print(f"panels whose count differs from their SQL hint: {len(bad)} of {len(sizes)}"
          + (f" (e.g. {'; '.join(bad[:3])})" if bad else ""))


if __name__ == "__main__":
    main()
