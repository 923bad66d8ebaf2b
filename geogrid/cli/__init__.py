"""The ``geogrid`` command-line interface.

One private module per command family (``_demo``, ``_import``, ``_check`` ...), each adding
its commands to :data:`main`; every ``geogrid/cli/_*.py`` module is imported here, so a new
command family needs no registration. Exit status: 0 success, 1 findings (``check``),
2 unusable input or usage error, with the reason on stderr.
"""

from __future__ import annotations

import importlib
import pkgutil

import click

from geogrid.cli._common import main

# Importing a command module registers its commands on ``main``.
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("_") and m.name != "_common"):
    importlib.import_module(f"{__name__}.{_mod}")


def _keep_example_blocks(cmd: click.Command) -> None:
    r"""Turn the ``\b`` lines of raw docstrings into click's no-rewrap marker (a backspace character)."""
    if cmd.help:
        cmd.help = cmd.help.replace("\\b\n", "\b\n")
    for sub in getattr(cmd, "commands", {}).values():
        _keep_example_blocks(sub)


_keep_example_blocks(main)

__all__ = ["main"]
