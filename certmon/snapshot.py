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
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString as _go_float

from certmon import appkeys, db, exports, surveys
from certmon.db import Queries
from certmon.errors import DatabaseUnavailable
from certmon.periods import current_month, fiscal_year_to_date
from certmon.policy import Policy
from certmon.sla import SLA_STATES

log = structlog.get_logger("certmon.metrics")

# Seconds; around the one-hour target so that "how many were close" is visible, up to a day.
DELAY_BUCKETS = (300.0, 900.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 14400.0, 86400.0)
WINDOWS = ("month", "fiscal_year")  # the current Bangkok month and the fiscal year to date
OPEN_STATES = ("pending", "at_risk", "breached")
DECIDED_STATES = ("met", "breached")
DATABASE = "database"  # the failure label of a refresh that could not reach the database at all
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


async def sla_families(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Family]:
    """Compliance, counts per agency, severity and state for both windows, open clocks, and the target."""
    month, fiscal_year = current_month(now, policy.tz), fiscal_year_to_date(now, policy.tz)
    rows = await conn.fetch(q["metrics_window_counts"], fiscal_year.start, fiscal_year.end, month.start, month.end, now)
    # Every state of an (agency, severity) that has incidents in a window is written, zeros included, so that
    # a ratio such as met / (met + breached) exists (and is 0) for an agency without a single met incident.
    counts: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for row in rows:
        for window in WINDOWS:
            if row[window]:
                key = (window, row["agency"], row["sector"], row["severity"])
                counts.setdefault(key, dict.fromkeys(SLA_STATES, 0))[row["state"]] += row[window]
    incidents: list[tuple[tuple[str, ...], float]] = [
        ((*key, state), float(n)) for key, states in sorted(counts.items()) for state, n in states.items()
    ]

    national: dict[str, list[int]] = {window: [0, 0] for window in WINDOWS}
    agencies: dict[tuple[str, str, str], list[int]] = {}
    for (window, agency, sector, _), states in counts.items():
        for total in (national[window], agencies.setdefault((window, agency, sector), [0, 0])):
            total[0] += states["met"]
            total[1] += states["met"] + states["breached"]

    open_rows = await conn.fetch(q["metrics_open_counts"], now)
    open_counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for row in open_rows:
        clock = (row["agency"], row["sector"], row["severity"])
        open_counts.setdefault(clock, dict.fromkeys(OPEN_STATES, 0))[row["state"]] += row["n"]

    return [
        Family(
            "certmon_sla_target_ratio",
            "share of decided incidents that must meet their SLA (policy compliance_target)",
            (),
            [((), policy.compliance_target)],
        ),
        Family(
            "certmon_sla_compliance_ratio",
            "met / (met + breached) of incidents whose clock started in the window; absent while none is decided",
            ("window",),
            [((window,), met / decided) for window, (met, decided) in national.items() if decided],
        ),
        Family(
            "certmon_sla_agency_compliance_ratio",
            "met / (met + breached) of an agency's incidents whose clock started in the window",
            ("window", "agency", "sector"),
            [(key, met / decided) for key, (met, decided) in sorted(agencies.items()) if decided],
        ),
        Family(
            "certmon_sla_incidents",
            "incidents whose clock started in the window, by agency, severity and SLA state now",
            ("window", "agency", "sector", "severity", "state"),
            incidents,
        ),
        Family(
            "certmon_sla_open_incidents",
            "incidents whose SLA clock is running, by agency, severity and state (pending, at_risk, breached)",
            ("agency", "sector", "severity", "state"),
            [((*key, state), float(n)) for key, states in sorted(open_counts.items()) for state, n in states.items()],
        ),
    ]


async def sla_history(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Metric]:
    """All-time decisions and the delay histogram, recounted from the database: a restart never zeroes them."""
    decided = CounterMetricFamily(
        "certmon_sla_decided_incidents",
        "incidents ever decided (met, or breached: notified late or overdue), by sector, severity and state",
        labels=["sector", "severity", "state"],
    )
    found: dict[tuple[str, str], dict[str, int]] = {}
    for row in await conn.fetch(q["metrics_decided_counts"], now):
        found.setdefault((row["sector"], row["severity"]), dict.fromkeys(DECIDED_STATES, 0))[row["state"]] += row["n"]
    for (sector, severity), states in sorted(found.items()):
        for state, n in states.items():
            decided.add_metric([sector, severity, state], n)

    histogram = HistogramMetricFamily(
        "certmon_sla_delay_seconds",
        "SLA delay of every stopped clock (start milestone to stop milestone, calendar seconds), by severity",
        labels=["severity"],
    )
    bounds = [*DELAY_BUCKETS, float("inf")]
    buckets: dict[str, list[float]] = {severity: [0.0] * len(bounds) for severity in policy.severities}
    sums: dict[str, float] = dict.fromkeys(policy.severities, 0.0)
    for row in await conn.fetch(q["metrics_delay_buckets"], bounds):
        if row["severity"] in buckets:
            buckets[row["severity"]][bounds.index(row["le"])] = row["cumulative"]
            sums[row["severity"]] = row["total_seconds"]
    for severity, counts in buckets.items():
        labelled = [(_le(bound), count) for bound, count in zip(bounds, counts, strict=True)]
        histogram.add_metric([severity], labelled, sums[severity])
    return [decided, histogram]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


PARTS: list[SnapshotPart] = [sla_families, surveys.snapshot_families, exports.snapshot_families]


def part_name(part: Callable[..., object]) -> str:
    """A short, stable name of a part for logs and the failure label, e.g. ``snapshot.sla_families``."""
    return f"{part.__module__.removeprefix('certmon.')}.{part.__qualname__}"


class Snapshot:
    """The latest figures of every part, pre-rendered in both exposition formats."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []
        self.text = b""  # Prometheus text format 0.0.4
        self.openmetrics = b""  # OpenMetrics 1.0, without the closing "# EOF"
        self.started = time.time()
        self.last_success: float | None = None
        self.duration_seconds = 0.0
        self.interval_seconds = 15.0
        self.failures: dict[str, int] = {DATABASE: 0}
        self._by_part: dict[str, list[Metric]] = {}
        self.parts()  # label every part's failure counter from the start

    def parts(self) -> list[tuple[str, MetricPart]]:
        named: list[tuple[str, MetricPart]] = [(part_name(p), _as_metrics(p)) for p in PARTS]
        named.append((part_name(sla_history), sla_history))
        for name, _ in named:
            self.failures.setdefault(name, 0)
        return named

    async def build(self, conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[str]:
        """Run every part in one consistent read; a failing part keeps its previous figures. Returns the failed."""
        failed: list[str] = []
        seen: set[str] = set()
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for name, part in self.parts():
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
        self.metrics = [m for name, _ in self.parts() for m in self._by_part.get(name, [])]
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
    """The snapshot on a registry. /metrics appends the pre-rendered bytes instead (see certmon.metrics)."""

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
            "certmon_snapshot_age_seconds",
            "seconds since the database figures were last refreshed in full (since start-up if never)",
            value=snapshot.age_seconds(now),
        )
        if snapshot.last_success is not None:
            yield GaugeMetricFamily(
                "certmon_snapshot_last_success_timestamp_seconds",
                "Unix time of the last refresh in which every part succeeded",
                value=snapshot.last_success,
            )
        yield GaugeMetricFamily(
            "certmon_snapshot_refresh_interval_seconds",
            "configured refresh interval (CERTMON_METRICS_REFRESH_SECONDS)",
            value=snapshot.interval_seconds,
        )
        yield GaugeMetricFamily(
            "certmon_snapshot_refresh_duration_seconds",
            "time the last refresh took, queries and rendering",
            value=snapshot.duration_seconds,
        )
        yield GaugeMetricFamily(
            "certmon_snapshot_samples", "samples in the snapshot, a measure of its cost", value=snapshot.samples
        )
        failures = CounterMetricFamily(
            "certmon_snapshot_refresh_failures",
            "refreshes that kept previous figures, by part ('database' when it was unreachable)",
            labels=["part"],
        )
        for part, count in sorted(snapshot.failures.items()):
            failures.add_metric([part], count)
        yield failures


def _as_metrics(part: SnapshotPart) -> MetricPart:
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


async def refresh(app: web.Application) -> bool:
    """Rebuild the app's snapshot now; False (keeping the previous figures) if any part or the database failed."""
    settings = app[appkeys.SETTINGS]
    snapshot = app[appkeys.METRICS].snapshot
    snapshot.interval_seconds = settings.metrics_refresh_seconds
    started = time.perf_counter()
    try:
        async with db.connection(app[appkeys.POOL], settings.db_timeout_seconds) as conn:
            failed = await snapshot.build(conn, app[appkeys.QUERIES], app[appkeys.POLICY], datetime.now(UTC))
    except (DatabaseUnavailable, asyncpg.PostgresError) as exc:  # unreachable, or refusing the transaction
        snapshot.failures[DATABASE] += 1
        log.warning("metrics snapshot kept: database unavailable", error=type(exc).__name__)
        return False
    await snapshot.publish()
    snapshot.duration_seconds = time.perf_counter() - started
    if failed:
        return False
    snapshot.last_success = time.time()
    log.info("metrics snapshot refreshed", samples=snapshot.samples, seconds=round(snapshot.duration_seconds, 3))
    return True


def install_refresh(app: web.Application, scheduler: AsyncIOScheduler) -> None:
    """Refresh the snapshot every CERTMON_METRICS_REFRESH_SECONDS, and once right away at start-up."""

    async def job() -> None:
        await refresh(app)

    scheduler.add_job(
        job,
        "interval",
        seconds=app[appkeys.SETTINGS].metrics_refresh_seconds,
        id="metrics-snapshot",
        coalesce=True,
        max_instances=1,
        next_run_time=datetime.now(UTC),
    )
