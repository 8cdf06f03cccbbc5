"""The layers of docs/development.md, checked by import-linter (contracts in pyproject.toml),
plus what import-linter does not check: no `_private` name imported from another package."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "memeatlas"


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (bash scripts/setup.sh --dev installs it)")
    return [exe, "--no-cache"]


def test_import_contracts_hold():
    out = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, imported names, line) for every import in the file, lazy ones too."""
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        package = parts
    else:
        package = parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out.extend((a.name, [], node.lineno) for a in node.names)
    return out


def test_no_private_name_crosses_a_package():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        here = _package_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for mod, names, line in _imports(path):
            if not mod.startswith("memeatlas.") or _package_of(mod) == here:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            private += [p for p in mod.split(".") if p.startswith("_") and not p.startswith("__")]
            if private:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}.{private[0]}")
    assert not bad, "\n".join(bad)


def test_library_modules_never_import_commands():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[1] in ("commands", "cli.py", "testing"):
            continue
        for mod, _names, line in _imports(path):
            if mod == "memeatlas.commands" or mod.startswith("memeatlas.commands.") \
                    or mod == "memeatlas.cli":
                bad.append(f"{rel}:{line} imports {mod}")
    assert not bad, "\n".join(bad)
