"""The incident list as a queue: sorted by due time across pages, several states at once, text search, refused
unknown parameters, Bangkok times in answers, and agency names in grouped figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api

NOW = datetime(2024, 3, 15, 7, 0, tzinfo=UTC)  # 14:00 Bangkok


async def record(api: Api, minutes_ago: int, title: str, **fields: Any) -> int:
    body = {
        "agency": "MOF",
        "title": title,
        "severity": "high",
        "category": "fraud/phishing",
        "detected_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(),
        **fields,
    }
    status, created = await api.call("POST", "/api/v1/incidents", json=body)
    assert status == 201, created
    return int(created["id"])


async def all_pages(api: Api, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = await api.call("GET", f"{path}&limit=2{cursor}")
        assert status == 200, page
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


async def test_the_queue_sorts_by_due_time_across_pages_and_puts_clockless_last(make_api: Any) -> None:
    """Soonest due first, page after page; incidents created later but due sooner come first."""
    api = await make_api(clock=lambda: NOW)
    ids = {minutes: await record(api, minutes, f"alert {minutes}") for minutes in (10, 50, 30, 70, 20)}
    due = await all_pages(api, "/api/v1/incidents?state=open&sort=due_at")
    assert [item["id"] for item in due] == [ids[m] for m in (70, 50, 30, 20, 10)]
    latest_due = await all_pages(api, "/api/v1/incidents?state=open&sort=-due_at")
    assert [item["id"] for item in latest_due] == [ids[m] for m in (10, 20, 30, 50, 70)]
    detected = await all_pages(api, "/api/v1/incidents?sort=detected_at")
    assert [item["id"] for item in detected] == [ids[m] for m in (70, 50, 30, 20, 10)]
    newest = await all_pages(api, "/api/v1/incidents?sort=-id")
    assert [item["id"] for item in newest] == sorted(ids.values(), reverse=True)
    oldest = await all_pages(api, "/api/v1/incidents?sort=id")
    assert [item["id"] for item in oldest] == sorted(ids.values())


async def test_several_states_in_one_parameter(make_api: Any) -> None:
    """sla=at_risk,breached is what is about to breach or has: 50 and 70 minutes old, not 10."""
    api = await make_api(clock=lambda: NOW)
    fresh, risky, late = [await record(api, m, f"alert {m}") for m in (10, 50, 70)]
    _, page = await api.call("GET", "/api/v1/incidents?sla=at_risk,breached&sort=due_at")
    assert [(item["id"], item["sla"]["state"]) for item in page["items"]] == [(late, "breached"), (risky, "at_risk")]
    assert fresh not in [item["id"] for item in page["items"]]
    status, body = await api.call("GET", "/api/v1/incidents?sla=at_risk,late")
    assert status == 422
    assert body["errors"][0]["field"] == "sla" and "late" in body["errors"][0]["message"]


async def test_text_search_over_title_and_external_id_takes_wildcards_literally(make_api: Any) -> None:
    api = await make_api(clock=lambda: NOW)
    phishing = await record(api, 5, "Phishing site imitating the revenue department")
    beacon = await record(api, 6, "C2 beacon", source="suricata", external_id="flow-77_100%")
    await record(api, 7, "Defacement")
    _, page = await api.call("GET", "/api/v1/incidents?q=PHISH")
    assert [item["id"] for item in page["items"]] == [phishing]
    _, page = await api.call("GET", "/api/v1/incidents?q=77_100%25")
    assert [item["id"] for item in page["items"]] == [beacon]
    _, page = await api.call("GET", "/api/v1/incidents?q=%25")  # a literal %: only the external id holding one
    assert [item["id"] for item in page["items"]] == [beacon]
    status, body = await api.call("GET", "/api/v1/incidents?q=" + "x" * 201)
    assert status == 422 and body["errors"][0]["field"] == "q"


async def test_an_unknown_parameter_is_a_422_naming_it(api: Api) -> None:
    """A misspelt filter is refused rather than silently ignored, on every operation."""
    for path in ("/api/v1/incidents?agnecy=MOF", "/api/v1/sla?period=2024-03&sort=due_at", "/api/v1/agencies?x=1"):
        status, body = await api.call("GET", path)
        assert status == 422, (path, body)
        assert body["errors"][0]["field"] in {"agnecy", "sort", "x"}
        assert "is not a parameter" in body["errors"][0]["message"]


async def test_a_cursor_is_tied_to_its_sort_and_to_ids_that_exist(make_api: Any) -> None:
    api = await make_api(clock=lambda: NOW)
    for minutes in (1, 2, 3):
        await record(api, minutes, "alert")
    _, page = await api.call("GET", "/api/v1/incidents?sort=due_at&limit=1")
    status, body = await api.call("GET", f"/api/v1/incidents?sort=detected_at&cursor={page['next_cursor']}")
    assert status == 422 and body["errors"][0]["field"] == "cursor"
    status, body = await api.call("GET", "/api/v1/incidents?cursor=aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk")
    assert status == 422 and body["errors"][0]["field"] == "cursor"


async def test_answers_write_times_in_bangkok_and_grouped_figures_name_the_agencies(make_api: Any) -> None:
    api = await make_api(clock=lambda: NOW)
    await api.call("PATCH", "/api/v1/agencies/MOF", json={"name": "Ministry of Finance", "name_th": "กระทรวงการคลัง"})
    incident = await record(api, 30, "alert", notified_at=(NOW - timedelta(minutes=5)).isoformat())
    _, body = await api.call("GET", f"/api/v1/incidents/{incident}")
    assert body["detected_at"] == "2024-03-15T13:30:00+07:00"
    assert body["sla"]["due_at"] == "2024-03-15T14:30:00+07:00"
    assert body["objectives"]["acknowledge"]["clock_start"] == "2024-03-15T13:55:00+07:00"
    assert all(entry["recorded_at"].endswith("+07:00") for entry in body["timeline"])
    _, figures = await api.call("GET", "/api/v1/sla?period=2024-03&group_by=agency")
    assert [(g["key"], g["name"], g["name_th"]) for g in figures["groups"]] == [
        ("MOF", "Ministry of Finance", "กระทรวงการคลัง")
    ]
