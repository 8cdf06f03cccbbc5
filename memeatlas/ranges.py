"""Valid ranges of numeric parameters, checked before any work: one path for options and heads.

A `Range` says what a parameter accepts (an integer or a finite number, its bounds, words such
as 'auto'); `Range.check` turns a CLI string or a Python value into that type, or raises an
InputError that names the parameter, its valid range and the value given. NaN and infinities
are never in range: `nan < 1` is false, so a plain `lo <= x <= hi` test would let them through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from memeatlas.errors import InputError


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 10_000 else f"{v:g}"


@dataclass(frozen=True)
class Range:
    """What a numeric parameter accepts. Bounds are inclusive unless `lo_open`/`hi_open`."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    none_ok: bool = False            # None ('none' on the command line) is accepted
    words: tuple[str, ...] = ()      # accepted words besides numbers, e.g. ('auto',)

    def describe(self) -> str:
        """'an integer from 1 to 10,000', 'a number in (0, 1]', "'auto' or a number > 0"…"""
        what = "an integer" if self.integer else "a number"
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            if self.integer or not (self.lo_open or self.hi_open):
                text = f"{what} from {_num(lo)} to {_num(hi)}"
            else:
                text = (f"{what} in {'(' if self.lo_open else '['}{_num(lo)}, {_num(hi)}"
                        f"{')' if self.hi_open else ']'}")
        elif lo is not None:
            text = f"{what} {'>' if self.lo_open else '>='} {_num(lo)}"
        elif hi is not None:
            text = f"{what} {'<' if self.hi_open else '<='} {_num(hi)}"
        else:
            text = "a finite number" if not self.integer else what
        extra = [repr(w) for w in self.words] + (["none"] if self.none_ok else [])
        return f"{' or '.join(extra)} or {text}" if extra else text

    def check(self, name: str, value: Any) -> Any:
        """`value` as this range's type (CLI strings are parsed), or InputError naming `name`."""
        raw = value
        if isinstance(value, str):
            v = value.strip()
            if v.lower() in self.words:
                return v.lower()
            if v.lower() == "none" and self.none_ok:
                return None
            try:
                value = int(v) if self.integer else float(v)
            except ValueError:
                value = None
                if self.integer:  # '3.0' is 3; '1e9' and '2.5' are not integers
                    try:
                        f = float(v)
                        value = int(f) if math.isfinite(f) and f.is_integer() and "e" not in \
                            v.lower() else None
                    except ValueError:
                        pass
            if value is None:
                raise InputError(f"{name} must be {self.describe()}, got {_shown(raw)}")
        if value is None:
            if self.none_ok:
                return None
            raise InputError(f"{name} must be {self.describe()}, got none")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{name} must be {self.describe()}, got {_shown(raw)}")
        if self.integer and isinstance(value, float):
            if not (math.isfinite(value) and value.is_integer()):
                raise InputError(f"{name} must be {self.describe()}, got {_shown(raw)}")
            value = int(value)
        ok = math.isfinite(value)
        if ok and self.lo is not None:
            ok = value > self.lo if self.lo_open else value >= self.lo
        if ok and self.hi is not None:
            ok = value < self.hi if self.hi_open else value <= self.hi
        if not ok:
            raise InputError(f"{name} must be {self.describe()}, got {_shown(raw)}")
        return value


def _shown(value: Any) -> str:
    """A value for an error message: repr of at most 40 characters (no raw control bytes)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices` (case-insensitive), else InputError listing them."""
    v = str(value).strip().lower() if value is not None else "none"
    if v not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)}, got {_shown(value)}")
    return v


# Ranges several commands share.
RESAMPLES = Range(0, 100_000, integer=True)        # --bootstrap (0: no confidence interval)
