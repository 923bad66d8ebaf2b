"""Application settings: one ``BaseSettings`` with the ``GEOGRID_`` prefix."""

from __future__ import annotations

import ipaddress
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["MIN_KEY_LENGTH", "Role", "Settings", "get_settings"]


class Role(IntEnum):
    """What a key may do; each role includes the rights of the ones below it."""

    VIEWER = 1
    """Read layers and maps."""
    PLANNER = 2
    """Also create plans and edit them."""
    ADMIN = 3
    """Also commit plans and import data."""

    @property
    def label(self) -> str:
        """The role's name as written in ``GEOGRID_API_KEYS`` (``viewer``, ``planner``, ``admin``)."""
        return self.name.lower()


MIN_KEY_LENGTH = 16
"""Shortest API key accepted: a shorter one can be guessed by trying (``secrets.token_urlsafe(24)`` gives 32)."""

_KEY_HINT = (
    "write e.g. 'key1:viewer,key2:planner,key3:admin' with keys of at least "
    f"{MIN_KEY_LENGTH} characters (python -c 'import secrets; print(secrets.token_urlsafe(24))')"
)


def _check_key(key: str, where: str) -> str | None:
    """Return what is wrong with ``key`` (None if it is fine)."""
    if len(key) < MIN_KEY_LENGTH:
        return f"{where} has a key of {len(key)} characters; keys need at least {MIN_KEY_LENGTH}"
    if any(c.isspace() or c in ",:" for c in key):
        return f"{where} has a key with a space, ',' or ':' in it"
    return None


def _parse_api_keys(value: Any) -> Any:
    """Parse ``"key1:viewer,key2:planner"`` into ``{key: Role}``; mappings are checked the same way.

    An empty entry (``","``, ``"a:viewer,,b:admin"``), a list that names no key at all (``" , "``,
    e.g. ``"$A,$B"`` with both variables unset), a short key, an unknown role and a repeated key are
    refused: a list that parses to fewer keys than it was meant to hold must not open the server.
    Only an absent or entirely blank value means "no keys".
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        problems = [p for n, key in enumerate(value) if (p := _check_key(str(key), f"entry {n + 1}")) is not None]
        if problems:
            msg = "GEOGRID_API_KEYS: " + "; ".join(problems) + f" ({_KEY_HINT})"
            raise ValueError(msg)
        return {str(k): Role(v) for k, v in value.items()}
    if not isinstance(value, str):
        msg = f"GEOGRID_API_KEYS must be a string such as 'key1:viewer,key2:admin'; got {type(value).__name__}"
        raise ValueError(msg)
    if not value.strip():
        return {}
    keys: dict[str, Role] = {}
    problems = []
    names = [r.label for r in Role]
    for n, item in enumerate(p.strip() for p in value.split(",")):
        where = f"entry {n + 1}"
        if not item:
            problems.append(f"{where} is empty (an unset variable in '$A,$B'?)")
            continue
        key, sep, role = item.rpartition(":")
        key, role = key.strip(), role.strip().lower()
        if not sep or not key:
            problems.append(f"{where} has no 'key:role' form")
        elif role not in names:
            problems.append(f"{where} has role {role!r}; roles are {', '.join(names)}")
        elif (problem := _check_key(key, where)) is not None:
            problems.append(problem)
        elif key in keys:
            problems.append(f"{where} repeats a key")
        else:
            keys[key] = Role[role.upper()]
    if problems:
        msg = "GEOGRID_API_KEYS: " + "; ".join(problems) + f" ({_KEY_HINT})"
        raise ValueError(msg)
    return keys


def _parse_networks(value: Any) -> Any:
    """Parse ``"10.0.0.5,192.168.0.0/24"`` into a list of networks (a bare address is a /32 or /128)."""
    if value is None:
        return []
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    networks = []
    for item in items:
        if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(item)
            continue
        if not item:
            msg = "GEOGRID_TRUSTED_PROXIES has an empty entry: list addresses or networks, e.g. '127.0.0.1,10.0.0.0/24'"
            raise ValueError(msg)
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as err:
            msg = (
                f"GEOGRID_TRUSTED_PROXIES has {item!r}: write an address or a network, e.g. '10.0.0.5' or '10.0.0.0/24'"
            )
            raise ValueError(msg) from err
    return networks


class Settings(BaseSettings):
    """Settings of the web service, read from ``GEOGRID_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="GEOGRID_", extra="ignore", hide_input_in_errors=True)

    store: Path | str | None = None
    """The store to serve: a GeoPackage path, or a PostGIS URL (``postgresql://user@host/db?schema=geogrid``,
    kept as text); None serves the demo district (built on first use). Give a database password through
    ``~/.pgpass`` or ``PGPASSWORD`` rather than in the URL."""

    tiles: str | None = None
    """URL template of a local basemap tile server (``http://tiles.local/{z}/{x}/{y}.png``); None: no basemap."""

    tiles_attribution: str | None = None
    """Attribution shown for ``tiles``."""

    api_keys: Annotated[dict[str, Role], NoDecode] = Field(default_factory=dict, repr=False)
    """API keys and their roles: ``"key1:viewer,key2:planner,key3:admin"``, sent as ``Authorization: Bearer <key>``.

    With none configured, anyone may read (viewer rights without a key) and
    ``geogrid serve`` binds to loopback only.
    """

    local_admin_key: SecretStr | None = None
    """An admin key generated by ``geogrid serve`` when no keys are configured; it does not end anonymous reading."""

    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    """Largest request body accepted, in bytes; larger ones get 413 (chunked bodies are counted as they arrive)."""

    emerging_max_bins: int = Field(default=1_000_000, ge=1)
    """Largest space-time cube ``/emerging`` computes, in bins (grids × periods; ~0.6 kB of memory
    each beyond the data); larger requests get 400 saying how to narrow them."""

    emerging_max_permuted_bins: int = Field(default=600_000_000, ge=1)
    """Largest bins × permutations ``/emerging`` computes (990 grids × 52 weeks × 9,999: 43 s on one core)."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins allowed to call the API from a browser (``"https://a.example,https://b.example"``); default none."""

    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    """How long a browser sign-in (``/login``) lasts, in hours; ``/logout`` ends it earlier."""

    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = Field(
        default_factory=list
    )
    """Reverse proxies whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed (``"127.0.0.1,10.0.0.0/24"``).

    Default none: forwarding headers are ignored, and without API keys a request that carries
    them is refused (it came through a proxy, so its real client is unknown)."""

    public_url: str | None = None
    """The URL clients reach the service at (``https://grid.example.gov``): links in
    documents and pages are built on it, never on the request's Host header. None: links
    follow the Host header, which must then be a plain ``host[:port]``."""

    docs: bool = False
    """Serve the interactive API docs at ``/docs`` (Swagger UI, vendored and served by the app)."""

    @field_validator("store", mode="before")
    @classmethod
    def _store(cls, value: Any) -> Any:
        # A URL must not become a Path: Path("postgresql://h/db") is "postgresql:/h/db".
        if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
            return value
        return None if value is None else Path(value)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, value: Any) -> Any:
        return _parse_api_keys(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _trusted_proxies(cls, value: Any) -> Any:
        return _parse_networks(value)

    @field_validator("public_url", mode="before")
    @classmethod
    def _public_url(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        parts = urlsplit(str(value).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            msg = (
                f"GEOGRID_PUBLIC_URL is {value!r}: write it as scheme://host[:port], e.g. https://grid.example.gov "
                "(behind a path prefix, also run uvicorn with --root-path /prefix)"
            )
            raise ValueError(msg)
        return str(value).strip().rstrip("/")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        for origin in value or []:
            if origin == "*" or "*" in origin:
                msg = (
                    f"GEOGRID_CORS_ORIGINS has {origin!r}: list each origin explicitly "
                    "(e.g. 'https://command.example.gov'), wildcards are refused"
                )
                raise ValueError(msg)
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                msg = f"GEOGRID_CORS_ORIGINS has {origin!r}: write an origin as scheme://host[:port], no path"
                raise ValueError(msg)
        return value

    @property
    def anonymous_read(self) -> bool:
        """Whether requests without a key may read: only when no API keys are configured."""
        return not self.api_keys


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings (tests override the dependency instead)."""
    return Settings()
