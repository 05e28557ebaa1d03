"""Rows for tests made straight in the tables: drafts and submissions of published services."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from felles.db import Database
from felles.portal.models import Draft, PartyKind, Submission
from felles.portal.references import new_reference
from felles.registry import service as registry


async def some_person(db: Database, index: int = 0) -> str:
    async with db.session() as session:
        return (await registry.list_people(session, limit=index + 1))[index].pid


async def some_organisation(db: Database) -> str:
    async with db.session() as session:
        return (await registry.list_organisations(session, limit=1))[0].orgnr


async def make_draft(db: Database, code: str = "kindergarten-place", version: int = 1) -> str:
    pid = await some_person(db)
    now = datetime.now(UTC)
    draft = Draft(
        id=secrets.token_hex(16),
        service_code=code,
        service_version=version,
        party_kind=PartyKind.person.value,
        party_id=pid,
        created_by=pid,
        data={},
        prefilled={},
        pages_done=[],
        created_at=now,
        updated_at=now,
    )
    async with db.session() as session:
        session.add(draft)
    return draft.id


async def make_submission(
    db: Database,
    code: str,
    data: dict[str, Any],
    *,
    party_kind: PartyKind = PartyKind.person,
    party_id: str | None = None,
    submitted_by: str | None = None,
    submitted_at: datetime | None = None,
) -> Submission:
    """A submitted form of a published example service, receipt not yet made."""
    pid = submitted_by or await some_person(db)
    from felles.portal import catalogue

    async with db.session() as session:
        entry = await catalogue.current(session, code)
        submission = Submission(
            id=str(uuid.uuid4()),
            reference=new_reference(),
            draft_id=secrets.token_hex(16),
            service_code=code,
            service_version=entry.version,
            owner_orgnr=entry.owner_orgnr,
            party_kind=party_kind.value,
            party_id=party_id or pid,
            submitted_by=pid,
            data=data,
            submitted_at=submitted_at or datetime.now(UTC),
        )
        session.add(submission)
    return submission
