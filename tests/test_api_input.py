"""Hostile or mistaken query and path values: each gets a 4xx problem naming what is wrong, never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import Api

REFUSED = [
    ("/api/v1/sla?period=0001-01-01..9999-12-31", 422, "period"),  # year 0 once in UTC
    ("/api/v1/sla?period=0001-01", 422, "period"),
    ("/api/v1/sla?period=9999-12", 422, "period"),
    ("/api/v1/sla?period=FY2512", 422, "period"),  # ends on 1 October 1969
    ("/api/v1/sla?period=2021-08&severity=%00", 422, "severity"),
    ("/api/v1/surveys/summary?period=0001-01", 422, "period"),
    ("/api/v1/surveys/responses?cursor=99999999999999999999999", 422, "cursor"),
    ("/api/v1/surveys/responses?cursor=abc", 422, "cursor"),
    ("/api/v1/incidents?limit=abc", 422, "limit"),
    ("/api/v1/incidents?until=9999-12-31T23:59:59-05:00", 422, "until"),
    ("/api/v1/incidents?since=1969-12-31T00:00:00Z", 422, "since"),
    ("/api/v1/incidents/99999999999999999999999", 404, None),  # beyond bigint
    ("/api/v1/incidents/0", 404, None),
    ("/api/v1/exports/2021-08/99999999999999999999/incidents.csv", 422, "revision"),  # beyond integer
    ("/api/v1/exports/2021-08/%C2%B2/incidents.csv", 422, "revision"),  # a digit to str.isdigit, not to int
    ("/api/v1/agencies/MOF%00", 404, None),
    ("/api/v1/reports/fiscal?fy=2512", 422, "fy"),  # ends on 1 October 1969, like FY2512 of /sla
    ("/api/v1/reports/fiscal?fy=%C2%B2", 422, "fy"),
]


@pytest.mark.parametrize(("url", "status", "field"), REFUSED)
async def test_bad_query_and_path_values_get_a_problem_not_a_500(
    api: Api, url: str, status: int, field: str | None
) -> None:
    got, problem = await api.call("GET", url, "admin")
    assert got == status, problem
    assert problem["status"] == status and problem["detail"]
    if field is not None:
        assert problem["errors"][0]["field"] == field


async def test_the_first_bangkok_month_of_1970_is_a_period(api: Api) -> None:
    """January 1970 in Bangkok starts in 1969 in UTC; it is still the first month one can ask for."""
    status, figures = await api.call("GET", "/api/v1/sla?period=1970-01", "admin")
    assert (status, figures["total"]) == (200, 0)
