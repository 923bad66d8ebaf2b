"""Load: 16 viewers on the wall and the items while one planner edits every few seconds (loopback).

``python -m benchmarks.bench_load [--seconds 90] [--viewers 16] [--edit-every 3] [--incidents 200000]
[--work DIR] [--py-spy FILE]``

The server (uvicorn, one process, 127.0.0.1 on a free port) serves a copy of the demo
district. Each viewer loops: the command-centre wall, then a page of incidents. The
planner starts a plan and applies an ``update_attributes`` edit every few seconds
(If-Match with the plan's ETag). Reported: the wall's and the items' latency (p50, p95,
max), every edit's latency and the server's own time for it (``Server-Timing``, added by
the benchmark's wrapper around the app), and the server's resident memory sampled once a
second (after warm-up, at the end, every 10 s). ``--py-spy`` samples the thread holding
the GIL (py-spy must be installed); ``--work`` keeps the store and its kept pages for the
next run. Bounded: the run stops after ``--seconds`` and every request
has a timeout. Figures go to BENCHMARKS.md by hand; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VIEWER, PLANNER = "load-viewer-0123456789", "load-planner-0123456789"

_SERVER = textwrap.dedent(
    """
    import sys, time, uvicorn
    from api import Settings, create_app
    from api.settings import Role
    app = create_app(Settings(store=sys.argv[1], api_keys={sys.argv[3]: Role.VIEWER, sys.argv[4]: Role.PLANNER}))

    def timed(inner):
        # The server's own time per request (arrival in the app to the response's start) as Server-Timing.
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            t0 = time.perf_counter()
            async def send_timed(message):
                if message["type"] == "http.response.start":
                    dur = (time.perf_counter() - t0) * 1000
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"server-timing", f"app;dur={dur:.1f}".encode())]
                await send(message)
            await inner(scope, receive, send_timed)
        return app

    uvicorn.run(timed(app), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", workers=1)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _call(url: str, key: str, *, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _server_s(headers: Any) -> float | None:
    """Return the server's own time for a response (its Server-Timing ``app`` entry), in seconds."""
    for part in (headers.get("Server-Timing") or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name == "app" and dur:
            return float(dur) / 1000
    return None


def _stats(xs: list[float]) -> str:
    if not xs:
        return "none"
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
    return f"n={len(xs)} p50={statistics.median(xs):.3f}s p95={p95:.3f}s max={xs[-1]:.3f}s"


def main(argv: list[str] | None = None) -> None:
    """Run the load benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--viewers", type=int, default=16)
    ap.add_argument("--edit-every", type=float, default=3.0)
    ap.add_argument("--incidents", type=int, default=200_000)
    ap.add_argument(
        "--work",
        metavar="DIR",
        help="keep the demo store (and its kept pages) in DIR and reuse it on the next run (default: a fresh one)",
    )
    ap.add_argument(
        "--py-spy", metavar="FILE", help="also sample the server with py-spy (GIL holders, collapsed stacks) into FILE"
    )
    args = ap.parse_args(argv)
    if args.py_spy and shutil.which("py-spy") is None:
        ap.error("--py-spy needs py-spy on PATH: pip install py-spy")

    from geogrid.demo import write_demo

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="geogrid-load-"))
    store = work / "district.gpkg"
    t0 = time.perf_counter()
    if not store.exists():
        work.mkdir(parents=True, exist_ok=True)
        write_demo(store, 0, n_incidents=args.incidents)
    print(
        f"demo district with {args.incidents:,} incidents: {store.stat().st_size / 2**20:.0f} MiB, "
        f"built in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    from layers.store import GeoPackageStore

    target = str(GeoPackageStore(store).read("grids")["grid_id"].iloc[-1])  # a basic grid the planner renames
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(store), str(port), VIEWER, PLANNER], cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if _call(f"{base}/conformance", VIEWER)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        t0 = time.perf_counter()
        status, _, _ = _call(f"{base}/maps/command-centre", VIEWER)
        print(f"first wall (cold caches): {time.perf_counter() - t0:.2f} s, HTTP {status}", flush=True)
        _call(
            f"{base}/collections/incidents/items?limit=1", VIEWER
        )  # the incidents layer, if kept pages served the wall
        rss: list[tuple[float, float]] = [(0.0, _rss_mib(server.pid))]
        wall: list[float] = []
        items: list[float] = []
        edits: list[float] = []
        edits_server: list[float] = []
        errors: list[str] = []
        stop = threading.Event()
        start = time.perf_counter()

        def viewer(i: int) -> None:
            n = 0
            while not stop.is_set():
                for path, into in (
                    ("/maps/command-centre", wall),
                    (f"/collections/incidents/items?limit=100&offset={n * 100 % 5000}", items),
                ):
                    t = time.perf_counter()
                    status, _, _ = _call(base + path, VIEWER)
                    if status != 200:
                        errors.append(f"{path}: {status}")
                    into.append(time.perf_counter() - t)
                n += 1

        def planner() -> None:
            status, headers, body = _call(f"{base}/plans", PLANNER, body={"name": "load"})
            if status != 201:
                errors.append(f"POST /plans: {status} {body[:200]!r}")
                return
            plan_id, etag = json.loads(body)["plan_id"], headers["ETag"]
            k = 0
            while not stop.wait(args.edit_every):
                k += 1
                edit = {"op": "update_attributes", "grid_id": target, "values": {"households": 100 + k}}
                t = time.perf_counter()
                status, headers, body = _call(
                    f"{base}/plans/{plan_id}/edits", PLANNER, body=edit, headers={"If-Match": etag}
                )
                edits.append(time.perf_counter() - t)
                served = _server_s(headers)
                if served is not None:
                    edits_server.append(served)
                if status != 200:
                    errors.append(f"edit: {status} {body[:200]!r}")
                    return
                etag = headers["ETag"]

        threads = [threading.Thread(target=viewer, args=(i,)) for i in range(args.viewers)]
        threads.append(threading.Thread(target=planner))
        for t in threads:
            t.start()
        spy = None
        if args.py_spy:
            spy = subprocess.Popen(
                ["py-spy", "record", "--gil", "--threads", "--format", "raw", "--rate", "50", "--nonblocking",
                 "--duration", str(int(args.seconds)), "--output", args.py_spy, "--pid", str(server.pid)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        while time.perf_counter() - start < args.seconds:
            time.sleep(1.0)
            rss.append((time.perf_counter() - start, _rss_mib(server.pid)))
        stop.set()
        for t in threads:
            t.join(timeout=330)
        if spy is not None:
            spy.wait(timeout=60)
        print(
            f"{args.viewers} viewers + 1 planner editing every {args.edit_every:g} s for {args.seconds:g} s", flush=True
        )
        print(f"wall:  {_stats(wall)}")
        print(f"items: {_stats(items)}")
        print(f"edits: {_stats(edits)}")
        print(f"edits, server side (arrival in the app to the answer's start): {_stats(edits_server)}")
        warm = [m for s, m in rss if s >= 10] or [rss[-1][1]]
        print(
            f"server RSS MiB: start {rss[0][1]:.0f}, after 10 s {warm[0]:.0f}, max {max(m for _, m in rss):.0f}, "
            f"end {rss[-1][1]:.0f}"
        )
        print("server RSS MiB every 10 s: " + ", ".join(f"{m:.0f}" for t, m in rss if int(t) % 10 == 0))
        print(f"errors: {len(errors)} {errors[:5]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
