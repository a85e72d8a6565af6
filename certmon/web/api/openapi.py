"""The OpenAPI 3.1 document, built from the routes' own operation records and pydantic models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from certmon import __version__
from certmon.core.models import Problem
from certmon.web.api.common import Operation

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def document(operations: Iterable[Operation]) -> dict[str, Any]:
    ops = list(operations)
    models: set[type[BaseModel]] = {Problem}
    for op in ops:
        models.update(m for m in (op.body, op.response) if m is not None)
    _, schemas = models_json_schema(
        [(m, "validation" if any(op.body is m for op in ops) else "serialization") for m in models],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _operation(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": "success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.response.__name__}"}}}
    responses[str(op.status)] = ok
    limits = {429: "too many wrong tokens from this address, or requests of this token; retry after Retry-After"}
    for status, text in {401: "no valid token", 403: "outside the token's role", **limits, **op.responses}.items():
        responses[str(status)] = {"description": text, "content": PROBLEM}
    responses.setdefault("422", {"description": "a field is invalid", "content": PROBLEM})
    responses["503"] = {"description": "database unavailable; retry after Retry-After seconds", "content": PROBLEM}
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.method + "_" + re.sub(r"[^a-z0-9]+", "_", op.path.removeprefix("/api/v1/")).strip("_"),
        "description": f"Roles: {', '.join(op.roles)}.",
        "responses": responses,
    }
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in op.params
        ]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {op.body_media: {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}},
        }
    return out
