"""The v1 meme annotation: a pydantic model, its JSON Schema, user extensions, validation.

Every string is bounded with a regular-expression `pattern` rather than
`maxLength`: xgrammar compiles `pattern` into the decoding grammar exactly,
while `maxLength` lets raw control characters through. The patterns also
exclude double quotes and backslashes, so a constrained model can never open
an escape sequence it cannot finish within the bound; the prompt asks for
single quotes instead.

The schema hash (part of every annotation's key) is taken over the exact JSON
Schema sent to the decoder, so any change to a bound, an enum or a user field
makes a new key and old rows stay as they were.
"""

from __future__ import annotations

import copy
import json
import re
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memeatlas.errors import InputError
from memeatlas.provenance import short_hash
from memeatlas.userfiles import check_file

SCHEMA_VERSION = "v1"

# One character of a bounded string: anything but a control character, '"' or '\'.
_CHAR = r'[^"\\\x00-\x1f]'


_FIRST = r'[^"\\\x00-\x20]'
_MAX_REPEAT = 128  # xgrammar 0.2.8 rejects a {m,n} repeat with n > 128


def bounded(min_len: int, max_len: int) -> str:
    """A `pattern` that bounds a string's length (in characters) the way xgrammar can compile.

    Long bounds are written as a chain of repeats of at most 128 each
    (`C{1,128}C{0,128}C{0,88}` for 1..344): the same language as `C{1,344}`.
    """
    parts = []
    lo, hi = min_len, max_len
    if lo >= 1:  # a non-empty value starts with a visible character, not padding
        parts.append(_FIRST)
        lo, hi = lo - 1, hi - 1
    while hi > 0:
        step = min(hi, _MAX_REPEAT)
        take_lo = min(lo, step)
        parts.append(f"{_CHAR}{{{take_lo},{step}}}")
        lo -= take_lo
        hi -= step
    return "^" + "".join(parts) + "$"


class Role(str, Enum):
    """Entity roles, following the CheckThat!/HVV hero-villain-victim convention."""

    hero = "hero"
    villain = "villain"
    victim = "victim"
    other = "other"


class Tone(str, Enum):
    """The closed set of tones a meme is given."""

    humorous = "humorous"
    sarcastic = "sarcastic"
    wholesome = "wholesome"
    angry = "angry"
    sad = "sad"
    neutral = "neutral"


class Entity(BaseModel):
    """One element of the meme and what it stands for."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=bounded(1, 80),
                      description="The element as shown: a person, character, object or group.")
    role: Role = Field(description="How the meme frames the element: hero, villain, victim or other.")
    stands_for: str = Field(pattern=bounded(0, 200),
                            description="What the element represents in the meme's message.")


class Annotation(BaseModel):
    """The v1 annotation of one meme (see DESIGN.md, 'Annotation schema (v1)')."""

    model_config = ConfigDict(extra="allow")  # user-defined fields ride along

    description: str = Field(pattern=bounded(1, 600),
                             description="What is literally shown: people, objects, setting, layout.")
    ocr_text: str = Field(pattern=bounded(0, 600),
                          description="The text in the image, verbatim; empty when there is none.")
    intent: str = Field(pattern=bounded(1, 400),
                        description="What the poster means to say: the message, not the surface.")
    entities: list[Entity] = Field(max_length=8,
                                   description="Elements with their role and what they stand for.")
    template: str | None = Field(pattern=bounded(1, 80),
                                 description="The known meme format if recognised, else null.")
    tone: Tone = Field(description="The overall tone of the meme.")


CORE_FIELDS = ("description", "ocr_text", "intent", "entities", "template", "tone")


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local `$ref`s with their definitions: every decoder and server reads the result."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                if name not in defs:
                    raise InputError(f"schema $ref {node['$ref']!r} has no definition in $defs")
                # Keys beside a $ref (a field's description) win over the definition's.
                merged = {**copy.deepcopy(defs[name]),
                          **{k: v for k, v in node.items() if k != "$ref"}}
                return walk(merged)
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _strip_titles(node: Any) -> Any:
    # pydantic's titles add tokens to server prompts and nothing to decoding.
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def core_json_schema() -> dict[str, Any]:
    """The v1 JSON Schema: self-contained (no $ref), closed (no additional properties)."""
    raw = Annotation.model_json_schema()
    schema = _strip_titles(_inline_refs(raw))
    schema["additionalProperties"] = False
    schema["required"] = list(CORE_FIELDS)
    # Keep the property order the model should write in (description before intent).
    schema["properties"] = {k: schema["properties"][k] for k in CORE_FIELDS}
    schema["description"] = "One meme's annotation (memeatlas schema v1)."
    return {"title": "MemeAnnotation", **schema}


def extend_schema(user: dict[str, Any]) -> dict[str, Any]:
    """The core schema plus the properties of a user's JSON Schema (core fields cannot change).

    `user` is a JSON Schema object with `properties` (and optional `required`,
    `$defs`). Its properties are appended after the core fields; listing a core
    field is an InputError.
    """
    if not isinstance(user, dict) or not isinstance(user.get("properties"), dict):
        raise InputError("a --schema file must be a JSON Schema object with 'properties'")
    clash = [k for k in user["properties"] if k in CORE_FIELDS]
    if clash:
        raise InputError(
            f"--schema redefines core field(s) {', '.join(clash)}; the v1 fields "
            f"({', '.join(CORE_FIELDS)}) are always present; give your fields other names")
    user = _inline_refs(user)
    schema = core_json_schema()
    schema["properties"].update(user["properties"])
    extra_required = [k for k in user.get("required", list(user["properties"]))
                      if k in user["properties"]]
    schema["required"] = list(CORE_FIELDS) + extra_required
    if user.get("title"):
        schema["title"] = str(user["title"])
    return schema


def load_schema(path: str | Path | None) -> dict[str, Any]:
    """The schema a run decodes with: v1, or v1 extended by the JSON Schema file at `path`."""
    if path is None:
        return core_json_schema()
    p = check_file(path, "--schema file")
    try:
        user = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--schema file {p} not found") from None
    except UnicodeDecodeError:
        raise InputError(f"--schema file {p} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--schema file {p} is not valid JSON: {exc}") from None
    try:
        import jsonschema

        jsonschema.Draft202012Validator.check_schema(user)
    except ImportError:  # pragma: no cover - jsonschema is a dependency
        pass
    except Exception as exc:
        raise InputError(f"--schema file {p} is not a valid JSON Schema: {exc}") from None
    return extend_schema(user)


def schema_hash(schema: dict[str, Any]) -> str:
    """The key part that names a schema: a short hash of its canonical JSON."""
    return short_hash(schema)


class Validator:
    """Checks a model's raw output against a schema and returns the parsed object.

    Raises `AnnotationError(kind, message)` where kind is `invalid_json` or
    `schema_violation` (the error codes stored in caption_failures). `typed=False` skips the
    pydantic check of the core fields (their bound patterns), for outputs decoded with the
    server-friendly schema form, whose bounds are minLength/maxLength in `schema` itself.
    """

    def __init__(self, schema: dict[str, Any], *, typed: bool = True) -> None:
        import jsonschema

        self.schema = schema
        self.typed = typed
        self._validator = jsonschema.Draft202012Validator(schema)

    def __call__(self, text: str) -> dict[str, Any]:
        try:
            # Untyped (server-friendly form): llama.cpp-family grammars let raw control
            # characters into strings; read them, then turn them into spaces.
            obj = json.loads(text, strict=self.typed)
        except (json.JSONDecodeError, TypeError) as exc:
            raise AnnotationError("invalid_json", f"not JSON: {exc}") from None
        except RecursionError:  # a hostile server's answer: [[[[... 200,000 deep
            raise AnnotationError("invalid_json", "not JSON: nested too deeply") from None
        if not self.typed:
            obj = _no_controls(obj)
        if not isinstance(obj, dict):
            raise AnnotationError("schema_violation", "output is not a JSON object")
        errors = sorted(self._validator.iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(root)"
            raise AnnotationError("schema_violation", f"{where}: {e.message}"[:500])
        if not self.typed:
            return obj
        try:  # the typed view of the core fields must hold too
            Annotation.model_validate(obj)
        except ValidationError as exc:
            raise AnnotationError("schema_violation", str(exc)[:500]) from None
        return obj


_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _no_controls(node: Any) -> Any:
    if isinstance(node, str):
        return _CONTROLS.sub(" ", node)
    if isinstance(node, dict):
        return {k: _no_controls(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_no_controls(v) for v in node]
    return node


class AnnotationError(ValueError):
    """An output that is not a valid annotation; `kind` is the caption_failures error code."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def describe_fields(schema: dict[str, Any]) -> str:
    """One line per top-level field (name, type hint, description) for the prompt."""
    lines = []
    for name, prop in schema.get("properties", {}).items():
        desc = prop.get("description", "")
        kind = prop.get("type")
        if "enum" in prop:
            kind = " | ".join(json.dumps(v) for v in prop["enum"])
        elif "anyOf" in prop:
            kinds = [p.get("type", "?") for p in prop["anyOf"]]
            kind = " or ".join(kinds)
        lines.append(f"- {name} ({kind}): {desc}".rstrip(": "))
    return "\n".join(lines)
