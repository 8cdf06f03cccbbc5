"""`--check-server`: what an OpenAI-compatible server supports, without captioning anything.

    from memeatlas.caption.server_check import check_server
    report = check_server(model="qwen2.5-vl", base_url="http://gpu:8000/v1")

Runs the probes the openai backend runs before a caption or naming run (models list,
response-format negotiation, the schema form it implies, a text request, the vision probe)
and returns what each found, with latencies. `report["problems"]` says what makes the server
unusable; `unusable_error` turns them into the command's one-line error (exit 1). Everything a
server wrote is printed through `memeatlas.http.printable` (no control characters reach the
terminal; the JSON report escapes them).
"""

from __future__ import annotations

from typing import Any

from memeatlas.errors import BackendError
from memeatlas.http import printable


def check_server(model: str | None = None, *, vision: bool = True, **options: Any
                 ) -> dict[str, Any]:
    """Probe the server (see module docstring); raises BackendError when it cannot be used."""
    from memeatlas.caption.backends import create

    backend = create("openai", model=model, **options)
    try:
        return backend.check(vision=vision)
    finally:
        backend.close()


def report_lines(report: dict[str, Any]) -> dict[str, Any]:
    """The report as `key: value` fields for the CLI summary (safe to print)."""
    models = ", ".join(map(str, report.get("models") or [])) or "(none)"
    n_models = report.get("n_models") or 0
    if n_models > len(report.get("models") or []):
        models = f"{n_models} models: {printable(models, 200)}"
    fields: dict[str, Any] = {
        "server": report["base_url"],
        "owned_by (server family)": report.get("owned_by") or "-",
        "models listed": models,
        "model used": report["model"],
        "GET /models (s)": report.get("models_s"),
    }
    for n in report.get("negotiation", []):
        if "format" in n:
            extra = n.get("message") or n.get("answer") or ""
            fields[f"format {n['format']}"] = (f"{n['outcome']} (HTTP {n.get('status')})"
                                               + (f": {extra}" if extra else ""))
    fields["response format used"] = report.get("response_format")
    fields["schema form used"] = report.get("schema_form")
    fields["negotiation (s)"] = report.get("negotiation_s")
    tr = report.get("text_request") or {}
    fields["text request"] = ("ok" if tr.get("ok") else f"failed: {tr.get('error')}") + (
        f" in {tr.get('latency_s')} s" if tr.get("latency_s") is not None else "")
    vis = report.get("vision")
    if vis is not None:
        fields["vision probe"] = (
            f"{'passed' if vis['passed'] else 'FAILED'}: asked for {vis['word']!r}, got "
            f"{printable(vis['answer'], 60)!r} in {vis['seconds']} s")
    for i, p in enumerate(report.get("problems") or [], 1):
        fields[f"problem {i}"] = p
    return {printable(k, 80): v if isinstance(v, (int, float)) or v is None
            else printable(v, 300) for k, v in fields.items()}


def unusable_error(report: dict[str, Any]) -> BackendError | None:
    """The one-line error for a server the check found unusable, or None."""
    problems = report.get("problems") or []
    if not problems:
        return None
    return BackendError(f"the server at {report['base_url']} cannot be used: "
                        + "; ".join(printable(p, 300) for p in problems))
