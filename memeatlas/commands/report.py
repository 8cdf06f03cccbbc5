"""`memeatlas report`: the HTML report of a cluster run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.commands.common import DbOption, echo_summary, open_store


def register(app: typer.Typer) -> None:
    """Add `report` to the root app."""

    @app.command("report")
    def report_cmd(
        run: Annotated[str | None, typer.Option(
            "--run", help="Cluster run to report [default: the newest run].")] = None,
        compare: Annotated[str | None, typer.Option(
            "--compare", help="A second run over the same memes: colour the map by it and show "
                              "ARI/NMI and which of its clusters each cluster maps to.")] = None,
        out: Annotated[Path, typer.Option(
            "-o", "--out", help="HTML file to write.")] = Path("report.html"),
        thumb_px: Annotated[int, typer.Option(
            "--thumb-px", min=32, max=512, help="Longest side of the embedded thumbnails, in pixels.")] = 160,
        per_cluster: Annotated[int, typer.Option(
            "--thumbs-per-cluster", min=0, help="Thumbnails shown per cluster (representatives first).")] = 24,
        max_thumbs: Annotated[int, typer.Option(
            "--max-thumbs", min=0, help="Cap on thumbnails in the whole report (keeps its size "
                                        "reasonable for large corpora).")] = 2500,
        min_thumbs: Annotated[int, typer.Option(
            "--min-thumbs-per-cluster", min=0, help="Thumbnails every cluster gets even when that "
                                                    "exceeds --max-thumbs (a run of many "
                                                    "clusters still shows each one).")] = 3,
        map_points: Annotated[str, typer.Option(
            "--map-points", help="Most memes drawn on the map and held per meme in the page (~190 bytes each); "
                                 "above it a stratified sample by cluster (sizes and statistics "
                                 "still cover all memes). 0 or 'all': no sampling.")] = "50000",
        neighbours: Annotated[int, typer.Option(
            "--neighbours", min=0, max=50, help="Nearest memes (in the run's space) shown for "
                                                "each meme; 0 leaves them out.")] = 5,
        noise: Annotated[str, typer.Option(
            "--noise", help="assigned: memes assigned from noise (membership at least the "
                            "run's --assign-floor) shown in their cluster, apart from its core "
                            "members; apart: shown as noise.")] = "assigned",
        ids: Annotated[Path | None, typer.Option(
            "--ids", help="Open the page with these memes selected (a file with a meme_id "
                          "column, e.g. from `search -f ids` or `export --ids`).")] = None,
        db: DbOption = None,
    ) -> None:
        """Write one self-contained HTML report (map, clusters, galleries, evaluations) of a run.

        The file opens from disk in any browser, with no server and no network.
        """
        from memeatlas.report import build
        from memeatlas.report.sample import parse_map_points

        n_points = parse_map_points(map_points)
        preselect = None
        if ids is not None:
            from memeatlas.store.members import read_ids

            preselect = read_ids(ids)

        with open_store(db, read_only=True) as store:
            summary = build(store, run, out, compare=compare, thumb_px=thumb_px,
                            thumbs_per_cluster=per_cluster, max_thumbs=max_thumbs,
                            min_thumbs_per_cluster=min_thumbs, neighbours=neighbours,
                            noise=noise, map_points=n_points, preselect=preselect)
        echo_summary("report", summary.as_dict())
