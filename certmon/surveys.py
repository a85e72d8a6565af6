"""Satisfaction surveys: validated responses, their storage, and period figures the Thai government way.

Answers are on a 5-point scale. The satisfaction percentage is mean / 5 * 100 (mean 4.26 = 85.2 %); every answer
weighs the same in the mean. The band of a mean follows the Thai convention of 0.8-wide intervals read on the mean
rounded to two decimals: 4.21-5.00 very good, 3.41-4.20 good, 2.61-3.40 fair, 1.81-2.60 poor, 1.00-1.80 very poor.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

import asyncpg
import pydantic
from pydantic import Field, StrictInt

from certmon.bulk import BulkOutcome, describe
from certmon.db import Queries, bulk_transaction
from certmon.errors import CertmonError, Conflict, Invalid
from certmon.models import NO_NUL, AgencyCode, PastTime, Strict
from certmon.periods import Period, current_month, fiscal_year_of, fiscal_year_period, fiscal_year_to_date, months_in
from certmon.policy import SCALE_POINTS, Policy
from certmon.sla import shortfall, status_colour

if TYPE_CHECKING:
    from certmon.snapshot import Family

GROUPS = ("service", "agency", "sector", "question", "sla_outcome", "month")
TOP2_MIN_SCORE = SCALE_POINTS - 1  # "top-2 box": answers of 4 or 5
MAX_BULK_LINES = 10_000
Band = Literal["very good", "good", "fair", "poor", "very poor"]
BANDS: tuple[tuple[Decimal, Band], ...] = (
    (Decimal("4.21"), "very good"),
    (Decimal("3.41"), "good"),
    (Decimal("2.61"), "fair"),
    (Decimal("1.81"), "poor"),
    (Decimal("1.00"), "very poor"),
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
EMAIL_MASK = "[e-mail removed]"
TWO_PLACES = Decimal("0.01")
FOUR_PLACES = Decimal("0.0001")

Score = Annotated[StrictInt, Field(ge=1, le=SCALE_POINTS)]


class ResponseIn(Strict):
    """One completed questionnaire; respondents stay anonymous, so no name or e-mail field exists."""

    service: str = Field(description="a survey service of the policy", examples=["security-services"])
    agency: AgencyCode | None = None
    submitted_at: PastTime
    answers: dict[str, Score] = Field(
        min_length=1, description="question id -> score 1..5", examples=[{"overall": 5, "timeliness": 4}]
    )
    comment: Annotated[str, Field(max_length=4000, pattern=NO_NUL)] | None = None
    channel: Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")] = "api"
    external_id: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] | None = None


def mask_emails(text: str | None) -> str | None:
    """The comment with any e-mail address replaced, so that no respondent address is ever stored."""
    return None if text is None else EMAIL_RE.sub(EMAIL_MASK, text)


def check(policy: Policy, data: ResponseIn) -> None:
    """Invalid naming the field when the service or a question is not in the policy."""
    services = policy.surveys.services
    if data.service not in services:
        raise Invalid("service", f"unknown survey service {data.service!r} (known: {', '.join(services)})")
    known = services[data.service].question_ids()
    for question in data.answers:
        if question not in known:
            raise Invalid(f"answers.{question}", f"unknown question of {data.service} (known: {', '.join(known)})")


def body_hash(data: ResponseIn, answers_json: str | None = None) -> str:
    """A fingerprint of what the sender said, independent of key order and the timestamp's offset."""
    canonical = (
        data.service,
        data.agency,
        data.submitted_at.astimezone(UTC).isoformat(),
        answers_json or json.dumps(data.answers, sort_keys=True),
        data.comment,
        data.channel,
        data.external_id,
    )
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


def insert_args(policy: Policy, data: ResponseIn, actor: str) -> tuple[Any, ...]:
    """The values of one survey_responses row, in the column order of survey_response_insert and survey_stage."""
    check(policy, data)
    scores = data.answers.values()
    answers_json = json.dumps(data.answers, sort_keys=True)
    return (
        data.service,
        data.agency,
        data.submitted_at,
        answers_json,
        len(scores),
        sum(scores),
        sum(1 for score in scores if score >= TOP2_MIN_SCORE),
        mask_emails(data.comment),
        data.channel,
        data.external_id,
        body_hash(data, answers_json),
        actor,
    )


async def create(
    conn: asyncpg.Connection, q: Queries, policy: Policy, data: ResponseIn, actor: str
) -> tuple[asyncpg.Record, bool]:
    """Store a response; returns it and whether it is new. The same key with another body is a conflict."""
    args = insert_args(policy, data, actor)
    try:
        row = await conn.fetchrow(q["survey_response_insert"], *args)
    except asyncpg.ForeignKeyViolationError:
        raise Invalid("agency", f"unknown agency {data.agency!r}") from None
    if row is not None:
        return row, True
    existing = await conn.fetchrow(q["survey_response_by_key"], data.service, data.external_id)
    if existing is None:  # responses are never deleted, so the key that blocked the insert is still there
        raise Conflict("the response key was taken concurrently; retry")
    if existing["body_hash"] != args[10]:
        raise Conflict(
            f"service {data.service!r} external_id {data.external_id!r} exists with a different body",
            response_id=existing["id"],
        )
    return existing, False


def to_json(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "service": row["service"],
        "agency": row["agency_code"],
        "submitted_at": row["submitted_at"],
        "answers": json.loads(row["answers"]),
        "comment": row["comment"],
        "channel": row["channel"],
        "external_id": row["external_id"],
        "created_at": row["created_at"],
    }


STAGE_COLUMNS = (
    "line", "service", "agency_code", "submitted_at", "answers", "answer_count", "score_sum", "top2_count",
    "comment", "channel", "external_id", "body_hash", "created_by",
)  # fmt: skip


def stage_row(
    line: int, raw: Mapping[str, Any] | bytes, policy: Policy, agencies: set[str], actor: str
) -> tuple[Any, ...]:
    """A staging row from one JSON object; CertmonError or ValidationError when it is not a valid response."""
    data = ResponseIn.model_validate_json(raw) if isinstance(raw, bytes) else ResponseIn.model_validate(raw)
    if data.agency is not None and data.agency not in agencies:
        raise Invalid("agency", f"unknown agency {data.agency!r}")
    return (line, *insert_args(policy, data, actor))


def parse_lines(
    lines: list[bytes], policy: Policy, agencies: set[str], actor: str, outcome: BulkOutcome
) -> list[tuple[Any, ...]]:
    """Validate each non-blank NDJSON line; the invalid ones land in ``outcome.rejected`` with the reason."""
    rows = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rows.append(stage_row(number, raw, policy, agencies, actor))
        except pydantic.ValidationError as exc:
            outcome.rejected.append({"line": number, "error": describe(exc)})
        except CertmonError as exc:
            outcome.rejected.append({"line": number, "error": exc.detail})
    return rows


async def store(conn: asyncpg.Connection, q: Queries, rows: list[tuple[Any, ...]], outcome: BulkOutcome) -> None:
    """COPY the rows through a staging table; keyed lines already stored count as duplicates or conflicts."""
    if not rows:
        return
    async with bulk_transaction(conn):
        await conn.execute(q["survey_bulk_stage"])
        await conn.copy_records_to_table("survey_stage", records=rows, columns=STAGE_COLUMNS)
        inserted = {(r["service"], r["external_id"]) for r in await conn.fetch(q["survey_bulk_insert"])}
        skipped = 0
        for r in await conn.fetch(q["survey_bulk_keys"]):
            key = (r["service"], r["external_id"])
            if key in inserted:
                inserted.discard(key)  # the first line with this key is the one that was stored
                continue
            skipped += 1
            if r["staged_hash"] == r["stored_hash"]:
                outcome.duplicates += 1
            else:
                outcome.rejected.append(
                    {
                        "line": r["line"],
                        "error": f"conflict: service {key[0]!r} external_id {key[1]!r} exists with a different body",
                    }
                )
        outcome.accepted += len(rows) - skipped
    outcome.rejected.sort(key=lambda item: int(item["line"]))


def band(mean: Decimal | float | None) -> Band | None:
    """The Thai band of a mean score, read on the mean rounded half-up to two decimals."""
    if mean is None:
        return None
    rounded = Decimal(str(mean)).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)
    for lower, name in BANDS:
        if rounded >= lower:
            return name
    return "very poor"


def satisfaction_percent(mean: Decimal) -> Decimal:
    """mean / 5 * 100, the Thai government convention: 4.26 -> 85.2."""
    return mean / SCALE_POINTS * 100


def figures(row: asyncpg.Record | Mapping[str, Any] | None, target: float | None, policy: Policy) -> dict[str, Any]:
    """Responses, mean, percentage, top-2 share, band and status of one set of totals against a target (0-1)."""
    responses = 0 if row is None else int(row["responses"])
    answers = 0 if row is None else int(row["answers"] or 0)
    out: dict[str, Any] = {
        "responses": responses,
        "agencies": 0 if row is None else None if row["agencies"] is None else int(row["agencies"]),
        "answers": answers,
        "mean_score": None,
        "satisfaction_percent": None,
        "top2_share": None,
        "band": None,
        "target": None if target is None else round(target * 100, 2),
        "shortfall": None,
        "status": None,
    }
    if row is None or not answers:
        return out
    mean = Decimal(int(row["score_sum"])) / answers
    percent = satisfaction_percent(mean).quantize(TWO_PLACES, rounding=ROUND_HALF_UP)
    out["mean_score"] = float(mean.quantize(FOUR_PLACES, rounding=ROUND_HALF_UP))
    out["satisfaction_percent"] = float(percent)
    out["top2_share"] = float((Decimal(int(row["top2_count"])) / answers).quantize(FOUR_PLACES, ROUND_HALF_UP))
    out["band"] = band(mean)
    if target is not None:
        # The colour is decided on the published (rounded) percentage, so readers can check it by hand.
        ratio = float(percent) / 100
        out["shortfall"] = shortfall(ratio, target)
        out["status"] = status_colour(ratio, target, policy.green_max_shortfall, policy.yellow_max_shortfall)
    return out


def target_of(policy: Policy, service: str | None) -> float | None:
    """A service's target; across services, their common target, or None when they differ."""
    services = policy.surveys.services
    if service is not None:
        return services[service].target if service in services else None
    targets = {s.target for s in services.values()}
    return targets.pop() if len(targets) == 1 else None


def check_filters(policy: Policy, service: str | None, group_by: str | None) -> None:
    if service is not None and service not in policy.surveys.services:
        known = ", ".join(policy.surveys.services)
        raise Invalid("service", f"unknown survey service {service!r} (known: {known})")
    if group_by is not None and group_by not in GROUPS:
        raise Invalid("group_by", f"must be one of {', '.join(GROUPS)}")


async def _question_groups(
    conn: asyncpg.Connection, q: Queries, policy: Policy, period: Period, service: str | None, agency: str | None
) -> list[dict[str, Any]]:
    groups = []
    services = policy.surveys.services
    for row in await conn.fetch(q["survey_question_figures"], period.start, period.end, service, agency):
        texts = {qq.id: qq for qq in services[row["service"]].questions} if row["service"] in services else {}
        question = texts.get(row["question"])
        groups.append(
            {
                "key": f"{row['service']}/{row['question']}",
                "service": row["service"],
                "question": row["question"],
                "text_th": None if question is None else question.th,
                "text_en": None if question is None else question.en,
                **figures(row, target_of(policy, row["service"]), policy),
            }
        )
    return groups


async def summary(
    conn: asyncpg.Connection,
    q: Queries,
    policy: Policy,
    period: Period,
    *,
    service: str | None = None,
    agency: str | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    """The period's satisfaction figures (GET /api/v1/surveys/summary), plus one entry per group when asked.

    ``target`` is a percentage like ``satisfaction_percent``; ``top2_share`` is the share (0-1) of answers of 4 or 5.
    A response belongs to the period in which it was submitted, cut in the policy's timezone.
    """
    check_filters(policy, service, group_by)
    args = (period.start, period.end, service, agency)
    overall = await conn.fetchrow(q["survey_figures"], *args, "", policy.timezone)
    target = target_of(policy, service)
    if group_by == "question":
        groups = await _question_groups(conn, q, policy, period, service, agency)
    elif group_by == "sla_outcome":
        rows = await conn.fetch(q["survey_sla_outcome_figures"], *args)
        groups = [{"key": row["key"], **figures(row, target, policy)} for row in rows]
    elif group_by:
        rows = await conn.fetch(q["survey_figures"], *args, group_by, policy.timezone)
        by_service = group_by == "service"
        groups = [
            {"key": row["key"], **figures(row, target_of(policy, row["key"]) if by_service else target, policy)}
            for row in rows
        ]
    else:
        groups = []
    return {
        "period": {"label": period.label, "start": period.start.isoformat(), "end": period.end.isoformat()},
        "service": service,
        "agency": agency,
        **figures(overall, target, policy),
        "groups": groups,
    }


def services_json(policy: Policy) -> dict[str, Any]:
    """The surveyed services with their questions and targets, and the answer scale (GET /api/v1/surveys)."""
    surveys = policy.surveys
    return {
        "scale": [
            {"score": score, "th": th, "en": en}
            for score, (th, en) in enumerate(zip(surveys.scale_th, surveys.scale_en, strict=True), start=1)
        ],
        "services": [
            {
                "id": name,
                "name_th": service.name_th,
                "name_en": service.name_en,
                "target": service.target,
                "target_percent": round(service.target * 100, 2),
                "questions": [q.model_dump() for q in service.questions],
            }
            for name, service in surveys.services.items()
        ],
    }


WINDOWS = ("month", "fiscal_year")


async def snapshot_families(conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime) -> list[Family]:
    """Satisfaction ratio (mean / 5) and responses per service for this month and fiscal year, and each target.

    A service without answers in a window has no ratio sample rather than a misleading 0.
    """
    from certmon.snapshot import Family

    services = policy.surveys.services
    ratio: list[tuple[tuple[str, ...], float]] = []
    responses: list[tuple[tuple[str, ...], float]] = []
    for window, period in zip(
        WINDOWS, (current_month(now, policy.tz), fiscal_year_to_date(now, policy.tz)), strict=True
    ):
        rows = {r["service"]: r for r in await conn.fetch(q["survey_service_totals"], period.start, period.end)}
        for name in services:
            row = rows.get(name)
            responses.append(((name, window), float(row["responses"]) if row else 0.0))
            if row and row["answers"]:
                ratio.append(((name, window), int(row["score_sum"]) / int(row["answers"]) / SCALE_POINTS))
    return [
        Family(
            "certmon_satisfaction_ratio",
            "satisfaction: mean answer / 5, by survey service and window (month, fiscal_year to date; Bangkok time)",
            ("service", "window"),
            ratio,
        ),
        Family(
            "certmon_satisfaction_responses",
            "survey responses submitted, by survey service and window (month, fiscal_year to date; Bangkok time)",
            ("service", "window"),
            responses,
        ),
        Family(
            "certmon_satisfaction_target_ratio",
            "satisfaction target of the policy, by survey service",
            ("service",),
            [((name,), service.target) for name, service in services.items()],
        ),
    ]


# Demo answers: a latent score per response, answers scattered around it. With these figures the fiscal-year
# satisfaction lands near the FY2564 report's (85.2 % security, 87.2 % CII), and agencies in a month with a breached
# incident answer about a third of a point lower.
DEMO_BASE = {"security-services": 4.35, "cii-services": 4.40}
DEMO_BREACH_PENALTY = 0.35
DEMO_AGENCY_SPREAD = 0.12  # standard deviation of an agency's habitual leniency, in points
DEMO_ANSWER_SPREAD = 0.65
DEMO_RESPONSE_CHANCE = {"security-services": 0.45, "cii-services": 0.55}  # per agency and month


def _demo_score(rng: random.Random, latent: float) -> int:
    return min(SCALE_POINTS, max(1, round(rng.gauss(latent, DEMO_ANSWER_SPREAD))))


async def demo_responses(
    conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime, rng: random.Random
) -> int:
    """Responses of every agency over the demo span (previous and current fiscal year): CII agencies answer both."""
    first = fiscal_year_period(fiscal_year_of(now, policy.tz) - 1, policy.tz)
    agencies = await conn.fetch(q["survey_demo_agencies"], policy.timezone)
    months = months_in(Period("demo", first.start, now))
    rows: list[tuple[Any, ...]] = []
    for agency in agencies:
        bias = rng.gauss(0, DEMO_AGENCY_SPREAD)
        breached = set(agency["breached_months"])
        for name, service in policy.surveys.services.items():
            if name == "cii-services" and not agency["cii"]:
                continue
            base = DEMO_BASE.get(name, 4.3)
            for month in months:
                if rng.random() > DEMO_RESPONSE_CHANCE.get(name, 0.4):
                    continue
                end = min(month.end, now)
                at = month.start + (end - month.start) * rng.random()
                latent = base + bias - (DEMO_BREACH_PENALTY if month.label in breached else 0.0)
                data = ResponseIn(
                    service=name,
                    agency=agency["code"],
                    submitted_at=at,
                    answers={question: _demo_score(rng, latent) for question in service.question_ids()},
                    channel=rng.choice(("web", "web", "paper")),
                    external_id=f"demo-{agency['code']}-{month.label}",
                )
                rows.append((len(rows) + 1, *insert_args(policy, data, "demo")))
    outcome = BulkOutcome()
    for start in range(0, len(rows), MAX_BULK_LINES):
        await store(conn, q, rows[start : start + MAX_BULK_LINES], outcome)
    return outcome.accepted
