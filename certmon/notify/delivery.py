"""What a channel reports of a send: the server's answer when it took the notice, or why it did not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RESPONSE_MAX = 1000  # characters of a server's answer kept in the notification row and the timeline


def bounded(text: str, limit: int = RESPONSE_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The notice was accepted: by the mail server for at least one recipient, or by the webhook with a 2xx."""

    message_id: str  # the e-mail's Message-ID, or the webhook request's delivery id
    response: str  # the server's answer in one line, for the notification row
    detail: dict[str, Any] = field(default_factory=dict)  # the same, in parts, for the timeline event


class DeliveryFailed(Exception):
    """The notice was not accepted: refused, unanswered in time, or unreachable."""

    def __init__(self, response: str, message_id: str | None = None, **detail: Any) -> None:
        super().__init__(response)
        self.response = bounded(response)
        self.message_id = message_id
        self.detail = detail
