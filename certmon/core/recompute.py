"""Clocks stored under another policy than the one in force: how many are left, what answers say of it, and how
often progress is told.

A policy change makes every stored clock stale (the policy's clock fingerprint differs from the one each incident
was computed with). The service recomputes them behind its answers, in batches; until it is done, figures mix two
policies, so answers say so and monthly exports, which are signed, wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from certmon.core.audit import Actor

ACTOR = Actor("system:recompute", "system")  # who the background recompute writes as
RETRY_AFTER_SECONDS = 30  # told to an export refused meanwhile; a batch of 1,000 takes about a second
PROGRESS_SECONDS = 10.0  # at most one progress line this often
# A recount reads the index entry of every stale incident: seconds, at millions. It is repeated no sooner than this
# many times what the last one took, so that it stays a small share of the recompute; the batches' own counts tell
# the progress meanwhile.
RECOUNT_FACTOR = 20.0
PASS_PAUSE_SECONDS = 1.0  # before another pass over rows that another writer held during the last one
FAILURE_PAUSE_SECONDS = 5.0  # before trying again after the database failed under the recompute


@dataclass(slots=True)
class RecomputeStatus:
    """What this process knows of the recompute: incidents whose clocks are stored under another policy.

    Counted when the recompute starts and at each progress line, lowered by each batch this process commits in
    between; 0 when none is left (or none was stale).
    """

    remaining: int = 0

    def answer(self) -> dict[str, Any] | None:
        """``recomputing`` as answers carry it: the incidents left, or None when figures are all of one policy."""
        return {"remaining": self.remaining} if self.remaining > 0 else None

    def batch_done(self, count: int) -> None:
        self.remaining = max(0, self.remaining - count)


def recount_every(count_seconds: float) -> float:
    """Seconds between two recounts of the stale incidents, from what the last one took."""
    return max(PROGRESS_SECONDS, RECOUNT_FACTOR * count_seconds)


@dataclass(slots=True)
class Progress:
    """When a progress line is due: ``every`` seconds at most, on a monotonic clock the caller reads."""

    last: float
    every: float = PROGRESS_SECONDS

    def due(self, now: float) -> bool:
        if now - self.last < self.every:
            return False
        self.last = now
        return True
