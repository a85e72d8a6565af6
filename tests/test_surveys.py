"""Satisfaction surveys: the questionnaire in the policy, responses through the API, and summaries the Thai way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from certmon.core import satisfaction
from certmon.core.periods import fiscal_year_of, parse_period
from certmon.core.policy import Policy, PolicyError, load_policy
from certmon.jobs import snapshot as snapshot_job
from certmon.store import db, demo, surveys
from certmon.store.db import Queries
from certmon.store.tokens import create_token
from certmon.web import appkeys
from tests.conftest import Api

SECURITY = "security-services"
CII = "cii-services"
SECURITY_QUESTIONS = ("timeliness", "usefulness", "expertise", "courtesy", "overall")
CII_QUESTIONS = ("guidance", "response", "exercises", "expertise", "overall")


def scores(**counts: int) -> list[int]:
    """Scores by how often each occurs: scores(five=20, four=23, three=7)."""
    value = {"five": 5, "four": 4, "three": 3, "two": 2, "one": 1}
    return [value[name] for name, n in counts.items() for _ in range(n)]


def responses(
    answers: list[int], *, service: str = SECURITY, agency: str | None = "MOF", at: str = "2021-08-15T10:00:00+07:00"
) -> list[dict[str, Any]]:
    """Responses of five answers each, filled in order from the given scores."""
    questions = SECURITY_QUESTIONS if service == SECURITY else CII_QUESTIONS
    size = len(questions)
    assert len(answers) % size == 0
    return [
        {
            "service": service,
            "agency": agency,
            "submitted_at": at,
            "answers": dict(zip(questions, answers[i : i + size], strict=True)),
        }
        for i in range(0, len(answers), size)
    ]


def ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(item).encode() for item in items)


async def post_bulk(api: Api, items: list[dict[str, Any]]) -> dict[str, Any]:
    status, body = await api.call(
        "POST", "/api/v1/surveys/responses/bulk", data=ndjson(items), headers={"Content-Type": "application/x-ndjson"}
    )
    assert status == 200, body
    return dict(body)


async def summary(api: Api, query: str, role: str = "admin") -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/v1/surveys/summary?{query}", role)
    assert status == 200, body
    return dict(body)


# The seed's own figures ---------------------------------------------------------------------------------------


async def test_mean_of_4_26_is_85_2_percent_very_good_and_green_against_85(api: Api) -> None:
    """Security-services answers averaging 4.26 report 85.2 %, band very good, status green against 85 %."""
    answers = scores(five=20, four=23, three=7)  # 50 answers summing to 213
    assert sum(answers) / len(answers) == pytest.approx(4.26)
    assert (await post_bulk(api, responses(answers)))["accepted"] == 10
    body = await summary(api, f"period=FY2564&service={SECURITY}")
    assert body["responses"] == 10
    assert body["mean_score"] == 4.26
    assert body["satisfaction_percent"] == 85.2
    assert body["top2_share"] == 0.86
    assert body["band"] == "very good"
    assert body["target"] == 85.0
    assert body["status"] == "green"


async def test_mean_of_4_36_is_87_2_percent_for_cii_services(api: Api) -> None:
    """CII-services answers averaging 4.36 report 87.2 % and green, next to security services in one summary."""
    await post_bulk(api, responses(scores(five=20, four=28, three=2), service=CII))  # 50 answers summing to 218
    await post_bulk(api, responses(scores(five=20, four=23, three=7)))
    body = await summary(api, "period=FY2564-Q4&group_by=service")
    by_service = {g["key"]: g for g in body["groups"]}
    assert by_service[CII]["mean_score"] == 4.36
    assert by_service[CII]["satisfaction_percent"] == 87.2
    assert by_service[CII]["status"] == "green"
    assert by_service[SECURITY]["satisfaction_percent"] == 85.2
    assert body["responses"] == 20
    assert body["target"] == 85.0  # both services share the default target


@pytest.mark.parametrize(
    ("mean", "band"),
    [
        (5.0, "very good"),
        (4.21, "very good"),
        (4.205, "very good"),  # the bands read the mean rounded to two decimals
        (4.2049, "good"),
        (3.41, "good"),
        (3.40, "fair"),
        (2.61, "fair"),
        (2.60, "poor"),
        (1.81, "poor"),
        (1.80, "very poor"),
        (1.0, "very poor"),
    ],
)
def test_band_follows_the_thai_five_band_scale(mean: float, band: str) -> None:
    """4.21-5.00 very good, 3.41-4.20 good, 2.61-3.40 fair, 1.81-2.60 poor, 1.00-1.80 very poor."""
    assert satisfaction.band(mean) == band


async def test_status_turns_yellow_then_red_as_satisfaction_falls_below_target(api: Api) -> None:
    """75 % is 11.8 % short of 85 % (yellow); 60 % is 29 % short (red), by the SLA's colour rule."""
    await post_bulk(api, responses([4, 4, 4, 3, 4] * 2, agency="MOF"))  # mean 3.8 = 76 %
    await post_bulk(api, responses([3] * 10, agency="DGA"))  # mean 3.0 = 60 %
    body = await summary(api, "period=2021-08&group_by=agency")
    by_agency = {g["key"]: g for g in body["groups"]}
    assert by_agency["MOF"]["satisfaction_percent"] == 76.0
    assert by_agency["MOF"]["status"] == "yellow"
    assert by_agency["MOF"]["band"] == "good"
    assert by_agency["DGA"]["satisfaction_percent"] == 60.0
    assert by_agency["DGA"]["status"] == "red"
    assert by_agency["DGA"]["band"] == "fair"


async def test_period_without_responses_reports_zero_and_no_figures(api: Api) -> None:
    """An empty period has 0 responses and null mean, percentage, band and status rather than 0 %."""
    body = await summary(api, "period=2021-08")
    assert body["responses"] == 0
    assert body["satisfaction_percent"] is None
    assert body["band"] is None
    assert body["status"] is None
    assert body["groups"] == []


# Periods in Bangkok time --------------------------------------------------------------------------------------


async def test_response_at_bangkok_midnight_of_1_october_belongs_to_the_next_fiscal_year(api: Api) -> None:
    """2021-09-30T17:30Z is 1 October 00:30 in Bangkok: FY2565 and October, not FY2564 or September."""
    await post_bulk(api, responses([5] * 5, at="2021-09-30T17:30:00Z"))
    await post_bulk(api, responses([3] * 5, at="2021-09-30T16:59:59Z"))
    fy2564 = await summary(api, "period=FY2564")
    fy2565 = await summary(api, "period=FY2565")
    assert (fy2564["responses"], fy2564["mean_score"]) == (1, 3.0)
    assert (fy2565["responses"], fy2565["mean_score"]) == (1, 5.0)
    months = await summary(api, "period=2021-09-01..2021-11-01&group_by=month")
    assert [(g["key"], g["mean_score"]) for g in months["groups"]] == [("2021-09", 3.0), ("2021-10", 5.0)]


# Groupings ----------------------------------------------------------------------------------------------------


async def test_group_by_question_gives_each_questions_mean_with_its_thai_and_english_text(api: Api) -> None:
    """Per question: the mean of its answers, keyed service/question, with the questionnaire's wording."""
    await post_bulk(api, responses([5, 4, 3, 2, 1, 5, 4, 3, 2, 3]))
    body = await summary(api, f"period=2021-08&service={SECURITY}&group_by=question")
    by_key = {g["key"]: g for g in body["groups"]}
    assert set(by_key) == {f"{SECURITY}/{q}" for q in SECURITY_QUESTIONS}
    assert by_key[f"{SECURITY}/timeliness"]["mean_score"] == 5.0
    assert by_key[f"{SECURITY}/overall"]["mean_score"] == 2.0
    assert by_key[f"{SECURITY}/overall"]["band"] == "poor"
    assert by_key[f"{SECURITY}/timeliness"]["text_en"] == "Speed of alerts and coordination"
    assert by_key[f"{SECURITY}/timeliness"]["text_th"] == "ความรวดเร็วในการแจ้งเตือนและประสานงาน"
    assert body["mean_score"] == 3.2


async def test_group_by_sector_uses_the_agencys_sector(api: Api) -> None:
    """Responses of a banking agency and a government agency fall into their own sectors."""
    await api.agency("BOT", sector="banking-finance")
    await post_bulk(api, responses([5] * 5, agency="BOT") + responses([4] * 5, agency="MOF"))
    body = await summary(api, "period=2021-08&group_by=sector")
    assert [(g["key"], g["mean_score"]) for g in body["groups"]] == [("banking-finance", 5.0), ("government", 4.0)]


async def incident(api: Api, agency: str, detected: str, notified: str) -> None:
    status, body = await api.call(
        "POST",
        "/api/v1/incidents",
        json={
            "agency": agency,
            "title": "Phishing site",
            "severity": "high",
            "category": "fraud/phishing",
            "detected_at": detected,
            "notified_at": notified,
        },
    )
    assert status == 201, body


async def test_group_by_sla_outcome_splits_agencies_by_a_breached_incident_in_the_period(api: Api) -> None:
    """MOF breached in August, DGA met and BOT had none: MOF is 'breached', the others 'kept'; July does not count."""
    await api.agency("BOT")
    await incident(api, "MOF", "2021-08-10T10:00:00+07:00", "2021-08-10T12:00:00+07:00")  # 2 h: breached
    await incident(api, "DGA", "2021-08-10T10:00:00+07:00", "2021-08-10T10:20:00+07:00")  # met
    await incident(api, "DGA", "2021-07-31T16:00:00Z", "2021-07-31T20:00:00Z")  # breached, but in July (Bangkok)
    await post_bulk(
        api,
        responses([3] * 5, agency="MOF")
        + responses([5] * 5, agency="DGA")
        + responses([4] * 5, agency="BOT")
        + responses([4] * 5, agency=None),
    )
    body = await summary(api, "period=2021-08&group_by=sla_outcome")
    groups = {g["key"]: (g["responses"], g["agencies"], g["mean_score"]) for g in body["groups"]}
    assert groups == {"breached": (1, 1, 3.0), "kept": (2, 2, 4.5), "no_agency": (1, 0, 4.0)}
    july = await summary(api, "period=2021-07-01..2021-09-01&group_by=sla_outcome")
    assert {g["key"]: g["agencies"] for g in july["groups"]} == {"breached": 2, "kept": 1, "no_agency": 0}


async def test_summary_function_gives_the_same_object_as_the_api(api: Api, conn: asyncpg.Connection) -> None:
    """certmon.surveys.summary, used by exports, returns exactly what GET /api/v1/surveys/summary answers."""
    await post_bulk(api, responses(scores(five=20, four=23, three=7)))
    body = await summary(api, f"period=FY2564&service={SECURITY}&group_by=agency")
    policy = Policy()
    direct = await surveys.summary(
        conn, db.Queries.load(), policy, parse_period("FY2564", policy.tz), service=SECURITY, group_by="agency"
    )
    assert json.loads(json.dumps(direct)) == body
    assert set(body) >= {"responses", "mean_score", "satisfaction_percent", "top2_share", "band", "target", "status"}


# The API: the questionnaire, validation, idempotency, anonymity ----------------------------------------------


async def test_survey_list_shows_both_services_with_targets_questions_and_the_scale(api: Api) -> None:
    """GET /api/v1/surveys lists security and CII services at 85 % with Thai and English questions, 5 points."""
    status, body = await api.call("GET", "/api/v1/surveys", "agency")
    assert status == 200
    services = {s["id"]: s for s in body["services"]}
    assert set(services) == {SECURITY, CII}
    assert services[SECURITY]["target"] == 0.85
    assert services[SECURITY]["target_percent"] == 85.0
    assert [q["id"] for q in services[SECURITY]["questions"]] == list(SECURITY_QUESTIONS)
    assert all(q["th"] and q["en"] for s in services.values() for q in s["questions"])
    assert [item["score"] for item in body["scale"]] == [1, 2, 3, 4, 5]
    assert body["scale"][4]["th"] == "มากที่สุด"


def one(**changes: Any) -> dict[str, Any]:
    return {**responses([5, 4, 4, 5, 4])[0], "external_id": "form-1", **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"answers": {"timeliness": 6}}, "answers.timeliness"),
        ({"answers": {"timeliness": 0}}, "answers.timeliness"),
        ({"answers": {"timeliness": 4.5}}, "answers.timeliness"),
        ({"answers": {"speed": 4}}, "answers.speed"),
        ({"answers": {}}, "answers"),
        ({"service": "web-hosting"}, "service"),
        ({"agency": "NOPE"}, "agency"),
        ({"submitted_at": "2021-08-15T10:00:00"}, "submitted_at"),
        ({"email": "somchai@example.go.th"}, "email"),
        ({"respondent_name": "Somchai"}, "respondent_name"),
    ],
)
async def test_invalid_response_gets_422_naming_the_field(api: Api, changes: dict[str, Any], field: str) -> None:
    """Out-of-range or fractional answers, unknown questions, services or agencies, and personal data are refused."""
    status, body = await api.call("POST", "/api/v1/surveys/responses", json=one(**changes))
    assert status == 422, body
    assert body["errors"][0]["field"] == field
    listed = await api.call("GET", "/api/v1/surveys/responses")
    assert listed[1]["items"] == []


async def test_response_is_idempotent_on_external_id_and_a_changed_body_conflicts(api: Api) -> None:
    """The same response twice is stored once (201 then 200); the same key with other answers is 409."""
    first = await api.call("POST", "/api/v1/surveys/responses", json=one())
    again = await api.call("POST", "/api/v1/surveys/responses", json=one())
    changed = await api.call("POST", "/api/v1/surveys/responses", json=one(answers={"overall": 1}))
    assert first[0] == 201 and again[0] == 200
    assert again[1]["id"] == first[1]["id"]
    assert changed[0] == 409
    assert (
        changed[1]["detail"] == f"service {SECURITY!r} agency 'MOF' external_id 'form-1' exists with a different body"
    )
    assert changed[1]["response_id"] == first[1]["id"]
    other_service = await api.call("POST", "/api/v1/surveys/responses", json=one(service=CII, answers={"guidance": 5}))
    assert other_service[0] == 201  # external ids are unique per service
    assert (await summary(api, "period=2021-08"))["responses"] == 2


async def test_email_addresses_in_comments_are_masked_before_storage(api: Api, conn: asyncpg.Connection) -> None:
    """A comment quoting an address keeps its text but not the address, in the API and in the database."""
    comment = "ติดต่อกลับที่ somchai.j@mof.go.th please, fast response"
    status, body = await api.call("POST", "/api/v1/surveys/responses", json=one(comment=comment))
    assert status == 201
    assert body["comment"] == "ติดต่อกลับที่ [e-mail removed] please, fast response"
    stored = await conn.fetchval("SELECT string_agg(coalesce(comment, ''), ' ') FROM survey_responses")
    assert "@" not in stored


async def test_bulk_ndjson_accounts_for_every_line(api: Api) -> None:
    """Valid lines are stored, a repeated key is a duplicate, bad lines are rejected with line number and field."""
    good = responses([5] * 10)
    lines = [
        {**good[0], "external_id": "a"},
        {**good[1], "external_id": "b"},
        {**good[0], "external_id": "a"},
        {**good[0], "answers": {"overall": 7}},
        {**good[0], "service": "unknown"},
    ]
    body = await post_bulk(api, lines)
    assert (body["accepted"], body["duplicates"]) == (2, 1)
    assert [(r["line"], r["error"].split(":")[0]) for r in body["rejected"]] == [(4, "answers.overall"), (5, "service")]
    again = await post_bulk(api, lines[:2])
    assert (again["accepted"], again["duplicates"]) == (0, 2)


async def test_bulk_validated_in_worker_processes_numbers_rejected_lines_across_chunks(make_api: Any) -> None:
    """2,500 lines validated a thousand at a time in a worker: the bad lines keep their own numbers, in order."""
    api: Api = await make_api(parse_workers=1)
    good = responses([4] * 5 * 2500)
    bad = {1, 1000, 1001, 2500}  # either side of the chunks' edges
    lines = [{**r, "answers": {"overall": 9}} if n in bad else r for n, r in enumerate(good, start=1)]
    body = await post_bulk(api, lines)
    assert body["accepted"] == 2500 - len(bad)
    assert [(r["line"], r["error"].split(":")[0]) for r in body["rejected"]] == [
        (n, "answers.overall") for n in sorted(bad)
    ]
    figures = await summary(api, f"period=2021-08&service={SECURITY}")
    assert figures["responses"] == 2500 - len(bad)


async def test_bulk_is_for_cert_staff_only(api: Api) -> None:
    """Agency and auditor tokens may not bulk-load responses."""
    for role in ("agency", "auditor"):
        status, _ = await api.call(
            "POST", "/api/v1/surveys/responses/bulk", role, data=ndjson(responses([5] * 5, agency="MOF"))
        )
        assert status == 403


# Agency tokens --------------------------------------------------------------------------------------------------


async def test_agency_token_sees_only_its_own_responses_and_figures(api: Api) -> None:
    """MOF's token gets MOF's figures whatever it asks; asking for DGA is forbidden."""
    await post_bulk(api, responses([5] * 5, agency="MOF") + responses([1] * 5, agency="DGA"))
    own = await summary(api, "period=2021-08&group_by=agency", "agency")
    assert (own["responses"], own["mean_score"], own["agency"]) == (1, 5.0, "MOF")
    assert [g["key"] for g in own["groups"]] == ["MOF"]
    outcome = await summary(api, "period=2021-08&group_by=sla_outcome", "agency")
    assert [g["responses"] for g in outcome["groups"]] == [1]
    assert (await api.call("GET", "/api/v1/surveys/summary?period=2021-08&agency=DGA", "agency"))[0] == 403
    status, listed = await api.call("GET", "/api/v1/surveys/responses", "agency")
    assert status == 200
    assert [item["agency"] for item in listed["items"]] == ["MOF"]
    assert (await api.call("GET", "/api/v1/surveys/responses?agency=DGA", "agency"))[0] == 403


async def test_agency_token_submits_for_its_own_agency_only(api: Api) -> None:
    """A response posted with MOF's token is MOF's; one claiming DGA is forbidden."""
    status, body = await api.call("POST", "/api/v1/surveys/responses", "agency", json=one(agency=None))
    assert status == 201
    assert body["agency"] == "MOF"
    assert (await api.call("POST", "/api/v1/surveys/responses", "agency", json=one(agency="DGA")))[0] == 403


async def dga_token(api: Api) -> str:
    async with api.app[appkeys.POOL].acquire() as conn:
        return await create_token(conn, Queries.load(), "test-agency-dga", "agency", "DGA")


async def test_survey_ids_are_the_agencys_own_so_another_agency_may_use_them_too(api: Api) -> None:
    """MOF and DGA each submit external_id form-1: both are stored; neither answer shows the other's response."""
    dga = {"Authorization": f"Bearer {await dga_token(api)}"}
    mof_status, mof = await api.call("POST", "/api/v1/surveys/responses", "agency", json=one(agency=None))
    dga_status, dga_body = await api.call(
        "POST", "/api/v1/surveys/responses", "agency", json=one(agency=None, answers={"overall": 1}), headers=dga
    )
    assert (mof_status, dga_status) == (201, 201), dga_body
    assert dga_body["id"] != mof["id"] and dga_body["agency"] == "DGA"
    assert "response_id" not in dga_body
    again = await api.call("POST", "/api/v1/surveys/responses", "agency", json=one(agency=None), headers=dga)
    assert again[0] == 409  # DGA's own form-1 with another body
    assert again[1]["response_id"] == dga_body["id"]
    assert again[1]["detail"] == f"service {SECURITY!r} agency 'DGA' external_id 'form-1' exists with a different body"
    # MOF's own second submission conflicts with MOF's row, never with DGA's.
    changed = await api.call(
        "POST", "/api/v1/surveys/responses", "agency", json=one(agency=None, answers={"overall": 2})
    )
    assert (changed[0], changed[1]["response_id"]) == (409, mof["id"])
    listed = await api.call("GET", "/api/v1/surveys/responses", "agency", headers=dga)
    assert [item["id"] for item in listed[1]["items"]] == [dga_body["id"]]


async def test_bulk_keys_are_per_agency(api: Api) -> None:
    """In a bulk load the same external_id for two agencies is two responses; for one agency it is one."""
    lines = [
        {**responses([5] * 5, agency="MOF")[0], "external_id": "paper-7"},
        {**responses([4] * 5, agency="DGA")[0], "external_id": "paper-7"},
        {**responses([3] * 5, agency=None)[0], "external_id": "paper-7"},
        {**responses([5] * 5, agency="MOF")[0], "external_id": "paper-7"},
    ]
    result = await post_bulk(api, lines)
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (3, 1, [])
    changed = await post_bulk(api, [{**lines[1], "answers": lines[0]["answers"]}])
    assert changed["accepted"] == 0
    assert changed["rejected"][0]["error"] == (
        f"conflict: service {SECURITY!r} agency 'DGA' external_id 'paper-7' exists with a different body"
    )


async def test_another_agencys_rows_are_not_found_like_missing_ones(api: Api) -> None:
    """An agency token asking for another agency or its incident gets the 404 of a code or id that does not exist."""
    status, created = await api.call(
        "POST",
        "/api/v1/incidents",
        json={"agency": "DGA", "title": "t", "severity": "high", "category": "fraud/phishing",
              "detected_at": "2021-08-02T09:00:00+07:00"},
    )  # fmt: skip
    assert status == 201, created
    theirs, missing = (
        await api.call("GET", "/api/v1/agencies/DGA", "agency"),
        await api.call("GET", "/api/v1/agencies/NOPE", "agency"),
    )
    assert (theirs[0], missing[0]) == (404, 404)
    assert theirs[1]["title"] == missing[1]["title"] == "Not found"
    assert (await api.call("GET", "/api/v1/agencies/MOF", "agency"))[0] == 200
    incident = await api.call("GET", f"/api/v1/incidents/{created['id']}", "agency")
    absent = await api.call("GET", "/api/v1/incidents/999999", "agency")
    assert (incident[0], absent[0]) == (404, 404)
    assert incident[1]["detail"] == f"no incident {created['id']}"
    event = {"type": "acknowledged", "at": "2021-08-02T09:30:00+07:00"}
    assert (await api.call("POST", f"/api/v1/incidents/{created['id']}/events", "agency", json=event))[0] == 404


async def test_summary_rejects_bad_parameters_naming_them(api: Api) -> None:
    """A missing or malformed period, an unknown service or grouping get 422 naming the parameter."""
    for query, field in (
        ("", "period"),
        ("period=2564-13", "period"),
        ("period=FY2021", "period"),
        ("period=2021-08&service=hosting", "service"),
        ("period=2021-08&group_by=severity", "group_by"),
    ):
        status, body = await api.call("GET", f"/api/v1/surveys/summary?{query}")
        assert status == 422, (query, body)
        assert body["errors"][0]["field"] == field


async def test_response_listing_pages_newest_first_and_filters_by_period(api: Api) -> None:
    """Three responses in August and one in September list newest first in pages of two; a period filters."""
    items = [{**r, "external_id": f"r{i}"} for i, r in enumerate(responses([4] * 15))]
    items.append({**responses([5] * 5, at="2021-09-02T09:00:00+07:00")[0], "external_id": "sep"})
    await post_bulk(api, items)
    status, page = await api.call("GET", "/api/v1/surveys/responses?limit=2")
    assert status == 200
    assert [i["external_id"] for i in page["items"]] == ["sep", "r2"]
    status, rest = await api.call("GET", f"/api/v1/surveys/responses?limit=2&cursor={page['next_cursor']}")
    assert [i["external_id"] for i in rest["items"]] == ["r1", "r0"]
    assert rest["next_cursor"] is None
    status, september = await api.call("GET", "/api/v1/surveys/responses?period=2021-09")
    assert [i["external_id"] for i in september["items"]] == ["sep"]
    assert september["items"][0]["answers"] == dict.fromkeys(SECURITY_QUESTIONS, 5)


async def test_openapi_document_lists_the_survey_operations(api: Api) -> None:
    """The survey endpoints appear in /api/v1/openapi.json."""
    status, spec = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    assert {"/api/v1/surveys", "/api/v1/surveys/responses", "/api/v1/surveys/summary"} <= set(spec["paths"])


# Policy ---------------------------------------------------------------------------------------------------------


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_policy_survey_services_replace_the_defaults_with_their_own_targets(tmp_path: Path) -> None:
    """A policy naming one service with a 90 % target gets exactly that service; the scale keeps its defaults."""
    policy = load_policy(
        write_policy(
            tmp_path,
            """
[surveys.services.awareness-training]
name_en = "Awareness training"
target = 0.90
questions = [{ id = "content", th = "เนื้อหา", en = "Content" }]
""",
        )
    )
    assert list(policy.surveys.services) == ["awareness-training"]
    assert policy.surveys.services["awareness-training"].target == 0.9
    assert len(policy.surveys.scale_en) == 5


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[surveys]\nscale_en = ["bad", "good"]', "surveys.scale_en"),
        ("[surveys.services.x]\ntarget = 1.5\nquestions = [{ id = 'a', th = 'ก', en = 'A' }]", "surveys.services.x"),
        ("[surveys.services.x]\nquestions = []", "surveys.services.x"),
        (
            "[surveys.services.x]\nquestions = [{ id = 'a', th = 'ก', en = 'A' }, { id = 'a', th = 'ข', en = 'B' }]",
            "surveys.services.x",
        ),
        ("[surveys.services.'bad name']\nquestions = [{ id = 'a', th = 'ก', en = 'A' }]", "surveys"),
    ],
)
def test_bad_survey_policy_is_refused_naming_the_key(tmp_path: Path, text: str, where: str) -> None:
    """Wrong scale length, a target above 100 %, no or duplicate questions, or a bad name fail loudly."""
    with pytest.raises(PolicyError) as error:
        load_policy(write_policy(tmp_path, text))
    assert where in str(error.value)


async def test_summary_uses_the_target_of_the_policy_in_force(make_api: Any) -> None:
    """With a 90 % target, 85.2 % is 5.3 % short: yellow instead of green."""
    policy = Policy.model_validate({"surveys": {"services": {SECURITY: {"target": 0.9, "questions": [
        {"id": q, "th": q, "en": q} for q in SECURITY_QUESTIONS
    ]}}}})  # fmt: skip
    api = await make_api(policy=policy)
    await post_bulk(api, responses(scores(five=20, four=23, three=7)))
    body = await summary(api, "period=FY2564")
    assert (body["satisfaction_percent"], body["target"], body["status"]) == (85.2, 90.0, "yellow")


# Metrics --------------------------------------------------------------------------------------------------------


def samples(exposition: str, name: str) -> dict[str, float]:
    """Label set (as written) -> value of one metric in a text exposition."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) :].rpartition(" ")
            found[labels] = float(value)
    return found


async def test_metrics_expose_satisfaction_ratio_responses_and_target_per_service_and_window(api: Api) -> None:
    """After a refresh, /metrics has mean / 5 and responses for this month and fiscal year, and each target."""
    now = datetime.now(UTC).replace(microsecond=0)
    await post_bulk(api, responses(scores(five=20, four=23, three=7), at=now.isoformat()))
    assert await snapshot_job.refresh(api.runtime(now), now)
    async with api.client.get("/metrics", headers=api.headers("metrics")) as response:
        text = await response.text()
    ratio = samples(text, "certmon_satisfaction_ratio")
    assert ratio == {
        '{service="security-services",window="fiscal_year"}': pytest.approx(0.852),
        '{service="security-services",window="month"}': pytest.approx(0.852),
    }  # no ratio for CII: without answers there is nothing to report, rather than 0
    assert samples(text, "certmon_satisfaction_responses") == {
        '{service="cii-services",window="fiscal_year"}': 0.0,
        '{service="cii-services",window="month"}': 0.0,
        '{service="security-services",window="fiscal_year"}': 10.0,
        '{service="security-services",window="month"}': 10.0,
    }
    assert samples(text, "certmon_satisfaction_target_ratio") == {
        '{service="cii-services"}': 0.85,
        '{service="security-services"}': 0.85,
    }


# Demo -----------------------------------------------------------------------------------------------------------


async def test_demo_loads_thousands_of_responses_near_the_reports_figures(api: Api) -> None:
    """`certmon demo` data: both services every fiscal year, satisfaction 85-88 % as in FY2564, and a breach link."""
    app = api.app
    async with app[appkeys.POOL].acquire() as conn:
        await conn.execute("DELETE FROM api_tokens WHERE role = 'agency'")
        await conn.execute("DELETE FROM agencies")
        await demo.load(conn, app[appkeys.QUERIES], app[appkeys.POLICY], datetime.now(UTC))
        total = await conn.fetchval("SELECT count(*) FROM survey_responses")
    assert 1500 < total < 10_000
    last_year = fiscal_year_of(datetime.now(UTC), app[appkeys.POLICY].tz) - 1
    body = await summary(api, f"period=FY{last_year}&group_by=service")
    by_service = {g["key"]: g for g in body["groups"]}
    assert set(by_service) == {SECURITY, CII}
    for figures in by_service.values():
        assert 85.0 <= figures["satisfaction_percent"] <= 88.0
        assert figures["status"] == "green"
        assert figures["band"] == "very good"
    outcome = await summary(api, f"period=FY{last_year}&group_by=sla_outcome")
    split = {g["key"]: g["satisfaction_percent"] for g in outcome["groups"]}
    assert split["breached"] < split["kept"]
