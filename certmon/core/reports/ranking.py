"""Which agencies a report names as the worst: lowest compliance first, among those with a decided incident."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

WORST_AGENCIES = 10  # the published report's tables fit on one A4 page at this length


def worst(rows: Iterable[Mapping[str, Any]], count: int = WORST_AGENCIES) -> list[Mapping[str, Any]]:
    """Rows with a compliance, lowest first; more breaches, then the code, break ties, so the order is stable."""
    decided = [row for row in rows if row.get("compliance") is not None]
    return sorted(decided, key=lambda row: (row["compliance"], -row["breached"], row["key"]))[:count]
