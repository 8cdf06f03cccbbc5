"""Fixtures shared by every test module. Area-specific fixtures live beside their tests."""

from __future__ import annotations

import os

# No model hub here or in CI: any accidental download must fail fast, not hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MEMEATLAS_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from memeatlas.store import Store  # noqa: E402


@pytest.fixture
def db_path(tmp_path):
    """Path of a fresh (not yet created) DuckDB file."""
    return tmp_path / "corpus.duckdb"


@pytest.fixture
def store(db_path):
    """A real, migrated DuckDB store in a temp dir."""
    s = Store.open(db_path)
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Debian Chromium per test module, for the browser tests."""
    from helpers_report import launch_browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_browser(p)
        yield b
        b.close()
