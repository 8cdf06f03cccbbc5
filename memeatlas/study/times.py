"""Meme timestamps, taken only from a metadata key the user names — never guessed.

Manifest columns (`ingest --manifest`) and unmapped import fields (`import-annotations`) are kept
in `memes.meta`; `set_timestamps` parses one named key of it into `meme_times`. Values are read
as ISO 8601 (`2024-03-01`, `2024-03-01T12:30:00Z`, offsets converted to UTC; a value without an
offset is taken as UTC), as Unix seconds/milliseconds (`epoch`, `epoch_ms`), or with a strptime
pattern. A value that does not parse is a counted warning recorded in `ingest_errors`
(`bad_timestamp`, naming the meme's file), or with `strict` a one-line error with nothing written.
Memes without the key keep no timestamp; `trends` counts them as untimed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from memeatlas.errors import InputError
from memeatlas.provenance import utcnow

FORMATS = ("iso", "epoch", "epoch_ms")
# Plausible posting times; anything outside is almost surely a unit mix-up (ms read as s).
MIN_YEAR, MAX_YEAR = 1970, 2100


@dataclass
class TimeSummary:
    """What `set_timestamps` did."""

    key: str
    time_format: str
    n_memes: int = 0          # memes considered
    n_set: int = 0            # got a timestamp
    n_missing: int = 0        # had no value under the key (stay untimed)
    n_bad: int = 0            # had a value that did not parse (recorded in ingest_errors)
    n_unchanged: int = 0      # of n_set: already held exactly this timestamp
    replaced: dict[str, int] = field(default_factory=dict)  # old source → timestamps replaced
    replaced_examples: list[tuple[str, str, str]] = field(default_factory=list)  # where, old, new
    sources: dict[str, int] = field(default_factory=dict)   # meme_times afterwards, per source
    examples: list[tuple[str, str, str]] = field(default_factory=list)  # (where, value, why)
    seconds: float = 0.0


def parse_timestamp(value: object, time_format: str = "iso") -> datetime:
    """One value → naive UTC datetime, or ValueError saying why."""
    if value is None:
        raise ValueError("empty value")
    text = str(value).strip()
    if not text:
        raise ValueError("empty value")
    if time_format in ("epoch", "epoch_ms"):
        try:
            num = float(text)
        except ValueError:
            raise ValueError(f"not a number of {'milli' if time_format == 'epoch_ms' else ''}"
                             f"seconds since 1970") from None
        if time_format == "epoch_ms":
            num /= 1000.0
        try:
            dt = datetime.fromtimestamp(num, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"outside the years {MIN_YEAR}..{MAX_YEAR} (seconds read as "
                             f"milliseconds, or the reverse?)") from None
    elif time_format == "iso":
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("not an ISO 8601 date or date-time (e.g. 2024-03-01 or "
                             "2024-03-01T12:30:00Z); pass --time-format for other forms") from None
    else:
        try:
            dt = datetime.strptime(text, time_format)
        except ValueError:
            raise ValueError(f"does not match --time-format {time_format!r}") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise ValueError(f"year {dt.year} is outside {MIN_YEAR}..{MAX_YEAR} "
                         f"(seconds read as milliseconds, or the reverse?)")
    return dt


def _check_format(time_format: str) -> None:
    if time_format in FORMATS:
        return
    if "%" not in time_format:
        raise InputError(f"unknown --time-format {time_format!r}; use {', '.join(FORMATS)} or a "
                         f"strptime pattern such as '%d/%m/%Y %H:%M'")


def meta_keys(store, limit: int = 20) -> list[str]:
    """The metadata keys present in `memes.meta`, most common first."""
    rows = store.fetchall(
        "SELECT k, count(*) AS n FROM (SELECT unnest(json_keys(meta)) AS k FROM memes "
        "WHERE meta IS NOT NULL) GROUP BY k ORDER BY n DESC, k LIMIT ?", [limit])
    return [r[0] for r in rows]


def _replacements(store, good: list[tuple[str, datetime, str]], wheres: dict[str, str],
                  source: str, time_format: str, summary: TimeSummary) -> None:
    """Count, per old source, the stored timestamps `good` would change (another value, key
    or format); fill `summary.replaced`, its examples and `n_unchanged`."""
    import pyarrow as pa

    tbl = pa.table({"meme_id": [g[0] for g in good], "ts": [g[1] for g in good]})
    with store.registered("_study_times_new", tbl):
        rows = store.fetchall(
            "SELECT t.meme_id, t.ts, t.source, t.time_format, n.ts FROM meme_times t "
            "JOIN _study_times_new n USING (meme_id) ORDER BY t.meme_id")
    for mid, old_ts, old_source, old_format, new_ts in rows:
        if old_ts == new_ts and old_source == source and old_format == time_format:
            summary.n_unchanged += 1
            continue
        summary.replaced[old_source] = summary.replaced.get(old_source, 0) + 1
        if len(summary.replaced_examples) < 5:
            summary.replaced_examples.append(
                (wheres[mid], f"{old_ts:%Y-%m-%d %H:%M:%S} ({old_source}, {old_format})",
                 f"{new_ts:%Y-%m-%d %H:%M:%S} ({source}, {time_format})"))


def set_timestamps(store, key: str, *, time_format: str = "iso", strict: bool = False,
                   meme_ids: list[str] | None = None, force: bool = False) -> TimeSummary:
    """Parse `memes.meta ->> key` into `meme_times` for every meme (or `meme_ids`).

    Re-running with the same key and format sets the same timestamps again (counted as
    unchanged). A meme whose stored timestamp would change (another key, format or value) is
    replaced only with `force`: otherwise InputError naming how many, from which source, and
    examples, with nothing written. With `force` the summary counts what was replaced per old
    source, and `sources` tells whether meme_times now mixes keys (memes without this key keep
    the timestamp they had). Also raises InputError when no meme has the key (a typo, most
    likely) or, with `strict`, on the first value that does not parse.
    """
    import pyarrow as pa

    t0 = time.perf_counter()
    if not key or not key.strip():
        raise InputError("name the metadata key that holds the timestamp, e.g. --from-meta date")
    _check_format(time_format)
    summary = TimeSummary(key, time_format)
    sql = ("SELECT meme_id, coalesce(path, source_id, meme_id), meta ->> ? FROM memes")
    params: list = [key]
    if meme_ids is not None:
        sql += " WHERE meme_id IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(meme_ids))
    rows = store.fetchall(sql + " ORDER BY meme_id", params)
    summary.n_memes = len(rows)
    good: list[tuple[str, datetime, str]] = []
    bad: list[tuple[str, str, str, str]] = []
    for mid, where, raw in rows:
        if raw is None or not str(raw).strip():
            summary.n_missing += 1
            continue
        try:
            good.append((mid, parse_timestamp(raw, time_format), str(raw)))
        except ValueError as exc:
            if strict:
                raise InputError(f"{where}: timestamp {key}={str(raw)[:60]!r} {exc}; nothing "
                                 f"written (fix the value, or drop --strict to skip such "
                                 f"memes with a warning)") from None
            bad.append((mid, where, str(raw), str(exc)))
    if rows and not good and not bad:
        have = ", ".join(meta_keys(store)) or "none"
        raise InputError(f"no meme has a metadata key {key!r}; keys present: {have}")
    summary.n_set, summary.n_bad = len(good), len(bad)
    summary.examples = [(w, r, why) for _, w, r, why in bad[:10]]
    if good:
        wheres = {mid: where for mid, where, _ in rows}
        _replacements(store, good, wheres, f"meta:{key}", time_format, summary)
    if summary.replaced and not force:
        n = sum(summary.replaced.values())
        olds = ", ".join(f"{c} from {src}" for src, c in sorted(summary.replaced.items()))
        where, old, new = summary.replaced_examples[0]
        raise InputError(
            f"{n} meme(s) already have another timestamp ({olds}), e.g. {where}: {old} -> "
            f"{new}; nothing written: pass --force to replace them (`memeatlas timestamps "
            f"--from-meta {key} --force`; trends computed before keep the old times, recompute "
            f"them with `memeatlas trends --force`)")
    now = utcnow()
    with store.transaction():
        if good:
            tbl = pa.table({"meme_id": [g[0] for g in good], "ts": [g[1] for g in good],
                            "raw": [g[2] for g in good]})
            with store.registered("_study_times", tbl):
                store.execute(
                    "INSERT OR REPLACE INTO meme_times (meme_id, ts, source, raw, time_format, "
                    "set_at) SELECT meme_id, ts, ?, raw, ?, ? FROM _study_times",
                    [f"meta:{key}", time_format, now])
        store.execute("DELETE FROM ingest_errors WHERE source = ?", [f"timestamps:{key}"])
        # Own rows (source timestamps:<key>), so a re-run replaces them and no file's
        # ingest problem is touched.
        store.insert_rows("ingest_errors", ("source", "path", "error", "detail"),
                          [(f"timestamps:{key}", where, "bad_timestamp",
                            f"{key}={raw[:80]!r}: {why}") for _, where, raw, why in bad])
    summary.sources = dict(store.fetchall(
        "SELECT source, count(*) FROM meme_times GROUP BY 1 ORDER BY 2 DESC, 1"))
    summary.seconds = time.perf_counter() - t0
    return summary
