"""Exports over HTTP and from the command line: who may read them, the public key, export and verify."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from certmon.core import satisfaction, signing
from certmon.store import db, surveys
from certmon.web import appkeys
from tests.conftest import Api

BKK = ZoneInfo("Asia/Bangkok")


def incident(detected: str, notified: str | None) -> dict[str, Any]:
    body = {
        "agency": "MOF",
        "title": "Phishing site imitating the ministry",
        "severity": "high",
        "category": "fraud/phishing",
        "detected_at": detected,
    }
    return body | ({"notified_at": notified} if notified else {})


async def august_export(api: Api) -> dict[str, Any]:
    for detected, notified in (("2021-08-02T09:00:00+07:00", "2021-08-02T09:20:00+07:00"),
                               ("2021-08-31T23:30:00+07:00", None)):  # fmt: skip
        status, body = await api.call("POST", "/api/v1/incidents", json=incident(detected, notified))
        assert status == 201, body
    status, body = await api.call("POST", "/api/v1/exports", json={"month": "2021-08"})
    assert status == 201, body
    return dict(body)


async def download(api: Api, path: str, role: str = "auditor") -> tuple[int, bytes, str]:
    async with api.client.get(path, headers=api.headers(role)) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_admin_exports_a_month_once_and_auditor_lists_and_downloads_it(api: Api) -> None:
    """POST makes revision 1 (201), repeating it returns it (200); the auditor's download matches the manifest."""
    created = await august_export(api)
    assert (created["month"], created["revision"], created["created"]) == ("2021-08", 1, True)
    status, again = await api.call("POST", "/api/v1/exports", json={"month": "2021-08"})
    assert (status, again["revision"], again["created"]) == (200, 1, False)
    status, listing = await api.call("GET", "/api/v1/exports", "auditor")
    assert status == 200
    [item] = listing["items"]
    names = {f["name"]: f for f in item["files"]}
    assert {"figures.csv", "incidents.csv", "export.json", "export.xlsx"} <= set(names)
    assert {"objectives.csv", "objective-figures.csv", "incident-objectives.csv"} <= set(names)
    for name in ("figures.csv", "incident-objectives.csv"):
        status, data, content_type = await download(api, f"/api/v1/exports/2021-08/1/{name}")
        assert status == 200 and content_type.startswith("text/csv")
        assert hashlib.sha256(data).hexdigest() == names[name]["sha256"]
    status, manifest, _ = await download(api, "/api/v1/exports/2021-08/latest/manifest.json")
    assert json.loads(manifest)["revision"] == 1


async def test_agency_and_analyst_tokens_get_403_on_exports(api: Api) -> None:
    """Signed files are whole-nation documents: an agency token and an analyst token are refused, not filtered."""
    await august_export(api)
    for role in ("agency", "analyst"):
        status, _, _ = await download(api, "/api/v1/exports/2021-08/1/figures.csv", role)
        assert status == 403, role
        status, _ = await api.call("GET", "/api/v1/exports", role)
        assert status == 403, role
    status, _ = await api.call("POST", "/api/v1/exports", "auditor", json={"month": "2021-08"})
    assert status == 403


async def test_public_key_needs_no_token_and_verifies_the_manifest(api: Api) -> None:
    """The served PEM checks the downloaded manifest's signature; its fingerprint is the manifest's."""
    await august_export(api)
    async with api.client.get("/api/v1/exports/public-key") as response:
        assert response.status == 200
        pem = await response.read()
        fingerprint = response.headers["X-Key-Fingerprint"]
    key = load_pem_public_key(pem)
    _, manifest, _ = await download(api, "/api/v1/exports/2021-08/1/manifest.json")
    _, signature, _ = await download(api, "/api/v1/exports/2021-08/1/manifest.sig")
    key.verify(base64.b64decode(signature), manifest)  # type: ignore[union-attr,call-arg]
    assert json.loads(manifest)["signing_key"]["fingerprint"] == fingerprint


async def test_unknown_month_revision_or_file_is_404_and_bad_month_is_422(api: Api) -> None:
    """Missing things are 404 naming what is missing; a month that is not YYYY-MM is 422 naming the field."""
    await august_export(api)
    assert (await api.call("GET", "/api/v1/exports/2021-07/1/figures.csv", "auditor"))[0] == 404
    assert (await api.call("GET", "/api/v1/exports/2021-08/2/figures.csv", "auditor"))[0] == 404
    status, body = await api.call("GET", "/api/v1/exports/2021-08/1/secrets.txt", "auditor")
    assert status == 404 and "figures.csv" in body["detail"]
    status, body = await api.call("GET", "/api/v1/exports/2021-13/1/figures.csv", "auditor")
    assert (status, body["errors"][0]["field"]) == (422, "month")
    status, body = await api.call("POST", "/api/v1/exports", json={"month": "August"})
    assert (status, body["errors"][0]["field"]) == (422, "month")


async def test_month_not_over_is_a_conflict(api: Api) -> None:
    """Exporting the current month is refused with 409 and the instant it becomes possible."""
    month = datetime.now(BKK).strftime("%Y-%m")
    status, body = await api.call("POST", "/api/v1/exports", json={"month": month})
    assert status == 409
    assert "can be exported from" in body["detail"]


async def test_satisfaction_figures_are_exported_when_surveys_have_responses(api: Api) -> None:
    """Ten August responses with mean 4.26 appear as 85.2 % against 85 % in satisfaction.csv."""
    questions = ("timeliness", "usefulness", "expertise", "courtesy", "overall")
    scores = [5] * 13 + [4] * 37
    policy = api.app[appkeys.POLICY]
    conn = await asyncpg.connect(api.database_url)
    try:
        for i in range(10):
            answers = dict(zip(questions, scores[i * 5 : i * 5 + 5], strict=True))
            response = satisfaction.ResponseIn(
                service="security-services", agency="MOF", submitted_at=datetime(2021, 8, 20, 10, i, tzinfo=BKK),
                answers=answers,
            )  # fmt: skip
            await surveys.create(conn, db.Queries.load(), policy, response, "test")
    finally:
        await conn.close()
    await august_export(api)
    _, data, _ = await download(api, "/api/v1/exports/2021-08/1/satisfaction.csv")
    [row] = [line.split(",") for line in data.decode("utf-8-sig").splitlines()[1:]]
    header = data.decode("utf-8-sig").splitlines()[0].split(",")
    figures = dict(zip(header, row, strict=True))
    assert (figures["service"], figures["responses"], figures["satisfaction_percent"]) == (
        "security-services",
        "10",
        "85.2",
    )
    assert (figures["target"], figures["status"]) == ("85.0", "green")


def certmon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certmon", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    return env | {
        "CERTMON_DATABASE_URL": database_url,
        "CERTMON_DATA_DIR": str(tmp_path / "data"),
        "CERTMON_LOG_FORMAT": "json",
    }


async def test_cli_exports_writes_and_verifies_then_names_the_tampered_file(
    api: Api, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """`certmon export --month --out` writes a revision that `export verify` accepts until one byte changes."""
    await api.call("POST", "/api/v1/incidents", json=incident("2021-08-02T09:00:00+07:00", "2021-08-02T09:20:00+07:00"))
    out = tmp_path / "out"
    made = certmon("export", "--month", "2021-08", "--out", str(out), env=cli_env)
    assert made.returncode == 0, made.stderr
    assert "2021-08 revision 1 created" in made.stdout
    directory = out / "2021-08" / "r1"
    ok = certmon("export", "verify", str(directory), env=cli_env)
    assert ok.returncode == 0 and ok.stdout.startswith("OK 2021-08 revision 1"), ok.stdout + ok.stderr
    again = certmon("export", "--month", "2021-08", env=cli_env)
    assert "2021-08 revision 1 unchanged" in again.stdout
    incidents_csv = directory / "incidents.csv"
    data = bytearray(incidents_csv.read_bytes())
    data[10] ^= 0x20
    incidents_csv.write_bytes(bytes(data))
    public = directory.parent / "served.pem"
    public.write_bytes((directory / signing.PUBLIC_KEY).read_bytes())
    failed = certmon("export", "verify", str(directory), "--public-key", str(public), env=cli_env)
    assert failed.returncode == 1
    assert failed.stdout.startswith("FAIL incidents.csv: SHA-256")
    listed = certmon("export", "list", env=cli_env)
    assert "2021-08" in listed.stdout


def test_cli_refuses_a_month_that_is_not_one(cli_env: dict[str, str]) -> None:
    """--month FY2564 is not a month: exit status 2 and a message naming --month."""
    result = certmon("export", "--month", "FY2564", env=cli_env)
    assert result.returncode == 2
    assert "--month" in result.stderr
