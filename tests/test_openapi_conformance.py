"""The served OpenAPI document is what the service does: schemathesis generates requests from it against a real
certmon, with an admin's token and an agency's, and checks every answer against the document.

A bounded, seeded run: a fixed number of examples per operation, one worker, so it takes a minute or two and finds
the same things every time. Any server error, undeclared status, content type, header or body schema fails it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certmon.core.models import NotificationIn, NotificationOut
from certmon.core.policy import load_policy
from certmon.web.api import MODULES
from certmon.web.api.common import Answer, Operation, Param
from certmon.web.api.openapi import document
from tests.conftest import Api

REPO = Path(__file__).resolve().parent.parent
HOOKS = REPO / "tests" / "conformance"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
SEED = 20210802
MAX_EXAMPLES = int(os.environ.get("CERTMON_CONFORMANCE_EXAMPLES", "5"))
# The coverage phase sends each boundary and each kind of wrong value once: with the admin's token, which reaches
# every handler. The agency's token is refused most operations, so its run generates examples and fuzzes.
PHASES = {"admin": "examples,coverage,fuzzing", "agency": "examples,fuzzing"}
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


async def _seed(api: Api) -> None:
    """A few rows that the document's examples name, so that path parameters reach real incidents and exports."""
    for n, agency in enumerate(("MOF", "MOF", "DGA"), start=1):
        status, body = await api.call(
            "POST",
            "/api/v1/incidents",
            json={
                "agency": agency,
                "title": f"C2 beacon {n}",
                "severity": "high",
                "category": "malicious-code/c2-server",
                "detected_at": f"2021-08-0{n}T09:00:00+07:00",
                "notified_at": f"2021-08-0{n}T09:40:00+07:00",
                "source": "suricata",
                "external_id": f"flow-{n}",
            },
        )
        assert status == 201, body
    status, body = await api.call("POST", "/api/v1/exports", json={"month": "2021-08"})
    assert status == 201, body


async def _schemathesis(api: Api, role: str, report: Path) -> tuple[int, str]:
    url = str(api.client.make_url("/api/v1/openapi.json"))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HOOKS / "schemathesis.toml"),
        "run",
        url,
        "--header",
        f"Authorization: Bearer {api.tokens[role]}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES[role],
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--output-truncate",
        "true",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": str(HOOKS)}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=report.parent,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["admin", "agency"])
async def test_the_service_answers_as_its_openapi_document_says(make_api: Any, tmp_path: Path, role: str) -> None:
    """Every generated request, valid or not, gets an answer the document declares: no 5xx, no surprise."""
    api: Api = await make_api(clock=lambda: NOW)
    await _seed(api)
    code, output = await _schemathesis(api, role, tmp_path / "junit.xml")
    (tmp_path / "schemathesis.txt").write_text(output)
    assert code == 0, _failures(output)


def _failures(output: str) -> str:
    """The report's failures and summary; the examples it quotes can run to megabytes."""
    start = output.find("FAILURES")
    return "\n".join(line[:400] for line in output[start if start >= 0 else 0 :].splitlines()[-400:])


def _spec() -> dict[str, Any]:
    return document((op for module in MODULES for op in module.operations), load_policy(None))


def test_success_answers_are_json_and_failures_problems() -> None:
    """An alternative success (200 beside 201) carries the success body, never a problem body."""
    paths = _spec()["paths"]
    for path, method in (("/api/v1/exports", "post"), ("/api/v1/ingest/eve", "post"), ("/api/v1/ingest/wazuh", "post")):
        answers = paths[path][method]["responses"]
        assert list(answers["200"]["content"]) == ["application/json"], path
        assert list(answers["422"]["content"]) == ["application/problem+json"], path


def test_every_route_declares_what_its_properties_imply() -> None:
    """A token: 401, 403, 429; a JSON body: 400, 413; a path id: 404; the database: 503 with Retry-After."""
    paths = _spec()["paths"]
    event = paths["/api/v1/incidents/{id}/events"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "422", "429", "503"} <= set(event)
    assert event["503"]["headers"]["Retry-After"]["required"] is True
    public_key = paths["/api/v1/exports/public-key"]["get"]
    assert public_key["security"] == [] and not {"401", "403", "503"} & set(public_key["responses"])
    assert public_key["responses"]["200"]["headers"]["X-Key-Fingerprint"]["required"] is True
    eve = paths["/api/v1/ingest/eve"]["post"]
    assert not {"400", "413"} & set(eve["responses"])  # streamed: bad or huge lines are counted, not refused
    assert set(eve["requestBody"]["content"]) == {"application/x-ndjson", "application/json"}
    bulk = paths["/api/v1/incidents/bulk"]["post"]
    assert bulk["requestBody"]["content"]["application/x-ndjson"]["schema"]["items"] == {
        "$ref": "#/components/schemas/IncidentIn"
    }
    assert "413" in bulk["responses"] and "400" not in bulk["responses"]


def test_parameters_carry_their_constraints() -> None:
    """Limits, times from 1970, months, periods and the policy's own names are in the schemas."""
    spec = _spec()
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 1000)
    since = re.compile(params["since"]["pattern"])
    assert since.match("2021-08-01T09:00:00+07:00") and since.match("1970-01-01T00:00:00Z")
    assert not since.match("1969-12-31T23:59:59Z") and not since.match("2021-08-01T09:00:00")
    assert params["severity"]["enum"] == ["critical", "high", "medium", "low"]
    period = re.compile(next(p for p in spec["paths"]["/api/v1/sla"]["get"]["parameters"])["schema"]["pattern"])
    assert all(period.match(p) for p in ("2021-08", "FY2564", "FY2513-Q2", "2021-08-01..2021-08-16"))
    assert not any(period.match(p) for p in ("1969-12", "FY2512", "FY2513-Q1", "2021-13"))
    schemas = spec["components"]["schemas"]
    assert re.match(schemas["ExportIn"]["properties"]["month"]["pattern"], "2021-08")
    assert not re.match(schemas["ExportIn"]["properties"]["month"]["pattern"], "1969-12")
    cidr = re.compile(schemas["AgencyIn"]["properties"]["networks"]["items"]["pattern"])
    assert cidr.match("10.10.0.0/16") and cidr.match("2001:db8::/32") and not cidr.match("10.10.0.0/33")


def test_a_new_operation_is_described_from_its_record_alone() -> None:
    """Headers it reads, statuses it adds and the ones its properties imply appear without further work."""
    op = Operation(
        method="post",
        path="/api/v1/things/{id}/marks",
        summary="mark a thing",
        roles=("admin",),
        body=NotificationIn,
        response=NotificationOut,
        status=201,
        params=(
            Param("id", "thing id", {"type": "integer"}, where="path"),
            Param("Idempotency-Key", "repeats return the first answer", where="header"),
        ),
        responses={200: "a repeat: the first answer", 409: Answer("in progress", headers={"Retry-After": "s"})},
    )
    described = document([op])["paths"]["/api/v1/things/{id}/marks"]["post"]
    assert {p["name"]: p["in"] for p in described["parameters"]} == {"id": "path", "Idempotency-Key": "header"}
    answers = described["responses"]
    assert set(answers) == {"200", "201", "400", "401", "403", "404", "409", "413", "422", "429", "503"}
    assert answers["200"]["content"] == answers["201"]["content"]
    assert answers["409"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 0}
