"""``python -m certmon``: the same as the ``certmon`` command."""

from certmon.cli import run

raise SystemExit(run())
