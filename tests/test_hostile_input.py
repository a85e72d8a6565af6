"""Input built to hurt: bodies nested thousands deep, months out of range, times that are numbers. Each gets a 4xx
problem naming what is wrong, quickly and in little memory, never a 500 or a killed process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from certmon.core.nesting import MAX_DEPTH, DepthScanner, too_deep
from tests.conftest import Api

SENSOR_BOMB = b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]"  # 200 KB; it once grew the server to 22 GB
DEEP = b"[" * 1000 + b"]" * 1000  # Python's json recursion limit
QUICK_S = 5.0  # seconds; the bomb is refused in milliseconds, the margin is for a loaded machine


def incident(**fields: Any) -> dict[str, Any]:
    return {
        "agency": "MOF",
        "title": "C2 beacon from finance workstation",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": "2021-08-02T09:00:00+07:00",
        **fields,
    }


def response(**fields: Any) -> dict[str, Any]:
    answers = {q: 5 for q in ("timeliness", "usefulness", "expertise", "courtesy", "overall")}
    return {"service": "security-services", "agency": "MOF", "submitted_at": "2021-08-15T10:00:00+07:00", **fields} | {
        "answers": answers
    }


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_depth_is_followed_across_chunks_and_ignores_brackets_in_strings() -> None:
    """A string full of brackets, split anywhere, even between a backslash and the quote it escapes, is no depth."""
    text = json.dumps([{"a": '[[[{{\\"' * 50, "b": [[1]]}]).encode()
    for cut in range(len(text) + 1):
        scanner = DepthScanner(limit=4)
        assert scanner.feed(text[:cut]) and scanner.feed(text[cut:]), cut
        assert scanner.depth == 0
    assert not too_deep(text, 4) and too_deep(text, 3)
    assert too_deep(nested(MAX_DEPTH + 1)) and not too_deep(nested(MAX_DEPTH))


@pytest.mark.parametrize("path", ["/api/v1/ingest/eve", "/api/v1/ingest/wazuh"])
async def test_a_sensor_array_nested_100000_deep_is_refused_at_once(api: Api, path: str) -> None:
    started = time.monotonic()
    status, problem = await api.call(
        "POST", path, "analyst", data=SENSOR_BOMB, headers={"Content-Type": "application/x-ndjson"}
    )
    assert time.monotonic() - started < QUICK_S
    assert status == 400, problem
    assert problem["errors"][0]["field"] == "body" and "nested deeper than 64" in problem["detail"]


async def test_a_sensor_line_nested_too_deep_is_rejected_by_line_number(api: Api) -> None:
    status, result = await api.call(
        "POST", "/api/v1/ingest/eve", "analyst", data=b'{"event_type": "dns"}\n' + DEEP + b"\n"
    )
    assert status == 200, result
    assert [(r["line"], r["reason"]) for r in result["rejected"]] == [(2, "invalid")]
    assert "nested deeper than 64" in result["rejected"][0]["error"]


async def test_certmon_ingest_of_a_nested_file_fails_with_a_message(database_url: str, tmp_path: Path) -> None:
    bomb = tmp_path / "eve.json"
    bomb.write_bytes(SENSOR_BOMB)
    code, errors = certmon_stderr(database_url, "ingest", "eve", str(bomb))
    assert code == 1
    assert "nested deeper than 64" in errors and "Traceback" not in errors


def certmon_stderr(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "CERTMON_DATABASE_URL": database_url, "CERTMON_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "certmon", *args], capture_output=True, env=env, timeout=60)
    return done.returncode, done.stderr.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/incidents",
        "/api/v1/incidents/{id}/events",
        "/api/v1/agencies",
        "/api/v1/exports",
        "/api/v1/surveys/responses",
        "/api/v1/ingest/alertmanager",
    ],
)
async def test_a_body_nested_1000_deep_is_a_400_naming_the_body(api: Api, path: str) -> None:
    status, created = await api.call("POST", "/api/v1/incidents", json=incident())
    assert status == 201, created
    status, problem = await api.call("POST", path.format(id=created["id"]), data=DEEP)
    assert status == 400, problem
    assert problem["errors"][0]["field"] == "body"


async def test_a_body_64_deep_is_read_and_judged_on_its_fields(api: Api) -> None:
    status, problem = await api.call("POST", "/api/v1/incidents", data=nested(MAX_DEPTH))
    assert status == 422, problem


@pytest.mark.parametrize(
    ("path", "good"),
    [
        ("/api/v1/incidents/bulk", json.dumps(incident(external_id="one"))),
        ("/api/v1/surveys/responses/bulk", json.dumps(response())),
    ],
)
async def test_a_bulk_line_nested_too_deep_is_rejected_by_line_number(api: Api, path: str, good: str) -> None:
    body = f"{good}\n{nested(1000)}\n{nested(100_000)}\n".encode()
    status, result = await api.call("POST", path, data=body)
    assert status == 200, result
    assert result["accepted"] == 1
    assert [r["line"] for r in result["rejected"]] == [2, 3]
    assert all("nested deeper than 64" in r["error"] for r in result["rejected"])


async def test_a_cursor_beyond_bigint_is_a_422_naming_the_cursor(api: Api) -> None:
    status, problem = await api.call("GET", "/api/v1/incidents?cursor=aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk")
    assert status == 422 and problem["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("month", ["1969-12", "9999-12", "2101-01"])
async def test_an_export_of_a_month_before_1970_or_not_begun_is_a_422_naming_the_month(api: Api, month: str) -> None:
    status, problem = await api.call("POST", "/api/v1/exports", json={"month": month})
    assert status == 422, problem
    assert problem["errors"][0]["field"] == "month"


async def test_fiscal_year_2513_begins_in_1969_and_holds_the_incidents_of_1970(api: Api) -> None:
    status, body = await api.call("POST", "/api/v1/incidents", json=incident(detected_at="1970-03-01T09:00:00+07:00"))
    assert status == 201, body
    status, figures = await api.call("GET", "/api/v1/sla?period=FY2513")
    assert (status, figures["total"]) == (200, 1)
    status, problem = await api.call("GET", "/api/v1/sla?period=FY2512")  # ends on 1 October 1969
    assert status == 422 and problem["errors"][0]["field"] == "period"
    status, report = await api.call("GET", "/api/v1/reports/fiscal?fy=2513")
    assert status == 200, report


NOT_TIMES = [1234567890, 1234567890.5, "1234567890", "2021-08-02", "2021-08-02T09:00:00", True, None]


@pytest.mark.parametrize("value", NOT_TIMES)
async def test_an_incident_time_that_is_not_rfc_3339_with_an_offset_is_a_422(api: Api, value: Any) -> None:
    status, problem = await api.call("POST", "/api/v1/incidents", json=incident(detected_at=value))
    assert status == 422, problem
    assert problem["errors"][0]["field"] == "detected_at"
    status, problem = await api.call("POST", "/api/v1/incidents", json=incident(resolved_at=value or 0))
    assert status == 422, problem
    assert problem["errors"][0]["field"] == "resolved_at"


@pytest.mark.parametrize("value", [1234567890, "1234567890", "2021-08-02"])
async def test_an_event_or_survey_time_that_is_a_number_or_a_date_is_a_422(api: Api, value: Any) -> None:
    status, created = await api.call("POST", "/api/v1/incidents", json=incident())
    assert status == 201, created
    status, problem = await api.call(
        "POST", f"/api/v1/incidents/{created['id']}/events", json={"type": "analysed", "at": value}
    )
    assert status == 422 and problem["errors"][0]["field"] == "at", problem
    status, problem = await api.call("POST", "/api/v1/surveys/responses", json=response(submitted_at=value))
    assert status == 422 and problem["errors"][0]["field"] == "submitted_at", problem


async def test_a_bulk_line_with_seconds_for_a_time_is_rejected(api: Api) -> None:
    body = f"{json.dumps(incident(detected_at=1234567890))}\n".encode()
    status, result = await api.call("POST", "/api/v1/incidents/bulk", data=body)
    assert status == 200, result
    assert result["accepted"] == 0 and result["rejected"][0]["error"].startswith("detected_at: must be an RFC 3339")
