"""A real SMTP server for tests (aiosmtpd in a thread) that records what it receives.

It can be stopped and started again on the same port (a mail server that is down for a while),
refuse chosen recipients with 550, answer chosen recipients with 451 a number of times
before accepting them, and stall the next RCPT TO (a server that hangs mid-conversation).
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str | None:
        return self.message["Message-ID"]

    @property
    def subject(self) -> str | None:
        return self.message["Subject"]

    def part(self, content_type: str) -> str | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part.get_content()
        return None


class _Handler:
    def __init__(self, server: SMTPTestServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        stall = self.server._take_stall()
        if stall:
            await asyncio.sleep(stall)
        return self.server._answer_rcpt(address, envelope)

    async def handle_DATA(self, server, session, envelope):
        return self.server._receive(envelope)


class SMTPTestServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.messages: list[ReceivedMessage] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self._refused: dict[str, str] = {}
        self._deferred: dict[str, int] = {}
        self._stall_next = 0.0
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # --- control --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is None:
            self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=5)
            self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, address: str, reply: str = "550 5.1.1 Mailbox unavailable") -> None:
        """Answer RCPT TO for this address with a permanent error."""
        with self._lock:
            self._refused[address.lower()] = reply

    def defer(self, address: str, times: int) -> None:
        """Answer RCPT TO for this address with 451 ``times`` times, then accept it."""
        with self._lock:
            self._deferred[address.lower()] = times

    def stall_next(self, seconds: float) -> None:
        """Answer the next RCPT TO only after ``seconds`` (it still counts in ``rcpt_attempts`` when answered)."""
        with self._lock:
            self._stall_next = seconds

    def reset(self) -> None:
        with self._lock:
            self._stall_next = 0.0
            self.messages.clear()
            self.rcpt_attempts.clear()
            self._refused.clear()
            self._deferred.clear()

    # --- what arrived ---------------------------------------------------------------------

    def message_ids(self) -> list[str]:
        with self._lock:
            return [received.message_id for received in self.messages]

    def to(self, address: str) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    # --- the handler's side ---------------------------------------------------------------

    def _take_stall(self) -> float:
        with self._lock:
            stall, self._stall_next = self._stall_next, 0.0
        return stall

    def _answer_rcpt(self, address: str, envelope) -> str:
        key = address.lower()
        with self._lock:
            self.rcpt_attempts[key] += 1
            if key in self._refused:
                return self._refused[key]
            if self._deferred.get(key, 0) > 0:
                self._deferred[key] -= 1
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _receive(self, envelope) -> str:
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=default_policy)
        received = ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=parsed,  # type: ignore[arg-type]
        )
        with self._lock:
            self.messages.append(received)
        return "250 Message accepted for delivery"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
