"""The current instant, handed in: the service reads one Clock, so that a test runs it at an instant it chooses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
