"""`--check-server`: what an OpenAI-compatible server supports, without captioning anything.

    from memeatlas.caption.server_check import check_server
    report = check_server(model="qwen2.5-vl", base_url="http://gpu:8000/v1")

Runs the probes the openai backend runs before a caption or naming run (models list,
response-format negotiation, the schema form it implies, a text request, the vision probe)
and returns what each found, with latencies.
"""

from __future__ import annotations

from typing import Any


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
    """The report as `key: value` fields for the CLI summary."""
    fields: dict[str, Any] = {
        "server": report["base_url"],
        "owned_by (server family)": report.get("owned_by") or "-",
        "models listed": ", ".join(map(str, report.get("models") or [])) or "(none)",
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
            f"{' '.join(str(vis['answer']).split())[:60]!r} in {vis['seconds']} s")
    return fields
