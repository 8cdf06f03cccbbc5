"""Caption backends, chosen by name; each imports its heavy libraries only when created.

    from memeatlas.caption.backends import create, GenerationRequest
    llm = create("transformers", model="/path/to/model", device="cpu")
    [res] = llm.generate([GenerationRequest(prompt="Name this cluster: ...", image=None,
                                            json_schema=None, max_new_tokens=32)])

Names: transformers (default), vllm, openai, ocr. See `base.py` for the contract.
"""

from __future__ import annotations

import importlib
from typing import Any

from memeatlas.caption.backends._common import DEFAULT_MODEL
from memeatlas.caption.backends.base import (
    Backend,
    BackendInfo,
    GenerationRequest,
    GenerationResult,
)
from memeatlas.errors import BackendError

DEFAULT_BACKEND = "transformers"

_REGISTRY = {
    "transformers": "memeatlas.caption.backends.transformers:TransformersBackend",
    "vllm": "memeatlas.caption.backends.vllm:VLLMBackend",
    "openai": "memeatlas.caption.backends.openai:OpenAIBackend",
    "ocr": "memeatlas.caption.backends.ocr:OCRBackend",
}


def names() -> list[str]:
    """The backend names `create` accepts."""
    return list(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The class behind a backend name (imports only that backend's module)."""
    if name not in _REGISTRY:
        raise BackendError(f"unknown caption backend {name!r}; choose one of: {', '.join(_REGISTRY)}")
    mod, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def create(name: str = DEFAULT_BACKEND, model: str | None = None, **options: Any) -> Backend:
    """Create a backend by name. `model` defaults to the backend's default model.

    Options are backend specific (device, dtype, base_url, concurrency, ...);
    an option a backend does not know is an error naming the valid ones.
    """
    import inspect

    cls = backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = [k for k in params if k not in ("self", "model")]
        unknown = [k for k in options if k not in params]
        if unknown:
            raise BackendError(f"backend {name!r} has no option(s) {', '.join(unknown)}; "
                               f"valid: {', '.join(valid)}")
    return cls(model=model, **options)


__all__ = ["Backend", "BackendInfo", "GenerationRequest", "GenerationResult", "create", "names",
           "backend_class", "DEFAULT_BACKEND", "DEFAULT_MODEL"]
