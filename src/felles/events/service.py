"""The events part's domain functions (no HTTP): emit, subscriptions, the pull feed, purge.

`emit` is on every business write's path (a portal submission, a letter): one INSERT in
the caller's transaction, so the event exists exactly when the change committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database, dialect_name, insert_row
from felles.events.models import Delivery, OutboxEvent, Subscription
from felles.events.webhooks import SecretBox, check_endpoint, new_secret

MAX_TYPE_LENGTH = 200
MAX_TYPES = 20
MAX_SUBSCRIPTIONS = 100  # per organisation
KEEP_DELIVERIES = timedelta(days=7)
PURGE_BATCH = 5_000

# On PostgreSQL: every transaction older than the event's horizon has ended (see models).
_SETTLED = text("events_outbox.horizon <= pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


_emitted = 0  # events emitted by this process: a nudge for the dispatcher next to it


def emitted() -> int:
    """How many events this process has emitted (committed or not): a dispatcher in the
    same process wakes early when this moves, instead of waiting for its next poll."""
    return _emitted


class SubscriptionError(ValueError):
    """A subscription that cannot be made; `field` names the input at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class NotFound(LookupError):
    """No such subscription for this organisation (another's is not found either)."""


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    id: str
    orgnr: str
    endpoint: str
    types: list[str]
    created_at: datetime
    disabled_at: datetime | None
    consecutive_failures: int


async def emit(
    session: AsyncSession,
    *,
    type: str,
    source: str,
    recipient_orgnr: str,
    data: Any,
    subject: str | None = None,
    time: datetime | None = None,
) -> str:
    """Record an event in the caller's transaction; its id (the CloudEvent `id`).

    One INSERT and nothing else: fan-out and delivery happen later in the dispatcher.
    """
    global _emitted
    if not type or len(type) > MAX_TYPE_LENGTH:
        raise ValueError("An event type is 1-200 characters")
    event_id = str(uuid.uuid4())
    await insert_row(
        session,
        OutboxEvent,
        event_id=event_id,
        type=type,
        source=source,
        subject=subject,
        recipient_orgnr=recipient_orgnr,
        time=time or datetime.now(UTC),
        data=data,
        fanned_out=False,
    )
    _emitted += 1
    return event_id


def matches(types: Sequence[str], event_type: str) -> bool:
    """Does a subscription with these type prefixes want this event?"""
    return any(event_type.startswith(prefix) for prefix in types)


def check_types(types: Sequence[str], *, within: str = "") -> list[str]:
    """Type prefixes as given, if each is sensible and starts with `within`."""
    if not types or len(types) > MAX_TYPES:
        raise SubscriptionError(f"Give 1-{MAX_TYPES} event type prefixes", "types")
    for prefix in types:
        if not prefix or len(prefix) > MAX_TYPE_LENGTH or not prefix.isprintable():
            raise SubscriptionError("An event type prefix is 1-200 printable characters", "types")
        if not prefix.startswith(within):
            raise SubscriptionError(f"Event types here start with {within!r}", "types")
    return list(dict.fromkeys(types))


def _record(row: Subscription) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row.id,
        orgnr=row.orgnr,
        endpoint=row.endpoint,
        types=list(row.types),
        created_at=_aware(row.created_at),
        disabled_at=_aware(row.disabled_at) if row.disabled_at else None,
        consecutive_failures=row.consecutive_failures,
    )


async def add_subscription(
    session: AsyncSession,
    orgnr: str,
    endpoint: str,
    types: Sequence[str],
    *,
    box: SecretBox,
    local_http: bool = False,
    public_only: bool = False,
    within: str = "",
) -> tuple[SubscriptionRecord, str]:
    """A new webhook for `orgnr`, and its signing secret (shown this once, stored sealed).

    `local_http` allows http:// to this machine (never in production); `within` is the
    prefix every type must start with (the API a subscription is made through).
    """
    try:
        check_endpoint(endpoint, local_http=local_http, public_only=public_only)
    except ValueError as exc:
        raise SubscriptionError(str(exc), "endpoint") from None
    wanted = check_types(types, within=within)
    count = await session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.orgnr == orgnr)
    )
    if (count or 0) >= MAX_SUBSCRIPTIONS:
        raise SubscriptionError(f"An organisation has at most {MAX_SUBSCRIPTIONS}", "endpoint")
    secret = new_secret()
    row = Subscription(
        id=str(uuid.uuid4()),
        orgnr=orgnr,
        endpoint=endpoint,
        types=wanted,
        created_at=datetime.now(UTC),
        disabled_at=None,
        consecutive_failures=0,
    )
    row.secret = box.seal(secret, row.id)
    session.add(row)
    await session.flush()
    return _record(row), secret


async def list_subscriptions(session: AsyncSession, orgnr: str) -> list[SubscriptionRecord]:
    rows = await session.scalars(
        select(Subscription)
        .where(Subscription.orgnr == orgnr)
        .order_by(Subscription.created_at, Subscription.id)
    )
    return [_record(row) for row in rows]


async def delete_subscription(session: AsyncSession, orgnr: str, subscription_id: str) -> None:
    """Remove one of the organisation's webhooks (its pending deliveries go with it)."""
    result = await session.execute(
        delete(Subscription).where(Subscription.id == subscription_id, Subscription.orgnr == orgnr)
    )
    if not cast(Any, result).rowcount:
        raise NotFound(subscription_id)


async def events_after(
    session: AsyncSession,
    orgnr: str,
    after_seq: int,
    types: Sequence[str],
    limit: int = 100,
) -> tuple[list[OutboxEvent], int]:
    """The organisation's events after `after_seq` whose type starts with one of `types`,
    oldest first, and the `seq` to ask after next time."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.recipient_orgnr == orgnr, OutboxEvent.seq > after_seq)
        .order_by(OutboxEvent.seq)
        .limit(limit)
    )
    if types:
        query = query.where(or_(*(OutboxEvent.type.startswith(t, autoescape=True) for t in types)))
    if dialect_name(session) == "postgresql":
        query = query.where(_SETTLED)
    found = list(await session.scalars(query))
    return found, (found[-1].seq if found else after_seq)


async def _delete_batches(db: Database, table: Table, chosen: ColumnElement[bool]) -> int:
    key = tuple_(*table.primary_key.columns)
    batch = select(*table.primary_key.columns).where(chosen).limit(PURGE_BATCH)
    removed = 0
    while True:
        async with db.session() as session:
            result = await session.execute(delete(table).where(key.in_(batch)))
        count = int(cast(Any, result).rowcount or 0)
        removed += count
        if count < PURGE_BATCH:
            return removed


async def purge(
    db: Database, *, keep_events: timedelta, at: datetime | None = None
) -> dict[str, int]:
    """Forget finished deliveries after a week and events after `keep_events` (the pull
    feed's window); in short batches, never a long lock."""
    at = at or datetime.now(UTC)
    deliveries = await _delete_batches(
        db,
        cast(Table, Delivery.__table__),
        Delivery.status.in_(("delivered", "failed"))
        & (Delivery.finished_at < at - KEEP_DELIVERIES),
    )
    events = await _delete_batches(
        db,
        cast(Table, OutboxEvent.__table__),
        and_(OutboxEvent.fanned_out, OutboxEvent.time < at - keep_events),
    )
    return {"deliveries": deliveries, "events": events}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
