"""numba cache: a per-user writable dir, and UMAP's kernels switched to on-disk caching."""

from __future__ import annotations

import os
import sys

from memeatlas.cluster import numba_cache


def test_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMEATLAS_NUMBA_CACHE_DIR", str(tmp_path / "nb"))
    assert numba_cache.cache_dir() == tmp_path / "nb"
    monkeypatch.delenv("MEMEATLAS_NUMBA_CACHE_DIR")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_cache.cache_dir() == tmp_path / "xdg" / "memeatlas" / "numba"


def test_unwritable_dir_falls_back_to_temp(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MEMEATLAS_NUMBA_CACHE_DIR", str(blocker / "sub"))
    saved = os.environ.get("NUMBA_CACHE_DIR")
    live = None
    if "numba" in sys.modules:
        from numba.core import config

        live = config.CACHE_DIR
    try:
        path = numba_cache.configure_cache_dir()
        assert path is not None and "memeatlas-numba-" in str(path)
        assert os.environ["NUMBA_CACHE_DIR"] == str(path)
    finally:
        if saved is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = saved
        if live is not None:
            config.CACHE_DIR = live


def test_umap_kernels_are_cached():
    from numba.core.caching import NullCache

    numba_cache.import_umap()
    from umap import layouts, umap_

    for fn in (layouts._nb_optimize_layout_euclidean_single_epoch,
               umap_.smooth_knn_dist, umap_.compute_membership_strengths):
        assert not isinstance(fn._cache, NullCache), fn
    assert os.environ.get("NUMBA_CACHE_DIR")
    # functions pynndescent's authors marked cache=False are left alone
    from pynndescent import pynndescent_

    assert isinstance(pynndescent_.generate_leaf_updates._cache, NullCache)
