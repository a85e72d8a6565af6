"""External programs (prometheus, promtool, alertmanager, chromium) that some tests drive for real."""

from __future__ import annotations

import importlib
import os
import shutil

import pytest


def require_program(name: str, *candidates: str) -> str:
    """The program's path; without it the test skips, or fails when CERTMON_REQUIRE_ALL=1 (as in CI)."""
    for candidate in (name, *candidates):
        path = shutil.which(candidate)
        if path:
            return path
    message = f"{name} is not installed (apt-get install it; .ci/run does)"
    if os.environ.get("CERTMON_REQUIRE_ALL") == "1":
        pytest.fail(f"CERTMON_REQUIRE_ALL=1 but {message}")
    pytest.skip(message)


def require_module(name: str) -> None:
    """Skip (or, with CERTMON_REQUIRE_ALL=1, fail) the test when a Python package it drives is not installed."""
    try:
        importlib.import_module(name)
    except ImportError:
        message = f"the Python package {name} is not installed (pip install -e '.[test]' installs it)"
        if os.environ.get("CERTMON_REQUIRE_ALL") == "1":
            pytest.fail(f"CERTMON_REQUIRE_ALL=1 but {message}")
        pytest.skip(message)
