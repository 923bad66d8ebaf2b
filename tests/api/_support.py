"""Shared by the web-service tests: the TestClient import and the hostile names."""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    # Starlette warns when it finds httpx rather than its successor httpx2; both work here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient as _TestClient

__all__ = ["HOSTILE_NAMES", "TestClient"]


class TestClient(_TestClient):
    """Starlette's TestClient, calling from 127.0.0.1 to http://localhost.

    Its defaults (client "testclient", Host "testserver") are no loopback: a keyless app
    answers clients on this machine only. Tests of other clients pass ``client=``/``base_url=``.
    """

    __test__ = False

    def __init__(
        self,
        *args: Any,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        base_url: str = "http://localhost",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, client=client, base_url=base_url, **kwargs)


# Payloads that run if a name reaches innerHTML or a JS template string unescaped:
# each sets window.__xss, which the browser test checks.
HOSTILE_NAMES = {
    "G1": '<img src=x onerror="window.__xss=1">',
    "G2": "${window.__xss=2}",
    "G3": "`;window.__xss=3;`",
}
HOSTILE_LEVEL_NAME = '<b onmouseover="window.__xss=4">基础网格</b>'
