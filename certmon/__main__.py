"""``python -m certmon``: the same as the ``certmon`` command."""

from certmon.cli.main import main

raise SystemExit(main())
