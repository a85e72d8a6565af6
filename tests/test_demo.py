"""The demo data, read back through the API as a newcomer would."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from certmon.core.periods import fiscal_year_of
from certmon.store import demo
from certmon.web import appkeys
from tests.conftest import Api


async def test_demo_fills_both_fiscal_years_and_figures_add_up(api: Api) -> None:
    """~250 agencies, every state present, and per-agency, per-sector and per-month figures that sum to the year's."""
    app = api.app
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM api_tokens WHERE role = 'agency'")
        await conn.execute("DELETE FROM agencies")
        stored = await demo.load(conn, app[appkeys.QUERIES], app[appkeys.POLICY], datetime.now(UTC))
        assert await demo.load(conn, app[appkeys.QUERIES], app[appkeys.POLICY], datetime.now(UTC)) == 0
    assert stored > 5000
    _, agencies = await api.call("GET", "/api/v1/agencies")
    assert len(agencies["items"]) == 250
    sectors = {a["sector"] for a in agencies["items"]}
    assert {"national-security", "banking-finance", "public-health", "energy-utilities", "government"} <= sectors
    this_year = fiscal_year_of(datetime.now(UTC), app[appkeys.POLICY].tz)
    _, last = await api.call("GET", f"/api/v1/sla?period=FY{this_year - 1}&group_by=month")
    assert len(last["groups"]) == 12
    assert 0.9 < last["compliance"] < 0.995
    assert last["excluded"] > 0 and last["breached"] > 0
    assert (
        last["met"] + last["breached"] + last["pending"] + last["at_risk"] + last["excluded"] + last["no_clock"]
        == last["total"]
    )
    for group_by in ("agency", "sector", "severity", "month"):
        _, body = await api.call("GET", f"/api/v1/sla?period=FY{this_year - 1}&group_by={group_by}")
        for figure in ("total", "met", "breached", "excluded"):
            assert sum(g[figure] for g in body["groups"]) == body[figure], (group_by, figure)
    _, agencies_fy = await api.call("GET", f"/api/v1/sla?period=FY{this_year - 1}&group_by=agency")
    assert len(agencies_fy["groups"]) == 250, "every agency had incidents"
    assert {g["status"] for g in agencies_fy["groups"]} >= {"green", "yellow"}
    _, current = await api.call("GET", f"/api/v1/sla?period=FY{this_year}")
    assert current["total"] > 0
    _, open_now = await api.call("GET", "/api/v1/incidents?state=open&sla=pending")
    assert open_now["items"], "the duty view has incidents still inside the hour"
    _, breached_open = await api.call("GET", "/api/v1/incidents?state=open&sla=breached")
    assert breached_open["items"]


# The digest of every demo agency's code, English name, sector, CII flag and networks, in the demo's order, as they
# were before the Thai names were written in Thai: the same agencies, so the demo's figures stay what they were.
DEMO_AGENCIES_SHA256 = "86b938b64275e6de2043fee62f0c1e009e099514bcd60096713b455a1b62a49d"


def test_demo_agencies_have_thai_names_in_thai_script_and_keep_their_codes() -> None:
    """No Latin letter in any of the 250 Thai names (ศาลากลางจังหวัดเชียงใหม่, not ...จังหวัดChiang Mai); Bangkok's
    offices drop จังหวัด; codes, English names and the rest are unchanged."""
    agencies = demo.agencies()
    assert len(agencies) == 250
    assert [a.code for a in agencies if a.name_th is None or re.search("[A-Za-z]", a.name_th)] == []
    names = {a.name: a.name_th for a in agencies}
    assert names["Provincial Administration Office, Chiang Mai"] == "ศาลากลางจังหวัดเชียงใหม่"
    assert names["Provincial Land Office, Bangkok"] == "สำนักงานที่ดินกรุงเทพมหานคร"
    assert names["Provincial Administration Office, Nakhon Si Thammarat"] == "ศาลากลางจังหวัดนครศรีธรรมราช"
    listed = "\n".join(f"{a.code} {a.name} {a.sector} {a.cii} {a.networks}" for a in agencies)
    assert hashlib.sha256(listed.encode()).hexdigest() == DEMO_AGENCIES_SHA256
