"""The openai backend against real OpenAI-compatible HTTP servers on 127.0.0.1.

`helpers_server.QuirkServer` answers with the tiny Qwen2.5-VL and mimics how OpenAI, llama.cpp,
Ollama and vLLM take a JSON Schema (see its docstring), so every negotiation path, error class
and exit code is exercised over real HTTP. The llama.cpp server itself is in
test_server_interop.py.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import helpers_caption
import pytest
from helpers_caption import insert_memes, write_images
from helpers_server import SECRET, QuirkServer
from PIL import Image

from memeatlas.caption import CaptionConfig, run
from memeatlas.caption.backends import GenerationRequest, create
from memeatlas.caption.backends.openai import build_body
from memeatlas.caption.backends.openai_errors import classify, server_message
from memeatlas.caption.backends.openai_format import friendly_schema
from memeatlas.caption.backends.openai_limit import AdaptiveLimit
from memeatlas.caption.schema import core_json_schema, schema_hash
from memeatlas.errors import BackendError

# Shared session fixtures (defined in helpers_caption).
tiny_qwen_dir = helpers_caption.tiny_qwen_dir
tiny_backend = helpers_caption.tiny_backend


def _backend(srv, **kw):
    opts = dict(model="tiny-qwen", base_url=srv.url, api_key_env="MEMEATLAS_TEST_KEY",
                timeout=60, max_retries=3, backoff=0.02)
    opts.update(kw)
    return create("openai", **opts)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("MEMEATLAS_TEST_KEY", SECRET)


def _table_text(store) -> str:
    """Every value of every table, as text: where a leaked key would show up."""
    out = []
    for (t,) in store.fetchall("SELECT table_name FROM information_schema.tables "
                               "WHERE table_type = 'BASE TABLE'"):
        out.append(store.df(f'SELECT * FROM "{t}"').to_csv())
    return "\n".join(out)


@pytest.mark.parametrize("mode,fmt,form", [
    ("openai", "json_schema", "strict"),
    ("llamacpp", "json_object_schema", "friendly"),
    ("ollama", "ollama_format", "friendly"),
    ("vllm", "structured_outputs", "strict"),
    ("vllm_legacy", "guided_json", "strict"),
    ("plain", "prompt_only", "friendly"),
])
def test_format_negotiation_finds_what_each_server_takes(tiny_backend, mode, fmt, form):
    with QuirkServer(tiny_backend, mode) as srv:
        b = _backend(srv)
        try:
            assert b.negotiate() == fmt
            assert b.info.config["response_format"] == fmt
            assert b.info.config["schema_form"] == form
            n_probe = srv.n
            b.negotiate()  # remembered: no more probes
            assert srv.n == n_probe
            [res] = b.generate([GenerationRequest("Name it.", None, {"type": "object",
                "properties": {"name": {"type": "string", "pattern": "^[a-z]{1,8}$"}},
                "required": ["name"]}, 24)])
        finally:
            b.close()
    body = srv.bodies[-1]
    assert isinstance(body["messages"][0]["content"], str)  # text-only: a plain string
    if fmt == "prompt_only":
        assert not any(k in body for k in ("response_format", "format", "guided_json",
                                           "structured_outputs"))
    else:
        assert res.error is None and json.loads(res.text)
        sent = json.dumps(body)
        assert ('"maxLength": 8' in sent) == (form == "friendly")


def test_caption_through_llamacpp_quirks_records_format_and_friendly_schema(
        store, tmp_path, tiny_backend):
    insert_memes(store, write_images(tmp_path / "imgs", 2))
    with QuirkServer(tiny_backend, "llamacpp", sees=True) as srv:
        b = _backend(srv, concurrency=2)
        try:
            s = run(store, CaptionConfig(backend="openai", batch_size=2, max_new_tokens=200,
                                         retries=0), backend=b)
        finally:
            b.close()
    assert (s.n_done, s.n_failed) == (2, 0)
    friendly = friendly_schema(core_json_schema())
    assert s.schema_hash == schema_hash(friendly) != schema_hash(core_json_schema())
    assert json.loads(store.scalar("SELECT json_schema FROM annotation_schemas WHERE "
                                   "schema_hash = ?", [s.schema_hash])) == friendly
    cfg = json.loads(store.scalar("SELECT config FROM caption_runs"))
    assert cfg["response_format"] == "json_object_schema" and cfg["schema_form"] == "friendly"
    assert cfg["decoding"]["vision"]["passed"] is True
    rejected = [bd for bd in srv.bodies if (bd.get("response_format") or {}).get("type")
                == "json_schema"]
    assert len(rejected) == 1  # tried once in the negotiation, never again
    last = srv.bodies[-1]
    assert last["response_format"]["type"] == "json_object"
    assert last["messages"][0]["content"][0]["type"] == "image_url"


def test_vision_probe_refuses_a_blind_model_and_stores_nothing(store, tmp_path, tiny_backend):
    insert_memes(store, write_images(tmp_path / "imgs", 2))
    with QuirkServer(tiny_backend, "openai") as srv:  # the tiny model cannot read the word
        b = _backend(srv)
        try:
            with pytest.raises(BackendError, match="could not read the word") as ei:
                run(store, CaptionConfig(backend="openai", max_new_tokens=64), backend=b)
            n_sent = srv.n
        finally:
            b.close()
    assert "--no-vision-check" in str(ei.value)
    assert store.scalar("SELECT count(*) FROM annotations") == 0
    assert store.scalar("SELECT count(*) FROM caption_runs") == 0
    assert n_sent == 2  # one format probe, one vision probe: no meme was sent


def test_500_and_slow_response_temporary_vs_permanent(store, tmp_path, tiny_backend, caplog,
                                                      capfd):
    caplog.set_level(logging.DEBUG)
    insert_memes(store, write_images(tmp_path / "imgs", 4))
    # Requests: 1 format probe; then 503 (overloaded: retried), 429 (Retry-After), a stall.
    with QuirkServer(tiny_backend, "openai", plan={2: 503, 3: 429, 4: 1.0}) as srv:
        b = _backend(srv, concurrency=3, adaptive=False)
        try:
            s = run(store, CaptionConfig(backend="openai", batch_size=4, max_new_tokens=200,
                                         retries=0, vision_check=False), backend=b)
        finally:
            b.close()
    assert (s.n_done, s.n_failed) == (4, 0)
    assert s.annotator == "tiny-qwen@api"
    assert 503 in srv.statuses and 429 in srv.statuses
    assert b.n_retries == 2
    assert 1 < srv.max_in_flight <= 3  # concurrent, and bounded
    body = srv.bodies[-1]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["title"] == "MemeAnnotation"
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith(
        "data:image/jpeg;base64,")
    cfg = json.loads(store.scalar("SELECT config FROM caption_runs"))
    assert cfg["api_key_env"] == "MEMEATLAS_TEST_KEY" and cfg["response_format"] == "json_schema"
    # The key is nowhere: not in the DB, not in logs, not on stdout/stderr.
    assert SECRET not in _table_text(store)
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_permanent_rejection_stops_the_run_with_the_servers_message(store, tmp_path,
                                                                   tiny_backend):
    insert_memes(store, write_images(tmp_path / "imgs", 3))
    with QuirkServer(tiny_backend, "openai", plan={2: 500}) as srv:  # 500, not an overload
        b = _backend(srv, max_retries=5)
        try:
            with pytest.raises(BackendError, match="injected failure"):
                run(store, CaptionConfig(backend="openai", retries=2, vision_check=False),
                    backend=b)
        finally:
            b.close()
    assert b.n_retries == 0
    assert srv.n <= 4  # the probe plus at most the first batch's 3: no retry storm
    with QuirkServer(tiny_backend, "openai") as srv:
        b = _backend(srv, model="broken")
        try:
            with pytest.raises(BackendError, match="unknown model broken"):
                b.generate([GenerationRequest("x", None, None, 4)])
        finally:
            b.close()


def test_retry_budget_bounds_time_spent_on_temporary_failures(tiny_backend):
    with QuirkServer(tiny_backend, "openai", plan={i: 503 for i in range(1, 50)}) as srv:
        b = _backend(srv, max_retries=20, retry_budget=0.5, backoff=0.1)
        t0 = time.perf_counter()
        try:
            res = b.generate([GenerationRequest("x", None, None, 4)] * 2)
        finally:
            b.close()
    assert time.perf_counter() - t0 < 5
    assert all(r.error and "retry budget" in r.error for r in res)
    assert b.budget.spent <= 0.5


def test_timeout_is_retried_and_unreachable_server_fails_fast(tiny_backend):
    with QuirkServer(tiny_backend, "openai", plan={1: 2.0}) as srv:
        b = _backend(srv, timeout=0.5, backoff=0.01)
        try:
            [res] = b.generate([GenerationRequest("Name this cluster.", None, None, 8)])
        finally:
            b.close()
    assert res.error is None and res.tokens_out == 8 and not res.finished
    assert b.n_retries == 1 and srv.n == 2
    assert "image_url" not in json.dumps(srv.bodies[-1])
    from helpers_server import free_port

    b = create("openai", model="m", base_url=f"http://127.0.0.1:{free_port()}/v1")
    t0 = time.perf_counter()
    try:
        with pytest.raises(BackendError, match="cannot connect"):
            b.generate([GenerationRequest("x", None, {"type": "object"}, 4)])
    finally:
        b.close()
    assert time.perf_counter() - t0 < 5


def test_missing_key_is_a_one_line_stop(monkeypatch, tiny_backend):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with QuirkServer(tiny_backend) as srv:
        b = create("openai", model="tiny-qwen", base_url=srv.url, max_retries=0)
        try:
            with pytest.raises(BackendError, match="HTTP 401.*OPENAI_API_KEY"):
                b.generate([GenerationRequest("Name this cluster.", None, None, 8)])
        finally:
            b.close()


def test_caption_cli_exits_1_when_nothing_succeeded(tmp_path, tiny_backend, db_path):
    from typer.testing import CliRunner

    from memeatlas.cli import app
    from memeatlas.store import Store

    st = Store.open(db_path)
    insert_memes(st, write_images(tmp_path / "imgs", 2))
    st.close()
    with QuirkServer(tiny_backend, "plain") as srv:  # no constraint: random text is not JSON
        args = ["caption", "--db", str(db_path), "--backend", "openai", "--model", "tiny-qwen",
                "--base-url", srv.url, "--api-key-env", "MEMEATLAS_TEST_KEY",
                "--max-new-tokens", "16", "--retries", "0"]
        r = CliRunner().invoke(app, args + ["--no-vision-check"])
        check = CliRunner().invoke(app, ["caption", "--backend", "openai", "--check-server",
                                         "--model", "tiny-qwen", "--base-url", srv.url,
                                         "--api-key-env", "MEMEATLAS_TEST_KEY"])
        blind = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "none of the 2 meme(s) was annotated" in r.output and "2 " in r.output
    assert check.exit_code == 1  # the vision probe failed
    rep = json.loads(check.stdout)
    assert rep["response_format"] == "prompt_only" and rep["vision"]["passed"] is False
    assert [n["outcome"] for n in rep["negotiation"] if "format" in n] == ["ignored"] * 5
    assert blind.exit_code == 1 and "Error:" in blind.output and "vision" in blind.output


def test_worked_example_echo_is_a_failure():
    from memeatlas.caption.batch import check as _check
    from memeatlas.caption.probe import echoes_worked_example
    from memeatlas.caption.schema import Validator

    echo = {"description": "A man walks with his girlfriend and turns to another woman.",
            "ocr_text": "me / my thesis / a new side project", "intent": "Distractions.",
            "entities": [], "template": "Distracted Boyfriend", "tone": "humorous"}
    assert echoes_worked_example(echo)
    assert not echoes_worked_example({**echo, "ocr_text": "me / my cat / a laser pointer"})
    from memeatlas.caption.backends.base import GenerationResult

    res = GenerationResult(json.dumps(echo), True)
    v = Validator(core_json_schema())
    assert _check(res, v, False, check_example=True)[0] == "worked_example"
    assert isinstance(_check(res, v, False, check_example=False), dict)


def test_build_body_shapes():
    img = Image.new("RGB", (20, 10), "red")
    body = build_body(GenerationRequest("p", img, {"type": "object"}, 33, temperature=0.5, seed=7),
                      "m", temperature=0.0, top_p=0.9, seed=0)
    assert body["max_tokens"] == 33 and body["temperature"] == 0.5 and body["seed"] == 7
    assert body["top_p"] == 0.9 and body["model"] == "m"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "text"]
    no_schema = build_body(GenerationRequest("p", None, None, 5), "m", temperature=0.0, top_p=1.0,
                           seed=None)
    assert "response_format" not in no_schema and "seed" not in no_schema
    assert no_schema["messages"][0]["content"] == "p"
    obj = build_body(GenerationRequest("p", None, {"type": "object"}, 5), "m", temperature=0.0,
                     top_p=1.0, seed=None, fmt="json_object_schema")
    assert obj["response_format"] == {"type": "json_object", "schema": {"type": "object"}}


def test_error_classes_and_messages():
    assert classify(503, "") == "temporary" and classify(429, "") == "temporary"
    assert classify(500, "CUDA out of memory") == "temporary"
    assert classify(500, "Input should be 'text' or 'json_object'") == "format"
    assert classify(500, "can only concatenate str") == "rejected"
    assert classify(400, "unknown model") == "rejected"
    assert classify(401, "") == "auth" and classify(404, "") == "not_found"
    assert server_message('{"error": "model not found"}') == "model not found"
    assert server_message('{"object": "error", "message": "bad"}') == "bad"
    assert server_message('{"detail": [{"msg": "field required"}]}') == "field required"


def test_adaptive_limit_backs_off_for_a_serial_server_and_grows_for_a_parallel_one():
    def drive(lim: AdaptiveLimit, serial: bool, n: int = 40, service: float = 0.02):
        gate = threading.Lock()

        def one():
            with lim.slot() as s:
                if serial:
                    with gate:
                        time.sleep(service)
                else:
                    time.sleep(service)
                s.ok()

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    serial = AdaptiveLimit(8, start=8)
    drive(serial, True)
    assert serial.limit <= 2 and min(serial.history) == 1
    parallel = AdaptiveLimit(8, start=2)
    drive(parallel, False, n=80)
    assert parallel.limit >= 4
    fixed = AdaptiveLimit(8, adaptive=False)
    drive(fixed, True, n=16)
    assert fixed.history == [8] and fixed.limit == 8


@pytest.mark.parametrize("bad", [0, -1])
def test_concurrency_must_be_positive(bad):
    with pytest.raises(BackendError):
        create("openai", model="x", concurrency=bad)


def test_unknown_format_option_lists_valid_ones():
    with pytest.raises(BackendError, match="json_object_schema"):
        create("openai", model="x", response_format="xml")


def test_friendly_form_bounds_and_control_characters_are_checked_after_decoding():
    from memeatlas.caption.backends.openai_format import pattern_bounds
    from memeatlas.caption.schema import AnnotationError, Validator, bounded

    assert pattern_bounds(bounded(1, 600)) == (1, 600) and pattern_bounds("^[a-z]+$") is None
    friendly = friendly_schema(core_json_schema())
    assert "pattern" not in json.dumps(friendly)
    v = Validator(friendly, typed=False)
    ok = {"description": "a\ncat", "ocr_text": "", "intent": "x", "entities": [],
          "template": None, "tone": "humorous"}
    raw = json.dumps(ok).replace("\\n", "\n")  # a raw newline, as llama.cpp's grammar allows
    assert v(raw)["description"] == "a cat"
    with pytest.raises(AnnotationError, match="too long"):
        v(json.dumps({**ok, "intent": "y" * 401}))


def test_probe_image_and_answer_check():
    from helpers_server import read_probe_word

    from memeatlas.caption.probe import PROBE_WORDS, probe_image, read_word

    p = probe_image(seed=3)
    assert p.word in PROBE_WORDS and p.image.size == (512, 256)
    assert probe_image(seed=3).word == p.word  # seeded: reproducible
    assert read_probe_word(p.image) == p.word  # the word is legible where it is drawn
    assert read_word(json.dumps({"word": p.word.lower()}), p.word)
    assert read_word(f"The image says {p.word}.", p.word)
    assert not read_word('{"word": "nothing"}', p.word) and not read_word("", p.word)
