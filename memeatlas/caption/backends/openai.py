"""OpenAI-compatible HTTP backend (`vllm serve`, SGLang, llama.cpp, Ollama, LM Studio, APIs).

One request per meme to `/chat/completions`: the image as a base64 JPEG data URL next to the
prompt (a message without an image is sent as a plain string, which every chat template
reads). What the server accepts is found out once per backend, before the first constrained
request:

- the response format (`openai_format.FORMATS`): tried in order with a tiny schema until one
  is accepted *and* enforced; `prompt_only` (validated afterwards) is the last resort;
- the schema form: `strict` (bound patterns) or `friendly` (minLength/maxLength, for
  llama.cpp's grammar sampler); `auto` decides from the format and the server family;
- both are reported in `info.config`, so caption_runs and cluster_labels record them.

Every request goes through `memeatlas.http` (one deadline for the whole answer, `timeout`
seconds; a size cap, `max_response_bytes`): a server that drips or answers without end fails
that request within its deadline and its memory. Answers are checked for shape before use
(non-string content, non-integer token counts and nesting too deep are malformed answers).

Failures are classified (`openai_errors`): only timeouts, connection drops, 429 and real
overloads are retried, with jittered exponential backoff (honouring `Retry-After`) within a
per-request attempt limit and one retry budget (seconds) for the whole backend; a permanent
rejection before anything succeeded raises BackendError quoting the server (the run stops);
later it fails only that request. In-flight requests follow the server's parallelism
(`openai_limit.AdaptiveLimit`, `adaptive=False` for a fixed `concurrency`).

The API key is read from the environment variable named by `api_key_env` (default
OPENAI_API_KEY) and only ever placed in the Authorization header: it is never logged,
returned in errors, or stored (the config records the variable's name only).
"""

from __future__ import annotations

import base64
import io
import json
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
from memeatlas.caption.backends.openai_errors import (
    RetryBudget,
    backoff_wait,
    classify,
    server_message,
)
from memeatlas.caption.backends.openai_format import (
    FORMATS,
    SCHEMA_FORMS,
    apply_format,
    auto_form,
    schema_in_form,
)
from memeatlas.caption.backends.openai_limit import AdaptiveLimit
from memeatlas.errors import BackendError
from memeatlas.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_TIMEOUT_S,
    ConnectionBrokenError,
    DeadlineError,
    HttpClient,
    HttpPolicy,
    ResponseTooLargeError,
    UnreachableError,
    parse_json,
)
from memeatlas.provenance import software

# The schema the format negotiation asks for: small, so a probe costs a few tokens.
NEGOTIATION_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
    "additionalProperties": False}
NEGOTIATION_PROMPT = 'Reply with this JSON and nothing else: {"ok": true}'


def image_data_url(image, fmt: str = "JPEG", quality: int = 90) -> str:
    """A PIL image as a `data:image/...;base64,` URL."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format=fmt, quality=quality)
    mime = "jpeg" if fmt.upper() == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_body(req: GenerationRequest, model: str, *, temperature: float, top_p: float,
               seed: int | None, schema_name: str = "annotation", fmt: str = "json_schema",
               schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chat.completions request body for one GenerationRequest.

    `schema` (default `req.json_schema`) is placed as response format `fmt`. A message
    without an image has a plain string as content: llama-cpp-python answers 500 (or drops
    the message) when a text-only message's content is a list of parts.
    """
    content: str | list[dict[str, Any]]
    if req.image is not None:
        content = [{"type": "image_url", "image_url": {"url": image_data_url(req.image)}},
                   {"type": "text", "text": req.prompt}]
    else:
        content = req.prompt
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
    sch = req.json_schema if schema is None else schema
    if sch:
        body = apply_format(body, fmt, sch, schema_name)
    return body


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _count(value: Any) -> int | None:
    """A token count from a server: an int that fits the store's INTEGER column, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2 ** 31:
        return value
    return None


class _Stop(Exception):
    """A failure that ends the run (raised out of `generate` as BackendError)."""


class OpenAIBackend(Backend):
    """Chat completions against an OpenAI-compatible server (see module docstring).

    Options: base_url, api_key_env, concurrency (most requests in flight), adaptive (follow
    the server's parallelism, default on), timeout (s for each request's whole answer,
    connecting and reading included), max_response_bytes (cap on each answer's size),
    max_retries (per
    request, temporary failures only), retry_budget (s of retrying for the whole backend),
    backoff (first wait, s; doubles, capped at 30 s), response_format (auto or one of
    openai_format.FORMATS), schema_form (auto, strict, friendly), stream (receive answers as
    server-sent events, so a request given up on is cancelled on the server: it closes the
    connection mid-answer), temperature, top_p, seed, revision (label for the annotator name;
    servers do not report model revisions).
    """

    name = "openai"
    default_model = DEFAULT_MODEL

    def __init__(self, model: str | None = None, *, base_url: str = "http://127.0.0.1:8000/v1",
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 adaptive: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, max_retries: int = 5,
                 retry_budget: float = 300.0, backoff: float = 1.0,
                 response_format: str = "auto", schema_form: str = "auto",
                 stream: bool = False, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = 0,
                 revision: str | None = None) -> None:
        if concurrency < 1:
            raise BackendError("--concurrency must be at least 1")
        if response_format != "auto" and response_format not in FORMATS:
            raise BackendError(f"unknown response_format {response_format!r}; choose auto or "
                               f"one of: {', '.join(FORMATS)}")
        if schema_form not in SCHEMA_FORMS:
            raise BackendError(f"unknown schema_form {schema_form!r}; choose one of: "
                               f"{', '.join(SCHEMA_FORMS)}")
        self.model_id = model or DEFAULT_MODEL
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._key = os.environ.get(api_key_env) or None
        self.concurrency = int(concurrency)
        self.adaptive = bool(adaptive)
        self.policy = HttpPolicy(timeout, max_response_bytes)  # range-checked
        self.timeout = self.policy.timeout
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.response_format = response_format
        self.schema_form = schema_form
        self.stream = bool(stream)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = seed
        self.revision = revision or "api"
        self.budget = RetryBudget(retry_budget)
        self.limit = AdaptiveLimit(self.concurrency, adaptive=self.adaptive)
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self._http = HttpClient(self.base_url, self.policy, headers=headers,
                                max_connections=self.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                        thread_name_prefix="memeatlas-openai")
        self._lock = threading.Lock()
        self._neg_lock = threading.Lock()
        self._rng = random.Random(0)
        self._format: str | None = None if response_format == "auto" else response_format
        self._form: str | None = None if schema_form == "auto" else schema_form
        self._owned_by: str | None = None
        self._models_checked = False
        self.models_problem: str | None = None  # what was wrong with GET /models' answer
        self.negotiation: list[dict[str, Any]] = []  # what each format probe got
        self._schemas: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.n_ok = 0
        self.n_retries = 0  # retried HTTP attempts over the backend's life (tests/benchmarks)
        self.n_requests = 0  # HTTP attempts sent

    # ------------------------------------------------------------------ provenance

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(
            backend=self.name, model=self.model_id, revision=self.revision,
            annotator=f"{self.model_id}@{self.revision}",
            config={"base_url": self.base_url, "api_key_env": self.api_key_env,
                    "concurrency": self.concurrency, "adaptive": self.adaptive,
                    "timeout": self.timeout,
                    "max_response_bytes": self.policy.max_response_bytes,
                    "max_retries": self.max_retries,
                    "retry_budget": self.budget.total, "stream": self.stream,
                    "response_format": self._format or self.response_format,
                    "schema_form": self._form or self.schema_form,
                    "server_owned_by": self._owned_by},
            software=software("httpcore"))

    @property
    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                "constrained": f"{self._format or self.response_format} "
                               f"({self._form or self.schema_form} schema)"}

    # ------------------------------------------------------------------ server discovery

    def models(self) -> list[dict[str, Any]]:
        """The server's `/models` list; BackendError when the server cannot be reached,
        answers past the deadline (at most 15 s) or past the size cap.

        An answer that is not a model list is taken as no list (the chat requests will tell),
        and said in `models_problem` (`--check-server` reports it).
        """
        try:
            resp = self._http.request("GET", "/models", timeout=min(self.timeout, 15.0))
        except UnreachableError as exc:
            raise BackendError(f"{exc}: start the OpenAI-compatible server, or pass "
                               "--base-url") from None
        except ConnectionBrokenError as exc:
            raise BackendError(f"the server at {self.base_url} did not answer GET /models "
                               f"({exc})") from None
        if resp.status in (401, 403):
            raise BackendError(self._stop_message(resp.status, server_message(resp.text)))
        if resp.status != 200:
            return []  # some servers have no /models; the chat requests will tell
        try:
            data = resp.json().get("data")
            if not isinstance(data, list):
                raise ValueError("no list under 'data'")
        except (ValueError, AttributeError) as exc:
            self.models_problem = (f"GET /models answered 200 with something that is not a "
                                   f"model list ({server_message(str(exc), 80)}): "
                                   f"{server_message(resp.text, 80)!r}")
            return []
        out = []
        for m in data:
            if isinstance(m, dict) and isinstance(m.get("id"), (str, int)):
                owner = m.get("owned_by")
                out.append({"id": str(m["id"]),
                            "owned_by": owner if isinstance(owner, str) else None})
        return out

    def _check_models(self) -> None:
        if self._models_checked:
            return
        listed = self.models()
        self._models_checked = True
        ids = [str(m.get("id")) for m in listed]
        for m in listed:
            if m.get("id") == self.model_id:
                self._owned_by = m.get("owned_by")
                break
        else:
            if listed:
                self._owned_by = listed[0].get("owned_by")
            # Not fatal: llama-cpp-python serves its one model under any name, and some
            # proxies list nothing. A server that minds says so on the first request.
            if ids:
                self.negotiation.append({"models": ids[:10]})

    def negotiate(self) -> str:
        """The response format to use (found once per backend; see module docstring)."""
        with self._neg_lock:
            if self._format is not None:
                if self._form is None:
                    self._check_models()  # the server family decides the form
                    self._form = auto_form(self._format, self._owned_by)
                return self._format
            self._check_models()
            from memeatlas.caption.schema import Validator

            check = Validator(NEGOTIATION_SCHEMA, typed=False)
            chosen = "prompt_only"
            for fmt in FORMATS[:-1]:
                req = GenerationRequest(NEGOTIATION_PROMPT, None, NEGOTIATION_SCHEMA, 48)
                body = build_body(req, self.model_id, temperature=0.0, top_p=1.0,
                                  seed=self.seed, fmt=fmt, schema_name="probe")
                res, status, msg, kind = self._attempts(body, measure=False)
                entry: dict[str, Any] = {"format": fmt, "status": status}
                if res is None:
                    entry.update(outcome=kind, message=msg)
                    self.negotiation.append(entry)
                    if kind == "format" or (kind == "rejected" and status in (400, 422, 500)):
                        continue  # this server does not take that format; try the next
                    if kind in ("unreachable", "too_large"):
                        raise BackendError(msg)
                    raise BackendError(self._stop_message(status, msg, during=fmt))
                try:
                    check(res.text)
                except Exception:  # noqa: BLE001 - any invalid answer counts the same
                    # An enforced 3-token schema ends well within the probe's 48 tokens: an
                    # invalid (or cut-off) answer means the field was ignored.
                    entry.update(outcome="ignored", answer=res.text[:80])
                    self.negotiation.append(entry)
                    continue
                entry.update(outcome="accepted")
                self.negotiation.append(entry)
                chosen = fmt
                break
            self._format = chosen
            if self._form is None:
                self._form = auto_form(chosen, self._owned_by)
            return chosen

    def schema_for(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The schema as this backend sends it (its negotiated form)."""
        self.negotiate()
        key = id(schema)
        hit = self._schemas.get(key)
        if hit is None or hit[0] is not schema:
            hit = (schema, schema_in_form(schema, self._form or "strict"))
            self._schemas[key] = hit
        return hit[1]

    def prepare(self, schema: dict[str, Any] | None, *, vision_check: bool = True
                ) -> dict[str, Any]:
        """Negotiate, optionally probe vision; returns the run's decoding plan.

        Keys: `schema` (what is sent and hashed), `form` (strict/friendly), `format`,
        `vision` (probe result or None). Raises BackendError for a server that cannot be
        used: unreachable, rejecting every request, or (vision_check) blind.
        """
        if schema is not None:
            self.negotiate()
        else:
            self._check_models()
        plan: dict[str, Any] = {"format": self._format, "form": self._form,
                                "schema": self.schema_for(schema) if schema else None,
                                "vision": None}
        if vision_check:
            from memeatlas.caption.probe import answer_excerpt

            vis = self.vision_probe()
            plan["vision"] = vis
            if not vis["passed"]:
                got = (f"the image request failed: {answer_excerpt(vis['error'], 160)}"
                       if vis["error"] else f"it answered {answer_excerpt(vis['answer'])!r}")
                raise BackendError(
                    f"the model {self.model_id!r} at {self.base_url} could not read the word "
                    f"{vis['word']!r} in a test image ({got}): it is text-only or the server "
                    f"drops images, so its annotations would be invented. Serve a vision "
                    f"model, or pass --no-vision-check to caption anyway")
        return plan

    def vision_probe(self, seed: int | None = None) -> dict[str, Any]:
        """One request with a generated image whose word is known; did the model read it?"""
        from memeatlas.caption.probe import PROBE_PROMPT, PROBE_SCHEMA, probe_image, read_word

        p = probe_image(seed)
        t0 = time.perf_counter()
        schema = self.schema_for(PROBE_SCHEMA) if self._format != "prompt_only" else None
        req = GenerationRequest(PROBE_PROMPT, p.image, schema, 24)
        try:
            res = self._one(req, fmt=self._format or "prompt_only", measure=False)
        except _Stop as exc:
            # A text-only server often rejects the image itself (llama-cpp-python renders the
            # data URL as text and overflows the context): that is a failed probe too.
            res = GenerationResult("", False, error=str(exc))
        return {"word": p.word, "answer": res.text or (res.error or ""),
                "passed": res.error is None and read_word(res.text, p.word),
                "error": res.error, "seconds": round(time.perf_counter() - t0, 3)}

    # ------------------------------------------------------------------ requests

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Send all requests (in flight: see `AdaptiveLimit`); results in request order.

        Raises BackendError when the server rejects requests permanently before any
        succeeded (wrong shape, model or key): the run stops instead of storing failures.
        """
        if any(r.json_schema for r in requests):
            self.negotiate()
        try:
            return list(self._pool.map(self._one, requests))
        except _Stop as exc:
            raise BackendError(str(exc)) from None

    def _one(self, req: GenerationRequest, fmt: str | None = None, measure: bool = True
             ) -> GenerationResult:
        fmt = fmt or self._format or "json_schema"
        schema = self.schema_for(req.json_schema) if req.json_schema else None
        body = build_body(req, self.model_id, temperature=self.temperature, top_p=self.top_p,
                          seed=self.seed, fmt=fmt, schema=schema)
        t0 = time.perf_counter()
        res, status, msg, kind = self._attempts(body, measure)
        if res is not None:
            if res.error is None:  # a malformed answer does not show the server works
                with self._lock:
                    self.n_ok += 1
            return res
        if kind == "too_large" and not self.n_ok:
            raise _Stop(msg)  # the message says what and how to change it
        if kind in ("auth", "not_found", "unreachable") or (
                kind in ("rejected", "format") and not self.n_ok):
            raise _Stop(self._stop_message(status, msg))
        return GenerationResult("", False, latency_ms=(time.perf_counter() - t0) * 1000,
                                error=_redact(msg, self._key))

    def _attempts(self, body: dict[str, Any], measure: bool = True
                  ) -> tuple[GenerationResult | None, int | None, str, str]:
        """POST with retries of temporary failures: (result or None, status, message, class).

        `measure=False` keeps the request's latency out of the concurrency estimate (the
        negotiation's three-token probes are not comparable with real requests).
        """
        t0 = time.perf_counter()
        attempt = 0
        while True:
            wait_hint = None
            status: int | None = None
            t_try = time.perf_counter()
            with self.limit.slot() as slot:
                with self._lock:
                    self.n_requests += 1
                try:
                    if self.stream:
                        status, text, headers, res = self._post_stream(body, t0)
                    else:
                        resp = self._http.request("POST", "/chat/completions", json_body=body)
                        # The text only for an error: an 8 MB answer need not be decoded twice.
                        status, headers = resp.status, resp.headers
                        text = resp.text if status != 200 else ""
                        res = self._parse(resp, t0) if status == 200 else None
                except ResponseTooLargeError as exc:
                    # Permanent: the same request would get the same answer.
                    return None, None, _redact(str(exc), self._key), "too_large"
                except (DeadlineError, ConnectionBrokenError, UnreachableError) as exc:
                    kind = "temporary"
                    msg = str(exc)
                    if isinstance(exc, UnreachableError) and not self.n_ok:
                        # Nothing ever answered: a server that is not there, not a hiccup.
                        return None, None, _redact(msg, self._key), "unreachable"
                else:
                    if status == 200:
                        if measure:
                            slot.ok(res.tokens_out)  # per generated token: lengths differ
                        return res, 200, "", "ok"
                    msg = server_message(text)
                    kind = classify(status, msg)
                    wait_hint = headers.get("retry-after")
            if kind != "temporary":
                return None, status, _redact(f"HTTP {status}: {msg}", self._key), kind
            label = f"HTTP {status}: {msg}" if status else msg
            if attempt >= self.max_retries:
                return None, status, _redact(
                    f"gave up after {attempt + 1} attempt(s): {label}", self._key), "temporary"
            wait = backoff_wait(attempt, self.backoff, wait_hint, self._rng)
            if not self.budget.take(wait + (time.perf_counter() - t_try)):
                return None, status, _redact(
                    f"retry budget ({self.budget.total:g} s) spent; last error: {label}",
                    self._key), "temporary"
            with self._lock:
                self.n_retries += 1
            time.sleep(wait)
            attempt += 1

    def _stop_message(self, status: int | None, msg: str, during: str | None = None) -> str:
        if status is None:
            return _redact(f"{msg} (is the server running? check --base-url)", self._key)
        what = f"the server at {self.base_url}"
        if status in (401, 403):
            hint = (f"check the key in ${self.api_key_env}" if self._key else
                    f"set ${self.api_key_env} (or pass --api-key-env NAME)")
        elif status == 404:
            hint = f"check --base-url (it usually ends in /v1) and --model {self.model_id!r}"
        else:
            hint = ("a permanent rejection, so the run stops; see docs/servers.md for "
                    "--response-format, --schema-form and --max-pixels")
        text = msg if msg.startswith("HTTP") else f"HTTP {status}: {msg}"
        step = f" while trying response format {during}" if during else ""
        return _redact(f"{what} rejected the request{step}: {text} ({hint})", self._key)

    def _post_stream(self, body: dict[str, Any], t0: float):
        """POST with `stream: true`; (status, error text, headers, result).

        The whole answer must arrive within `timeout` and the size cap (memeatlas.http); past
        either the connection is closed, which makes servers that watch for disconnects
        (vLLM, llama.cpp, llama-cpp-python) stop computing an answer nobody will read.
        """
        parts: list[str] = []
        finish = None
        usage: dict[str, Any] = {}
        n_chunks = n_events = 0
        first_line = None
        with self._http.stream("POST", "/chat/completions",
                               json_body={**body, "stream": True}) as resp:
            if resp.status != 200:
                text = resp.read().decode("utf-8", "replace")
                return resp.status, text, resp.headers, None
            for line in resp.lines():
                if not line.startswith("data:"):
                    if first_line is None and line.strip():
                        first_line = line[:200]
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    n_events += 1
                    break
                try:
                    chunk = parse_json(payload)
                except ValueError:
                    continue
                if not isinstance(chunk, dict):
                    continue
                n_events += 1
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                choices = chunk.get("choices")
                for ch in choices if isinstance(choices, list) else []:
                    if not isinstance(ch, dict):
                        continue
                    delta = ch.get("delta")
                    piece = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(piece, str) and piece:
                        parts.append(piece)
                        n_chunks += 1
                    if isinstance(ch.get("finish_reason"), str):
                        finish = ch["finish_reason"]
        ms = (time.perf_counter() - t0) * 1000
        if not n_events:  # not server-sent events at all
            return 200, "", resp.headers, GenerationResult(
                (first_line or "")[:2000], False, latency_ms=ms,
                error=f"malformed response: no server-sent 'data:' events in the stream "
                      f"(it begins {server_message(first_line or '', 60)!r})")
        res = GenerationResult(text="".join(parts), finished=finish == "stop",
                               tokens_in=_count(usage.get("prompt_tokens")),
                               tokens_out=_count(usage.get("completion_tokens")) or n_chunks,
                               latency_ms=ms)
        return 200, "", resp.headers, res

    def _parse(self, resp, t0: float) -> GenerationResult:
        """A non-streamed answer as a GenerationResult (its shape checked)."""
        ms = (time.perf_counter() - t0) * 1000
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"content is a {type(text).__name__}, not a string")
            usage = data.get("usage") or {}
            if not isinstance(usage, dict):
                usage = {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            head = resp.body[:2000].decode("utf-8", "replace")  # not the whole 8 MB
            return GenerationResult(head, False, latency_ms=ms,
                                    error=f"malformed response: {server_message(str(exc), 120)}"
                                          f" (it begins {server_message(head, 60)!r})")
        finish = choice.get("finish_reason")
        return GenerationResult(text=text, finished=finish == "stop",
                                tokens_in=_count(usage.get("prompt_tokens")),
                                tokens_out=_count(usage.get("completion_tokens")), latency_ms=ms)

    # ------------------------------------------------------------------ --check-server

    def check(self, *, vision: bool = True) -> dict[str, Any]:
        """Everything `--check-server` prints: models, formats, schema form, vision, latency.

        `problems` lists what makes the server unusable (an answer to GET /models that is not
        a model list, a failed or malformed text request, a failed vision probe); the
        commands exit 1 when it is not empty.
        """
        t0 = time.perf_counter()
        models = self.models()
        self._models_checked = True
        for m in models:
            if m.get("id") == self.model_id:
                self._owned_by = m.get("owned_by")
        if self._owned_by is None and models:
            self._owned_by = models[0].get("owned_by")
        report: dict[str, Any] = {"base_url": self.base_url, "model": self.model_id,
                                  "models": [m.get("id") for m in models[:50]],
                                  "n_models": len(models),
                                  "owned_by": self._owned_by,
                                  "models_s": round(time.perf_counter() - t0, 3)}
        t = time.perf_counter()
        report["response_format"] = self.negotiate()
        report["schema_form"] = self._form
        report["negotiation"] = list(self.negotiation)
        report["negotiation_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        [res] = self.generate([GenerationRequest(NEGOTIATION_PROMPT, None, None, 8)])
        report["text_request"] = {"ok": res.error is None, "error": res.error,
                                  "latency_s": round(time.perf_counter() - t, 3),
                                  "tokens_out": res.tokens_out}
        problems = [self.models_problem] if self.models_problem else []
        if res.error is not None:
            problems.append(f"the text request failed: {res.error}")
        if vision:
            report["vision"] = vis = self.vision_probe()
            if not vis["passed"]:
                problems.append(f"the vision probe failed: asked for {vis['word']!r}, got "
                                f"{server_message(str(vis['answer']), 60)!r}")
        report["problems"] = problems
        return json.loads(json.dumps(report, default=str))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()
