"""Hostile parameters and labels files (issue 23, items 4, 7, 8, 17 and their classes): every
head parameter and numeric option out of range, NaN or infinite; labels, ratings and gallery
inputs that are no such thing; control characters in class labels; misleading messages.
Each failing command must end in one `Error:` line naming what was wrong, with the store
byte-identical."""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import pytest
import typer.main
from helpers_classify import planted_store, write_labels_csv
from typer.testing import CliRunner

from memeatlas.classify.heads import HEADS, head_class, make_head
from memeatlas.cli import app
from memeatlas.errors import InputError
from memeatlas.ranges import Range
from memeatlas.store import Store


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(r, *needles: str) -> str:
    assert r.exit_code == 1, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and "Traceback" not in r.output, r.output
    assert r.output.count("Error:") == 1, r.output
    for n in needles:
        assert n in last, (n, r.output)
    assert not any(ch in r.output for ch in "\x00\x07\x1b"), r.output  # never raw controls
    return last


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A store with planted spaces 'good'/'noise' and task 'kind' labelled (60 memes)."""
    tmp = tmp_path_factory.mktemp("hostile-params")
    db = tmp / "p.duckdb"
    with Store.open(db) as s:
        _, y = planted_store(s, n=60, n_classes=3)
    names = np.array(["alpha", "beta", "gamma"])
    write_labels_csv(tmp / "coded.csv", [(f"s{i}", "ana", names[y[i]]) for i in range(60)])
    r = CliRunner().invoke(app, ["classify", "import-labels", str(tmp / "coded.csv"), "--task",
                                 "kind", "--db", str(db)])
    assert r.exit_code == 0, r.output
    return db


def _cli(db, *args):
    return CliRunner().invoke(app, [*args, "--db", str(db)])


# ---- items 4, 7: head parameters, one validation path ----------------------------------------

@pytest.mark.parametrize("param,needle", [
    ("k=-1", "knn parameter k must be an integer from 1 to 10,000"),
    ("k=0", "knn parameter k must be an integer from 1"),
    ("temperature=-1", "knn parameter temperature must be 'auto' or a number in (0, 100]"),
    ("temperature=nan", "knn parameter temperature"),
    ("top_k=2.5", "knn parameter top_k"),
    ("weighting=loud", "knn parameter weighting must be one of dynamic, top, equal"),
])
def test_cli_knn_parameters_out_of_range(coded, param, needle):
    before = _sha(coded)
    r = _cli(coded, "classify", "train", "--task", "kind", "--space", "good", "--param", param)
    _one_line_error(r, needle, f"got '{param.split('=')[1]}'")
    assert _sha(coded) == before


@pytest.mark.parametrize("head,param,needle", [
    ("linear", "C=abc", "linear parameter C must be a number in (0, 1,000,000], got 'abc'"),
    ("linear", "C=-1", "linear parameter C"),
    ("mlp", "epochs=1e9", "mlp parameter epochs must be an integer from 1 to 10,000"),
    ("mlp", "epochs=1000000000", "mlp parameter epochs"),
    ("mlp", "device=gpu", "mlp parameter device must be auto, cpu, mps, cuda or cuda:N"),
    ("adapter", "ratio=2", "adapter parameter ratio must be a number from 0 to 1"),
    ("adapter", "init=zeros", "adapter parameter init must be one of names, random"),
])
def test_cli_other_head_parameters_out_of_range(coded, head, param, needle):
    before = _sha(coded)
    r = _cli(coded, "classify", "train", "--task", "kind", "--space", "good", "--head", head,
             "--param", param)
    _one_line_error(r, needle)
    assert _sha(coded) == before


def _bad_values(rng: Range) -> list:
    out: list = ["nan", "inf", "-inf", float("nan"), float("inf"), "abc", "", True]
    if rng.lo is not None:
        out += [rng.lo - 1, str(rng.lo - 1)] + ([rng.lo, str(rng.lo)] if rng.lo_open else [])
    if rng.hi is not None:
        out += [rng.hi * 2 + 1] + ([rng.hi] if rng.hi_open else [])
    if rng.integer:
        out += ["1e9", "2.5", 2.5]
    if not rng.none_ok:
        out += ["none"]
    return out


@pytest.mark.parametrize("head", list(HEADS))
def test_every_head_parameter_is_range_checked(head):
    """The class: every parameter of every head refuses NaN, infinities, words and values
    outside its range, naming the head, the parameter and the range; defaults are in range."""
    cls = head_class(head)
    make_head(head, dict(cls.DEFAULTS))  # every default passes its own check
    numeric = {k: v for k, v in cls.RANGES.items() if isinstance(v, Range)}
    assert numeric, head
    # every numeric default has a range (no parameter left unchecked)
    unchecked = [k for k, v in cls.DEFAULTS.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in cls.RANGES]
    assert unchecked == [], (head, unchecked)
    for key, rng in numeric.items():
        for bad in _bad_values(rng):
            with pytest.raises(InputError) as e:
                make_head(head, {key: bad})
            msg = str(e.value)
            assert f"{head} parameter {key} must be" in msg and rng.describe() in msg, msg


def test_range_check_parses_and_refuses():
    r = Range(1, 10, integer=True)
    assert r.check("k", "3") == 3 and r.check("k", "3.0") == 3 and r.check("k", 4.0) == 4
    f = Range(0, 1, lo_open=True)
    assert f.check("x", "0.5") == 0.5 and f.check("x", 1) == 1
    for bad in ("0", 0, "nan", math.inf, "1.5", None, [1]):
        with pytest.raises(InputError, match=r"x must be a number in \(0, 1\]"):
            f.check("x", bad)
    with pytest.raises(InputError) as e:
        f.check("x", "\x1b[2J" + "9" * 100)
    assert "\x1b" not in str(e.value) and len(str(e.value)) < 120


# ---- item 7 and its class: numeric options ------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["classify", "train", "--task", "kind", "--space", "good", "--bootstrap", "-5"],
     "--bootstrap must be an integer from 0 to 100,000, got -5"),
    (["classify", "evaluate", "--task", "kind", "--bootstrap", "-5"], "--bootstrap must be"),
    (["evaluate", "agreement", "--pair-set", "p", "--bootstrap", "-5"], "--bootstrap must be"),
    (["evaluate", "quality", "--runs", "a,b", "--pair-set", "p", "--bootstrap", "-1"],
     "--bootstrap must be"),
    (["evaluate", "sweep", "--runs", "a,b", "--pair-set", "p", "--bootstrap", "100001"],
     "--bootstrap must be"),
    (["images", "templates", "--gallery", ".", "--threshold", "nan"],
     "--threshold must be a number from -1 to 1, got nan"),
    (["images", "templates", "--gallery", ".", "--threshold", "inf"], "--threshold must be"),
    (["images", "templates", "--gallery", ".", "--threshold", "2"], "--threshold must be"),
    (["caption", "--backend", "ocr", "--temperature", "nan"], "--temperature must be"),
    (["caption", "--backend", "ocr", "--temperature", "-1"], "--temperature must be"),
    (["classify", "tune-encoder", "--task", "kind", "-o", "x", "--lr", "nan"], "--lr must be"),
    (["classify", "tune-encoder", "--task", "kind", "-o", "x", "--lr", "0"], "--lr must be"),
    (["classify", "train", "--task", "kind", "--space", "good", "--unknown-quantile", "nan"],
     "--unknown-quantile"),
    (["trends", "--confidence", "nan"], "--confidence must be a number in [0.5, 1), got nan"),
    (["trends", "--window", "0"], "--window must be an integer from 1 to 10,000, got 0"),
    (["trends", "--window", "-3"], "--window must be an integer from 1"),
])
def test_numeric_options_out_of_range(coded, args, needle):
    before = _sha(coded)
    last = _one_line_error(_cli(coded, *args), needle)
    assert "periods" not in last  # item 17: not "needs at least 2 periods; this run has 13"
    assert _sha(coded) == before


# Options whose range the library checks first thing (covered above), not a CLI callback.
# Checked with their range before any work by their own code (each refuses NaN and infinity):
# --assign-floor by cluster.soft.check_assign_floor, label --timeout by the HTTP policy,
# sql --timeout by the sql command.
_CHECKED_BY_LIBRARY = {"classify train --unknown-quantile", "cluster --assign-floor",
                       "label --timeout", "sql --timeout"}


def _float_options():
    root = typer.main.get_command(app)

    def walk(cmd, path):
        if getattr(cmd, "commands", None):
            for n, c in cmd.commands.items():
                yield from walk(c, [*path, n])
            return
        for p in cmd.params:
            ann = str(getattr(getattr(p, "type_descriptor", None), "annotation", ""))
            if "float" in ann:
                yield " ".join([*path, p.opts[0]]), p

    return list(walk(root, []))


def test_every_float_option_refuses_nan_and_infinity():
    """The class: a float option has a range callback, or both typer bounds (which refuse NaN
    and infinities), or a library check tested above; none takes NaN silently."""
    from memeatlas.commands.common import in_range

    opts = _float_options()
    assert len(opts) >= 10
    loose = []
    for name, p in opts:
        bounded = p.min is not None and p.max is not None
        has_range = p.callback is not None and p.callback.__qualname__.startswith(
            in_range.__qualname__)
        if not (bounded or has_range or name in _CHECKED_BY_LIBRARY):
            loose.append(name)
    assert loose == []


@pytest.mark.parametrize("opt", ["--ray-cpus-per-worker", "--ray-gpus-per-worker"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_bounded_options_refuse_nan_as_usage_errors(coded, opt, value):
    before = _sha(coded)
    r = _cli(coded, "caption", "--backend", "ocr", "--engine", "ray", opt, value)
    assert r.exit_code == 2 and "Traceback" not in r.output and opt in r.output, r.output
    assert _sha(coded) == before


# ---- items 4, 8: labels files and class labels ---------------------------------------------------

def _labels_file(tmp_path, kind: str, meme: str = "s0"):
    p = tmp_path / f"labels-{kind}.csv"
    body = {"nul": f"{meme},ana,al\x00pha\n", "esc": f"{meme},ana,\x1b[31mred\x07\n",
            "tab": f"{meme},ana,a\tb\n", "long": f"{meme},ana,{'z' * 500}\n",
            "coder-ctl": f"{meme},an\x1ba,alpha\n", "huge": f"{meme},ana,{'x' * 140_000}\n"}
    if kind == "folder":
        p.mkdir()
    elif kind == "not-utf8":
        p.write_bytes(b"source_id,coder,label\ns0,ana,\xff\xfe\n")
    elif kind == "fifo":
        os.mkfifo(p)
    else:
        p.write_text("source_id,coder,label\n" + body[kind], encoding="utf-8")
    return p


@pytest.mark.parametrize("kind,needle", [
    ("nul", r"line 2: label 'al\x00pha' holds a control character"),
    ("esc", "line 2: label"), ("tab", "line 2: label"), ("long", "500 characters (at most 200)"),
    ("coder-ctl", "line 2: coder"),
    ("huge", "line 2: a cell longer than 131,072 characters"),
    ("folder", "is a folder; name a file"), ("not-utf8", "not UTF-8"),
    ("fifo", "not a regular file"),
])
def test_import_labels_refuses_bad_files_and_labels(coded, tmp_path, kind, needle):
    f = _labels_file(tmp_path, kind)
    before = _sha(coded)
    r = _cli(coded, "classify", "import-labels", str(f), "--task", "kind2")
    _one_line_error(r, needle)
    assert "labels file " + str(f) + " not found" not in r.output  # item 17
    assert _sha(coded) == before


@pytest.mark.parametrize("args,needle", [
    (["--task", "t\x00"], "--task 't\\x00' holds a control character"),
    (["--task", "kind2", "--coder", "a\x1b[1m"], "--coder"),
])
def test_task_and_coder_names_with_controls(coded, tmp_path, args, needle):
    f = tmp_path / "ok.csv"
    f.write_text("source_id,label\ns0,alpha\n")
    before = _sha(coded)
    _one_line_error(_cli(coded, "classify", "import-labels", str(f), *args), needle)
    assert _sha(coded) == before


def test_labels_from_meta_with_control_characters(tmp_path):
    db = tmp_path / "m.duckdb"
    with Store.open(db) as s:
        planted_store(s, n=6, n_classes=2)
        s.execute("UPDATE memes SET meta = '{\"kind\": \"al\\u0000pha\"}'")
    before = _sha(db)
    _one_line_error(_cli(db, "classify", "import-labels", "--task", "k", "--from-meta", "kind"),
                    "holds a control character", "nothing was imported")
    assert _sha(db) == before


@pytest.mark.parametrize("kind,needle", [("folder", "is a folder"),
                                         ("huge", "field larger than field limit")])
def test_ratings_file_of_the_same_class(coded, tmp_path, kind, needle):
    f = tmp_path / "ratings.csv"
    if kind == "folder":
        f.mkdir()
    else:
        f.write_text("pair_id,coder,dimension,rating\n1,ana,x," + "9" * 140_000 + "\n")
    before = _sha(coded)
    _one_line_error(_cli(coded, "evaluate", "import-ratings", str(f), "--pair-set", "p"), needle)
    assert _sha(coded) == before


@pytest.mark.parametrize("which", ["prompt", "schema"])
def test_prompt_and_schema_folders(tmp_path, which):
    from memeatlas.caption.prompts import load_prompt
    from memeatlas.caption.schema import core_json_schema, load_schema

    with pytest.raises(InputError, match=f"--{which} file .* is a folder"):
        load_prompt(tmp_path, core_json_schema()) if which == "prompt" else load_schema(tmp_path)


# ---- images templates --gallery ------------------------------------------------------------------

def test_gallery_with_a_non_utf8_file_name_is_skipped_and_counted(tmp_path, capsys):
    from PIL import Image

    from memeatlas.images.templates import read_gallery

    g = tmp_path / "gallery"
    g.mkdir()
    for name in (b"Alpha.png", b"Beta.png", b"bad\xff\xfe.png"):
        Image.new("RGB", (8, 8), (10, 20, 30)).save(os.path.join(bytes(g), name))
    items = read_gallery(g)
    assert [t for t, _ in items] == ["Alpha", "Beta"]
    err = capsys.readouterr().err
    assert "skipped 1 gallery file(s) whose names are not UTF-8" in err and "\\udcff" in err


def test_a_file_given_as_gallery(coded, tmp_path):
    f = tmp_path / "Alpha.png"
    f.write_bytes(b"not really")
    before = _sha(coded)
    last = _one_line_error(_cli(coded, "images", "templates", "--gallery", str(f)),
                           "is a file, not a folder")
    assert "not found" not in last
    assert _sha(coded) == before


# ---- item 17: trends with --by day does not advise a finer --by ---------------------------------

def test_trends_by_day_does_not_suggest_a_finer_by(tmp_path):
    from helpers_study import clustered_store, days

    from memeatlas.study.times import set_timestamps

    db = tmp_path / "t.duckdb"
    with Store.open(db) as s:
        clustered_store(s, n_per=4, n_clusters=2,
                        times={0: days("2024-01-01", 4), 1: days("2024-01-05", 4)})
        set_timestamps(s, "date")
    r = _cli(db, "trends", "--by", "day", "--window", "50")
    last = _one_line_error(r, "--window 50 needs at least 100 periods")
    assert "finer" not in last
    r = _cli(db, "trends", "--by", "week", "--window", "50")
    assert "or a finer --by" in r.output
