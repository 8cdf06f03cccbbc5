"""One policy for every call memeatlas makes to a model server: a size cap and one deadline.

    from memeatlas.http import HttpClient, HttpPolicy
    client = HttpClient("http://127.0.0.1:8000/v1", HttpPolicy(timeout=30))
    answer = client.request("GET", "/models")          # Answer: status, headers, body
    with client.stream("POST", "/chat/completions", json_body=body) as s:
        for line in s.lines(): ...

A server is trusted with nothing (issue 23: an endless body grew a caption run by 190 MB/s, a
server dripping one byte every 0.5 s was never timed out):

- **One deadline per request.** `timeout` seconds from the call to the last byte: waiting for a
  connection, connecting, sending, the headers and the whole body. httpx's and httpcore's
  timeouts apply to each socket operation, so a drip never trips them; here every socket
  operation gets what is left of the request's deadline as its own timeout, and none starts
  once it has passed (`_DeadlineBackend`, under httpcore's connection pool). Past it:
  `DeadlineError` "… took longer than N s".
- **A size cap.** The body is read in chunks (never whole first) and reading stops at
  `max_response_bytes`: `ResponseTooLargeError` "response too large (> N bytes) from URL". A
  Content-Length over the cap is refused before reading. memeatlas asks for an uncompressed
  answer; a gzip/deflate one is counted after decompression, decompressed in bounded steps (a
  10 kB gzip bomb cannot become gigabytes); other encodings are refused. Headers are bounded by
  h11 (100 kB).
- **Parsing.** `parse_json` turns nesting too deep for the parser into ValueError, and parses
  bodies over 1 MiB one at a time in the process: 8 MiB of `{},` are ~200 MB as Python
  objects, so eight at once would not stay within a few hundred MB.
- **Printing.** `printable` is what of a server's text may reach a terminal: one line, no
  control or format characters.

The errors are BackendError subclasses with one-line messages naming the URL, the limit and the
options that set it. A foundation module: it imports only memeatlas.errors (and httpcore,
lazily). Proxies from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) are honoured.
"""

from __future__ import annotations

import contextvars
import json
import math
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from memeatlas.errors import BackendError, InputError

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
TIMEOUT_RANGE = (0.1, 86_400.0)  # seconds: a tenth of a second to a day
MAX_RESPONSE_BYTES_RANGE = (1024, 1024 ** 3)  # 1 KiB to 1 GiB
# How a user sets each limit, named in the errors (the same backend serves both commands).
TIMEOUT_HOW = "caption -o timeout=SECONDS, label --timeout SECONDS"
SIZE_HOW = "caption -o max_response_bytes=N, label --max-response-bytes N"

_CHUNK = 64 * 1024  # most bytes one read or one decompression step yields
_BIG_JSON = 1024 * 1024
_BIG_PARSE = threading.Lock()
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "memeatlas_http_deadline", default=None)


class ResponseTooLargeError(BackendError):
    """A server's answer went past `max_response_bytes` (reading stopped there)."""


class DeadlineError(BackendError):
    """A server's whole answer did not arrive within the request's deadline."""


class UnreachableError(BackendError):
    """Nothing could connect to the server (refused, no route, bad host)."""


class ConnectionBrokenError(BackendError):
    """The connection broke or the server broke HTTP mid-answer (worth a retry)."""


def _number(value: Any, name: str, lo: float, hi: float, unit: str, integer: bool) -> float:
    """`value` as a number within [lo, hi], else InputError naming the range."""
    what = f"{name} must be {'a whole number' if integer else 'a number'} of {unit} " \
           f"from {lo:g} to {hi:g}"
    if isinstance(value, bool):
        raise InputError(f"{what}, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what}, got {value!r}") from None
    if not math.isfinite(x) or not lo <= x <= hi or (integer and x != int(x)):
        raise InputError(f"{what}, got {value!r}")
    return x


@dataclass(frozen=True)
class HttpPolicy:
    """The limits every request of a client obeys (see the module docstring)."""

    timeout: float = DEFAULT_TIMEOUT_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        # Checked with their ranges here, so no client can start with a limit it cannot keep.
        t = _number(self.timeout, "timeout", *TIMEOUT_RANGE, "seconds", integer=False)
        n = _number(self.max_response_bytes, "max_response_bytes", *MAX_RESPONSE_BYTES_RANGE,
                    "bytes", integer=True)
        object.__setattr__(self, "timeout", t)
        object.__setattr__(self, "max_response_bytes", int(n))


def printable(text: Any, limit: int = 300) -> str:
    """A server's text made safe to print: one line, control and format characters (ESC,
    BEL, NUL, bidi overrides, lone surrogates) replaced by spaces, cut at `limit`."""
    s = str(text)
    s = s[:4 * limit + 64]  # an 8 MB answer is cut before it is looked at, not after
    s = " ".join("".join(ch if ch.isprintable() else " " for ch in s).split())
    return s[:limit] + "…" if len(s) > limit else s


def parse_json(data: bytes | bytearray | str) -> Any:
    """JSON from a server; ValueError for anything that is not JSON (too deep included)."""
    try:
        if len(data) > _BIG_JSON:
            with _BIG_PARSE:  # one big parse at a time: Python objects cost ~25x the bytes
                return json.loads(data)
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# ---------------------------------------------------------------------------- deadline


def _left(timeout: float | None, exc: type[Exception]) -> float | None:
    """The timeout for the next socket operation: what is left of the request's deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


def _deadline_backend():
    """An httpcore network backend whose every socket operation ends by the deadline."""
    import httpcore

    class _Stream(httpcore.NetworkStream):
        def __init__(self, inner) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            # In pieces, so a server that reads slowly is also held to the deadline.
            view = memoryview(buffer)
            for i in range(0, len(view), _CHUNK):
                self._inner.write(view[i:i + _CHUNK], _left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return _Stream(self._inner.start_tls(
                ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class _Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.SyncBackend()

        def connect_tcp(self, host, port, timeout=None, local_address=None,
                        socket_options=None):
            return _Stream(self._inner.connect_tcp(
                host, port, _left(timeout, httpcore.ConnectTimeout), local_address,
                socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return _Stream(self._inner.connect_unix_socket(
                path, _left(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return _Backend()


# ---------------------------------------------------------------------------- answers


@dataclass
class Answer:
    """A whole (capped) answer: status, headers (lower-case names), body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return parse_json(self.body)


class Streamed:
    """An answer being read: `status`, `headers`, then `chunks()`, `lines()` or `read()`."""

    def __init__(self, resp, url: str, policy: HttpPolicy) -> None:
        self.status: int = resp.status
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in resp.headers}
        self.url = url
        self._resp = resp
        self._cap = policy.max_response_bytes
        length = self.headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > self._cap:
            raise self._too_large()  # refused before a byte of the body is read
        enc = self.headers.get("content-encoding", "identity").strip().lower()
        if enc in ("", "identity"):
            self._decoder = None
        elif enc in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(47)  # gzip or zlib header, detected
        else:
            raise BackendError(f"the server at {url} answered with Content-Encoding "
                               f"{printable(enc, 40)}, which memeatlas does not decode (it "
                               "asks for an uncompressed answer)")

    def _too_large(self) -> ResponseTooLargeError:
        return ResponseTooLargeError(
            f"response too large (> {self._cap} bytes) from {self.url}; reading stopped there "
            f"(raise the cap with {SIZE_HOW})")

    def chunks(self) -> Iterator[bytes]:
        """The body (decoded) in chunks; ResponseTooLargeError past the cap."""
        total = 0
        for raw in self._resp.iter_stream():
            pieces = [raw]
            if self._decoder is not None:
                pieces = []
                buf = raw
                while buf:
                    try:
                        out = self._decoder.decompress(buf, _CHUNK)
                    except zlib.error as exc:
                        raise ConnectionBrokenError(
                            f"the server at {self.url} sent a body that does not decompress "
                            f"({exc})") from None
                    pieces.append(out)
                    total += len(out)
                    if total > self._cap:
                        raise self._too_large()
                    buf = self._decoder.unconsumed_tail
                yield from pieces
                continue
            total += len(raw)
            if total > self._cap:
                raise self._too_large()
            yield raw

    def read(self) -> bytes:
        """The whole body (within the cap)."""
        buf = bytearray()
        for c in self.chunks():
            buf += c
        return bytes(buf)

    def lines(self) -> Iterator[str]:
        """The body's lines (server-sent events), decoded as UTF-8, without line ends."""
        buf = bytearray()  # grown in place: a body without newlines is not copied per chunk
        for c in self.chunks():
            buf += c
            start = 0
            while (end := buf.find(b"\n", start)) >= 0:
                yield buf[start:end].rstrip(b"\r").decode("utf-8", "replace")
                start = end + 1
            del buf[:start]
        if buf:
            yield buf.rstrip(b"\r").decode("utf-8", "replace")


# ---------------------------------------------------------------------------- client


def _ssl_context():
    import ssl

    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # the system's CA store
        return ssl.create_default_context()


class HttpClient:
    """Requests to one server under one `HttpPolicy` (see the module docstring).

    Thread-safe: requests may run from many threads at once (up to `max_connections` open
    connections, the others wait for one within their deadline).
    """

    def __init__(self, base_url: str, policy: HttpPolicy | None = None, *,
                 headers: dict[str, str] | None = None, max_connections: int = 8) -> None:
        import urllib.parse
        import urllib.request

        import httpcore

        self.base_url = base_url.rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"the server URL must start with http:// or https:// and name a "
                             f"host, got {printable(base_url, 80)!r}")
        self.policy = policy or HttpPolicy()
        self._headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in {
            "Accept-Encoding": "identity", "Accept": "application/json, text/event-stream",
            **(headers or {})}.items()]
        kw: dict[str, Any] = dict(
            ssl_context=_ssl_context() if parts.scheme == "https" else None,
            max_connections=max_connections, max_keepalive_connections=max_connections,
            keepalive_expiry=5.0, network_backend=_deadline_backend())
        proxy = None if urllib.request.proxy_bypass(parts.hostname) else (
            urllib.request.getproxies().get(parts.scheme))
        self._pool = (httpcore.HTTPProxy(proxy_url=proxy, **kw) if proxy
                      else httpcore.ConnectionPool(**kw))

    def url(self, path: str) -> str:
        """`path` under the base URL ("/models" → "http://host/v1/models")."""
        return self.base_url + path

    @contextmanager
    def stream(self, method: str, path: str, *, json_body: Any = None,
               timeout: float | None = None) -> Iterator[Streamed]:
        """Send a request; yields the answer to read within the deadline and the cap.

        `timeout` (at most the policy's) shortens this request's deadline. Raises
        DeadlineError, UnreachableError, ConnectionBrokenError or ResponseTooLargeError.
        """
        import httpcore

        url = self.url(path)
        seconds = min(timeout, self.policy.timeout) if timeout else self.policy.timeout
        headers = list(self._headers)
        content = b""
        if json_body is not None:
            content = json.dumps(json_body).encode("utf-8")
            headers.append((b"Content-Type", b"application/json"))
        token = _DEADLINE.set(time.monotonic() + seconds)
        try:
            with self._pool.stream(method, url, headers=headers, content=content,
                                   extensions={"timeout": dict.fromkeys(
                                       ("connect", "read", "write", "pool"), seconds)}) as resp:
                yield Streamed(resp, url, self.policy)
        except httpcore.TimeoutException:
            raise DeadlineError(
                f"{method} {url} took longer than {seconds:g} s (the deadline covers the "
                f"whole answer; raise it with {TIMEOUT_HOW})") from None
        except httpcore.ConnectError as exc:
            why = printable(exc, 120) or "connection failed"
            raise UnreachableError(f"cannot connect to {url} ({why})") from None
        except httpcore.UnsupportedProtocol as exc:
            raise InputError(f"cannot send a request to {url}: {printable(exc, 120)}") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError) as exc:
            raise ConnectionBrokenError(
                f"the connection to {url} broke ({type(exc).__name__}: "
                f"{printable(exc, 160)})") from None
        finally:
            _DEADLINE.reset(token)

    def request(self, method: str, path: str, *, json_body: Any = None,
                timeout: float | None = None) -> Answer:
        """The whole answer, read within the deadline and the cap (errors as `stream`)."""
        with self.stream(method, path, json_body=json_body, timeout=timeout) as s:
            body = s.read()
        return Answer(s.status, s.headers, body, s.url)

    def close(self) -> None:
        self._pool.close()
