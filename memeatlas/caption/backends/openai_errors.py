"""What an OpenAI-compatible server's failure means: retry it, try another format, or stop.

Classes (`classify`):

- ``temporary``: timeouts, connection drops, 408, 429, 502/503/504, and a 500 whose message
  says the server is overloaded (busy, out of memory, capacity). Retried with backoff within
  the per-request attempt limit and the run's total `RetryBudget`.
- ``format``: a 400/422/500 about the request's response format: the negotiation tries the
  next format.
- ``auth`` (401/403) and ``not_found`` (404: wrong URL or model): the run stops.
- ``rejected``: any other 4xx, and a 500 that is not an overload (llama-cpp-python answers a
  request it cannot parse with 500): permanent; retrying sends the same request again. Before
  the first success the run stops with the server's message; afterwards it is that meme's
  failure.
"""

from __future__ import annotations

import re
import threading

from memeatlas.http import parse_json, printable

TEMPORARY_STATUS = {408, 429, 502, 503, 504}
_OVERLOAD = re.compile(r"overload|busy|capacity|out of memory|\boom\b|try again|temporar|"
                       r"too many|queue (?:is )?full|unavailable|rate limit", re.IGNORECASE)


def server_message(text: str, limit: int = 300) -> str:
    """The human part of an error body (OpenAI, vLLM, Ollama, FastAPI shapes): one line, no
    control characters, at most `limit` characters."""
    msg = text
    try:
        # An error body is short; a long one is not parsed (it could be megabytes of objects).
        data = parse_json(text) if len(text) <= 64 * 1024 else None
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            msg = str(err["message"])
        elif isinstance(err, str):
            msg = err  # Ollama's native shape
        elif data.get("message"):
            msg = str(data["message"])  # vLLM's {"object": "error", "message": ...}
        elif data.get("detail"):
            det = data["detail"]  # FastAPI validation errors
            if isinstance(det, list):
                msg = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                                for d in det)
            else:
                msg = str(det)
    return printable(msg, limit)  # a server's bytes never reach the terminal raw


def classify(status: int, message: str) -> str:
    """temporary, format, auth, not_found or rejected (see the module docstring)."""
    from memeatlas.caption.backends.openai_format import names_format

    if status in TEMPORARY_STATUS:
        return "temporary"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status >= 500:
        if _OVERLOAD.search(message or ""):
            return "temporary"
        return "format" if names_format(message) else "rejected"
    if status in (400, 422) and names_format(message):
        return "format"
    return "rejected"


class RetryBudget:
    """Seconds a run may spend waiting on temporary failures, over all its requests.

    Each retry's backoff and the failed attempt's own duration are charged; once spent,
    temporary failures fail at once (the meme lands in caption_failures, the run goes on).
    """

    def __init__(self, seconds: float) -> None:
        self.total = float(seconds)
        self.spent = 0.0
        self._lock = threading.Lock()

    def take(self, seconds: float) -> bool:
        """Charge `seconds`; False (nothing charged) when that would exceed the budget."""
        with self._lock:
            if self.spent + seconds > self.total:
                return False
            self.spent += seconds
            return True

    @property
    def left(self) -> float:
        with self._lock:
            return max(0.0, self.total - self.spent)


def backoff_wait(attempt: int, first: float, retry_after: str | None, rng) -> float:
    """Seconds before retry `attempt` (0-based): Retry-After if given, else jittered doubling."""
    if retry_after:
        try:
            return min(float(retry_after), 60.0)
        except ValueError:
            pass
    return min(30.0, first * 2 ** attempt) * (0.5 + rng.random() / 2)
