"""The dispatcher: fans outbox events out to subscriptions and delivers them as webhooks.

Step 1 (fan-out) claims events not yet fanned out, makes one delivery per matching
subscription and marks the events, all in one transaction. Step 2 (delivery) claims due
deliveries by setting a lease, POSTs each (signed CloudEvent) outside any transaction,
then records the outcome. Several dispatchers (every `felles serve` worker, any number of
`felles worker`s) share the work: on PostgreSQL each claim skips rows another holds
(`FOR UPDATE SKIP LOCKED`); SQLite has one writer at a time anyway.

Delivery is at least once: a dispatcher that dies after POSTing but before recording it
leaves a lease that expires, and the delivery is made again with the same `webhook-id`,
by which receivers drop duplicates.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Table, bindparam, false, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.db import Database
from felles.events import service
from felles.events.models import Delivery, OutboxEvent, Subscription
from felles.events.webhooks import PublicAddresses, SecretBox, encode, headers
from felles.web.observability import log

OUTBOX = cast(Table, OutboxEvent.__table__)
DELIVERY = cast(Table, Delivery.__table__)
SUBSCRIPTION = cast(Table, Subscription.__table__)
FIRST_BACKOFF = 5.0
MAX_BACKOFF = 3600.0
NUDGE_CHECK = 0.02  # seconds between looks at this process's emit counter when idle
DISABLE_AFTER = 20  # deliveries given up in a row: the endpoint is gone

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def full_jitter(ceiling: float) -> float:
    """AWS's "full jitter": anywhere up to the exponential ceiling (at least a second),
    so many failing deliveries do not come back in step."""
    return max(1.0, float(random.uniform(0, ceiling)))


def backoff_ceiling(attempts: int) -> float:
    """5 s after the first failure, doubling, at most an hour."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * float(2 ** min(attempts - 1, 20)))


@dataclass(frozen=True, slots=True)
class Job:
    subscription_id: str
    seq: int
    attempts: int
    endpoint: str
    secret: str
    webhook_id: str
    body: bytes
    event_time: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_SAVE = (
    update(DELIVERY)
    .where(
        DELIVERY.c.subscription_id == bindparam("b_subscription_id"),
        DELIVERY.c.seq == bindparam("b_seq"),
    )
    .values(
        attempts=bindparam("b_attempts"),
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        last_status_code=bindparam("b_last_status_code"),
        last_error=bindparam("b_last_error"),
        finished_at=bindparam("b_finished_at"),
        lease_until=None,
    )
)


class Dispatcher:
    """One process's share of fan-out and delivery. `clock`, `sleep` and `jitter` are
    injectable so tests move time instead of waiting for it."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[float], float] = full_jitter,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        batch: int = 200,
        per_endpoint: int = 4,
        total: int = 32,
        lease: timedelta = timedelta(minutes=10),
        max_attempts: int = 15,
        give_up_after: timedelta = timedelta(hours=48),
        interval: float = 1.0,
        keep_events: timedelta = timedelta(days=30),
        purge_every: float | None = None,
        public_only: bool = False,
    ) -> None:
        self.db = db
        # With `public_only`, each endpoint's name is resolved before a delivery and a
        # private, loopback or link-local address is refused (server-side request forgery).
        self.addresses = PublicAddresses() if public_only else None
        self.box = box
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.batch = batch
        self.per_endpoint = per_endpoint
        self.total = asyncio.Semaphore(total)
        self.lease = lease
        self.max_attempts = max_attempts
        self.give_up_after = give_up_after
        self.interval = interval
        self.keep_events = keep_events
        self.purge_every = purge_every
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=total, max_keepalive_connections=total),
            headers={"user-agent": "Felles-Webhooks/1"},
        )

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    # --- The loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Fan out and deliver until cancelled; sleep `interval` when there is nothing to
        do. A failed round is logged and the next one tries again."""
        next_purge = self._next_purge()
        while True:
            try:
                fanned, attempted = await self.run_once()
            except Exception as exc:  # the loop must outlive a database hiccup
                log.warning("events_dispatch_failed", error=type(exc).__name__)
                fanned = attempted = 0
            if next_purge is not None and time.monotonic() >= next_purge:
                await self._purge()
                next_purge = self._next_purge()
            if fanned or attempted:
                await asyncio.sleep(0)
            else:
                await self._idle()

    async def _idle(self) -> None:
        """Wait up to `interval`, but only a moment past an emit in this process (its
        transaction has then most likely committed)."""
        seen = service.emitted()
        waited = 0.0
        while waited < self.interval:
            step = min(NUDGE_CHECK, self.interval - waited)
            await self.sleep(step)
            waited += step
            if service.emitted() != seen:
                return

    def _next_purge(self) -> float | None:
        if not self.purge_every:
            return None
        return time.monotonic() + self.purge_every * random.uniform(0.5, 1.5)

    async def _purge(self) -> None:
        try:
            removed = await service.purge(self.db, keep_events=self.keep_events)
        except Exception as exc:  # housekeeping must never stop delivery
            log.warning("events_purge_failed", error=type(exc).__name__)
            return
        if any(removed.values()):
            log.info("events_purged", **removed)

    async def run_once(self) -> tuple[int, int]:
        """One round: (events fanned out, deliveries attempted)."""
        fanned = await self.fan_out()
        attempted = await self.deliver_due()
        return fanned, attempted

    # --- Step 1: fan-out ------------------------------------------------------------

    async def fan_out(self) -> int:
        """Turn not-yet-fanned-out events into deliveries, in one transaction."""
        now = self.clock()
        unfanned = (
            select(OUTBOX.c.seq)
            .where(OUTBOX.c.fanned_out == false())
            .order_by(OUTBOX.c.seq)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(OUTBOX)
            .where(OUTBOX.c.seq.in_(unfanned.scalar_subquery()))
            .values(fanned_out=True)
            .returning(OUTBOX.c.seq, OUTBOX.c.type, OUTBOX.c.recipient_orgnr)
        )
        async with self.db.session() as session:
            events = (await session.execute(claim)).all()
            if not events:
                return 0
            wanted = await self._subscriptions(session, {e.recipient_orgnr for e in events})
            rows = [
                {
                    "subscription_id": sub_id,
                    "seq": event.seq,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "status": "pending",
                }
                for event in events
                for sub_id, types in wanted.get(event.recipient_orgnr, ())
                if service.matches(types, event.type)
            ]
            if rows:
                await session.execute(insert(DELIVERY), rows)
        return len(events)

    async def _subscriptions(
        self, session: AsyncSession, orgs: set[str]
    ) -> dict[str, list[tuple[str, list[str]]]]:
        found = await session.execute(
            select(SUBSCRIPTION.c.id, SUBSCRIPTION.c.orgnr, SUBSCRIPTION.c.types).where(
                SUBSCRIPTION.c.orgnr.in_(orgs), SUBSCRIPTION.c.disabled_at.is_(None)
            )
        )
        by_org: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        for sub_id, orgnr, types in found:
            by_org[orgnr].append((sub_id, list(types)))
        return by_org

    # --- Step 2: delivery -----------------------------------------------------------

    async def deliver_due(self) -> int:
        """Claim due deliveries, POST them (bounded per endpoint and in all), record."""
        jobs = await self.claim()
        if not jobs:
            return 0
        by_endpoint: dict[str, asyncio.Semaphore] = {}
        for job in jobs:
            by_endpoint.setdefault(job.endpoint, asyncio.Semaphore(self.per_endpoint))
        outcomes = await asyncio.gather(
            *(self._send(job, by_endpoint[job.endpoint]) for job in jobs)
        )
        await self._record(outcomes)
        return len(jobs)

    async def claim(self) -> list[Job]:
        """Lease up to `batch` due deliveries (skipping those another dispatcher holds)."""
        now = self.clock()
        due = (
            select(DELIVERY.c.subscription_id, DELIVERY.c.seq)
            .where(
                DELIVERY.c.status == "pending",
                DELIVERY.c.next_attempt_at <= now,
                or_(DELIVERY.c.lease_until.is_(None), DELIVERY.c.lease_until < now),
            )
            .order_by(DELIVERY.c.next_attempt_at)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(DELIVERY)
            .where(tuple_(DELIVERY.c.subscription_id, DELIVERY.c.seq).in_(due))
            .values(lease_until=now + self.lease)
            .returning(DELIVERY.c.subscription_id, DELIVERY.c.seq, DELIVERY.c.attempts)
        )
        async with self.db.session() as session:
            claimed = (await session.execute(claim)).all()
            if not claimed:
                return []
            events: dict[int, Mapping[str, Any]] = {
                row.seq: dict(row._mapping)
                for row in await session.execute(
                    select(OUTBOX).where(OUTBOX.c.seq.in_({c.seq for c in claimed}))
                )
            }
            subscriptions = {
                row.id: (row.endpoint, self.box.open(row.secret, row.id))
                for row in await session.execute(
                    select(SUBSCRIPTION.c.id, SUBSCRIPTION.c.endpoint, SUBSCRIPTION.c.secret).where(
                        SUBSCRIPTION.c.id.in_({c.subscription_id for c in claimed})
                    )
                )
            }
        return [
            _job(
                c.subscription_id,
                c.seq,
                c.attempts,
                events[c.seq],
                *subscriptions[c.subscription_id],
            )
            for c in claimed
        ]

    async def _send(self, job: Job, endpoint_slots: asyncio.Semaphore) -> Outcome:
        if self.addresses is not None and not await self.addresses.allow(job.endpoint):
            return Outcome(job, None, "not a public address")
        async with endpoint_slots, self.total:
            signed = headers(job.secret, job.webhook_id, int(time.time()), job.body)
            try:
                async with self.client.stream(
                    "POST", job.endpoint, content=job.body, headers=signed
                ) as response:
                    return Outcome(job, response.status_code, None)
            except httpx.TimeoutException:
                return Outcome(job, None, "timeout")
            except httpx.HTTPError as exc:
                return Outcome(job, None, type(exc).__name__)

    async def _record(self, outcomes: list[Outcome]) -> None:
        now = self.clock()
        saves = [self._save(outcome, now) for outcome in outcomes]
        succeeded = {o.job.subscription_id for o in outcomes if o.ok}
        gave_up = [s["b_subscription_id"] for s in saves if s["b_status"] == "failed"]
        async with self.db.session() as session:
            await session.execute(_SAVE, saves)
            if succeeded:
                await session.execute(
                    update(SUBSCRIPTION)
                    .where(SUBSCRIPTION.c.id.in_(succeeded))
                    .values(consecutive_failures=0)
                )
            for sub_id in gave_up:
                await session.execute(
                    update(SUBSCRIPTION)
                    .where(SUBSCRIPTION.c.id == sub_id)
                    .values(consecutive_failures=SUBSCRIPTION.c.consecutive_failures + 1)
                )
            if gave_up:
                await session.execute(
                    update(SUBSCRIPTION)
                    .where(
                        SUBSCRIPTION.c.id.in_(gave_up),
                        SUBSCRIPTION.c.consecutive_failures >= DISABLE_AFTER,
                        SUBSCRIPTION.c.disabled_at.is_(None),
                    )
                    .values(disabled_at=now)
                )

    def _save(self, outcome: Outcome, now: datetime) -> dict[str, Any]:
        job = outcome.job
        attempts = job.attempts + 1
        if outcome.ok:
            status, next_at, finished = "delivered", now, now
        elif attempts >= self.max_attempts or now - job.event_time >= self.give_up_after:
            status, next_at, finished = "failed", now, now
        else:
            delay = self.jitter(backoff_ceiling(attempts))
            status, next_at, finished = "pending", now + timedelta(seconds=delay), None
        error = outcome.error
        if error is None and not outcome.ok:
            error = f"HTTP {outcome.status_code}"
        return {
            "b_subscription_id": job.subscription_id,
            "b_seq": job.seq,
            "b_attempts": attempts,
            "b_status": status,
            "b_next_attempt_at": next_at,
            "b_last_status_code": outcome.status_code,
            "b_last_error": error,
            "b_finished_at": finished,
        }


def _job(
    subscription_id: str,
    seq: int,
    attempts: int,
    event: Mapping[str, Any],
    endpoint: str,
    secret: str,
) -> Job:
    moment = event["time"]
    return Job(
        subscription_id=subscription_id,
        seq=seq,
        attempts=attempts,
        endpoint=endpoint,
        secret=secret,
        webhook_id=event["event_id"],
        body=encode(event),
        event_time=moment if moment.tzinfo else moment.replace(tzinfo=UTC),
    )
