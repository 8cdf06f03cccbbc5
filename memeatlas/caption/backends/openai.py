"""OpenAI-compatible HTTP backend (`vllm serve`, SGLang, llama.cpp server, hosted APIs).

Requests go out concurrently with at most `concurrency` in flight, images as
base64 JPEG data URLs, the JSON Schema as `response_format` (type
`json_schema`, strict). 429, 5xx, timeouts and connection errors are retried
with exponential backoff and jitter (honouring `Retry-After`); other 4xx
answers fail the request at once with the server's message.

The API key is read from the environment variable named by `api_key_env`
(default OPENAI_API_KEY) at start-up and only ever placed in the
Authorization header: it is never logged, returned in errors, or stored
(caption_runs.config records the variable's name only).
"""

from __future__ import annotations

import base64
import io
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from memeatlas.caption.backends._common import DEFAULT_MODEL
from memeatlas.caption.backends.base import (
    Backend,
    BackendInfo,
    GenerationRequest,
    GenerationResult,
)
from memeatlas.errors import BackendError
from memeatlas.provenance import software

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def image_data_url(image, fmt: str = "JPEG", quality: int = 90) -> str:
    """A PIL image as a `data:image/...;base64,` URL."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format=fmt, quality=quality)
    mime = "jpeg" if fmt.upper() == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_body(req: GenerationRequest, model: str, *, temperature: float, top_p: float,
               seed: int | None, schema_name: str = "annotation") -> dict[str, Any]:
    """The chat.completions request body for one GenerationRequest."""
    content: list[dict[str, Any]] = []
    if req.image is not None:
        content.append({"type": "image_url", "image_url": {"url": image_data_url(req.image)}})
    content.append({"type": "text", "text": req.prompt})
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": req.max_new_tokens,
        "temperature": temperature if req.temperature is None else req.temperature,
        "top_p": top_p,
    }
    s = seed if req.seed is None else req.seed
    if s is not None:
        body["seed"] = s
    if req.json_schema:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": schema_name, "schema": req.json_schema, "strict": True}}
    return body


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class OpenAIBackend(Backend):
    """Chat completions against an OpenAI-compatible server (see module docstring).

    Options: base_url, api_key_env, concurrency, timeout (s per request),
    max_retries, backoff (first wait, s; doubles each retry, capped at 30 s),
    temperature, top_p, seed, revision (label for the annotator name; servers
    do not report model revisions).
    """

    name = "openai"
    default_model = DEFAULT_MODEL

    def __init__(self, model: str | None = None, *, base_url: str = "http://127.0.0.1:8000/v1",
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int | None = 0,
                 revision: str | None = None) -> None:
        import httpx

        if concurrency < 1:
            raise BackendError("--concurrency must be at least 1")
        self.model_id = model or DEFAULT_MODEL
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._key = os.environ.get(api_key_env) or None
        self.concurrency = int(concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = seed
        self.revision = revision or "api"
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.concurrency,
                                max_keepalive_connections=self.concurrency))
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                        thread_name_prefix="memeatlas-openai")
        self._lock = threading.Lock()
        self.n_retries = 0  # retried HTTP attempts over the backend's life (for tests/benchmarks)

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name, model=self.model_id, revision=self.revision,
            annotator=f"{self.model_id}@{self.revision}",
            config={"base_url": self.base_url, "api_key_env": self.api_key_env,
                    "concurrency": self.concurrency, "timeout": self.timeout,
                    "max_retries": self.max_retries},
            software=software("httpx"))

    @property
    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "constrained": "response_format json_schema"}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Send all requests, at most `concurrency` at a time; results in request order."""
        return list(self._pool.map(self._one, requests))

    def _one(self, req: GenerationRequest) -> GenerationResult:
        import httpx

        body = build_body(req, self.model_id, temperature=self.temperature, top_p=self.top_p,
                          seed=self.seed)
        t0 = time.perf_counter()
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                resp = self._client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    return self._parse(resp, t0)
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code not in RETRY_STATUS:
                    break
                ra = resp.headers.get("retry-after")
                if ra:
                    try:
                        wait = min(float(ra), 60.0)
                    except ValueError:
                        wait = None
            if attempt < self.max_retries:
                with self._lock:
                    self.n_retries += 1
                if wait is None:
                    wait = min(30.0, self.backoff * 2 ** attempt) * (0.5 + random.random() / 2)
                time.sleep(wait)
        return GenerationResult("", False, latency_ms=(time.perf_counter() - t0) * 1000,
                                error=_redact(f"request failed after {attempt + 1} attempt(s): "
                                              f"{last}", self._key))

    def _parse(self, resp, t0: float) -> GenerationResult:
        ms = (time.perf_counter() - t0) * 1000
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return GenerationResult(resp.text[:2000], False, latency_ms=ms,
                                    error=f"malformed response: {exc}")
        finish = choice.get("finish_reason")
        return GenerationResult(text=text, finished=finish == "stop",
                                tokens_in=usage.get("prompt_tokens"),
                                tokens_out=usage.get("completion_tokens"), latency_ms=ms)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()
