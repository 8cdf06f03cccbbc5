"""Schema, prompt, validation and backend registry: fast, no model."""

from __future__ import annotations

import json
import re

import pytest

from memeatlas.caption import backends
from memeatlas.caption.prompts import DEFAULT_PROMPT_VERSION, load_prompt
from memeatlas.caption.schema import (
    CORE_FIELDS,
    AnnotationError,
    Validator,
    bounded,
    core_json_schema,
    extend_schema,
    load_schema,
    schema_hash,
)
from memeatlas.errors import BackendError, InputError

GOOD = {
    "description": "A man turns to look at a woman while his girlfriend glares.",
    "ocr_text": "me / my thesis / a new side project",
    "intent": "The poster keeps dropping long work for shiny distractions.",
    "entities": [{"name": "man", "role": "other", "stands_for": "the poster"},
                 {"name": "other woman", "role": "villain", "stands_for": "the side project"}],
    "template": "Distracted Boyfriend",
    "tone": "humorous",
}


def test_core_schema_is_closed_ordered_and_bounded():
    s = core_json_schema()
    assert list(s["properties"]) == list(CORE_FIELDS)
    assert s["required"] == list(CORE_FIELDS) and s["additionalProperties"] is False
    assert "$defs" not in json.dumps(s) and "$ref" not in json.dumps(s)
    assert s["properties"]["tone"]["enum"] == ["humorous", "sarcastic", "wholesome", "angry",
                                               "sad", "neutral"]
    ent = s["properties"]["entities"]["items"]["properties"]
    assert ent["role"]["enum"] == ["hero", "villain", "victim", "other"]
    for prop in (s["properties"]["description"], s["properties"]["intent"], ent["name"]):
        assert "pattern" in prop and "maxLength" not in prop
    assert schema_hash(s) == schema_hash(core_json_schema())


def test_bounded_pattern_lengths_and_characters():
    r = re.compile(bounded(1, 300))
    assert r.match("a" * 300) and not r.match("a" * 301) and not r.match("")
    assert not r.match(" leading space") and not r.match('has "quote"')
    assert not r.match("line\nbreak") and not r.match("back\\slash")
    assert re.compile(bounded(0, 5)).match("")
    # every repeat stays within xgrammar's limit of 128
    assert all(int(n) <= 128 for n in re.findall(r",(\d+)\}", bounded(1, 600)))


def test_validator_accepts_good_and_names_problems():
    v = Validator(core_json_schema())
    assert v(json.dumps(GOOD))["template"] == "Distracted Boyfriend"
    assert v(json.dumps({**GOOD, "template": None}))["template"] is None
    with pytest.raises(AnnotationError) as e:
        v('{"description": "cut')
    assert e.value.kind == "invalid_json"
    with pytest.raises(AnnotationError) as e:
        v(json.dumps({**GOOD, "tone": "furious"}))
    assert e.value.kind == "schema_violation" and "tone" in str(e.value)
    bad_role = {**GOOD, "entities": [{"name": "x", "role": "sidekick", "stands_for": ""}]}
    with pytest.raises(AnnotationError, match="entities"):
        v(json.dumps(bad_role))
    with pytest.raises(AnnotationError):
        v(json.dumps({k: val for k, val in GOOD.items() if k != "intent"}))
    with pytest.raises(AnnotationError):
        v(json.dumps({**GOOD, "surprise": 1}))
    with pytest.raises(AnnotationError):
        v("[1, 2]")


def test_user_schema_extends_core(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"type": "object", "properties": {
        "target_group": {"type": "string", "pattern": "^[a-z ]{0,40}$"},
        "is_political": {"type": "boolean"}}, "required": ["is_political"]}))
    s = load_schema(f)
    assert list(s["properties"])[:6] == list(CORE_FIELDS)
    assert s["required"] == list(CORE_FIELDS) + ["is_political"]
    assert schema_hash(s) != schema_hash(core_json_schema())
    v = Validator(s)
    assert v(json.dumps({**GOOD, "is_political": False}))["is_political"] is False
    with pytest.raises(AnnotationError):
        v(json.dumps(GOOD))  # the user's required field is missing
    with pytest.raises(InputError, match="core field"):
        extend_schema({"properties": {"tone": {"type": "string"}}})
    f.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_schema(f)
    with pytest.raises(InputError, match="not found"):
        load_schema(tmp_path / "missing.json")
    f.write_bytes(b'\xff\xfe{"properties": {}}')
    with pytest.raises(InputError, match="not UTF-8"):
        load_schema(f)


def test_prompt_default_and_override(tmp_path):
    s = core_json_schema()
    p = load_prompt(None, s)
    assert p.version == DEFAULT_PROMPT_VERSION
    for word in ("intent", "stands_for", "Distracted Boyfriend", "hero", "villain", "victim"):
        assert word in p.text
    assert "{fields}" not in p.text and "- tone (" in p.text
    assert load_prompt(None, s).hash == p.hash
    f = tmp_path / "mine.txt"
    f.write_text("Describe the meme. Fields:\n{fields}\n")
    mine = load_prompt(f, s)
    assert mine.version == "file:mine.txt" and mine.hash != p.hash
    assert mine.text.startswith("Describe the meme.") and "- description (string)" in mine.text
    ext = load_prompt(None, extend_schema({"properties": {"x": {"type": "boolean",
                                                                "description": "an extra"}}}))
    assert ext.hash != p.hash and "- x (boolean): an extra" in ext.text
    f.write_text("  \n")
    with pytest.raises(InputError, match="empty"):
        load_prompt(f, s)


def test_backend_registry_errors():
    assert backends.names() == ["transformers", "vllm", "openai", "ocr"]
    with pytest.raises(BackendError, match="transformers, vllm, openai, ocr"):
        backends.create("nope")
    with pytest.raises(BackendError, match="no option"):
        backends.create("openai", model="m", frobnicate=1)


def test_cli_help_lists_every_option():
    from typer.testing import CliRunner

    from memeatlas.cli import app

    r = CliRunner().invoke(app, ["caption", "--help"])
    assert r.exit_code == 0
    for opt in ("--backend", "--model", "--limit", "--where", "--batch-size", "--force",
                "--retries", "--prompt", "--schema", "--device", "--dtype", "--api-key-env"):
        assert opt in r.output
    pr = CliRunner().invoke(app, ["caption", "--print-prompt"])
    assert pr.exit_code == 0 and "stands_for" in pr.stdout


def test_run_closes_the_backend_it_created_on_a_bad_option(store, monkeypatch, tmp_path):
    import importlib

    from memeatlas.caption.backends.base import Backend, BackendInfo

    # The module, not the `run` function the package exports under the same name.
    caption_run = importlib.import_module("memeatlas.caption.run")

    class Fake(Backend):
        name = "fake"
        closed = False

        @property
        def info(self):
            return BackendInfo("fake", "fake-model", "r1", "fake-model@r1")

        def close(self):
            Fake.closed = True

    created = []
    monkeypatch.setattr(caption_run, "create", lambda *a, **k: created.append(1) or Fake())
    # a bad --where is refused before any backend (model) is loaded
    with pytest.raises(InputError, match="--where"):
        caption_run.run(store, caption_run.CaptionConfig(where="no_such_column = 1"))
    assert not created
    with pytest.raises(InputError):
        caption_run.run(store, caption_run.CaptionConfig(
            schema_file=tmp_path / "missing-schema.json"))
    assert created and Fake.closed
