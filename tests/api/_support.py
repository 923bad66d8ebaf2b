"""Shared by the web-service tests: the TestClient import and the hostile names."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # Starlette warns when it finds httpx rather than its successor httpx2; both work here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

__all__ = ["HOSTILE_NAMES", "TestClient"]

# Payloads that run if a name reaches innerHTML or a JS template string unescaped:
# each sets window.__xss, which the browser test checks.
HOSTILE_NAMES = {
    "G1": '<img src=x onerror="window.__xss=1">',
    "G2": "${window.__xss=2}",
    "G3": "`;window.__xss=3;`",
}
HOSTILE_LEVEL_NAME = '<b onmouseover="window.__xss=4">基础网格</b>'
