"""The certmon command, one module per command group; nothing imports it."""

from __future__ import annotations

import sys
from collections.abc import Sequence

INTERRUPTED = 130  # 128 + SIGINT: what shells report for a command stopped by Ctrl-C


def run(argv: Sequence[str] | None = None) -> int:
    """The ``certmon`` entry point. Importing the commands takes a second or more; a Ctrl-C meanwhile (the terminal
    sends it to every process of the group) ends the command with one line, not an import traceback."""
    try:
        from certmon.cli.main import main
    except KeyboardInterrupt:
        print("certmon: interrupted", file=sys.stderr)
        return INTERRUPTED
    return main(argv)
