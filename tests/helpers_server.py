"""OpenAI-compatible servers for the tests: an in-process one with quirk modes, and llama.cpp.

`QuirkServer` is a minimal `/v1/chat/completions` + `/v1/models` endpoint (stdlib
http.server in a thread) answering with the tiny Qwen2.5-VL through the transformers
backend. Its `mode` mimics how real servers take (or ignore, or reject) a JSON Schema:

    openai       response_format json_schema (OpenAI, vLLM, SGLang, llama-server)
    llamacpp     rejects json_schema with 500 "Input should be 'text' or 'json_object'",
                 takes {"type": "json_object", "schema": ...}; a list `content` without an
                 image is a 500 (llama-cpp-python with the model's own template); owned_by "me"
    ollama       ignores response_format (older Ollama), takes top-level `format`;
                 errors as {"error": "..."}; owned_by "library"
    vllm         rejects json_schema (400, vLLM's {"object": "error", ...} shape), takes
                 `structured_outputs: {"json": ...}`; owned_by "vllm"
    vllm_legacy  as vllm, but `structured_outputs` is an unknown field (400 "Extra inputs
                 are not permitted"); takes `guided_json`
    plain        ignores every format field (the client must fall back to prompt-only JSON)

`sees=True` lets the server read memeatlas's vision probe (it matches the image against the
probe words drawn the same way), so a run can pass the probe; otherwise the tiny model is
as blind as a text-only server. `plan` injects faults per request number: an int status
(with `Retry-After: 0` for 429) or a float (seconds to stall).

`llama_server(gguf)` (memeatlas.testing.llama_server) starts llama-cpp-python's server on
127.0.0.1; `stop(proc)` stops it by its PID.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

from memeatlas.caption.backends import GenerationRequest

SECRET = "sk-memeatlas-test-7f3a9c1e5b"
MODES = ("openai", "llamacpp", "ollama", "vllm", "vllm_legacy", "plain")
OWNED_BY = {"openai": "system", "llamacpp": "me", "ollama": "library", "vllm": "vllm",
            "vllm_legacy": "vllm", "plain": "someone"}


def read_probe_word(image: Image.Image) -> str | None:
    """The probe word drawn on `image` (nearest rendering by pixel distance), or None."""
    import numpy as np

    from memeatlas.caption import probe

    img = image.convert("RGB")
    if img.size != (512, 256):
        return None
    have = np.asarray(img, dtype=np.float32)
    bg = tuple(int(v) for v in have[2, 2])
    best, best_d = None, float("inf")
    for w in probe.PROBE_WORDS:
        ref = Image.new("RGB", (512, 256), bg)
        from PIL import ImageDraw

        from memeatlas.imaging import bold_font

        d = ImageDraw.Draw(ref)
        f = bold_font(88)
        box = d.textbbox((0, 0), w, font=f)
        d.text(((512 - (box[2] - box[0])) / 2 - box[0], (256 - (box[3] - box[1])) / 2 - box[1]),
               w, font=f, fill=(0, 0, 0))
        dist = float(np.mean((np.asarray(ref, dtype=np.float32) - have) ** 2))
        if dist < best_d:
            best, best_d = w, dist
    return best if best_d < 400 else None


class QuirkServer:
    """See the module docstring."""

    def __init__(self, backend, mode: str = "openai", *, plan: dict[int, object] | None = None,
                 sees: bool = False, key: str | None = SECRET, delay: float = 0.0):
        assert mode in MODES, mode
        self.backend, self.mode, self.sees, self.key, self.delay = backend, mode, sees, key, delay
        self.plan = plan or {}
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

            def _send(self, code, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                outer.statuses.append(code)

            def _error(self, code, message):
                if outer.mode == "ollama":
                    return self._send(code, {"error": message})
                if outer.mode.startswith("vllm"):
                    return self._send(code, {"object": "error", "message": message,
                                             "type": "BadRequestError", "param": None,
                                             "code": code})
                return self._send(code, {"error": {"message": message,
                                                   "type": "invalid_request_error"}})

            def do_GET(self):
                if self.path != "/v1/models":
                    return self._error(404, "not found")
                self._send(200, {"object": "list", "data": [
                    {"id": "tiny-qwen", "object": "model", "owned_by": OWNED_BY[outer.mode]}]})

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

            def _schema(self, body):
                """The schema this mode honours, or an error (code, message) to answer."""
                rf = body.get("response_format") or {}
                m = outer.mode
                if m == "openai":
                    return (rf.get("json_schema") or {}).get("schema"), None
                if m == "llamacpp":
                    if rf and rf.get("type") not in ("text", "json_object"):
                        return None, (500, "1 validation error for CreateChatCompletionRequest "
                                           "response_format.type: Input should be 'text' or "
                                           "'json_object'")
                    return rf.get("schema"), None
                if m == "ollama":
                    return body.get("format") if isinstance(body.get("format"), dict) else None, None
                if m in ("vllm", "vllm_legacy"):
                    if rf.get("type") == "json_schema":
                        return None, (400, "response_format type json_schema is not supported by "
                                           "this build; use structured_outputs")
                    if m == "vllm":
                        return (body.get("structured_outputs") or {}).get("json"), None
                    if "structured_outputs" in body:
                        return None, (400, "[{'type': 'extra_forbidden', 'loc': ('body', "
                                           "'structured_outputs'), 'msg': 'Extra inputs are not "
                                           "permitted'}]")
                    return body.get("guided_json"), None
                return None, None  # plain: ignores everything

            def _handle(self, n, body):
                if self.path != "/v1/chat/completions":
                    return self._error(404, "not found")
                if outer.key and self.headers.get("Authorization") != f"Bearer {outer.key}":
                    return self._error(401, "invalid api key")
                if body.get("model") == "broken":
                    return self._error(400, "unknown model broken")
                fault = outer.plan.get(n)
                if isinstance(fault, int):
                    hdr = {"Retry-After": "0"} if fault == 429 else None
                    msg = "server overloaded, try again" if fault == 503 else "injected failure"
                    if fault == 429:
                        msg = "rate limit reached"
                    return self._send(fault, {"error": {"message": msg}}, hdr)
                if isinstance(fault, float):
                    time.sleep(fault)  # a slow response
                schema, err = self._schema(body)
                if err:
                    return self._error(*err)
                msg = body["messages"][0]
                image, prompt = None, ""
                if isinstance(msg["content"], str):
                    prompt = msg["content"]
                else:
                    for part in msg["content"]:
                        if part["type"] == "image_url":
                            b64 = part["image_url"]["url"].split("base64,", 1)[1]
                            image = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
                        elif part["type"] == "text":
                            prompt = part["text"]
                    if image is None and outer.mode == "llamacpp":
                        return self._error(500, "can only concatenate str (not \"list\") to str")
                from memeatlas.caption.probe import PROBE_PROMPT

                if outer.sees and image is not None and prompt == PROBE_PROMPT:
                    word = read_probe_word(image) or "nothing"
                    return self._reply(n, body, json.dumps({"word": word}), True, 20, 5)
                with outer.model_lock:
                    if outer.delay:
                        time.sleep(outer.delay)
                    [res] = outer.backend.generate([GenerationRequest(
                        prompt, image, schema, body.get("max_tokens", 256),
                        temperature=body.get("temperature"), seed=body.get("seed"))])
                self._reply(n, body, res.text, res.finished, res.tokens_in, res.tokens_out)

            def _reply(self, n, body, text, finished, t_in, t_out):
                self._send(200, {
                    "id": f"cmpl-{n}", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop" if finished else "length",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": t_in, "completion_tokens": t_out,
                              "total_tokens": (t_in or 0) + (t_out or 0)}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


# llama-cpp-python's server: shared with benchmarks/servers.py.
from memeatlas.testing.llama_server import (  # noqa: E402,F401
    free_port,
    llama_cpp_available,
    llama_server,
    stop,
)
