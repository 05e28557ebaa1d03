"""The portal's events for agencies (CloudEvents through `felles.events`): what changed,
never what was in it. An agency that hears of a submission fetches it over the API."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from felles.events import service as events
from felles.portal.models import Message, Submission

TYPE_PREFIX = "no.felles.portal."


async def submission_changed(session: AsyncSession, change: str, row: Submission) -> None:
    """`submission.created`, `.acknowledged` or `.decided`, to the service's owner."""
    await events.emit(
        session,
        type=f"{TYPE_PREFIX}{change}",
        source=f"/portal/services/{row.service_code}",
        subject=row.id,
        recipient_orgnr=row.owner_orgnr,
        data={
            "submission_id": row.id,
            "reference": row.reference,
            "service_code": row.service_code,
            "service_version": row.service_version,
            "party_kind": row.party_kind,
            "status": row.status,
        },
    )


async def message_created(session: AsyncSession, row: Message) -> None:
    """`message.created`, to the agency that sent it (its own systems keep track)."""
    await events.emit(
        session,
        type=f"{TYPE_PREFIX}message.created",
        source="/portal/messages",
        subject=row.id,
        recipient_orgnr=row.sender_orgnr,
        data={"message_id": row.id, "kind": row.kind, "submission_id": row.submission_id},
    )
