"""How a JSON Schema constraint is sent to an OpenAI-compatible server, and in which form.

Servers disagree on where the schema goes:

- ``json_schema``: ``response_format: {"type": "json_schema", "json_schema": {name, schema,
  strict}}`` (OpenAI, vLLM, SGLang, llama.cpp's ``llama-server``, LM Studio, Ollama >= 0.5);
- ``json_object_schema``: ``response_format: {"type": "json_object", "schema": ...}``
  (llama-cpp-python's server, which rejects ``json_schema``);
- ``ollama_format``: top-level ``format: <schema>`` (Ollama's native field);
- ``structured_outputs``: ``structured_outputs: {"json": <schema>}`` (vLLM >= 0.10);
- ``guided_json``: ``guided_json: <schema>`` (older vLLM);
- ``prompt_only``: no constraint; the prompt asks for JSON and the output is validated.

The backend tries them in this order, once per run (see `openai.py`), and keeps the first
one the server accepts *and* enforces.

Schema forms: ``strict`` is memeatlas's schema as written (string bounds as regular-expression
``pattern``s, which xgrammar compiles exactly). ``friendly`` replaces each such pattern by plain
``minLength``/``maxLength``: llama.cpp's grammar sampler (llama.cpp, llama-cpp-python, Ollama)
turns the chained ``{0,128}`` character patterns into a grammar that takes seconds per token.
The bounds are then checked by validation after decoding. The form is part of the run's schema
hash.
"""

from __future__ import annotations

import copy
import re
from typing import Any

FORMATS = ("json_schema", "json_object_schema", "ollama_format", "structured_outputs",
           "guided_json", "prompt_only")
FORMAT_FIELDS = ("response_format", "format", "structured_outputs", "guided_json")
SCHEMA_FORMS = ("auto", "strict", "friendly")

# `/v1/models` owned_by values of servers whose grammar engine is llama.cpp's sampler.
LLAMACPP_OWNERS = {"llamacpp", "me", "library", "ollama"}

# A bound written by `memeatlas.caption.schema.bounded`: `^` FIRST? (CHAR{m,n})+ `$`.
_REPEAT = re.compile(r"\{(\d+),(\d+)\}")


def apply_format(body: dict[str, Any], fmt: str, schema: dict[str, Any] | None,
                 name: str = "annotation") -> dict[str, Any]:
    """`body` with the schema placed where format `fmt` puts it (a new dict)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown response format {fmt!r}; valid: {', '.join(FORMATS)}")
    out = {k: v for k, v in body.items() if k not in FORMAT_FIELDS}
    if schema is None or fmt == "prompt_only":
        return out
    if fmt == "json_schema":
        out["response_format"] = {"type": "json_schema", "json_schema": {
            "name": name, "schema": schema, "strict": True}}
    elif fmt == "json_object_schema":
        out["response_format"] = {"type": "json_object", "schema": schema}
    elif fmt == "ollama_format":
        out["format"] = schema
    elif fmt == "structured_outputs":
        out["structured_outputs"] = {"json": schema}
    elif fmt == "guided_json":
        out["guided_json"] = schema
    return out


def pattern_bounds(pattern: str) -> tuple[int, int] | None:
    """(min, max) length of a string `pattern` written by `schema.bounded`, else None.

    Only memeatlas's own bound patterns are converted: `^`, an optional first-character class
    with no quantifier, then character classes each followed by `{m,n}`, then `$`. Any other
    pattern (a user's regex) is kept, since dropping it would change what is accepted.
    """
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return None
    body = pattern[1:-1]
    lo = hi = 0
    i = 0
    while i < len(body):
        if body[i] != "[":
            return None
        j = body.find("]", i + 2)  # a class's first char may be ']' only if escaped; ours never
        while j != -1 and body[j - 1] == "\\" and body[j - 2] != "\\":
            j = body.find("]", j + 1)
        if j == -1:
            return None
        i = j + 1
        m = _REPEAT.match(body, i)
        if m:
            lo += int(m.group(1))
            hi += int(m.group(2))
            i = m.end()
        else:
            lo += 1
            hi += 1
    return lo, hi


def friendly_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The server-friendly form: memeatlas's bound patterns become minLength/maxLength."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            new = {k: walk(v) for k, v in node.items()}
            pat = new.get("pattern")
            if isinstance(pat, str):
                bounds = pattern_bounds(pat)
                if bounds is not None:
                    del new["pattern"]
                    if bounds[0]:
                        new["minLength"] = bounds[0]
                    new["maxLength"] = bounds[1]
            return new
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(copy.deepcopy(schema))


def schema_in_form(schema: dict[str, Any], form: str) -> dict[str, Any]:
    """`schema` in form `form` (strict: unchanged; friendly: `friendly_schema`)."""
    if form == "strict":
        return schema
    if form == "friendly":
        return friendly_schema(schema)
    raise ValueError(f"unknown schema form {form!r}; valid: strict, friendly")


def auto_form(fmt: str, owned_by: str | None) -> str:
    """The schema form `auto` picks: friendly for llama.cpp-family grammar engines."""
    if fmt in ("json_object_schema", "ollama_format", "prompt_only"):
        return "friendly"
    if (owned_by or "").lower() in LLAMACPP_OWNERS:
        return "friendly"
    return "strict"


_FORMAT_WORDS = re.compile(
    r"response_format|json_schema|json_object|structured_output|guided_json|guided_decoding|"
    r"\bformat\b|extra (?:fields|inputs) (?:are )?not permitted|unrecognized|"
    r"input should be 'text'|grammar|schema", re.IGNORECASE)


def names_format(message: str) -> bool:
    """Whether a rejection's message is about the response format (so another may work)."""
    return bool(_FORMAT_WORDS.search(message or ""))
