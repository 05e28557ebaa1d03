"""Sending a form: the draft becomes a submission, exactly once, with its receipt copy in
the inbox, the agency's event in the outbox and the access decision on record.

This is the portal's busiest write (a whole country's deadline day), so on PostgreSQL it
is two round trips: one read of the draft and one statement that claims the draft and
writes every row together (data-modifying CTEs: all or nothing, and nothing at all if
another click claimed the draft first). The receipt PDF and the e-mail come later, from
the receipt worker; the person gets their reference number at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database, dialect_name, fetch_row, fetch_value
from felles.events.models import OutboxEvent
from felles.portal import authz, catalogue, forms
from felles.portal.forms import CHECK, FieldError, NotFound, OpenDraft
from felles.portal.models import (
    AccessDecision,
    Attachment,
    Draft,
    Message,
    MessageKind,
    Submission,
    SubmissionStatus,
)
from felles.portal.portal_events import TYPE_PREFIX
from felles.portal.references import new_reference
from felles.portal.session import Party


class Incomplete(Exception):
    """Pages are still to do: the person is sent to `step`."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


class Invalid(Exception):
    """The answers do not pass the service's schema as a whole (each with its page)."""

    def __init__(self, problems: list[tuple[str, FieldError]]) -> None:
        super().__init__(len(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Sent:
    submission_id: str
    created: bool  # False: it was sent before (a second click, a retry)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


DRAFTS, SUBMISSIONS = _table(Draft), _table(Submission)
# The draft, and the submission it already became, if any.
DRAFT_TO_SEND = (
    select(DRAFTS, SUBMISSIONS.c.id.label("sent_as"))
    .outerjoin(SUBMISSIONS, SUBMISSIONS.c.draft_id == DRAFTS.c.id)
    .where(DRAFTS.c.id == bindparam("b_id"))
)
DRAFT_KEYS = tuple(column.key for column in DRAFTS.columns)
SENT_AS = select(SUBMISSIONS.c.id).where(SUBMISSIONS.c.draft_id == bindparam("b_id"))


def _bound(model: type[Any], prefix: str, columns: tuple[str, ...]) -> list[Any]:
    table = _table(model)
    return [bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns]


SUBMISSION_COLUMNS = (
    "id", "reference", "draft_id", "service_code", "service_version", "owner_orgnr",
    "party_kind", "party_id", "submitted_by", "data", "receipt_facts", "status",
    "submitted_at",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "party_kind", "party_id", "kind", "sender_orgnr", "submission_id", "title", "body",
    "confirm_required", "created_at", "read_at",
)  # fmt: skip
EVENT_COLUMNS = (
    "event_id", "type", "source", "subject", "recipient_orgnr", "time", "data", "fanned_out",
)  # fmt: skip
DECISION_COLUMNS = (
    "decided_at", "pid", "party_kind", "party_id", "service_code", "action", "allowed", "reason",
)  # fmt: skip


def _send_statement() -> Any:
    """PostgreSQL: claim the draft (if nobody has, at the revision that was checked) and,
    only then, write the submission, its receipt copy, its event and move its files; the
    access decision is recorded either way. Answers how many submissions were written."""
    claimed = (
        update(DRAFTS)
        .where(
            DRAFTS.c.id == bindparam("b_id"),
            DRAFTS.c.submitted_at.is_(None),
            DRAFTS.c.revision == bindparam("b_revision"),
        )
        .values(submitted_at=bindparam("b_at"), revision=DRAFTS.c.revision + 1)
        .returning(DRAFTS.c.id)
        .cte("claimed")
    )
    written = (
        insert(SUBMISSIONS)
        .from_select(
            list(SUBMISSION_COLUMNS),
            select(*_bound(Submission, "s_", SUBMISSION_COLUMNS)).select_from(claimed),
        )
        .returning(SUBMISSIONS.c.id)
        .cte("written")
    )
    copied = (
        insert(_table(Message))
        .from_select(
            list(MESSAGE_COLUMNS),
            select(*_bound(Message, "m_", MESSAGE_COLUMNS)).select_from(written),
        )
        .cte("copied")
    )
    told = (
        insert(_table(OutboxEvent))
        .from_select(
            list(EVENT_COLUMNS),
            select(*_bound(OutboxEvent, "e_", EVENT_COLUMNS)).select_from(written),
        )
        .cte("told")
    )
    decided = (
        insert(_table(AccessDecision))
        .values(
            dict(zip(DECISION_COLUMNS, _bound(AccessDecision, "d_", DECISION_COLUMNS), strict=True))
        )
        .cte("decided")
    )
    files = _table(Attachment)
    moved = (
        update(files)
        .where(files.c.draft_id == bindparam("b_id"), exists(select(written.c.id)))
        .values(submission_id=bindparam("s_id"))
        .cte("moved")
    )
    return select(func.count()).select_from(written).add_cte(copied, told, decided, moved)


SEND = _send_statement()


async def send(db: Database, draft_id: str, pid: str, party: Party, sender_name: str) -> Sent:
    """Send the draft for `party`. Raises NotFound (not this person's, or no such draft),
    Refused, Incomplete or Invalid; a draft sent before gives its submission back."""
    if not isinstance(draft_id, str) or not 10 <= len(draft_id) <= 32:
        raise NotFound(draft_id)
    async with db.session(autocommit=True) as session:
        row = await fetch_row(session, DRAFT_TO_SEND, {"b_id": draft_id})
        if row is None or row["party_kind"] != party.kind.value or row["party_id"] != party.id:
            raise NotFound(draft_id)
        version = await catalogue.version(session, row["service_code"], row["service_version"])
        decision = await authz.judge_use(session, pid, party, version.definition)
        if not decision.allowed:
            authz.announce(pid, party, version.definition.code, "submit", decision)
            raise NotFound(draft_id)  # as for any draft this person may not see
        if row["sent_as"] is not None:
            return Sent(row["sent_as"], created=False)
        draft = Draft(**{key: row[key] for key in DRAFT_KEYS})
        opened = OpenDraft(draft, version.definition)
        step = forms.next_step(opened)
        if step != CHECK:
            raise Incomplete(step)
        data, problems = forms.submitted_data(opened)
        if problems:
            raise Invalid(problems)
        authz.announce(pid, party, version.definition.code, "submit", decision)
        for _attempt in range(3):  # a new reference if one ever collides
            params = _parameters(opened, version, data, pid, party, sender_name, decision)
            try:
                written = await _write(session, params)
            except IntegrityError:
                await session.rollback()
                if await fetch_value(session, SENT_AS, {"b_id": draft_id}) is not None:
                    break  # not a collision: the draft was sent meanwhile
                continue
            if written:
                return Sent(params["s_id"], created=True)
            break
    # Claimed by a concurrent click (or changed meanwhile): whatever was sent, if anything.
    async with db.session(autocommit=True) as session:
        sent_as = await fetch_value(session, SENT_AS, {"b_id": draft_id})
    if sent_as is None:
        raise forms.Conflict(draft_id)
    return Sent(sent_as, created=False)


def receipt_facts(opened: OpenDraft, sender_name: str, party: Party) -> dict[str, Any]:
    """What the receipt shows besides the answers (see Submission.receipt_facts)."""
    chosen: dict[str, str] = {}
    for page in opened.definition.pages:
        for question in page.questions:
            value = opened.data.get(question.field)
            if question.options_from and value:
                labels = {o["value"]: o["label"] for o in opened.options(question.field)}
                if value in labels:
                    chosen[question.field] = labels[value]
    return {
        "submitted_by": sender_name,
        "party": party.name,
        "chosen": chosen,
        "sources": opened.sources,
    }


def _parameters(
    opened: OpenDraft,
    version: catalogue.Version,
    data: dict[str, Any],
    pid: str,
    party: Party,
    sender_name: str,
    decision: authz.Decision,
) -> dict[str, Any]:
    draft, definition = opened.draft, opened.definition
    at = datetime.now(UTC)
    submission_id = str(uuid.uuid4())
    submission = {
        "id": submission_id,
        "reference": new_reference(),
        "draft_id": draft.id,
        "service_code": draft.service_code,
        "service_version": draft.service_version,
        "owner_orgnr": version.owner_orgnr,
        "party_kind": party.kind.value,
        "party_id": party.id,
        "submitted_by": pid,
        "data": data,
        "receipt_facts": receipt_facts(opened, sender_name, party),
        "status": SubmissionStatus.received.value,
        "submitted_at": at,
    }
    message = {
        "id": str(uuid.uuid4()),
        "party_kind": party.kind.value,
        "party_id": party.id,
        "kind": MessageKind.receipt.value,
        "sender_orgnr": version.owner_orgnr,
        "submission_id": submission_id,
        "title": definition.name.nb,
        "body": definition.receipt.text.nb,
        "confirm_required": False,
        "created_at": at,
        "read_at": at,
    }
    event = {
        "event_id": str(uuid.uuid4()),
        "type": f"{TYPE_PREFIX}submission.created",
        "source": f"/portal/services/{draft.service_code}",
        "subject": submission_id,
        "recipient_orgnr": version.owner_orgnr,
        "time": at,
        "data": {
            "submission_id": submission_id,
            "reference": submission["reference"],
            "service_code": draft.service_code,
            "service_version": draft.service_version,
            "party_kind": party.kind.value,
            "status": SubmissionStatus.received.value,
        },
        "fanned_out": False,
    }
    decided = authz.decision_values(pid, party, definition.code, "submit", decision, at)
    params: dict[str, Any] = {"b_id": draft.id, "b_revision": draft.revision, "b_at": at}
    for prefix, values in (("s_", submission), ("m_", message), ("e_", event), ("d_", decided)):
        params.update({prefix + k: v for k, v in values.items()})
    return params


async def _write(session: AsyncSession, params: dict[str, Any]) -> bool:
    """Write it all; whether this call was the one that sent the draft."""
    if dialect_name(session) == "postgresql":
        return bool(await fetch_value(session, SEND, params))
    # SQLite: the same rows in the session's transaction (committed when the session
    # ends; SQLite has one writer at a time anyway).
    claimed = await session.execute(
        update(DRAFTS)
        .where(
            DRAFTS.c.id == params["b_id"],
            DRAFTS.c.submitted_at.is_(None),
            DRAFTS.c.revision == params["b_revision"],
        )
        .values(submitted_at=params["b_at"], revision=DRAFTS.c.revision + 1)
    )
    decided = {c: params["d_" + c] for c in DECISION_COLUMNS}
    await session.execute(insert(_table(AccessDecision)).values(decided))
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for model, prefix, columns in (
        (Submission, "s_", SUBMISSION_COLUMNS),
        (Message, "m_", MESSAGE_COLUMNS),
        (OutboxEvent, "e_", EVENT_COLUMNS),
    ):
        await session.execute(
            insert(_table(model)).values({c: params[prefix + c] for c in columns})
        )
    files = _table(Attachment)
    await session.execute(
        update(files).where(files.c.draft_id == params["b_id"]).values(submission_id=params["s_id"])
    )
    return True
