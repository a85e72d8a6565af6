"""The audit trail's rules: who an actor is, an entry's canonical form, and the hash that chains it to the last one.

The database writes the entries (statement triggers, sql/migrations/0007_audit.sql); the sealer and ``certmon audit
verify`` compute the chain with the functions here, so both agree byte for byte (docs/audit.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

GENESIS = "0" * 64  # the hash before the first entry
ACTIONS = ("insert", "update", "delete", "truncate")
KINDS = ("incident", "agency", "token", "survey", "export", "service")
READERS = ("admin", "auditor")  # who may read the trail


class Fields(Protocol):
    """A stored entry's fields by name: a database record or a dict."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who writes: ``token:<name>``, ``console:<name>``, ``system:<job>``, ``cli:<user>``, ``ack-link``."""

    name: str
    role: str | None = None


def canonical(entry: Fields) -> bytes:
    """An entry as it is hashed: its fields in a fixed order, then before and after as the text stored.

    They are json (text), hashed byte for byte as the trigger wrote them: decoding and encoding them again could
    change a number's digits or a key's order.
    """
    at: datetime = entry["at"]
    head = [
        entry["id"],
        str(entry["xid"]),
        at.astimezone(UTC).isoformat(),
        entry["actor"],
        entry["actor_role"],
        entry["action"],
        entry["table_name"],
        entry["kind"],
        list(entry["entity_ids"]),
        entry["row_count"],
    ]
    fields = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    return "\n".join((fields, entry["before"] or "null", entry["after"] or "null")).encode()


def chain_hash(previous: str, entry: Fields) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + canonical(entry)).hexdigest()


@dataclass(frozen=True, slots=True)
class Link:
    """One position of the chain as stored, with the entry it names (None when that entry is gone)."""

    seq: int
    entry_id: int
    hash: str
    entry: Fields | None


@dataclass(slots=True)
class ChainCheck:
    """Recomputes the chain link by link; ``problem`` is the first bad entry, and nothing after it is judged."""

    seq: int = 0
    hash: str = GENESIS
    problem: str | None = None

    def feed(self, links: Sequence[Link]) -> bool:
        """Check the next links in order; False once a problem is found."""
        for link in links:
            if self.problem is not None:
                return False
            if link.seq != self.seq + 1:
                self.problem = f"chain position {self.seq + 1} is missing (the next one is {link.seq})"
            elif link.entry is None:
                self.problem = f"entry {link.entry_id} (chain position {link.seq}) was removed"
            elif link.entry["id"] != link.entry_id:
                self.problem = f"chain position {link.seq} names entry {link.entry_id}, found {link.entry['id']}"
            else:
                expected = chain_hash(self.hash, link.entry)
                if expected != link.hash:
                    self.problem = f"entry {link.entry_id} (chain position {link.seq}) was altered: hash mismatch"
                else:
                    self.seq, self.hash = link.seq, link.hash
        return self.problem is None


def parse_head(raw: str) -> tuple[int, str]:
    """A head as ``certmon audit verify`` prints it and logs anchor it: ``<position>:<sha256>``."""
    seq, _, digest = raw.partition(":")
    if not seq.isdigit() or int(seq) < 1 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError("must be <position>:<sha256 hex>, as certmon audit verify prints the head")
    return int(seq), digest
