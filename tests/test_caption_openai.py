"""The openai backend against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server is a minimal chat.completions endpoint written here (stdlib
http.server in a thread) that answers with the tiny Qwen2.5-VL through the
transformers backend, honouring response_format json_schema. It injects a 500
and slow responses as planned per request number (`plan`), and rejects requests
without the right Bearer key.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helpers_caption
import pytest
from helpers_caption import insert_memes, write_images
from PIL import Image

from memeatlas.caption import CaptionConfig, run
from memeatlas.caption.backends import GenerationRequest, create
from memeatlas.caption.backends.openai import build_body

SECRET = "sk-memeatlas-test-7f3a9c1e5b"

# Shared session fixtures (defined in helpers_caption).
tiny_qwen_dir = helpers_caption.tiny_qwen_dir
tiny_backend = helpers_caption.tiny_backend


class _Server:
    def __init__(self, backend, plan: dict[int, object] | None = None):
        self.backend = backend
        self.plan = plan or {}  # request number -> 500 (status) or float (seconds to stall)
        self.n = 0
        self.statuses: list[int] = []
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.model_lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                outer.statuses.append(code)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.n += 1
                    n = outer.n
                    outer.bodies.append(body)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    self._handle(n, body)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def _handle(self, n, body):
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "not found"}})
                if self.headers.get("Authorization") != f"Bearer {SECRET}":
                    return self._send(401, {"error": {"message": "invalid api key"}})
                if body.get("model") == "broken":
                    return self._send(400, {"error": {"message": "unknown model broken"}})
                fault = outer.plan.get(n)
                if isinstance(fault, int):
                    return self._send(fault, {"error": {"message": "injected failure"}})
                if isinstance(fault, float):
                    time.sleep(fault)  # a slow response
                image = None
                prompt = ""
                for part in body["messages"][0]["content"]:
                    if part["type"] == "image_url":
                        b64 = part["image_url"]["url"].split("base64,", 1)[1]
                        image = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
                    elif part["type"] == "text":
                        prompt = part["text"]
                rf = body.get("response_format") or {}
                schema = rf.get("json_schema", {}).get("schema")
                with outer.model_lock:
                    [res] = outer.backend.generate([GenerationRequest(
                        prompt, image, schema, body.get("max_tokens", 256),
                        temperature=body.get("temperature"), seed=body.get("seed"))])
                self._send(200, {
                    "id": f"cmpl-{n}", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop" if res.finished else "length",
                                 "message": {"role": "assistant", "content": res.text}}],
                    "usage": {"prompt_tokens": res.tokens_in, "completion_tokens": res.tokens_out,
                              "total_tokens": (res.tokens_in or 0) + (res.tokens_out or 0)}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _table_text(store) -> str:
    """Every value of every table, as text: where a leaked key would show up."""
    out = []
    for (t,) in store.fetchall("SELECT table_name FROM information_schema.tables "
                               "WHERE table_type = 'BASE TABLE'"):
        out.append(store.df(f'SELECT * FROM "{t}"').to_csv())
    return "\n".join(out)


def test_openai_backend_with_500_and_slow_response(store, tmp_path, tiny_backend, monkeypatch,
                                                   caplog, capfd):
    monkeypatch.setenv("MEMEATLAS_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    insert_memes(store, write_images(tmp_path / "imgs", 4))
    # Request 1 fails with a 500; request 2 stalls 1.5 s while the others go on.
    with _Server(tiny_backend, plan={1: 500, 2: 1.5}) as srv:
        backend = create("openai", model="tiny-qwen", base_url=srv.url,
                         api_key_env="MEMEATLAS_TEST_KEY", concurrency=3, timeout=60,
                         max_retries=3, backoff=0.05)
        try:
            s = run(store, CaptionConfig(backend="openai", model="tiny-qwen", batch_size=4,
                                         max_new_tokens=200, retries=0), backend=backend)
        finally:
            backend.close()
    assert (s.n_done, s.n_failed) == (4, 0)
    assert s.annotator == "tiny-qwen@api"
    assert 500 in srv.statuses
    assert backend.n_retries == 1  # the 500 was retried; the slow one was waited for
    assert 1 < srv.max_in_flight <= 3  # concurrent, and bounded
    body = srv.bodies[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["title"] == "MemeAnnotation"
    assert body["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert store.scalar("SELECT sum(tokens_out) FROM annotations") > 0
    cfg = json.loads(store.scalar("SELECT config FROM caption_runs"))
    assert cfg["api_key_env"] == "MEMEATLAS_TEST_KEY"
    # The key is nowhere: not in the DB, not in logs, not on stdout/stderr.
    assert SECRET not in _table_text(store)
    assert SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_openai_client_errors_are_not_retried_and_land_in_failures(store, tmp_path, tiny_backend,
                                                                   monkeypatch, capfd):
    monkeypatch.setenv("MEMEATLAS_TEST_KEY", SECRET)
    insert_memes(store, write_images(tmp_path / "imgs", 1))
    with _Server(tiny_backend) as srv:
        backend = create("openai", model="broken", base_url=srv.url,
                         api_key_env="MEMEATLAS_TEST_KEY", max_retries=3, backoff=0.01)
        try:
            s = run(store, CaptionConfig(backend="openai", retries=1), backend=backend)
        finally:
            backend.close()
    assert (s.n_done, s.n_failed) == (0, 1)
    assert backend.n_retries == 0
    rows = store.fetchall("SELECT error, detail FROM caption_failures ORDER BY attempt")
    assert len(rows) == 2 and all(r[0] == "request_failed" for r in rows)
    assert "HTTP 400" in rows[0][1] and "unknown model broken" in rows[0][1]
    assert SECRET not in _table_text(store)
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_openai_text_only_without_key_gets_401_message(monkeypatch, tiny_backend):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with _Server(tiny_backend) as srv:
        b = create("openai", model="tiny-qwen", base_url=srv.url, max_retries=0)
        try:
            [res] = b.generate([GenerationRequest("Name this cluster.", None, None, 8)])
        finally:
            b.close()
    assert res.error and "HTTP 401" in res.error and not res.finished


def test_openai_timeout_is_retried_and_text_only_works(monkeypatch, tiny_backend):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # The first answer takes longer than the client's timeout; the retry is answered.
    with _Server(tiny_backend, plan={1: 2.0, 2: 503}) as srv:
        b = create("openai", model="tiny-qwen", base_url=srv.url, timeout=0.5, max_retries=3,
                   backoff=0.01)
        try:
            [res] = b.generate([GenerationRequest("Name this cluster.", None, None, 8)])
        finally:
            b.close()
    assert res.error is None and res.tokens_out == 8 and not res.finished
    assert b.n_retries == 2  # timeout, then 503
    assert srv.n == 3
    assert "image_url" not in json.dumps(srv.bodies[-1])


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


@pytest.mark.parametrize("bad", [0, -1])
def test_concurrency_must_be_positive(bad):
    from memeatlas.errors import BackendError

    with pytest.raises(BackendError):
        create("openai", model="x", concurrency=bad)
