"""Sending stored outbox messages. (Completed by the outbox work: retries, sweeper.)"""

from __future__ import annotations


def send_outbox_message(message_id: int) -> None:
    """Send one stored message; safe to run twice."""
    raise NotImplementedError
