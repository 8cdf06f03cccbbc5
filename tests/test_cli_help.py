"""`memeatlas --help` lists every command with a description; every option is documented."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from memeatlas.cli import app


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        path = (*prefix, name)
        yield path, cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, path)


def test_every_command_and_option_documented():
    root = typer.main.get_command(app)
    found = dict(_commands(root))
    for expected in ("ingest", "import-annotations", "sql", "export", "status"):
        assert (expected,) in found
    for path, cmd in found.items():
        assert (cmd.help or cmd.short_help or "").strip(), f"{' '.join(path)} has no description"
        for p in cmd.params:
            if p.param_type_name == "option" and p.name != "help":
                assert (p.help or "").strip(), f"{' '.join(path)} option {p.opts} has no help"


def test_help_lists_commands():
    r = CliRunner().invoke(app, ["--help"])
    assert r.exit_code == 0
    for name in ("ingest", "import-annotations", "sql", "export", "status"):
        assert name in r.output


def test_ingest_help_documents_options():
    r = CliRunner().invoke(app, ["ingest", "--help"])
    for opt in ("--recursive", "--manifest", "--path-column", "--id-column", "--max-image-pixels",
                "--workers", "--db"):
        assert opt in r.output
