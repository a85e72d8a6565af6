"""Who may call: roles, the principal behind a request, and the tokens that name it."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from certmon.core.errors import Forbidden

TOKEN_PREFIX = "certmon_"
ROLES = ("admin", "analyst", "auditor", "agency", "metrics")
READ_ALL = ("admin", "analyst", "auditor")
METRICS_READERS = ("admin", "auditor", "metrics")  # /metrics shows every agency's figures: not for agency tokens


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    agency: str | None = None

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role!r} may not do this; needs one of: {', '.join(roles)}")

    def scope(self, agency: str | None) -> str | None:
        """The agency a read is limited to: an agency token sees only its own."""
        if self.role != "agency":
            return agency
        if agency is not None and agency != self.agency:
            raise Forbidden(f"token {self.name!r} may only read agency {self.agency}")
        return self.agency


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def default_token_name(role: str) -> str:
    return f"{role}-{secrets.token_hex(3)}"


def hash_token(token: str) -> bytes:
    # Tokens carry 256 bits of randomness, so a plain hash is enough; no salt or slow KDF is needed.
    return hashlib.sha256(token.encode()).digest()
