"""Satisfaction surveys: the validated response and the figures of a set of answers, the Thai government way.

Answers are on a 5-point scale. The satisfaction percentage is mean / 5 * 100 (mean 4.26 = 85.2 %); every answer
weighs the same in the mean. The band of a mean follows the Thai convention of 0.8-wide intervals read on the mean
rounded to two decimals: 4.21-5.00 very good, 3.41-4.20 good, 2.61-3.40 fair, 1.81-2.60 poor, 1.00-1.80 very poor.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, StrictInt

from certmon.core.errors import Invalid
from certmon.core.models import NO_NUL, AgencyCode, PastTime, Strict, from_policy
from certmon.core.policy import SCALE_POINTS, Policy
from certmon.core.sla import shortfall, status_colour

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

    service: str = Field(
        description="a survey service of the policy",
        examples=["security-services"],
        json_schema_extra=from_policy("survey_services"),
    )
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


def insert_args(policy: Policy, data: ResponseIn, actor: str, digest: str | None = None) -> tuple[Any, ...]:
    """The values of one survey_responses row, in the column order of survey_response_insert and survey_stage.

    ``digest`` is body_hash(data), from a caller that keeps it to compare with a row stored under the same key.
    """
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
        body_hash(data, answers_json) if digest is None else digest,
        actor,
    )


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


class Totals(Protocol):
    """A row of survey totals by column name (responses, agencies, answers, score_sum, top2_count): a database
    record or a plain mapping."""

    def __getitem__(self, key: str, /) -> Any: ...


def figures(row: Totals | None, target: float | None, policy: Policy) -> dict[str, Any]:
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
