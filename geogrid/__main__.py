"""``python -m geogrid`` runs the command-line interface."""

from geogrid.cli import main

main()
