"""Database-derived metrics: a snapshot that a job refreshes, so that a scrape never waits on the database.

Every replica computes the snapshot from the same database, so every replica exposes the same values: these are
gauges of shared state, never per-process counters. Dashboards and rules drop the ``instance`` label with ``max``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString as _go_float

from certmon.core.policy import Policy
from certmon.store import db
from certmon.store.db import Queries
from certmon.telemetry.conventions import (
    DATABASE_FAILURE,
    SNAPSHOT_AGE,
    SNAPSHOT_DURATION,
    SNAPSHOT_FAILURES,
    SNAPSHOT_FAILURES_LABELS,
    SNAPSHOT_INTERVAL,
    SNAPSHOT_LAST_SUCCESS,
    SNAPSHOT_SAMPLES,
)

log = structlog.get_logger("certmon.metrics")

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Set while /metrics renders the registry, whose snapshot part is then appended as pre-rendered bytes.
PRERENDERED: ContextVar[bool] = ContextVar("certmon_snapshot_prerendered", default=False)


@dataclass(frozen=True, slots=True)
class Family:
    """One gauge family of the snapshot."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]]  # (label values, value)


SnapshotPart = Callable[[asyncpg.Connection, Queries, Policy, datetime], Awaitable[list[Family]]]
MetricPart = Callable[[asyncpg.Connection, Queries, Policy, datetime], Awaitable[list[Metric]]]
NamedPart = tuple[str, MetricPart]  # the name labels the part's failures and its log lines


def gauge(family: Family) -> GaugeMetricFamily:
    """The prometheus_client form of a Family; ValueError on a bad name, label or sample."""
    if not _NAME_RE.fullmatch(family.name):
        raise ValueError(f"{family.name!r} is not a metric name")
    for label in family.labels:
        if not _LABEL_RE.fullmatch(label) or label.startswith("__"):
            raise ValueError(f"{family.name}: {label!r} is not a label name")
    metric = GaugeMetricFamily(family.name, family.documentation, labels=list(family.labels))
    for values, value in family.samples:
        if len(values) != len(family.labels):
            raise ValueError(f"{family.name}: {len(values)} label values for labels {family.labels}")
        metric.add_metric(list(values), float(value))
    return metric


class Snapshot:
    """The latest figures of every part, pre-rendered in both exposition formats."""

    def __init__(self, parts: Sequence[NamedPart] = ()) -> None:
        self.metrics: list[Metric] = []
        self.text = b""  # Prometheus text format 0.0.4
        self.openmetrics = b""  # OpenMetrics 1.0, without the closing "# EOF"
        self.started = time.time()
        self.last_success: float | None = None
        self.duration_seconds = 0.0
        self.interval_seconds = 15.0
        self.parts = tuple(parts)
        names = [name for name, _ in self.parts]
        if len(set(names)) != len(names) or DATABASE_FAILURE in names:
            raise ValueError(f"snapshot part names must be unique and not {DATABASE_FAILURE!r}: {names}")
        # Every part's failure counter is labelled from the start, so that rate() sees its first failure.
        self.failures: dict[str, int] = dict.fromkeys([DATABASE_FAILURE, *names], 0)
        self._by_part: dict[str, list[Metric]] = {}

    async def build(self, conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[str]:
        """Run every part in one consistent read; a failing part keeps its previous figures. Returns the failed."""
        failed: list[str] = []
        seen: set[str] = set()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for name, part in self.parts:
                try:
                    async with conn.transaction():  # a savepoint: one part's SQL error leaves the others intact
                        metrics = await part(conn, q, policy, now)
                    clash = seen.intersection(m.name for m in metrics)
                    if clash:
                        raise ValueError(f"families already written by another part: {sorted(clash)}")
                except db.OUTAGE_ERRORS:
                    raise
                except Exception:
                    log.exception("metrics snapshot part failed", part=name)
                    self.failures[name] += 1
                    failed.append(name)
                    metrics = self._by_part.get(name, [])
                seen.update(m.name for m in metrics)
                self._by_part[name] = metrics
        self.metrics = [m for name, _ in self.parts for m in self._by_part.get(name, [])]
        return failed

    async def publish(self) -> None:
        """Render the current figures once, off the event loop, so that scrapes only copy bytes."""
        text, openmetrics = await asyncio.to_thread(render, list(self.metrics))
        self.text, self.openmetrics = text, openmetrics

    @property
    def samples(self) -> int:
        return sum(len(m.samples) for m in self.metrics)

    def age_seconds(self, now: float) -> float:
        return now - (self.last_success if self.last_success is not None else self.started)


class SnapshotCollector:
    """The snapshot on a registry. /metrics appends the pre-rendered bytes instead (see certmon.web.metrics)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # the families vary with the parts; none clashes with a per-process metric

    def collect(self) -> Iterable[Metric]:
        return [] if PRERENDERED.get() else self.snapshot.metrics


class SnapshotHealth:
    """How fresh the snapshot is, computed at every scrape."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot
        now = time.time()
        yield GaugeMetricFamily(
            SNAPSHOT_AGE,
            "seconds since the database figures were last refreshed in full (since start-up if never)",
            value=snapshot.age_seconds(now),
        )
        if snapshot.last_success is not None:
            yield GaugeMetricFamily(
                SNAPSHOT_LAST_SUCCESS,
                "Unix time of the last refresh in which every part succeeded",
                value=snapshot.last_success,
            )
        yield GaugeMetricFamily(
            SNAPSHOT_INTERVAL,
            "configured refresh interval (CERTMON_METRICS_REFRESH_SECONDS)",
            value=snapshot.interval_seconds,
        )
        yield GaugeMetricFamily(
            SNAPSHOT_DURATION,
            "time the last refresh took, queries and rendering",
            value=snapshot.duration_seconds,
        )
        yield GaugeMetricFamily(
            SNAPSHOT_SAMPLES, "samples in the snapshot, a measure of its cost", value=snapshot.samples
        )
        failures = CounterMetricFamily(
            SNAPSHOT_FAILURES,
            "refreshes that kept previous figures, by part ('database' when it was unreachable)",
            labels=list(SNAPSHOT_FAILURES_LABELS),
        )
        for part, count in sorted(snapshot.failures.items()):
            failures.add_metric([part], count)
        yield failures


def gauges(part: SnapshotPart) -> MetricPart:
    """A part that returns Families, as one that returns prometheus_client metrics."""

    async def run(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Metric]:
        return [gauge(family) for family in await part(conn, q, policy, now)]

    return run


class _Fixed:
    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def render(metrics: Sequence[Metric]) -> tuple[bytes, bytes]:
    """Text format 0.0.4 and OpenMetrics 1.0 (without "# EOF") of the metrics, as prometheus_client writes them.

    Gauges, nearly all of the snapshot, are written here in one pass: their sample lines are the same in both
    formats, and prometheus_client's general encoder takes ten times longer on thousands of them.
    """
    text: list[str] = []
    openmetrics: list[str] = []
    for metric in metrics:
        if metric.type != "gauge":
            fixed = _Fixed([metric])
            text.append(generate_latest(fixed).decode())
            openmetrics.append(generate_openmetrics(fixed).decode().removesuffix("# EOF\n"))  # type: ignore[no-untyped-call]
            continue
        lines = "".join(_sample_line(sample) for sample in metric.samples)
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        text.append(f"# HELP {metric.name} {doc}\n# TYPE {metric.name} gauge\n{lines}")
        doc = doc.replace('"', r"\"")
        openmetrics.append(f"# HELP {metric.name} {doc}\n# TYPE {metric.name} gauge\n{lines}")
    return "".join(text).encode(), "".join(openmetrics).encode()


def _sample_line(sample: Sample) -> str:
    if not sample.labels:
        return f"{sample.name} {_float(sample.value)}\n"
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
    return f"{sample.name}{{{labels}}} {_float(sample.value)}\n"


_float: Callable[[float], str] = _go_float  # Go's formatting, as Prometheus parses it


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
