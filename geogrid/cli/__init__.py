"""The ``geogrid`` command-line interface.

One module per command family (``_demo``, ``_import``, ``_check`` ...), each adding its
commands to :data:`main`. Exit status: 0 success, 1 findings (``check``), 2 unusable
input or usage error, with the reason on stderr.
"""

from __future__ import annotations

from geogrid.cli._common import main

# Importing a command module registers its commands on ``main``.
from geogrid.cli import _demo  # noqa: F401  isort: skip
from geogrid.cli import _serve  # noqa: F401  isort: skip
from geogrid.cli import _import  # noqa: F401  isort: skip
from geogrid.cli import _check  # noqa: F401  isort: skip

__all__ = ["main"]
