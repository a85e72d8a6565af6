"""Console sessions: the random id a browser holds, what the server keeps of it, and the form token derived from it.

The browser's cookie carries a random session id; the database keeps only its SHA-256, so a copy of the table opens
no session. Every form of a signed-in page carries a token derived from the id: a page of another site can neither
read the cookie nor compute the token, so its forged POST is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from certmon.core.access import Principal

SESSION_COOKIE = "certmon_session"
LOGIN_COOKIE = "certmon_signin"  # the sign-in form's own token, before any session exists
LANG_COOKIE = "certmon_lang"
CSRF_FIELD = "csrf"
_CSRF_CONTEXT = b"certmon console form token\x00"  # keeps the form token unrelated to the stored hash


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in browser: whose token it was opened with, its form token, and when it ends at the latest."""

    principal: Principal
    csrf: str
    expires_at: datetime


def new_secret() -> str:
    """A fresh random value of 256 bits, for a session id or the sign-in form's token."""
    return secrets.token_urlsafe(32)


def session_hash(session_id: str) -> bytes:
    # The id carries 256 bits of randomness, so a plain hash is enough, as for API tokens.
    return hashlib.sha256(session_id.encode()).digest()


def csrf_token(session_id: str) -> str:
    digest = hashlib.sha256(_CSRF_CONTEXT + session_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same_secret(given: str | None, expected: str | None) -> bool:
    """Whether a submitted token is the expected one, compared in constant time; a missing one never is."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
