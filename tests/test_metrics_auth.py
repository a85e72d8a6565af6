"""/metrics shows every agency's figures: it takes a metrics, auditor or admin token, as shipped Prometheus sends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from certmon.web import appkeys
from tests.conftest import Api
from tests.external import require_program

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "dashboards" / "prometheus"


async def scrape(api: Api, role: str | None) -> tuple[int, Any, str]:
    headers = api.headers(role) if role else {}
    async with api.client.get("/metrics", headers=headers) as response:
        body = await response.text()
        return response.status, response.content_type, body


async def test_metrics_answer_401_without_a_token_and_403_to_agency_and_analyst_tokens(api: Api) -> None:
    """No token is 401, an agency's or an analyst's token is 403, both as problem bodies; metrics data is not shown."""
    status, content_type, body = await scrape(api, None)
    assert (status, content_type) == (401, "application/problem+json")
    assert "certmon_" not in body
    for role in ("agency", "analyst"):
        status, content_type, body = await scrape(api, role)
        assert (status, content_type) == (403, "application/problem+json"), role
        assert "certmon_" not in body


async def test_metrics_are_scraped_with_a_metrics_auditor_or_admin_token(api: Api) -> None:
    """The metrics role exists for Prometheus; an auditor and an admin may read the figures too."""
    for role in ("metrics", "auditor", "admin"):
        status, _, body = await scrape(api, role)
        assert status == 200, role
        assert "certmon_http_requests_total" in body


async def test_metrics_token_reads_nothing_but_metrics(api: Api) -> None:
    """A token of role metrics gets 403 from the API: leaking it shows figures, not incidents."""
    assert (await api.call("GET", "/api/v1/incidents", "metrics"))[0] == 403
    assert (await api.call("GET", "/api/v1/agencies", "metrics"))[0] == 403


async def test_metrics_public_setting_serves_metrics_without_a_token(make_api: Callable[..., Any]) -> None:
    """CERTMON_METRICS_PUBLIC=true restores the open /metrics, for a deployment whose network guards it."""
    api: Api = await make_api(metrics_public=True)
    assert (await scrape(api, None))[0] == 200


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def shipped_prometheus() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    return loaded


def test_shipped_prometheus_scrapes_with_the_token_file_compose_creates() -> None:
    """prometheus.yml reads its bearer token from the file the metrics-token service writes into the shared volume."""
    services = compose()["services"]
    job = shipped_prometheus()["scrape_configs"][0]
    token_path = Path(job["authorization"]["credentials_file"])
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"])
    volume = next(source for source, target in mounts.items() if target == str(token_path.parent))
    assert f"{volume}:/run/certmon" in services["metrics-token"]["volumes"]
    assert services["metrics-token"]["environment"]["CERTMON_METRICS_TOKEN_FILE"] == f"/run/certmon/{token_path.name}"
    assert services["prometheus"]["depends_on"]["metrics-token"]["condition"] == "service_completed_successfully"
    assert volume in compose()["volumes"]
    for name, service in services.items():  # nothing else sees the token
        if name not in ("prometheus", "metrics-token"):
            assert all(not v.startswith(f"{volume}:") for v in service.get("volumes", [])), name


def test_promtool_accepts_the_shipped_prometheus_configuration(tmp_path: Path) -> None:
    """`promtool check config` accepts prometheus.yml, with its rule and token files where compose mounts them."""
    promtool = require_program("promtool")
    config = shipped_prometheus()
    config["rule_files"] = [str(PROMETHEUS / Path(f).name) for f in config["rule_files"]]
    token = tmp_path / "metrics-token"
    token.write_text("certmon_test\n", encoding="utf-8")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (REPO / "dashboards" / "prometheus" / "certmon-rules.yaml").is_file()


def run_token_script(database_url: str, token_file: Path) -> subprocess.CompletedProcess[str]:
    """The metrics-token service's command, run by sh as compose runs it ($$ is compose's escape for $)."""
    script = compose()["services"]["metrics-token"]["command"][2].replace("$$", "$")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env.update(
        CERTMON_DATABASE_URL=database_url,
        CERTMON_METRICS_TOKEN_FILE=str(token_file),
        CERTMON_LOG_FORMAT="json",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return subprocess.run(["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120, check=False)


async def test_compose_token_service_writes_a_metrics_token_once(api: Api, tmp_path: Path) -> None:
    """The service's script makes a metrics token with `certmon token create --role metrics`; a second run keeps it."""
    token_file = tmp_path / "metrics-token"
    first = run_token_script(api.database_url, token_file)
    assert first.returncode == 0, first.stdout + first.stderr
    token = token_file.read_text(encoding="utf-8").strip()
    assert token.startswith("certmon_")
    assert token_file.stat().st_mode & 0o077 == 0  # for Prometheus's user alone
    async with api.client.get("/metrics", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
    again = run_token_script(api.database_url, token_file)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "kept" in again.stdout
    assert token_file.read_text(encoding="utf-8").strip() == token


async def test_a_scrape_does_not_wait_for_the_token_lookup_and_a_revoked_token_is_refused_next(api: Api) -> None:
    """A metrics token verified before is taken at once and verified again behind the answer: once revoked, the
    scrape after that verification is 401."""
    assert (await scrape(api, "metrics"))[0] == 200
    async with api.app[appkeys.POOL].acquire() as conn:
        await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = 'test-metrics'")
    assert (await scrape(api, "metrics"))[0] == 200  # answered before the lookup
    pending = api.app[appkeys.BACKGROUND]
    await asyncio.gather(*pending)
    assert (await scrape(api, "metrics"))[0] == 401
