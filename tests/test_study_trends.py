"""Timestamps (named metadata key, never guessed) and `memeatlas trends`."""

from __future__ import annotations

import pytest
from helpers_study import clustered_store, days
from typer.testing import CliRunner

from memeatlas.cli import app
from memeatlas.errors import InputError, NotFoundError
from memeatlas.study.times import parse_timestamp, set_timestamps
from memeatlas.study.trends import newcombe_diff, trends, wilson


def planted(store):
    """Cluster 0 only late, cluster 1 only early, cluster 2 throughout; 2 untimed, 1 bad."""
    late = days("2024-03-01", 20)     # March
    early = days("2024-01-01", 20)    # January
    even = days("2024-01-01", 20, step=4)
    even[0], even[1] = None, None      # two memes without a timestamp
    even[2] = "not a date"             # one bad value
    return clustered_store(store, times={0: late, 1: early, 2: even})


def test_parse_forms():
    assert parse_timestamp("2024-03-01").isoformat() == "2024-03-01T00:00:00"
    assert parse_timestamp("2024-03-01T12:00:00+02:00").isoformat() == "2024-03-01T10:00:00"
    assert parse_timestamp("2024-03-01T12:00:00Z").hour == 12
    assert parse_timestamp("1709251200", "epoch").isoformat() == "2024-03-01T00:00:00"
    assert parse_timestamp("1709251200000", "epoch_ms").isoformat() == "2024-03-01T00:00:00"
    assert parse_timestamp("01/03/2024", "%d/%m/%Y").month == 3
    with pytest.raises(ValueError, match="outside"):
        parse_timestamp("1709251200000", "epoch")   # ms read as s
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_timestamp("March 1st")


def test_intervals():
    lo, hi = wilson(0, 10)
    assert lo == 0 and 0.25 < hi < 0.35
    d, lo, hi = newcombe_diff(5, 50, 25, 50)
    assert d == pytest.approx(0.4) and 0.2 < lo < d < hi < 0.6
    d, lo, hi = newcombe_diff(10, 50, 11, 50)
    assert lo < 0 < hi


def test_timestamps_counted_bad_and_missing(store):
    planted(store)
    s = set_timestamps(store, "date")
    assert (s.n_memes, s.n_set, s.n_missing, s.n_bad) == (60, 57, 2, 1)
    err = store.fetchall("SELECT source, error, detail FROM ingest_errors")
    assert len(err) == 1 and err[0][:2] == ("timestamps:date", "bad_timestamp")
    assert "not a date" in err[0][2]
    assert store.scalar("SELECT count(*) FROM meme_times") == 57
    # re-run replaces, never piles up
    set_timestamps(store, "date")
    assert store.scalar("SELECT count(*) FROM ingest_errors") == 1


def test_strict_and_unknown_key_write_nothing(store):
    planted(store)
    with pytest.raises(InputError, match=r"/tmp/m\d+\.png: timestamp date='not a date'"):
        set_timestamps(store, "date", strict=True)
    with pytest.raises(InputError, match="no meme has a metadata key 'posted'; keys present: n"):
        set_timestamps(store, "posted")
    with pytest.raises(InputError, match="unknown --time-format"):
        set_timestamps(store, "date", time_format="dd-mm")
    assert store.scalar("SELECT count(*) FROM meme_times") == 0


def test_planted_rise_and_fade_flagged(store):
    planted(store)
    set_timestamps(store, "date")
    s = trends(store, "cluster-test", period="week")
    assert s.rising == [0] and s.fading == [1]
    assert (s.n_memes, s.n_timed, s.n_untimed) == (60, 57, 3)   # 2 missing + 1 bad: counted
    # every meme is in the table: timed ones in periods, untimed ones in a NULL-period row
    assert store.scalar("SELECT sum(n) FROM cluster_trends WHERE trend_id = ?", [s.trend_id]) == 60
    assert store.scalar("SELECT n FROM cluster_trends WHERE trend_id = ? AND period_start IS NULL "
                        "AND cluster = 2", [s.trend_id]) == 3
    # shares of each period sum to 1
    sums = store.fetchall("SELECT period_start, sum(share) FROM cluster_trends WHERE trend_id = ? "
                          "AND period_start IS NOT NULL GROUP BY 1", [s.trend_id])
    assert all(v == pytest.approx(1.0) for _, v in sums)
    f = store.fetch_dict("SELECT * FROM cluster_trend_flags WHERE trend_id = ? AND cluster = 0",
                         [s.trend_id])
    assert f["trend"] == "rising" and f["ci_low"] > 0 and f["share_early"] == 0
    assert store.scalar("SELECT trend FROM cluster_trend_flags WHERE trend_id = ? AND cluster = 2",
                        [s.trend_id]) == "steady"
    # same inputs: skipped; --force: a new computation beside it
    assert trends(store, "cluster-test", period="week").skipped
    assert trends(store, "cluster-test", period="week", force=True).trend_id != s.trend_id
    # views
    v = store.fetchall("SELECT DISTINCT trend FROM latest_cluster_trends WHERE cluster = 0 "
                       "AND period = 'week'")
    assert v == [("rising",)]
    assert store.scalar("SELECT count(*) FROM meme_timeline WHERE run_id = 'cluster-test' "
                        "AND ts IS NULL") == 3
    assert store.scalar("SELECT count(DISTINCT month) FROM meme_timeline") == 3  # Jan-Mar


def test_trends_errors(store):
    planted(store)
    with pytest.raises(InputError, match="unknown --by 'year'"):
        trends(store, "cluster-test", period="year")
    with pytest.raises(NotFoundError, match="no cluster run 'nope'"):
        trends(store, "nope")
    s = trends(store, "cluster-test", period="month")   # nothing timed yet
    assert s.n_untimed == 60 and s.note and not s.rising


def test_cli_timestamps_and_trends(store, db_path):
    planted(store)
    store.close()
    r = CliRunner().invoke(app, ["timestamps", "--from-meta", "date", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "bad_timestamp" in r.output or "bad" in r.output
    r = CliRunner().invoke(app, ["trends", "--run", "cluster-test", "--by", "week",
                                 "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "rising" in r.output and "untimed" in r.output
    r = CliRunner().invoke(app, ["trends", "--run", "cluster-test", "--by", "year",
                                 "--db", str(db_path)])
    assert r.exit_code == 1 and r.output.strip().startswith("Error: unknown --by")


def test_ingest_manifest_timestamp_column(tmp_path):
    from helpers_ingest import write_image

    from memeatlas.store import Store

    rows = ["path,posted"]
    for i, when in enumerate(["2024-01-05", "2024-02-10T08:00:00Z", "", "31/12/2023"]):
        write_image(tmp_path / f"m{i}.png", color=(40 * i, 90, 10 * i))
        rows.append(f"m{i}.png,{when}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    db = tmp_path / "c.duckdb"
    r = CliRunner().invoke(app, ["ingest", "--manifest", str(tmp_path / "manifest.csv"),
                                 "--timestamp-column", "posted", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert "timestamps set" in r.output and "31/12/2023" in r.output
    with Store.open(db) as s:
        assert s.scalar("SELECT count(*) FROM memes") == 4          # nothing dropped
        assert s.scalar("SELECT count(*) FROM meme_times") == 2
        assert s.scalar("SELECT count(*) FROM ingest_errors WHERE error = 'bad_timestamp'") == 1


def test_import_timestamp_field(tmp_path):
    from memeatlas.store import Store

    f = tmp_path / "corpus.jsonl"
    f.write_text('{"id": "a", "text": "hello", "ts": 1709251200}\n'
                 '{"id": "b", "text": "world"}\n')
    db = tmp_path / "c.duckdb"
    r = CliRunner().invoke(app, ["import-annotations", str(f), "--format", "jsonl", "--id-field",
                                 "id", "--map", "description=text", "--timestamp-field", "ts",
                                 "--time-format", "epoch", "--db", str(db)])
    assert r.exit_code == 0, r.output
    with Store.open(db) as s:
        assert s.fetchall("SELECT CAST(ts AS VARCHAR), source FROM meme_times") == [
            ("2024-03-01 00:00:00", "meta:ts")]


def test_confidence_level(store):
    planted(store)
    set_timestamps(store, "date")
    a = trends(store, "cluster-test", period="week")
    b = trends(store, "cluster-test", period="week", confidence=0.999)
    assert b.trend_id != a.trend_id          # another level is another computation
    wide = store.fetchone("SELECT ci_low, ci_high FROM cluster_trend_flags WHERE trend_id = ? "
                          "AND cluster = 2", [b.trend_id])
    narrow = store.fetchone("SELECT ci_low, ci_high FROM cluster_trend_flags WHERE trend_id = ? "
                            "AND cluster = 2", [a.trend_id])
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    with pytest.raises(InputError, match="--confidence must be"):
        trends(store, "cluster-test", confidence=1.5)


def test_ingest_misspelled_timestamp_column_keeps_ingest(tmp_path):
    from helpers_ingest import write_image

    from memeatlas.store import Store

    write_image(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("path,posted\na.png,2024-01-01\n")
    db = tmp_path / "c.duckdb"
    r = CliRunner().invoke(app, ["ingest", "--manifest", str(tmp_path / "m.csv"),
                                 "--timestamp-column", "postd", "--db", str(db)])
    assert r.exit_code == 1
    assert "added" in r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: no meme has a metadata key 'postd'")
    with Store.open(db) as s:
        assert s.scalar("SELECT count(*) FROM memes") == 1
    r = CliRunner().invoke(app, ["ingest", str(tmp_path), "--timestamp-column", "posted",
                                 "--db", str(db)])
    assert r.exit_code == 1 and "give --manifest FILE too" in r.output
