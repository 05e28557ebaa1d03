"""The mailbox's events for senders (CloudEvents through `felles.events`): what became of
a letter, never what it says or who it went to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from felles.events import service as events

TYPE_PREFIX = "no.felles.mailbox."


async def letter_changed(
    session: AsyncSession, row: Mapping[str, Any], status: str | None = None
) -> None:
    """`letter.<status>` (delivered, notified, opened, printed, failed, or
    notification_failed), to the sender."""
    status = status or row["status"]
    await events.emit(
        session,
        type=f"{TYPE_PREFIX}letter.{status}",
        source="/mailbox/letters",
        subject=row["id"],
        recipient_orgnr=row["sender_orgnr"],
        data={
            "letter_id": row["id"],
            "sender_ref": row.get("sender_ref"),
            "batch_id": row.get("batch_id"),
            "channel": row["channel"],
            "reason": row.get("reason"),
            "status": status,
        },
    )


async def batch_changed(
    session: AsyncSession, batch_id: str, sender_orgnr: str, status: str, counts: dict[str, int]
) -> None:
    """`batch.released` or `batch.cancelled`: one event for the whole batch, with how many
    letters went each way (a batch's letters have no `letter.delivered` of their own)."""
    await events.emit(
        session,
        type=f"{TYPE_PREFIX}batch.{status}",
        source="/mailbox/batches",
        subject=batch_id,
        recipient_orgnr=sender_orgnr,
        data={"batch_id": batch_id, "status": status, "letters": counts},
    )
