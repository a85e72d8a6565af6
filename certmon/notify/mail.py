"""Notification e-mail, sent through the configured SMTP server with aiosmtplib."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib

from certmon.core.settings import SmtpServer
from certmon.notify.delivery import Delivery, DeliveryFailed, bounded

# aiosmtplib's timeout bounds each step (connecting, TLS, every command); a whole send is bounded at this many, so
# that a server that answers each command slowly still cannot hold a send indefinitely.
SEND_BOUND_TIMEOUTS = 3


def new_message_id(sender: str) -> str:
    return make_msgid(domain=sender.rpartition("@")[2] or "localhost")


def compose_message(
    sender: str,
    contacts: Sequence[Mapping[str, str]],
    subject: str,
    text: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = [Address(display_name=c["name"], addr_spec=c["email"]) for c in contacts]
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: out-of-office replies are not sent back to it
    message.set_content(text)
    return message


async def send(server: SmtpServer, message: EmailMessage, *, timeout: float, ca_file: Path | None) -> Delivery:
    """Hand the message to the server; DeliveryFailed unless it accepted it for at least one recipient."""
    message_id = str(message["Message-ID"])
    where = f"{server.scheme}://{server.host}:{server.port}"
    try:
        async with asyncio.timeout(timeout * SEND_BOUND_TIMEOUTS):
            refused, reply = await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=server.starttls,  # smtp:// stays in the clear even where the server offers STARTTLS
                timeout=timeout,
                cert_bundle=None if ca_file is None else str(ca_file),
            )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        answers = {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
        raise DeliveryFailed(
            "every recipient refused: " + "; ".join(f"{k}: {v}" for k, v in answers.items()),
            message_id,
            server=where,
            refused=answers,
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryFailed(
            f"SMTP {exc.code} {exc.message}", message_id, server=where, code=exc.code, reply=bounded(exc.message)
        ) from None
    except (TimeoutError, aiosmtplib.SMTPTimeoutError):
        raise DeliveryFailed(f"no answer from {where} within {timeout:g} s", message_id, server=where) from None
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise DeliveryFailed(f"{where}: {exc}", message_id, server=where, exception=type(exc).__name__) from None
    response = bounded(f"250 {reply}")  # aiosmtplib returns only when DATA was answered 250
    detail: dict[str, Any] = {"server": where, "message_id": message_id, "reply": response}
    if refused:
        detail["refused"] = {address: f"{r.code} {r.message}" for address, r in refused.items()}
    return Delivery(message_id, response, detail)
