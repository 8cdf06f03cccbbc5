"""`memeatlas report`: one self-contained HTML file for a cluster run.

The page opens from disk with no server and no network: the map, plots and
galleries are drawn by a small inline script from JSON embedded in the page, and
thumbnails are `data:` URIs. See `memeatlas.report.html` for the escaping rules.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from memeatlas import __version__, progress
from memeatlas.leftout import counted
from memeatlas.provenance import short_hash, utcnow
from memeatlas.report.collect import MIN_THUMBS_PER_CLUSTER, collect
from memeatlas.report.html import asset, render_page
from memeatlas.report.sample import DEFAULT_MAP_POINTS
from memeatlas.report.thumbnails import DEFAULT_THUMB_PX, data_uris
from memeatlas.store import Store

REPORT_FORMAT = "3"  # bump when the page layout changes, so existing reports are rebuilt
_FP_RE = re.compile(rb'<meta name="memeatlas-fingerprint" content="([0-9a-f]+)">')


@dataclass
class ReportSummary:
    """What `build` did."""

    path: Path
    run_id: str
    n_memes: int
    n_clusters: int
    n_thumbnails: int
    n_evaluations: int
    bytes: int
    seconds: float
    skipped: bool = False  # the file already held this exact report
    map_points: int | None = None  # memes in the page's map sample (None: every meme)
    coverage: dict | None = None  # memes of the store in the run, and why the rest are absent

    def as_dict(self) -> dict:
        absent = (self.coverage or {}).get("absent") or {}
        return {"report": str(self.path), "run": self.run_id, "memes": self.n_memes,
                **({"memes in store": self.coverage["in_store"],
                    "left out": counted(absent)} if absent else {}),
                **({"map points": f"{self.map_points:,} of {self.n_memes:,} (stratified sample)"}
                   if self.map_points is not None else {}),
                "clusters": self.n_clusters, "thumbnails": self.n_thumbnails,
                "evaluations": self.n_evaluations, "size": f"{self.bytes / 1e6:.2f} MB",
                "seconds": round(self.seconds, 2), "skipped": self.skipped}


def existing_fingerprint(path: Path) -> str | None:
    """The fingerprint stamped into a report file by `build`, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    m = _FP_RE.search(head)
    return m.group(1).decode() if m else None


def build(store: Store, run_id: str | None, out_path: str | Path, compare: str | None = None, *,
          thumb_px: int = DEFAULT_THUMB_PX, thumbs_per_cluster: int = 24, max_thumbs: int = 2500,
          quality: int = 70, force: bool = True, neighbours: int = 5,
          noise: str = "assigned", map_points: int = DEFAULT_MAP_POINTS,
          min_thumbs_per_cluster: int = MIN_THUMBS_PER_CLUSTER,
          preselect: list[str] | None = None) -> ReportSummary:
    """Write the HTML report of cluster run `run_id` (None: the newest run) to `out_path`.

    `compare` names a second run over the same memes: the map can be coloured by it and the
    page shows ARI/NMI and which of its clusters each cluster maps to. Thumbnails are at most
    `thumb_px` pixels on a side, `thumbs_per_cluster` per cluster and `max_thumbs` in all.
    With `force=False` an existing file holding the same content (same fingerprint) is kept.
    `neighbours` nearest memes per meme (in the run's space) are embedded for the meme panel
    (0: none).
    `noise`: 'assigned' (default) shows memes assigned from noise (the run's membership,
    `cluster_membership`) in their cluster, apart from its core members; 'apart' shows them as
    noise. The header gives HDBSCAN's noise share and the assigned share separately.
    Above `map_points` memes (0: no limit) the map and the per-meme views hold a deterministic
    stratified sample by cluster; sizes, counts and statistics still cover every meme. Each
    cluster gets at least `min_thumbs_per_cluster` thumbnails, even past `max_thumbs`.
    `preselect`: meme ids the page opens with as its selection (`report --ids`).
    """
    t0 = time.perf_counter()
    out = Path(out_path)
    data = collect(store, run_id, compare=compare, thumbs_per_cluster=thumbs_per_cluster,
                   max_thumbs=max_thumbs, min_thumbs_per_cluster=min_thumbs_per_cluster,
                   neighbours=neighbours, noise=noise, map_points=map_points)
    payload = data.payload
    # The search box (memeatlas.search.page; its own asset): the page's lexical index.
    from memeatlas.search.page import page_index

    payload["search"] = page_index(store, payload["memes"]["id"], payload["run"].get("space"))
    if preselect:
        pos = {m: i for i, m in enumerate(payload["memes"]["id"])}
        payload["preselect"] = [pos[m] for m in preselect if m in pos]
    css, js, body = asset("report.css"), asset("report.js"), asset("report_body.html")
    # near-duplicates and templates (memeatlas.images): separate assets, appended
    css, js = css + "\n" + asset("report_images.css"), js + "\n" + asset("report_images.js")
    js += "\n" + asset("report_search.js")
    fingerprint = short_hash({"format": REPORT_FORMAT, "version": __version__,
                              "assets": short_hash(css + js + body),
                              "payload": payload, "thumb_px": thumb_px, "quality": quality,
                              "thumbs": sorted(data.thumb_paths)}, n=32)
    n_clusters = sum(1 for c in payload["clusters"] if c["cluster"] != -1)
    sample = payload.get("sample")
    n_memes = sample["total"] if sample else len(payload["memes"]["id"])
    map_shown = sample["shown"] if sample else None
    if not force and out.exists() and existing_fingerprint(out) == fingerprint:
        return ReportSummary(out, data.run_id, n_memes, n_clusters,
                             len(data.thumb_paths), len(payload["evaluations"]),
                             out.stat().st_size, time.perf_counter() - t0, skipped=True,
                             coverage=payload.get("coverage"), map_points=map_shown)

    thumbs = data_uris(((str(i), p) for i, p in data.thumb_paths.items()), thumb_px,
                       quality=quality, desc="report thumbnails")
    payload["thumbs"] = {k: v for k, v in thumbs.items() if v}
    payload["generated"] = {"at": utcnow().isoformat(sep=" ", timespec="seconds"),
                            "memeatlas": __version__, "db": str(store.path),
                            "thumb_px": thumb_px, "compare": compare}
    html = render_page(
        title=f"memeatlas report · {data.run_id}",
        css=css, js=js, data=payload, body=body,
        meta={"memeatlas-fingerprint": fingerprint, "memeatlas-run": data.run_id},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)  # never leave a half-written report behind
    summary = ReportSummary(out, data.run_id, n_memes, n_clusters,
                            len(payload["thumbs"]), len(payload["evaluations"]),
                            out.stat().st_size, time.perf_counter() - t0,
                            coverage=payload.get("coverage"), map_points=map_shown)
    progress.info(f"report: wrote {out} ({summary.bytes / 1e6:.2f} MB)")
    return summary
