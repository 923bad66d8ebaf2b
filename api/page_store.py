"""Built map pages kept on disk beside the store, so a restarted server answers at once.

The command-centre wall takes seconds to build on a district (camera views, blind spots,
Gi*); the in-memory cache loses it at every restart. Pages are written to a directory
next to a GeoPackage store (``<store>.pages/``), named by a hash of what the page was
built from: the store file's identity and state (path, inode, size, modification time,
the same key the in-memory cache uses), the request's parameters, and the code that
builds pages. A changed store, period or program is a different name; nothing is ever
read back for a state it was not built from. A store that is not a file (PostGIS) gets
no page store. Writes are atomic (a temporary file renamed); at most :data:`MAX_PAGES`
files are kept (oldest out). A directory that cannot be written is logged and skipped:
the page is still served, only not kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Hashable
from pathlib import Path

__all__ = ["MAX_PAGES", "PageStore"]

MAX_PAGES = 24
"""Most pages kept per store directory (least recently written out first)."""

log = logging.getLogger("geogrid.api")

_CODE = (
    Path(__file__).with_name("pages.py"),
    Path(__file__).parent / "routers" / "maps.py",
    Path(__file__).parents[1] / "geogrid" / "maps.py",
    Path(__file__).parents[1] / "geogrid" / "_maps_command.py",
)


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for path in _CODE:
        h.update(path.read_bytes() if path.is_file() else path.name.encode())
    return h.hexdigest()[:16]


_FINGERPRINT = _code_fingerprint()


class PageStore:
    """Pages (text) by key in a directory; keys are hashed with the code's fingerprint.

    Parameters
    ----------
    directory
        Where the pages live (created on the first write).

    Examples
    --------
    >>> import tempfile
    >>> pages = PageStore(Path(tempfile.mkdtemp()) / "demo.gpkg.pages")
    >>> pages.get(("wall", 1)) is None
    True
    >>> pages.put(("wall", 1), "<html>…</html>")
    >>> pages.get(("wall", 1))
    '<html>…</html>'
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def beside(cls, store_path: Path | None) -> PageStore | None:
        """Return the page store of a store file (``<file>.pages``), None for a store that is not a file."""
        if store_path is None:
            return None
        return cls(store_path.with_name(store_path.name + ".pages"))

    def _file(self, key: Hashable) -> Path:
        digest = hashlib.sha256(repr((_FINGERPRINT, key)).encode("utf-8")).hexdigest()[:40]
        return self.directory / f"{digest}.txt"

    def get(self, key: Hashable) -> str | None:
        """Return the text kept for ``key``, None if there is none."""
        path = self._file(key)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("could not read the kept page %s: %s", path, err)
            return None

    def put(self, key: Hashable, text: str) -> None:
        """Keep ``text`` for ``key`` (atomically); keep at most :data:`MAX_PAGES` files."""
        path = self._file(key)
        try:
            self.directory.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".txt")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            kept = sorted(self.directory.glob("*.txt"), key=lambda p: p.stat().st_mtime_ns)
            for old in kept[:-MAX_PAGES]:
                old.unlink(missing_ok=True)
        except OSError as err:
            log.warning("could not keep the page in %s (it is served, not kept): %s", self.directory, err)

    def get_json(self, key: Hashable) -> object | None:
        """Return the JSON value kept for ``key``, None if there is none."""
        text = self.get(("json", key))
        return None if text is None else json.loads(text)

    def put_json(self, key: Hashable, value: object) -> None:
        """Keep a JSON value for ``key``."""
        self.put(("json", key), json.dumps(value))
