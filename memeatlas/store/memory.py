"""DuckDB's memory cap around one long read of the store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def capped_memory(store, limit: str) -> Iterator[None]:
    """Cap DuckDB's memory at `limit` (e.g. '256MB') while a step reads the store, then
    restore the setting exactly. DuckDB's buffer pool (by default most of the machine's
    memory) otherwise keeps every block a long scan read resident in the process: at 10⁶
    vectors that is gigabytes the step itself does not need (benchmarks/results/search.md).
    A sandboxed connection may not change settings (it is capped already): left as it is."""
    import duckdb

    cur = store.con.cursor()  # the store's connection may hold an unfinished result
    setting = "SELECT current_setting('memory_limit')"
    try:
        try:
            old = cur.execute(setting).fetchone()[0]
            cur.execute("RESET memory_limit")  # the default, restored exactly by RESET;
            default = cur.execute(setting).fetchone()[0]  # a set value as DuckDB prints it
            cur.execute(f"SET memory_limit = '{limit}'")
        except duckdb.Error:
            old = None
        try:
            yield
        finally:
            if old is not None:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("RESET memory_limit" if old == default
                                else f"SET memory_limit = '{old}'")
    finally:
        cur.close()
