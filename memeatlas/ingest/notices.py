"""Counted, named warnings: rows that were stored with a caveat, never dropped in silence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_EXAMPLES = 5


@dataclass
class Notices:
    """Warnings by code: how many rows, what it means, and the first few rows it names."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, code: str, detail: str, example: str | None = None) -> None:
        """Count one row under `code` (`detail` is the sentence shown for the code)."""
        entry = self.items.setdefault(code, {"count": 0, "detail": detail, "examples": []})
        entry["count"] += 1
        if example is not None and len(entry["examples"]) < MAX_EXAMPLES:
            entry["examples"].append(example)

    def merge(self, other: Notices) -> None:
        for code, e in other.items.items():
            mine = self.items.setdefault(code, {"count": 0, "detail": e["detail"], "examples": []})
            mine["count"] += e["count"]
            mine["examples"] = (mine["examples"] + e["examples"])[:MAX_EXAMPLES]

    @property
    def total(self) -> int:
        return sum(e["count"] for e in self.items.values())

    def __getitem__(self, code: str) -> dict[str, Any]:
        return self.items[code]

    def __contains__(self, code: str) -> bool:
        return code in self.items

    def __bool__(self) -> bool:
        return bool(self.items)

    def lines(self) -> list[str]:
        """One summary line per code: `code: n (detail; e.g. file:3, file:7)`."""
        out = []
        for code, e in sorted(self.items.items()):
            eg = f"; e.g. {', '.join(e['examples'])}" if e["examples"] else ""
            out.append(f"{code}: {e['count']} ({e['detail']}{eg})")
        return out
