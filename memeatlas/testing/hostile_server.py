"""A hostile OpenAI-compatible server on 127.0.0.1, for tests and benchmarks/hostile_servers.py.

    with HostileServer(chat="endless", models="ok") as srv:
        ...  # point caption/label at srv.url

Each endpoint (`GET /models`, `POST /chat/completions`, streamed or not) answers in one of
`MODES`:

    ok            a well-formed answer: the chat content is `answer` (a list: one after the
                  other), `{"ok": true}` to memeatlas's format probe; a one-model list
    endless       200, chunked, an endless body as fast as the socket takes it
    endless_sse   200, an endless stream of valid `data:` events (each a few tokens)
    drip          200 with headers, then one byte of the answer every `drip_s` (0.5 s)
    drip_headers  the status line and headers themselves one byte every `drip_s`
    stall         accepts the request and sends nothing
    garbage       200, 4 kB of random bytes with ESC, BEL and NUL among them
    huge_json     200, a valid chat answer whose content is 10 MB (finish_reason "length",
                  no usage), or a models list of 10 MB
    many_objects  200, 7 MB of `{},` inside an otherwise valid answer (Python objects: ~25x)
    deep          200, JSON nested 200,000 levels deep
    gzip_bomb     200, Content-Encoding gzip: 100 kB that inflate to 100 MB
    big_length    200 with Content-Length 10^12 (and a few bytes)
    error_control 500 whose error message holds ESC, BEL, NUL and a terminal title sequence

Bounded: every answer ends after `limit_s` seconds (default 60) or when the client goes
away, and the server answers at most `max_requests` requests (default 200; later ones are
closed at once). `n_requests` counts what it was asked; `held_s` holds how long each answered
request was held open (until the answer ended or the client went away).
"""

from __future__ import annotations

import gzip
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "endless", "endless_sse", "drip", "drip_headers", "stall", "garbage",
         "huge_json", "many_objects", "deep", "gzip_bomb", "big_length", "error_control")
PROBE_MARK = 'Reply with this JSON and nothing else: {"ok": true}'  # the format probe's prompt
GARBAGE_CONTROL = b"\x1b[31m\x07\x00\x1b]0;pwned\x07"


_BOMB: list[bytes] = []


def _gzip_bomb() -> bytes:
    """100 MB of zeros gzipped (~100 kB), made once."""
    if not _BOMB:
        _BOMB.append(gzip.compress(b"\0" * (100 * 1024 * 1024), compresslevel=9))
    return _BOMB[0]


def _chat(content: str, finish: str | None = "stop", usage: bool = True) -> dict:
    out: dict = {"id": "cmpl-1", "object": "chat.completion", "model": "hostile",
                 "choices": [{"index": 0, "finish_reason": finish,
                              "message": {"role": "assistant", "content": content}}]}
    if usage:
        out["usage"] = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return out


def _event(content: str, finish: str | None = None) -> bytes:
    chunk = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": "hostile",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up mid-answer is what these tests make happen


class HostileServer:
    """See the module docstring."""

    def __init__(self, chat: str = "ok", models: str = "ok", *,
                 answer: str | list[str] = '{"ok": true}', drip_s: float = 0.5,
                 limit_s: float = 60.0,
                 max_requests: int = 200, seed: int = 0) -> None:
        assert chat in MODES and models in MODES, (chat, models)
        self.chat, self.models = chat, models
        self.answers = [answer] if isinstance(answer, str) else list(answer)
        self.n_answered = 0
        self.drip_s, self.limit_s, self.max_requests = drip_s, limit_s, max_requests
        self.n_requests = 0
        self.bodies: list[dict] = []
        self.held_s: list[float] = []
        if "gzip_bomb" in (chat, models):
            _gzip_bomb()  # made before serving: it takes a second or two
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):
                if not outer._count():
                    return
                t0 = time.monotonic()
                if self.path.rstrip("/").endswith("/models"):
                    outer._answer(self, outer.models, stream=False, kind="models")
                else:
                    outer._raw(self, 404, b'{"error": {"message": "not found"}}')
                outer._held(t0)

            def do_POST(self):
                if not outer._count():
                    return
                t0 = time.monotonic()
                n = int(self.headers.get("Content-Length") or 0)
                body = {}
                if 0 < n <= 64 * 1024 * 1024:
                    try:
                        body = json.loads(self.rfile.read(n))
                    except ValueError:
                        body = {}
                with outer._lock:
                    outer.bodies.append(body)
                outer._answer(self, outer.chat, stream=bool(body.get("stream")), kind="chat",
                              body=body)
                outer._held(t0)

        self.httpd = _Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ bookkeeping

    def _count(self) -> bool:
        with self._lock:
            self.n_requests += 1
            return self.n_requests <= self.max_requests

    def _held(self, t0: float) -> None:
        with self._lock:
            self.held_s.append(time.monotonic() - t0)

    def _live(self, t0: float) -> bool:
        return not self._stop.is_set() and time.monotonic() - t0 < self.limit_s

    # ------------------------------------------------------------------ answers

    def _content(self, body: dict | None) -> str:
        """What the model 'writes': `{"ok": true}` to the format probe, else the answers."""
        msgs = (body or {}).get("messages") or [{}]
        if PROBE_MARK in str(msgs[0].get("content") if isinstance(msgs[0], dict) else ""):
            return '{"ok": true}'
        with self._lock:
            self.n_answered += 1
            return self.answers[(self.n_answered - 1) % len(self.answers)]

    def _well_formed(self, kind: str, stream: bool, body: dict | None = None
                     ) -> tuple[bytes, str]:
        if kind == "models":
            return json.dumps({"object": "list", "data": [
                {"id": "hostile", "object": "model", "owned_by": "hostile"}]}).encode(), \
                "application/json"
        content = self._content(body)
        if stream:
            return _event(content) + _event("", "stop") + b"data: [DONE]\n\n", \
                "text/event-stream"
        return json.dumps(_chat(content)).encode(), "application/json"

    def _raw(self, h, status: int, data: bytes, ctype: str = "application/json",
             extra: dict[str, str] | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            pass

    def _chunked(self, h, pieces, ctype: str = "application/json") -> None:
        """A chunked body from the iterator `pieces` (ends when it does or the client goes)."""
        try:
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for p in pieces:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except OSError:
            pass  # the client gave up: that is the point
        h.close_connection = True

    def _answer(self, h, mode: str, *, stream: bool, kind: str, body: dict | None = None
                ) -> None:
        t0 = time.monotonic()
        if mode == "ok":
            data, ctype = self._well_formed(kind, stream, body)
            return self._raw(h, 200, data, ctype)
        if mode == "endless":
            block = b"x" * 65536 if not stream else _event("x" * 4000) * 16

            def endless():
                while self._live(t0):
                    yield block
            return self._chunked(h, endless())
        if mode == "endless_sse":
            ev = _event("ab")

            def events():
                while self._live(t0):
                    yield ev * 64
            return self._chunked(h, events(), "text/event-stream")
        if mode == "drip":
            data, ctype = self._well_formed(kind, stream, body)

            def drip():
                for i in range(len(data)):
                    if not self._live(t0):
                        return
                    yield data[i:i + 1]
                    time.sleep(self.drip_s)
            return self._chunked(h, drip(), ctype)
        if mode == "drip_headers":
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + \
                b"".join(b"X-Pad-%d: %s\r\n" % (i, b"y" * 40) for i in range(1000))
            try:
                for i in range(len(head)):
                    if not self._live(t0):
                        break
                    h.wfile.write(head[i:i + 1])
                    h.wfile.flush()
                    time.sleep(self.drip_s)
            except OSError:
                pass
            h.close_connection = True
            return
        if mode == "stall":
            while self._live(t0):
                time.sleep(0.05)
                try:  # a client that went away: stop waiting
                    if h.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    break
            h.close_connection = True
            return
        if mode == "garbage":
            data = bytes(self._rng.randrange(256) for _ in range(4000)) + GARBAGE_CONTROL
            return self._raw(h, 200, data, "application/json")
        if mode == "huge_json":
            if kind == "models":
                models = [{"id": f"m{i:07d}" + "z" * 60, "owned_by": "x"} for i in range(120_000)]
                data = json.dumps({"object": "list", "data": models}).encode()
            else:
                data = json.dumps(_chat("a" * 10_000_000, "length", usage=False)).encode()
            return self._raw(h, 200, data)
        if mode == "many_objects":
            filler = b"{}," * (7 * 1024 * 1024 // 3)
            if kind == "models":
                data = b'{"object": "list", "data": [' + filler + b'{"id": "m"}]}'
            else:
                data = json.dumps(_chat(self._content(body))).encode()[:-1] + \
                    b', "x": [' + filler + b"0]}"
            return self._raw(h, 200, data)
        if mode == "deep":
            return self._raw(h, 200, b"[" * 200_000 + b"]" * 200_000)
        if mode == "gzip_bomb":
            data = _gzip_bomb()
            return self._raw(h, 200, data, extra={"Content-Encoding": "gzip"})
        if mode == "big_length":
            try:
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(10 ** 12))
                h.end_headers()
                h.wfile.write(b'{"data": [')
                h.wfile.flush()
            except OSError:
                pass
            h.close_connection = True
            return
        if mode == "error_control":
            msg = "overheated \x1b[2J\x1b]0;pwned\x07 \x00 core dumped"
            return self._raw(h, 500, json.dumps({"error": {"message": msg}}).encode())
        raise AssertionError(mode)

    # ------------------------------------------------------------------ lifetime

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    """`python -m memeatlas.testing.hostile_server CHAT [MODELS]`: serve until killed (or
    `--seconds`), printing the URL on the first line (for subprocess measurements)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chat", choices=MODES)
    ap.add_argument("models", nargs="?", default="ok", choices=MODES)
    ap.add_argument("--answer", default='{"ok": true}')
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--limit-s", type=float, default=60.0)
    a = ap.parse_args()
    with HostileServer(a.chat, a.models, answer=a.answer, limit_s=a.limit_s) as srv:
        print(srv.url, flush=True)
        time.sleep(a.seconds)


if __name__ == "__main__":
    main()
