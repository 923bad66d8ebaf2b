"""``geogrid serve``: loopback only without keys, a generated admin key printed, keys passed on."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geogrid.cli import main


@pytest.fixture
def runs(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    for name in ("GEOGRID_API_KEYS", "GEOGRID_LOCAL_ADMIN_KEY", "GEOGRID_STORE"):
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_a_public_host_without_keys_is_refused(runs, store_path, host):
    out = CliRunner().invoke(main, ["serve", str(store_path), "--host", host])
    assert out.exit_code == 2
    assert "without API keys" in out.output and "GEOGRID_API_KEYS" in out.output
    assert runs == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_without_keys_prints_a_generated_admin_key(runs, store_path, host, monkeypatch):
    out = CliRunner().invoke(main, ["serve", str(store_path), "--host", host])
    assert out.exit_code == 0, out.output
    import os

    key = os.environ["GEOGRID_LOCAL_ADMIN_KEY"]
    assert len(key) >= 32
    assert f"Bearer {key}" in out.output
    assert runs and runs[0][1]["host"] == host


def test_keys_allow_a_public_host(runs, store_path, monkeypatch):
    monkeypatch.setenv("GEOGRID_API_KEYS", "k1-0123456789abcdef:viewer")
    out = CliRunner().invoke(main, ["serve", str(store_path), "--host", "0.0.0.0"])
    assert out.exit_code == 0, out.output
    import os

    assert "GEOGRID_LOCAL_ADMIN_KEY" not in os.environ
    assert "k1-0123456789abcdef" not in out.output
    assert runs[0][1]["host"] == "0.0.0.0"


def test_a_postgis_url_is_served_as_given_and_printed_without_its_password(runs):
    url = "postgresql://planner:s3cret-pw@db.example/city?schema=hebei"
    out = CliRunner().invoke(main, ["serve", url])
    assert out.exit_code == 0, out.output
    import os

    assert os.environ["GEOGRID_STORE"] == url  # not resolved as a file path
    assert "postgresql://planner:***@db.example/city?schema=hebei" in out.output
    assert "s3cret-pw" not in out.output
    assert runs


def test_serve_preloads_the_compiled_kernels_in_the_background(runs, store_path, monkeypatch):
    import threading

    from geogrid.cli import _serve

    started = []
    monkeypatch.setattr(_serve, "warm_kernels", lambda: started.append(threading.current_thread().name))
    result = CliRunner().invoke(main, ["serve", str(store_path)])
    assert result.exit_code == 0, result.output
    for t in threading.enumerate():
        if t.name == "geogrid-warm-kernels":
            t.join(timeout=30)
    assert started == ["geogrid-warm-kernels"]
    assert len(runs) == 1


def test_warm_kernels_runs_the_real_kernels():
    from geogrid.cli._serve import warm_kernels

    warm_kernels()  # loads from numba's cache (or compiles): must not raise
