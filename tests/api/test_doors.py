"""The doors of the service: key lists, loopback-only without keys whatever binds the app,
proxies trusted only when named, links that do not follow the Host header, slow clients closed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from click.testing import CliRunner

from api import Settings, create_app
from api.settings import MIN_KEY_LENGTH, get_settings
from geogrid.cli import main
from tests.api._support import TestClient

A, B = "a-key-0123456789abcdef", "b-key-0123456789abcdef"
BAD_KEY_LISTS = {
    "comma": ",",
    "spaced-comma": " , ",
    "empty-entry": f"{A}:viewer,,{B}:admin",
    "trailing-comma": f"{A}:viewer,",
    "short-key": "k1:viewer",
    "no-role": A,
    "unknown-role": f"{A}:root",
    "repeated": f"{A}:viewer,{A}:admin",
    "space-in-key": "a key with spaces 0123:viewer",
}


@pytest.mark.parametrize("value", BAD_KEY_LISTS.values(), ids=BAD_KEY_LISTS.keys())
def test_a_malformed_key_list_is_refused_by_the_app(value, monkeypatch):
    with pytest.raises(ValueError, match="GEOGRID_API_KEYS: entry") as err:
        Settings(api_keys=value)
    assert A not in str(err.value) and "key with spaces" not in str(err.value)  # keys never reach logs
    # as `uvicorn api.main:app` reads it: from the environment, when the app is built
    monkeypatch.setenv("GEOGRID_API_KEYS", value)
    get_settings.cache_clear()  # the process-wide settings another test may have read already
    try:
        with pytest.raises(ValueError, match="GEOGRID_API_KEYS"):
            create_app()
    finally:
        get_settings.cache_clear()


@pytest.fixture
def runs(monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    for name in ("GEOGRID_API_KEYS", "GEOGRID_LOCAL_ADMIN_KEY", "GEOGRID_STORE", "GEOGRID_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.parametrize("value", BAD_KEY_LISTS.values(), ids=BAD_KEY_LISTS.keys())
@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_serve_refuses_a_malformed_key_list_before_binding(runs, store_path, monkeypatch, value, host):
    monkeypatch.setenv("GEOGRID_API_KEYS", value)
    out = CliRunner().invoke(main, ["serve", str(store_path), "--host", host])
    assert out.exit_code == 2, out.output
    assert "GEOGRID_API_KEYS" in out.output and "entry" in out.output
    assert runs == []


def test_serve_and_the_app_agree_on_key_lists(runs, store_path, monkeypatch):
    from geogrid.cli._serve import _MIN_KEY_LENGTH, _key_list_problems

    assert _MIN_KEY_LENGTH == MIN_KEY_LENGTH
    good = ["", "   ", f"{A}:viewer", f" {A} : Planner , {B}:admin ", "x" * MIN_KEY_LENGTH + ":admin"]
    for value in [*BAD_KEY_LISTS.values(), *good, "x" * (MIN_KEY_LENGTH - 1) + ":admin"]:
        try:
            Settings(api_keys=value)
            app_ok = True
        except ValueError:
            app_ok = False
        assert app_ok == (not _key_list_problems(value)), value
        assert app_ok == (value in good), value


# -- loopback only without keys, in the app ---------------------------------------------------


def _get(app, path="/collections", *, client=("127.0.0.1", 5000), base_url="http://localhost", headers=None):
    with TestClient(app, client=client, base_url=base_url) as c:
        return c.get(path, headers=headers or {})


@pytest.mark.parametrize("client", ["10.0.0.7", "192.168.1.20", "203.0.113.5", "fd00::7"])
def test_without_keys_other_machines_are_refused_whatever_binds_the_app(store_path, client):
    app = create_app(Settings(store=store_path))
    r = _get(app, client=(client, 40000))
    assert r.status_code == 403
    assert "this machine only" in r.json()["description"] and "GEOGRID_API_KEYS" in r.json()["description"]
    assert _get(app, "/health", client=(client, 40000)).status_code == 403
    assert _get(app).status_code == 200  # this machine reads


def test_with_keys_other_machines_are_served_by_key(store_path):
    app = create_app(Settings(store=store_path, api_keys=f"{A}:viewer"))
    assert _get(app, client=("10.0.0.7", 40000), headers={"Authorization": f"Bearer {A}"}).status_code == 200
    assert _get(app, client=("10.0.0.7", 40000)).status_code == 401


def test_without_keys_a_request_through_an_untrusted_proxy_is_refused(store_path):
    """A proxy on this machine makes every client look local: its headers give it away."""
    app = create_app(Settings(store=store_path))
    for header in ({"X-Forwarded-For": "10.0.0.7"}, {"Forwarded": "for=10.0.0.7"}, {"X-Real-IP": "10.0.0.7"}):
        r = _get(app, headers=header)
        assert r.status_code == 403 and "GEOGRID_TRUSTED_PROXIES" in r.json()["description"], header


def test_a_trusted_proxy_names_the_client(store_path):
    app = create_app(Settings(store=store_path, trusted_proxies="127.0.0.1"))
    assert _get(app, headers={"X-Forwarded-For": "10.0.0.7"}).status_code == 403
    # the right-most address not itself a trusted proxy: a client cannot claim loopback by prepending it
    assert _get(app, headers={"X-Forwarded-For": "127.0.0.1, 10.0.0.7"}).status_code == 403
    assert _get(app, headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    # headers from a peer that is not a trusted proxy are not believed
    assert _get(app, client=("10.0.0.9", 1), headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403


def test_without_keys_another_sites_host_is_refused(store_path):
    """DNS rebinding: another site's page reaching the keyless server through the visitor's browser."""
    app = create_app(Settings(store=store_path))
    r = _get(app, base_url="http://evil.example")
    assert r.status_code == 403 and "Host header" in r.json()["description"]
    for ok in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"):
        assert _get(app, base_url=ok).status_code == 200, ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _own_address() -> str | None:
    """An address of this machine that is not loopback (the one a route to the outside would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@contextmanager
def _uvicorn(app, **options) -> Iterator[int]:
    import uvicorn

    port = _free_port()
    config = uvicorn.Config(app, host="0.0.0.0", port=port, lifespan="off", log_level="warning", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_uvicorn_bound_to_all_addresses_without_keys_answers_this_machine_only(store_path):
    """`uvicorn api.main:app --host 0.0.0.0` with uvicorn's own defaults (proxy headers from 127.0.0.1 believed)."""
    own = _own_address()
    if own is None:
        pytest.skip("this machine has no address but loopback")
    with _uvicorn(create_app(Settings(store=store_path))) as port:
        assert _status(f"http://127.0.0.1:{port}/collections") == 200
        assert _status(f"http://{own}:{port}/collections") == 403
        assert _status(f"http://127.0.0.1:{port}/collections", {"X-Forwarded-For": "10.0.0.7"}) == 403


# -- links and the Host header ----------------------------------------------------------------


def test_links_follow_the_public_url_not_the_host_header(store_path):
    app = create_app(Settings(store=store_path, api_keys=f"{A}:viewer", public_url="https://grid.example.gov/"))
    r = _get(app, "/", base_url="http://evil.example", headers={"Authorization": f"Bearer {A}"})
    assert r.status_code == 200
    hrefs = [link["href"] for link in r.json()["links"]]
    assert hrefs and all(h.startswith("https://grid.example.gov/") for h in hrefs), hrefs
    assert "evil.example" not in r.text


@pytest.mark.parametrize("host", ['evil.example/"><script>', "a b", "x@evil.example"])
def test_a_host_header_that_is_no_host_is_refused(store_path, host):
    app = create_app(Settings(store=store_path, api_keys=f"{A}:viewer"))
    r = _get(app, "/", headers={"Authorization": f"Bearer {A}", "Host": host})
    assert r.status_code == 400


@pytest.mark.parametrize("value", ["grid.example.gov", "ftp://grid.example.gov", "https://g.example/prefix"])
def test_a_public_url_that_is_no_origin_is_refused(value):
    with pytest.raises(ValueError, match="GEOGRID_PUBLIC_URL"):
        Settings(public_url=value)


# -- slow and half-open connections -----------------------------------------------------------


def test_serve_closes_half_open_connections_and_keeps_serving(store_path, tmp_path: Path):
    """Silent sockets and byte-at-a-time headers (slowloris) are closed; a real request still gets in."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOGRID_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "geogrid", "serve", str(store_path), "--port", str(port), "--header-timeout", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sockets: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        for n in range(120):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            if n % 2:
                s.sendall(b"GET /collections HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
            sockets.append(s)
        trickle_until = time.monotonic() + 3
        while time.monotonic() < trickle_until:  # a byte a second to the half-sent ones: slowloris
            for s in sockets[1::2]:
                with suppress(OSError):
                    s.sendall(b"a")
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        for s in sockets:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                closed = s.recv(1024) == b""
            except ConnectionResetError:
                closed = True
            except TimeoutError:
                closed = False
            assert closed, "a half-open connection was still held"
        assert _status(f"http://127.0.0.1:{port}/health") == 200
    finally:
        for s in sockets:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
