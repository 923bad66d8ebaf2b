"""The console entry point: help, version, and clean errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geogrid", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    assert "serve" in out.stdout


def test_serve_refuses_a_missing_store_with_the_fix():
    out = run("serve", "no/such/store.gpkg")
    assert out.returncode == 2
    assert "geogrid demo" in out.stderr


def _all_commands():
    from geogrid.cli import main

    stack = [((), main)]
    while stack:
        path, cmd = stack.pop()
        yield path, cmd
        stack.extend(((*path, name), sub) for name, sub in getattr(cmd, "commands", {}).items())


def test_every_command_has_help_with_example_blocks_kept():
    from click.testing import CliRunner

    from geogrid.cli import main

    seen = []
    for path, _cmd in _all_commands():
        out = CliRunner().invoke(main, [*path, "--help"])
        assert out.exit_code == 0, path
        assert "\\b" not in out.output, f"raw \\b marker printed in `geogrid {' '.join(path)} --help`"
        seen.append(" ".join(path))
    for expected in (
        "demo",
        "import",
        "check",
        "repair",
        "serve",
        "stats",
        "hotspots",
        "emerging",
        "coverage",
        "plan edit",
    ):
        assert expected in seen


def test_options_appear_only_on_the_commands_they_serve():
    """A grid command offers the grid columns only; import (any layer, CSV points) offers them all."""
    from click.testing import CliRunner

    from geogrid.cli import main

    not_for_grids = (
        "--time-col",
        "--closed-col",
        "--category-col",
        "--source-col",
        "--status-col",
        "--description-col",
        "--heading-col",
        "--fov-col",
        "--range-col",
        "--x-col",
        "--y-col",
    )
    for command in ("check", "repair"):
        text = CliRunner().invoke(main, [command, "--help"]).output
        assert "--parent-col" in text and "--level-col" in text, command
        assert [opt for opt in not_for_grids if opt in text] == [], command
        assert "incident_id" not in text and "camera_id" not in text, command
    text = CliRunner().invoke(main, ["import", "--help"]).output
    assert all(opt in text for opt in (*not_for_grids, "--parent-col"))
