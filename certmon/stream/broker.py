"""What the consumer needs of a message broker, whichever it is.

A broker hands out batches of messages of one durable consumer (or consumer group) that every replica shares;
a message that is neither acknowledged nor handed back within the broker's deadline goes to another replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# What a message holds, named by the last part of its subject or topic: certmon.incidents -> incidents.
KINDS = ("incidents", "eve", "wazuh", "alertmanager")


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # one of KINDS, or the subject itself when it names none (such a message is dead-lettered)
    data: bytes
    # The broker's identity of this message, the same on every redelivery: the publisher's message id when it
    # gave one, else the message's position in the stream. It keys incidents that carry no external_id.
    key: str
    handle: Any = field(default=None, compare=False, repr=False)  # the broker's own message object


class Broker(Protocol):
    async def fetch(self, count: int, timeout: float) -> Sequence[Message]:
        """Up to ``count`` messages, waiting at most ``timeout`` seconds for the first; none when idle."""

    async def ack(self, messages: Sequence[Message]) -> None:
        """The messages are stored: never deliver them again."""

    async def nak(self, messages: Sequence[Message], delay: float) -> None:
        """The messages could not be stored now: deliver them again after ``delay`` seconds, to any replica."""

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Set the message aside with the reason it can never be stored, then never deliver it again."""

    async def lag(self) -> tuple[int, int]:
        """Messages not yet delivered to the consumer, and delivered but not yet acknowledged."""

    async def close(self) -> None:
        """Send what is still buffered (acknowledgements above all) and disconnect."""
