"""Before loading a Hugging Face model id: is it on disk, and can the hub be reached?

Without this, a model id that is not cached on a machine with no network makes
transformers and huggingface_hub retry every file for a minute or more before the
error. Here the local cache is checked once and the hub once (one request with a short
timeout); `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE` mean the cache only. The outcome:
load normally (online), load from the cache only (`local_files_only=True`), or fail at
once with the caller's clear message. A local directory is never checked.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

HUB_TIMEOUT_S = 3.0
_TRUE = ("1", "true", "yes", "on")


def offline_env() -> bool:
    """True when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE asks for no network."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_hub_id(model: str) -> bool:
    """A valid hub id (`org/name` or `name`) that is not a directory on disk.

    A missing local path (`./models/x`, `/data/m`) is not a hub id: the loaders' own error
    for it comes at once, without any network.
    """
    if Path(model).expanduser().exists():
        return False
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(model)
    except Exception:  # HFValidationError: not something the hub could hold
        return False
    return not model.startswith((".", "/", "~"))


def is_cached(model: str, revision: str | None = None) -> bool:
    """Whether a snapshot of `model` (at `revision`) is in the local Hugging Face cache."""
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(model, revision=revision, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, a bad id, a broken cache: not usable
        return False
    return True


@lru_cache(maxsize=8)
def hub_unreachable(model: str) -> str | None:
    """Why the hub cannot be reached (one request, HUB_TIMEOUT_S), or None when it answers.

    Any HTTP answer, even 401/404, means the hub is reachable: the normal load then gives
    its own error. Only a failure to connect counts.
    """
    try:
        from huggingface_hub import model_info

        model_info(model, timeout=HUB_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - classify by name: httpx/requests/hf error types vary
        names = {c.__name__ for c in type(exc).__mro__}
        if names & {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError",
                    "TransportError", "ConnectionError", "Timeout", "OfflineModeIsEnabled"}:
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None
    return None


def plan_load(model: str, revision: str | None = None) -> tuple[bool, str | None]:
    """(local_files_only, problem) for loading `model`.

    `problem` is set when the model cannot be loaded at all (not cached, and offline or the
    hub unreachable); callers raise their own ModelNotFoundError with it. A local directory
    gives (False, None). Also silences the libraries' progress bars when memeatlas's are off.
    """
    from memeatlas import progress

    progress.sync_library_bars()  # "Loading weights" honours --no-progress too
    if not is_hub_id(model):
        return False, None
    cached = is_cached(model, revision)
    if offline_env():
        if cached:
            return True, None
        return True, ("not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so the "
                      "hub was not asked")
    why = hub_unreachable(model)
    if why is None:
        return False, None
    if cached:
        return True, None
    return True, (f"not in the local Hugging Face cache, and the hub cannot be reached "
                  f"({why})")
