"""Loaded by schemathesis (SCHEMATHESIS_HOOKS): how to write the bodies the document declares in NDJSON.

The document writes an NDJSON body as an array, its items being the lines; this sends each item as one line.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)
