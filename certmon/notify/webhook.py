"""Notification webhooks: a JSON POST signed as GitHub signs its webhooks, so receivers can reuse their checks."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import aiohttp

from certmon import __version__
from certmon.notify.delivery import Delivery, DeliveryFailed, bounded

SIGNATURE_HEADER = "X-Certmon-Signature"
DELIVERY_HEADER = "X-Certmon-Delivery"  # the same id on a retried request lets a receiver drop the duplicate
EXCERPT_BYTES = 2048  # of the receiver's answer, read and kept (bounded again as text); the rest is not read


def signature(secret: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of the exact body bytes, keyed with the agency's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def new_delivery_id() -> str:
    return str(uuid.uuid4())


async def post(
    http: aiohttp.ClientSession,
    url: str,
    secret: str,
    payload: dict[str, Any],
    delivery_id: str,
    *,
    timeout: float,
) -> Delivery:
    """POST the payload; DeliveryFailed unless the receiver answered 2xx within ``timeout`` seconds."""
    body = encode(payload)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"certmon/{__version__}",
        SIGNATURE_HEADER: signature(secret, body),
        DELIVERY_HEADER: delivery_id,
    }
    try:
        # A redirect is not followed: the agency registered this URL, and a 3xx is not an acceptance.
        async with http.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as response:
            status = response.status
            excerpt = await _excerpt(response)
    except TimeoutError:
        raise DeliveryFailed(f"no answer from the webhook within {timeout:g} s", delivery_id, url=url) from None
    except aiohttp.ClientError as exc:
        raise DeliveryFailed(
            f"{type(exc).__name__}: {exc}", delivery_id, url=url, exception=type(exc).__name__
        ) from None
    answer = bounded(f"HTTP {status}" + (f": {excerpt}" if excerpt else ""))
    detail = {"url": url, "delivery": delivery_id, "status": status, "body": excerpt}
    if not 200 <= status < 300:
        raise DeliveryFailed(answer, delivery_id, **detail)
    return Delivery(delivery_id, answer, detail)


async def _excerpt(response: aiohttp.ClientResponse) -> str:
    chunks: list[bytes] = []
    size = 0
    while size < EXCERPT_BYTES and (chunk := await response.content.read(EXCERPT_BYTES - size)):
        chunks.append(chunk)
        size += len(chunk)
    return bounded(b"".join(chunks).decode("utf-8", "replace").strip(), 500)
