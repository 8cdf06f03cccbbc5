"""Pair sampling (random, stratified), stable pair ids, and the rating sheet."""

from __future__ import annotations

import csv
import itertools
import json

import pytest
from helpers_evaluate import add_memes, add_run, planted, rng

from memeatlas.errors import InputError, MismatchError
from memeatlas.evaluate import pair_id, sample_pairs, write_sheet
from memeatlas.evaluate.pairs import _allocate, _labels_for, _pattern_populations


@pytest.fixture
def three_runs(store):
    groups = planted(6, 10)
    m = add_memes(store, len(groups))
    add_run(store, "r1", dict(zip(m, groups, strict=True)))
    add_run(store, "r2", dict(zip(m, rng(1).permutation(groups).tolist(), strict=True)), space="image:clip")
    # r3: many noise points and small clusters.
    add_run(store, "r3", {x: (i // 4 if i % 3 else -1) for i, x in enumerate(m)})
    return m


def _together(store, run):
    return dict(store.fetchall("SELECT meme_id, cluster FROM cluster_assignments WHERE run_id = ?", [run]))


def test_stratified_has_both_strata_for_every_run(store, three_runs):
    s = sample_pairs(store, "r1,r2,r3", n=300, strategy="stratified", seed=0, pair_set="s")
    assert s.n_pairs == 300
    pairs = store.fetchall("SELECT meme_a, meme_b, stratum FROM rating_pairs WHERE pair_set = 's'")
    for k, run in enumerate(["r1", "r2", "r3"]):
        a = _together(store, run)
        tog = [a[x] == a[y] and a[x] != -1 for x, y, _ in pairs]
        assert sum(tog) >= 30 and len(tog) - sum(tog) >= 30, run
        # The stored stratum is the together/apart pattern of each pair.
        for (_x, _y, st), t in zip(pairs, tog, strict=True):
            assert (st[k] == "T") == t
    assert sum(v["sampled"] for v in s.strata.values()) == 300
    # Populations are exact pair counts per pattern.
    assert sum(v["population"] for v in s.strata.values()) == 60 * 59 // 2


def test_random_strategy_is_uniform_and_often_lacks_within_pairs(store, three_runs):
    s = sample_pairs(store, "r1,r2", n=100, strategy="random", seed=3, pair_set="r")
    assert s.strata == {"random": {"population": 1770, "sampled": 100}}
    rows = store.fetchall("SELECT pair_id, meme_a, meme_b, stratum FROM rating_pairs WHERE pair_set = 'r'")
    assert len({r[0] for r in rows}) == 100 and all(r[3] == "random" for r in rows)
    assert all(r[1] != r[2] for r in rows)


def test_seed_reproduces_and_ids_are_stable(store, three_runs):
    sample_pairs(store, "r1,r2", n=80, seed=9, pair_set="a")
    sample_pairs(store, "r1,r2", n=80, seed=9, pair_set="b")
    sample_pairs(store, "r1,r2", n=80, seed=10, pair_set="c")
    get = lambda ps: store.fetchall(  # noqa: E731
        "SELECT pair_id, meme_a, meme_b, stratum, position FROM rating_pairs WHERE pair_set = ? ORDER BY position",
        [ps])
    assert get("a") == get("b")
    assert get("a") != get("c")
    for pid, a, b, *_ in get("a"):
        assert pid == pair_id(a, b) == pair_id(b, a)
        assert pid.startswith("p") and len(pid) == 13


def test_existing_pair_set_needs_force(store, three_runs):
    sample_pairs(store, "r1", n=10, pair_set="x")
    with pytest.raises(MismatchError, match="already exists"):
        sample_pairs(store, "r1", n=10, pair_set="x")
    sample_pairs(store, "r1", n=12, pair_set="x", force=True)
    assert store.scalar("SELECT count(*) FROM rating_pairs WHERE pair_set = 'x'") == 12
    with pytest.raises(InputError, match="strategy"):
        sample_pairs(store, "r1", n=10, pair_set="y", strategy="clever")
    with pytest.raises(InputError, match="only make"):
        sample_pairs(store, "r1", n=10_000, pair_set="z")


def test_allocation_water_fills():
    assert _allocate({"TT": 5, "TA": 100, "AT": 100, "AA": 1000}, 100) == {"TT": 5, "TA": 32, "AT": 32, "AA": 31}
    assert _allocate({"TT": 0, "AA": 10}, 4) == {"TT": 0, "AA": 4}


def test_pattern_populations_by_brute_force():
    g = rng(2)
    a = {i: int(c) for i, c in enumerate(g.integers(-1, 4, 30))}
    b = {i: int(c) for i, c in enumerate(g.integers(-1, 3, 30))}
    memes = list(range(30))
    labs = [_labels_for(a, memes, "apart"), _labels_for(b, memes, "apart")]
    pops = _pattern_populations(labs)
    brute = {"TT": 0, "TA": 0, "AT": 0, "AA": 0}
    for i, j in itertools.combinations(memes, 2):
        ta = a[i] == a[j] and a[i] != -1
        tb = b[i] == b[j] and b[i] != -1
        brute[("T" if ta else "A") + ("T" if tb else "A")] += 1
    assert pops == brute


def test_only_memes_in_every_run_are_sampled(store):
    m = add_memes(store, 20)
    add_run(store, "full", {x: i % 3 for i, x in enumerate(m)})
    add_run(store, "part", {x: i % 2 for i, x in enumerate(m[:15])})
    s = sample_pairs(store, "full,part", n=50, pair_set="p")
    assert s.n_memes == 15 and s.n_memes_not_in_all_runs == 5
    used = {x for r in store.fetchall("SELECT meme_a, meme_b FROM rating_pairs WHERE pair_set='p'") for x in r}
    assert used <= set(m[:15])


def test_sheet_columns_and_order(store, three_runs, tmp_path):
    sample_pairs(store, "r1,r2", n=40, pair_set="s", sheet=tmp_path / "sheet.csv")
    with (tmp_path / "sheet.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["pair_id", "meme_a", "meme_b", "path_a", "path_b", "connotative", "denotative"]
    assert len(rows) == 41
    assert all(r[3].startswith("/data/") and r[5] == r[6] == "" for r in rows[1:])
    # Sheet order follows the stored (shuffled) positions, not strata.
    order = [r[0] for r in store.fetchall("SELECT pair_id FROM rating_pairs WHERE pair_set='s' ORDER BY position")]
    assert [r[0] for r in rows[1:]] == order
    write_sheet(store, "s", tmp_path / "one.csv", ["relatedness"])
    assert (tmp_path / "one.csv").read_text().splitlines()[0].endswith(",path_b,relatedness")
    params = json.loads(store.scalar("SELECT params FROM pair_sets WHERE pair_set = 's'"))
    assert set(params["strata"]) == {"TT", "TA", "AT", "AA"}
