"""The OpenAPI 3.1 document, built from the routes' own operation records and pydantic models.

What every route can answer follows from what the operation is: one that needs a token can answer 401, 403 and
429; one that reads a body 400, 413 and 422; one with a path parameter 404; one that uses the database 503 with
Retry-After. An operation names only what is particular to it, so a new route is described as it behaves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from certmon import __version__
from certmon.core.models import POLICY_KEY, Problem
from certmon.core.policy import Policy, load_policy
from certmon.web.api.common import Answer, Operation, Param

PROBLEM_MEDIA = "application/problem+json"
PROBLEM = {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}}
NDJSON = "application/x-ndjson"
RETRY_AFTER = "Retry-After"
# Headers whose schema is more than a string.
HEADER_SCHEMAS: dict[str, dict[str, Any]] = {RETRY_AFTER: {"type": "integer", "minimum": 0}}
# Every operation refuses a query parameter it does not declare, and a declared one with a bad value, with a 422.
COMMON: dict[int, str | Answer] = {422: "a field or parameter is invalid; the problem's errors name each one"}
AUTHENTICATED: dict[int, str | Answer] = {
    401: "no valid token",
    403: "outside the token's role, or another agency's data",
    429: Answer(
        "too many failed authentications from this client; retry after Retry-After seconds",
        headers={RETRY_AFTER: "seconds to wait before trying again"},
    ),
}
WITH_BODY: dict[int, str | Answer] = {
    400: "the body is not valid JSON, or is nested too deeply",
    413: "the body is too large",
}
WITH_PATH: dict[int, str | Answer] = {404: "no such resource, or not visible to this token"}
WITH_DATABASE: dict[int, str | Answer] = {
    503: Answer(
        "the database is unreachable; retry after Retry-After seconds",
        headers={RETRY_AFTER: "seconds to wait before retrying"},
        required_headers=(RETRY_AFTER,),
    )
}


def document(operations: Iterable[Operation], policy: Policy | None = None) -> dict[str, Any]:
    ops = list(operations)
    chosen = policy or load_policy(None)
    models: set[type[BaseModel]] = {Problem}
    for op in ops:
        models.update(m for m in (op.body, op.response) if m is not None)
    _, schemas = models_json_schema(
        [(m, "validation" if any(op.body is m for op in ops) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas = _from_policy(schemas, chosen)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(op, chosen)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "certmon",
            "version": __version__,
            "description": "SLA monitor of a national CERT: incidents, timelines and compliance against the target.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a certmon token"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def statuses(op: Operation) -> dict[int, str | Answer]:
    """Every status the operation can answer but its success: the ones its properties imply, then its own."""
    implied: dict[int, str | Answer] = dict(COMMON)
    if not op.public:
        implied.update(AUTHENTICATED)
    if op.has_body and not op.streamed:  # a streamed body is judged line by line, of any size
        implied[413] = WITH_BODY[413]
        if any(_is_json(m) for m in op.body_media_types):  # an NDJSON body's malformed lines are rejected one by one
            implied[400] = WITH_BODY[400]
    if any(p.where == "path" for p in op.params):
        implied.update(WITH_PATH)
    if op.database:
        implied.update(WITH_DATABASE)
    return {**implied, **op.responses}


def _operation(op: Operation, policy: Policy) -> dict[str, Any]:
    responses: dict[str, Any] = {str(op.status): _success(op, "success", op.headers, op.headers)}
    for status, given in sorted(statuses(op).items()):
        answer = given if isinstance(given, Answer) else Answer(given)
        if status < 400:
            responses[str(status)] = _success(op, answer.description, answer.headers, answer.required_headers)
        else:
            out: dict[str, Any] = {"description": answer.description, "content": PROBLEM}
            if answer.headers:
                out["headers"] = _headers(answer.headers, answer.required_headers)
            responses[str(status)] = out
    out = {
        "summary": op.summary,
        "operationId": op.method + "_" + re.sub(r"[^a-z0-9]+", "_", op.path.removeprefix("/api/v1/")).strip("_"),
        "description": f"Roles: {', '.join(op.roles)}.",
        "responses": responses,
    }
    if op.public:
        out["security"] = []
    if op.params:
        out["parameters"] = [_parameter(p, policy) for p in op.params]
    if op.has_body:
        out["requestBody"] = {"required": True, "content": {media: _body(op, media) for media in op.body_media_types}}
    return out


def _parameter(p: Param, policy: Policy) -> dict[str, Any]:
    return {
        "name": p.name,
        "in": p.where,
        "required": p.required or p.where == "path",
        "description": p.description,
        "schema": _from_policy(p.schema, policy),
    }


def _body(op: Operation, media: str) -> dict[str, Any]:
    """A model's body; in NDJSON, a sequence of them, one a line, each judged by itself (OpenAPI 3.1 has no
    schema for a sequence of lines, so the lines are written as the items of an array)."""
    if op.body is not None:
        model = {"$ref": f"#/components/schemas/{op.body.__name__}"}
        return {"schema": {"type": "array", "items": model} if media == NDJSON else model}
    return {"schema": op.body_schema or {}}  # written for every media type alike: in NDJSON, its items are lines


def _success(op: Operation, description: str, headers: dict[str, str], required: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    content: dict[str, Any] = {}
    for media in (m.partition(";")[0].strip() for m in op.media_types):
        if _is_json(media):
            first = not any(_is_json(m) for m in content)
            model = op.response.__name__ if op.response is not None and first else None
            content[media] = {"schema": {"$ref": f"#/components/schemas/{model}"} if model else {}}
        else:
            content[media] = {"schema": {"type": "string"}}
    if content:
        out["content"] = content
    if headers:
        out["headers"] = _headers(headers, required)
    return out


def _headers(headers: dict[str, str], required: Iterable[str]) -> dict[str, Any]:
    needed = set(required)
    return {
        name: {
            "description": text,
            "required": name in needed,
            "schema": HEADER_SCHEMAS.get(name, {"type": "string"}),
        }
        for name, text in headers.items()
    }


def _policy_names(policy: Policy, name: str) -> list[str]:
    if name == "severities":
        return list(policy.severities)
    if name == "objectives":
        return list(policy.objectives)
    return list(policy.surveys.services)


def _from_policy(node: Any, policy: Policy) -> Any:
    """The schema with each value named by the policy (``from_policy``) listed as the names it has."""
    if isinstance(node, list):
        return [_from_policy(item, policy) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _from_policy(value, policy) for key, value in node.items() if key != POLICY_KEY}
    if POLICY_KEY in node:
        out["enum"] = _policy_names(policy, node[POLICY_KEY])
    return out


def _is_json(media: str) -> bool:
    kind = media.partition(";")[0].strip()
    return kind == "application/json" or kind.endswith("+json")
