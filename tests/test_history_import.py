"""History imports: old alerts count in their months' figures but never show as open clocks, queued or swept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs
from test_ingest import ndjson, sample, with_networks
from test_ingest_cli import certmon, summary
from test_ingest_cli import with_networks as with_networks_in

from certmon.jobs.sweep import sweep
from certmon.store import console, db
from tests.conftest import Api
from tests.notifying import ManualClock

NOW = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
OPEN_CLOCKS = "SELECT count(*) FROM incident_clocks WHERE stopped_at IS NULL AND clock_start IS NOT NULL"
EVE = "/api/v1/ingest/eve"


async def ingest(api: Api, records: list[dict[str, Any]], history: bool, role: str = "admin") -> tuple[int, Any]:
    path = EVE + ("?history=true" if history else "")
    headers = {"Content-Type": "application/x-ndjson"}
    result: tuple[int, Any] = await api.call("POST", path, role, data=ndjson(records), headers=headers)
    return result


async def scalar(api: Api, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(api.database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def what_pages(api: Api) -> tuple[int, int, list[str], int]:
    """Open clocks, the queue's rows, the sweep's breach and at-risk lines, and the open clocks /metrics reports."""
    q = db.Queries.load()
    conn = await asyncpg.connect(api.database_url)
    try:
        open_clocks = await conn.fetchval(OPEN_CLOCKS)
        queued = len((await console.queue(conn, q, NOW, console.QueueFilter())).rows)
        metric_rows = await conn.fetch(q["metrics_open_counts"], NOW)
    finally:
        await conn.close()
    with capture_logs() as logs:
        assert await sweep(api.runtime(NOW), datetime(2000, 1, 1, tzinfo=UTC), NOW)
    crossings = [e["event"] for e in logs if e["event"].startswith("incident sla")]
    return open_clocks, queued, crossings, sum(r["n"] for r in metric_rows)


@pytest.mark.parametrize("history", [True, False])
async def test_a_history_import_of_the_2018_sample_leaves_nothing_open_but_counts_in_its_month(
    make_api: Any, history: bool
) -> None:
    """Imported as history: 0 open clocks, 0 queue rows, 0 sweep lines, and March 2018 counts every incident as
    missed. Imported as live alerts, the same sample is hundreds of open, breached clocks."""
    api = await make_api(clock=ManualClock(NOW))
    await with_networks(api)
    status, result = await ingest(api, sample("wrccdc-2018"), history)
    assert status == 200, result
    created = result["incidents_created"]
    assert created > 150
    open_clocks, queued, crossings, open_metric = await what_pages(api)
    status, march = await api.call("GET", "/api/v1/sla?period=2018-03")
    assert status == 200, march
    assert march["total"] == created
    if history:
        assert (open_clocks, queued, crossings, open_metric) == (0, 0, [], 0)
        assert march["breached"] == created and march["compliance"] == 0.0
        assert march["latency_seconds"]["max"] is None  # no delay is made up for a notification never recorded
        assert await scalar(api, "SELECT count(*) FROM incidents WHERE history_closed_at = $1", NOW) == created
    else:
        assert open_clocks >= created and queued > 0 and open_metric == created
        assert crossings.count("incident sla breached") == created


async def test_an_incident_imported_as_history_is_not_notified_and_a_late_milestone_keeps_the_rest_closed(
    make_api: Any,
) -> None:
    api = await make_api(clock=ManualClock(NOW))
    await with_networks(api)
    status, result = await ingest(api, sample("wrccdc-2018")[:30], history=True)
    assert status == 200, result
    incident_id = result["incidents"][0]["id"]
    status, problem = await api.call(
        "POST", f"/api/v1/incidents/{incident_id}/notifications", "analyst", json={"channel": "webhook"}
    )
    assert status == 409 and "history" in problem["detail"], problem
    _, incident = await api.call("GET", f"/api/v1/incidents/{incident_id}")
    detected = datetime.fromisoformat(incident["detected_at"])
    # The archive shows the agency was phoned 90 minutes after detection: that stop is recorded with its delay.
    body = {"type": "notified", "at": (detected + timedelta(minutes=90)).isoformat(), "note": "from the call log"}
    status, after = await api.call("POST", f"/api/v1/incidents/{incident_id}/events", "analyst", json=body)
    assert status == 201, after
    assert after["objectives"]["notify"]["state"] == "breached"
    assert after["objectives"]["notify"]["delay_seconds"] == 90 * 60
    assert await scalar(api, OPEN_CLOCKS) == 0  # the acknowledgement clock it started was due long ago: closed


async def test_only_an_admin_may_import_history_over_http(make_api: Any) -> None:
    api = await make_api(clock=ManualClock(NOW))
    status, problem = await ingest(api, sample("wrccdc-2018")[:5], history=True, role="analyst")
    assert status == 403 and "history" in problem["detail"], problem
    status, problem = await api.call("POST", EVE + "?history=yes", "admin", data=b"")
    assert status == 422 and problem["errors"][0]["field"] == "history", problem
    assert await scalar(api, "SELECT count(*) FROM incidents") == 0


async def test_certmon_ingest_history_leaves_no_open_clock(conn: asyncpg.Connection, database_url: str) -> None:
    await with_networks_in(conn)
    code, out = certmon(database_url, "ingest", "eve", "--history", "-", stdin=ndjson(sample("wrccdc-2018")))
    assert code == 0, out
    assert int(summary(out)["incidents created"]) > 150
    assert await conn.fetchval(OPEN_CLOCKS) == 0
    assert await conn.fetchval("SELECT count(*) FROM incidents WHERE history_closed_at IS NULL") == 0
