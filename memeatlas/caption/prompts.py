"""The instruction sent with every image: a default written for memes, versioned, overridable.

The prompt text is a template with one placeholder, `{fields}`, filled with one
line per schema field (name, type, description) so that backends which cannot
constrain decoding to the schema (and the model itself) see what is wanted.
The prompt hash, part of every annotation's key, is taken over the *rendered*
text, so a changed schema description or a user's extra field also changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from memeatlas.caption.schema import describe_fields
from memeatlas.errors import InputError
from memeatlas.provenance import short_hash
from memeatlas.userfiles import check_file

DEFAULT_PROMPT_VERSION = "meme_v1"


@dataclass(frozen=True)
class Prompt:
    """A rendered instruction: its text, a version label and the hash stored with each row."""

    text: str
    version: str

    @property
    def hash(self) -> str:
        return short_hash(self.text)


def default_template() -> str:
    """The shipped meme-annotation instruction (with its `{fields}` placeholder)."""
    return (resources.files("memeatlas.caption") / "prompt_texts" / f"{DEFAULT_PROMPT_VERSION}.txt"
            ).read_text(encoding="utf-8")


def render(template: str, schema: dict[str, Any]) -> str:
    """Fill `{fields}` (if present) with the schema's field list; other braces are left alone."""
    return template.replace("{fields}", describe_fields(schema)).strip() + "\n"


def load_prompt(path: str | Path | None, schema: dict[str, Any]) -> Prompt:
    """The default prompt, or the user's text file at `path` (version `file:<name>`), rendered."""
    if path is None:
        return Prompt(render(default_template(), schema), DEFAULT_PROMPT_VERSION)
    p = check_file(path, "--prompt file")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"--prompt file {p} not found") from None
    except UnicodeDecodeError:
        raise InputError(f"--prompt file {p} is not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"--prompt file {p} is empty")
    return Prompt(render(text, schema), f"file:{p.name}")
