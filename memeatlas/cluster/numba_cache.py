"""Pay UMAP's numba compilation once per machine, not once per command.

Why the cold start was not cached: numba only writes a compiled function to disk when it was
declared with `cache=True`. In umap-learn 0.5 almost none are: `fuzzy_simplicial_set`'s
helpers (`smooth_knn_dist`, `compute_membership_strengths`), the spectral-init helpers and the
per-epoch SGD kernel `_optimize_layout_euclidean_single_epoch` (wrapped with `numba.njit(...)`
at module level, without `cache=True`) are recompiled in every new process (~15 s on 2 cores).
On top of that, above 4,095 points UMAP runs NN-descent (pynndescent), whose per-metric
closures are built at run time and cannot be cached at all (~40 s more).

What this module does:
1. points NUMBA_CACHE_DIR at a per-user, writable directory (``$MEMEATLAS_NUMBA_CACHE_DIR``,
   else ``$NUMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/memeatlas/numba`` or
   ``~/.cache/memeatlas/numba``, else a per-user temp dir) *before* numba is imported;
2. after importing umap, turns on disk caching for every module-level numba dispatcher of umap
   (and pynndescent's that lack it, except those its authors marked ``cache=False``) with
   numba's own ``Dispatcher.enable_caching()``;
3. the cluster step passes a precomputed exact k-NN (see `knn.py`) for moderate N, so
   NN-descent never runs.
The numerical code is unchanged, so results are identical with or without the cache.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

_DONE = False


def cache_dir() -> Path:
    """The per-user directory numba's cache goes to (created if needed, must be writable)."""
    for env in ("MEMEATLAS_NUMBA_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memeatlas" / "numba"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return True
    except OSError:
        return False


def configure_cache_dir() -> Path | None:
    """Set NUMBA_CACHE_DIR (and numba's live config if numba is already imported)."""
    path = cache_dir()
    if not _writable(path):
        uid = os.getuid() if hasattr(os, "getuid") else "user"
        path = Path(tempfile.gettempdir()) / f"memeatlas-numba-{uid}"
        if not _writable(path):
            return None
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # config is read at import; update the live value too
        from numba.core import config

        config.CACHE_DIR = str(path)
    return path


_EXPLICIT_NO_CACHE = re.compile(r"cache\s*=\s*False[^\n]*\n(?:[^\n]*\n){0,12}?\s*def\s+(\w+)")


def _declared_uncached(mod) -> set[str]:
    """Names of functions whose authors wrote `cache=False` (left alone: they chose so)."""
    path = getattr(mod, "__file__", None)
    if not path or not path.endswith(".py"):
        return set()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return set()
    return set(_EXPLICIT_NO_CACHE.findall(text)) if "cache=False" in text.replace(" ", "") \
        else set()


def enable_caching(prefixes: tuple[str, ...] = ("umap", "pynndescent")) -> int:
    """Turn on disk caching for the module-level numba functions of the named packages.

    Functions declared with an explicit `cache=False` (pynndescent's parallel NN-descent
    kernels) are left as their authors chose. Returns how many dispatchers were switched on.
    Functions that numba cannot cache (e.g. dynamic globals) only log a numba warning on save
    and keep working uncached.
    """
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    n = 0
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(prefixes):
            continue
        skip = _declared_uncached(mod)
        for attr, obj in list(vars(mod).items()):
            if (isinstance(obj, Dispatcher) and isinstance(obj._cache, NullCache)
                    and getattr(obj.py_func, "__module__", name) == name
                    and obj.py_func.__name__ not in skip and attr not in skip):
                try:
                    obj.enable_caching()
                    n += 1
                except Exception:  # noqa: BLE001 - e.g. functions defined in a REPL
                    continue
    return n


def import_umap():
    """Import umap with the numba cache configured and enabled (idempotent); returns the module."""
    global _DONE
    if not _DONE:
        configure_cache_dir()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap
        import umap.layouts  # noqa: F401
        import umap.spectral  # noqa: F401
        import umap.umap_  # noqa: F401
    if not _DONE:
        enable_caching()
        _DONE = True
    return umap
