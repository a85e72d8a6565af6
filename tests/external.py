"""External programs (prometheus, promtool, alertmanager, chromium) that some tests drive for real."""

from __future__ import annotations

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
