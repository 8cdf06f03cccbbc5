"""Keep docs/ true: regenerate `--help` blocks and the schema page from the code, or check them.

    python scripts/docs_sync.py            rewrite every help block and docs/schema.md in place
    python scripts/docs_sync.py --check    exit 1 (listing the drift) when any would change

A help block in a Markdown page is

    <!-- help: memeatlas cluster -->
    ```text
    …the output of `memeatlas cluster --help`…
    ```
    <!-- /help -->

and the schema page holds the relations of a freshly created store between
`<!-- schema:start -->` and `<!-- schema:end -->`. tests/test_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCHEMA_PAGE = DOCS / "schema.md"
HELP_WIDTH = 100

HELP_BLOCK = re.compile(
    r"(<!-- help: (?P<cmd>memeatlas[^>]*?) -->\n)```text\n(?P<body>.*?)```\n(<!-- /help -->)",
    re.S)
SCHEMA_BLOCK = re.compile(r"(<!-- schema:start -->\n)(?P<body>.*?)(<!-- schema:end -->)", re.S)


def doc_files() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def help_text(command: str) -> str:
    """`memeatlas … --help` as a user sees it in a 100-column terminal."""
    from typer.testing import CliRunner

    from memeatlas.cli import app

    args = command.split()[1:]
    env = {"COLUMNS": str(HELP_WIDTH), "NO_COLOR": "1", "TERM": "dumb"}
    res = CliRunner().invoke(app, [*args, "--help"], prog_name="memeatlas",
                             terminal_width=HELP_WIDTH, env=env)
    if res.exit_code != 0:
        raise SystemExit(f"`{command} --help` failed (exit {res.exit_code}): {res.output[-500:]}")
    return "\n".join(line.rstrip() for line in res.output.rstrip().splitlines()) + "\n"


def schema_markdown() -> str:
    """Every table and view of a new store, with its columns and types, as Markdown."""
    from memeatlas.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "schema.duckdb")
        try:
            rels = store.fetchall(
                "SELECT table_name, table_type FROM information_schema.tables "
                "WHERE table_schema = 'main' ORDER BY table_type, table_name")
            version = store.schema_version
            lines = [f"Schema version {version} (the highest migration in "
                     "`memeatlas/store/migrations/`).", "",
                     "| relation | kind | columns |", "|---|---|---|"]
            for name, kind in rels:
                cols = store.fetchall(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                    [name])
                spec = ", ".join(f"{c} <sub>{t}</sub>" for c, t in cols)
                lines.append(f"| `{name}` | {'view' if kind == 'VIEW' else 'table'} | {spec} |")
        finally:
            store.close()
    return "\n".join(lines) + "\n"


def sync(check: bool) -> list[str]:
    """Rewrite (or, with check, only compare) every generated block; returns what drifted."""
    drift: list[str] = []
    cache: dict[str, str] = {}
    for path in doc_files():
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")

        def _help(m: re.Match[str], path: Path = path) -> str:
            cmd = " ".join(m.group("cmd").split())
            if cmd not in cache:
                cache[cmd] = help_text(cmd)
            if m.group("body") != cache[cmd]:
                drift.append(f"{path.relative_to(ROOT)}: help block of `{cmd}`")
            return f"{m.group(1)}```text\n{cache[cmd]}```\n{m.group(4)}"

        new = HELP_BLOCK.sub(_help, text)
        if path == SCHEMA_PAGE:
            body = schema_markdown()
            m = SCHEMA_BLOCK.search(new)
            if m is None:
                drift.append(f"{path.relative_to(ROOT)}: no <!-- schema:start --> block")
            elif m.group("body") != body:
                drift.append(f"{path.relative_to(ROOT)}: schema table")
                new = new[:m.start("body")] + body + new[m.end("body"):]
        if new != text and not check:
            path.write_text(new, encoding="utf-8")
    return drift


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report drift; exit 1 if any")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    drift = sync(check=args.check)
    for d in drift:
        print(("drift: " if args.check else "updated: ") + d)
    if args.check and drift:
        print("run `python scripts/docs_sync.py` to regenerate", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
