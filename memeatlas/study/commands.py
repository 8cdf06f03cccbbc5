"""CLI: `memeatlas timestamps`, `trends`, `curate …`, `hierarchy` (thin wrappers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from memeatlas.cli_common import DbOption, ForceOption, echo_err, echo_summary, open_store

TimeFormatOption = Annotated[str, typer.Option(
    "--time-format", help="How the values are written: iso (ISO 8601; no offset = UTC), epoch "
                          "(Unix seconds), epoch_ms, or a strptime pattern like '%d/%m/%Y'.")]


def echo_time_summary(s) -> None:
    """The summary block of a timestamp parse (shared with ingest/import-annotations)."""
    fields = {"memes": s.n_memes, "timestamps set": s.n_set,
              "no value (untimed)": s.n_missing, "bad values (skipped)": s.n_bad}
    echo_summary(f"timestamps from meta key {s.key!r} ({s.time_format})", fields)
    for where, raw, why in s.examples[:5]:
        echo_err(f"  {where}: {raw[:60]!r}: {why}")
    if s.n_bad:
        echo_err("  all of them: memeatlas sql \"SELECT path, detail FROM ingest_errors WHERE "
                 "error = 'bad_timestamp'\"")


def timestamps_cmd(
    from_meta: Annotated[str, typer.Option(
        "--from-meta", help="Metadata key holding each meme's time (a manifest column or an "
                            "import field kept in memes.meta).")],
    time_format: TimeFormatOption = "iso",
    strict: Annotated[bool, typer.Option(
        "--strict", help="Stop at the first value that does not parse (nothing written) "
                         "instead of skipping it with a counted warning.")] = False,
    db: DbOption = None,
) -> None:
    """Set meme timestamps from a metadata key you name (never guessed)."""
    from memeatlas.study.times import set_timestamps

    with open_store(db) as store:
        s = set_timestamps(store, from_meta, time_format=time_format, strict=strict)
    echo_time_summary(s)


def trends_cmd(
    run: Annotated[str | None, typer.Option(
        "--run", help="Cluster run [default: the newest].")] = None,
    by: Annotated[str, typer.Option("--by", help="Period: day, week (ISO, from Monday) or "
                                                 "month.")] = "week",
    window: Annotated[int | None, typer.Option(
        "--window", help="Compare the first N with the last N periods [default: the first "
                         "and the last half].")] = None,
    force: ForceOption = False,
    db: DbOption = None,
) -> None:
    """Counts and shares per cluster per period; flags rising and fading clusters."""
    from memeatlas.cluster.api import latest_run
    from memeatlas.errors import NotFoundError
    from memeatlas.study.trends import trends

    with open_store(db) as store:
        run_id = run or latest_run(store, kind=None)
        if run_id is None:
            raise NotFoundError("no cluster run; run `memeatlas cluster` first")
        s = trends(store, run_id, period=by, window=window, force=force)
        labels = dict(store.fetchall("SELECT cluster, label FROM cluster_labels WHERE run_id = ?",
                                     [run_id]))
        flags = store.fetchall(
            "SELECT cluster, trend, delta, ci_low, ci_high FROM cluster_trend_flags WHERE "
            "trend_id = ? AND trend <> 'steady' AND cluster >= 0 ORDER BY delta DESC",
            [s.trend_id])
    echo_summary(f"trends of {s.run_id} by {s.period}", {
        "memes": s.n_memes, "timed": s.n_timed, "untimed (counted apart)": s.n_untimed,
        "periods": s.n_periods, "from": s.first or "-", "to": s.last or "-",
        "rising": len(s.rising), "fading": len(s.fading),
        **({"skipped": "already computed (--force to redo)"} if s.skipped else {}),
        **({"note": s.note} if s.note else {})})
    for c, trend, d, lo, hi in flags:
        echo_err(f"  {trend:<7} cluster {c:>4}  Δshare {d:+.3f} [{lo:+.3f}, {hi:+.3f}]  "
                 f"{labels.get(c) or ''}")
    typer.echo(s.trend_id)


def register(app: typer.Typer) -> None:
    """Add `timestamps`, `trends`, `curate` and `hierarchy` to the root app."""
    app.command("timestamps")(timestamps_cmd)
    app.command("trends")(trends_cmd)
