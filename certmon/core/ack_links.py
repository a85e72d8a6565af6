"""Acknowledgement links: a random, single-use token in a URL, of which only the hash is stored."""

from __future__ import annotations

import hashlib
import re
import secrets

ACK_PREFIX = "/ack/"
TOKEN_BYTES = 32  # 256 bits: the link is the only credential an agency needs to acknowledge
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # what token_urlsafe(32) produces


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> bytes:
    # As for API tokens, 256 random bits need no salt or slow KDF: a plain hash cannot be reversed.
    return hashlib.sha256(token.encode()).digest()


def could_be_token(token: str) -> bool:
    """Whether certmon could have issued it; anything else is unknown without asking the database."""
    return _TOKEN.fullmatch(token) is not None


def link(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + ACK_PREFIX + token
