"""The README runs as written: its Python tour and every ``geogrid`` command of its code blocks.

Commands run literally (the README's own text, through bash) in one temporary directory, in
the README's order, with ``geogrid`` being this checkout's CLI. A command's exit status must
be 0, or the one its comment documents (``# exit 1 ...``, ``# exit 2 ...``). Servers are
started, asked for their home page and stopped.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Lines of the README's code blocks that this test does not run, each with the reason. The
# test fails if one of them disappears from the README or a new command is not run.
NOT_RUN = {
    "bash scripts/test": "runs the whole suite (and so this test): it is what CI runs",
    'geogrid plan new "postgresql:///city?host=/run/postgresql&schema=hebei" --name "新规划" --author 王工': (
        "names a deployment's database (city on the local socket); the PostGIS CLI is tested on a throw-away "
        "server in tests/test_cli_plan.py"
    ),
    'geogrid serve "postgresql://planner@db.intranet/city?schema=hebei"': "names an intranet database host",
}
PIP_PREFIX = "pip install -e . && "  # the package under test is installed already; the rest of the line runs
LOOPBACK_WARNING = "no API keys configured"


def _bash_lines(text: str) -> list[str]:
    """Return the lines of the README's ```bash blocks, continuation lines joined as bash joins them."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", "")
        lines += [line.strip() for line in joined.splitlines() if line.strip()]
    return lines


def _without_comment(line: str) -> str:
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def _expected_status(line: str) -> int:
    m = re.search(r"#.*\bexit (\d)\b", line)
    return int(m.group(1)) if m else 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def shell_env(tmp_path) -> dict[str, str]:
    """An environment where ``geogrid`` is this checkout's CLI and the user cache is private."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "geogrid"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m geogrid "$@"\n', encoding="utf-8")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # `geogrid serve` builds the demo there
    for name in [n for n in env if n.startswith("GEOGRID_")]:
        del env[name]
    return env


def _serve(command: str, cwd: Path, env: dict[str, str]) -> str:
    """Start a ``geogrid serve`` line, wait for its home page, stop it; return what it printed on stderr."""
    port = _free_port()
    proc = subprocess.Popen(
        command,
        shell=True,
        executable="/bin/bash",
        cwd=cwd,
        env={**env, "GEOGRID_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    status = None
    try:
        deadline = time.monotonic() + 300  # the first `geogrid serve` builds the whole demo district
        while status is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
                    status = response.status
            except OSError:
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert status == 200, f"{command}: the home page did not answer (exit {proc.returncode}):\n{err}"
    return err


@pytest.mark.slow
def test_every_readme_command_runs_as_printed(tmp_path, shell_env):
    lines = _bash_lines(README.read_text(encoding="utf-8"))
    not_run = [line for line in lines if _without_comment(line) in NOT_RUN]
    assert sorted(_without_comment(line) for line in not_run) == sorted(NOT_RUN)
    commands = [
        line.removeprefix(PIP_PREFIX) for line in lines if line not in not_run and "geogrid" in line.split("#")[0]
    ]
    assert all(c.startswith("geogrid ") for c in commands), commands
    work = tmp_path / "tour"
    work.mkdir()
    ran = []
    for command in commands:
        if _without_comment(command).split()[:2] == ["geogrid", "serve"]:
            err = _serve(command, work, shell_env)
            assert err.count(LOOPBACK_WARNING) == 1, f"{command}: the loopback warning should print once:\n{err}"
        else:
            out = subprocess.run(
                command,
                shell=True,
                executable="/bin/bash",
                cwd=work,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            expected = _expected_status(command)
            assert out.returncode == expected, (
                f"{command}\nexit {out.returncode}, README says {expected}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
            )
            if expected == 2:
                assert "error:" in out.stderr, f"{command}: exit 2 without the reason"
        ran.append(command)
    assert len(ran) == len(commands) >= 18  # `geogrid serve` and the whole tour
    assert (work / "qa.html").exists() and (work / "fixed.gpkg").exists() and (work / "findings.json").stat().st_size


@pytest.mark.slow
def test_the_python_tour_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the README should show the Python API"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    new, grids = namespace["new"], namespace["grids"]
    assert len(new) == len(grids) + 1  # one grid became two
    assert "D01-S01-C01-G01" not in set(new["grid_id"])
    assert (tmp_path / "demo.gpkg").exists()
