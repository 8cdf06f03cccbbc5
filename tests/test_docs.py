"""The documentation stays true: help blocks, commands and options in examples, the schema page, links."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _docs_sync():
    spec = importlib.util.spec_from_file_location("docs_sync", ROOT / "scripts" / "docs_sync.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_help_blocks_and_schema_page_match_the_code():
    drift = _docs_sync().sync(check=True)
    assert not drift, ("docs drifted from the CLI or the schema; run `python scripts/docs_sync.py`:\n"
                       + "\n".join(drift))


def test_every_command_has_a_help_block_somewhere():
    text = "\n".join(p.read_text(encoding="utf-8") for p in _pages())
    documented = {" ".join(m.split()) for m in re.findall(r"<!-- help: (memeatlas[^>]*?) -->", text)}
    missing = [c for c in _leaf_commands() if c not in documented]
    assert not missing, f"commands without a help block in docs/: {missing}"


# ---- commands and options mentioned in code blocks -------------------------------------------

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_ROOT_OPTIONS = {"--no-progress", "--version", "--help"}


def _click_root():
    from memeatlas.cli import app

    return typer.main.get_command(app)


def _leaf_commands() -> list[str]:
    import typer._click as click

    out: list[str] = []

    def walk(cmd, path, parent):
        ctx = click.Context(cmd, info_name=path[-1], parent=parent)
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name], ctx)
        else:
            out.append(" ".join(path))

    walk(_click_root(), ["memeatlas"], None)
    return out


def _shell_lines(text: str):
    """(page-relative line, command line) for every memeatlas invocation in bash/shell blocks."""
    for m in _FENCE.finditer(text):
        if m.group(1) not in ("bash", "sh", "shell", "console"):
            continue
        joined = m.group(2).replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("#") or "memeatlas" not in line:
                continue
            for part in re.split(r"\|\||&&|\||;|\$\(|\)", line):
                yield part.strip()


def _check_invocation(root, words: list[str]) -> list[str]:
    import typer._click as click

    try:
        start = next(i for i, w in enumerate(words) if w == "memeatlas" or w.endswith("/memeatlas"))
    except StopIteration:
        return []
    cmd, ctx, path = root, click.Context(root, info_name="memeatlas"), ["memeatlas"]
    rest = words[start + 1:]
    allowed = set(_ROOT_OPTIONS)
    while rest and hasattr(cmd, "list_commands"):
        word = rest[0]
        if word.startswith("-"):
            if word.split("=")[0] not in allowed:
                return [f"{' '.join(path)}: unknown option {word}"]
            rest = rest[1:]
            continue
        sub = cmd.get_command(ctx, word)
        if sub is None:
            return [f"{' '.join(path)}: no subcommand {word!r}"]
        cmd, path, rest = sub, [*path, word], rest[1:]
        ctx = click.Context(cmd, info_name=word, parent=ctx)
    if hasattr(cmd, "list_commands"):
        return []  # a group on its own (e.g. `memeatlas evaluate`) prints its help
    opts = set(_ROOT_OPTIONS)
    for p in cmd.params:
        opts.update(getattr(p, "opts", []))
        opts.update(getattr(p, "secondary_opts", []))
    problems = []
    for word in rest:
        word = word.strip("[]")
        if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", word) and word.split("=")[0] not in opts:
            problems.append(f"{' '.join(path)}: unknown option {word.split('=')[0]}")
    return problems


def test_commands_and_options_in_docs_exist():
    root = _click_root()
    problems = []
    n = 0
    for page in _pages():
        for line in _shell_lines(page.read_text(encoding="utf-8")):
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            found = _check_invocation(root, words)
            n += 1
            problems += [f"{page.relative_to(ROOT)}: `{line}`: {p}" for p in found]
    assert n > 50, "the docs should show the commands at work"
    assert not problems, "\n".join(problems)


# ---- links, pages named by error messages, the README's shape --------------------------------

_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_resolve():
    broken = []
    for page in _pages():
        for target in _LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_pages_named_in_messages_exist():
    named = set()
    for src in (ROOT / "memeatlas").rglob("*.py"):
        named.update(re.findall(r"docs/[\w./-]+\.md", src.read_text(encoding="utf-8")))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"messages name documentation pages that do not exist: {missing}"


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    first_block = _FENCE.search(text).group(2)
    assert "bash scripts/setup.sh && .venv/bin/memeatlas demo" in first_block
    assert "bash scripts/setup.sh --dev && .venv/bin/python -m pytest" in first_block
    assert (ROOT / ".ci" / "run").read_text().count("bash scripts/setup.sh --dev && "
                                                     ".venv/bin/python -m pytest") == 1


@pytest.mark.parametrize("line, ok", [
    ("memeatlas cluster --space s --min-cluster-size 5", True),
    ("memeatlas cluster --no-such-option 5", False),
    ("memeatlas no-such-command", False),
    ("memeatlas --no-progress evaluate quality --runs A,B --pair-set p", True),
])
def test_the_invocation_checker_itself(line, ok):
    assert (not _check_invocation(_click_root(), shlex.split(line))) is ok
