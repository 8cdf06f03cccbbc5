"""Fault injection for distributed-engine tests: wrap a worker's backend so one item fails.

Used through the ray engine's `wrap_backend` option ('memeatlas.testing.faults:fail_on_width'),
which each worker applies after creating its backend, so the fault happens inside a real Ray
actor rather than in a mocked driver.
"""

from __future__ import annotations

from typing import Any

FAIL_WIDTH = 333  # an image this many pixels wide makes the wrapped backend raise


class FailOnWidth:
    """Delegates to `inner`, but `generate` raises for a batch holding a FAIL_WIDTH-wide image
    (as a crashing kernel or an out-of-memory error would)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def generate(self, requests):
        for r in requests:
            if r.image is not None and r.image.width == FAIL_WIDTH:
                raise RuntimeError(f"simulated worker fault on a {FAIL_WIDTH}-px-wide image")
        return self._inner.generate(requests)


def fail_on_width(backend: Any) -> FailOnWidth:
    """The `wrap_backend` hook: the backend with the injected fault."""
    return FailOnWidth(backend)
