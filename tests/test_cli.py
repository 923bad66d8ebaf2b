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
