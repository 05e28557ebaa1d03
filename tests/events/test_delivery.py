"""Fan-out and webhook delivery to a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from felles.db import Database
from felles.events import service
from felles.events.dispatcher import backoff_ceiling
from felles.events.models import Delivery, OutboxEvent
from tests.conftest import BACKEND
from tests.events.conftest import Clock, Receiver, emit_many


async def delivery(db: Database, subscription_id: str, event_id: str) -> Delivery:
    async with db.session() as session:
        seq = await session.scalar(select(OutboxEvent.seq).where(OutboxEvent.event_id == event_id))
        found = await session.get(Delivery, (subscription_id, seq))
        assert found is not None
        return found


def aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_an_event_in_a_rolled_back_transaction_never_existed(db: Database, org: str) -> None:
    class Undone(Exception):
        pass

    with pytest.raises(Undone):
        async with db.session() as session:
            await service.emit(
                session, type="no.felles.test.x", source="/t", recipient_orgnr=org, data={}
            )
            raise Undone
    kept = await emit_many(db, org, 1)
    async with db.session() as session:
        found, _ = await service.events_after(session, org, 0, ["no.felles."])
    assert [e.event_id for e in found] == kept


async def test_delivered_signed_as_a_cloudevent(
    db: Database, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any
) -> None:
    other = await subscribe(org, receiver, ["no.felles.other."])
    sub = await subscribe(org, receiver)  # the receiver verifies with this one's secret
    [event_id] = await emit_many(db, org, 1)
    await emit_many(db, "000000000", 1)  # another organisation's: never sent here
    await dispatchers().run_once()

    assert receiver.failures == []
    [got] = receiver.received
    assert got.headers["content-type"] == "application/cloudevents+json"
    assert got.headers["webhook-id"] == event_id
    assert got.headers["webhook-signature"].startswith("v1,")
    event = got.event  # as the cloudevents SDK parsed it
    assert event.get_id() == event_id
    assert event.get_type() == "no.felles.test.thing"
    assert event.get_source() == "/test"
    assert event.get_subject() == "thing-0"
    assert event.get_data() == {"n": 0}
    assert got.payload["specversion"] == "1.0" and got.payload["time"].endswith("Z")
    done = await delivery(db, sub, event_id)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 200)
    async with db.session() as session:
        assert await session.get(Delivery, (other, done.seq)) is None  # types did not match


async def test_retried_with_growing_backoff_until_delivered(
    db: Database, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any, clock: Clock
) -> None:
    receiver.script = [500, 500, 200]
    sub = await subscribe(org, receiver)
    [event_id] = await emit_many(db, org, 1)
    dispatcher = dispatchers()
    await dispatcher.run_once()
    first = await delivery(db, sub, event_id)
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, "HTTP 500")
    wait_1 = (aware(first.next_attempt_at) - clock.now).total_seconds()
    assert wait_1 == backoff_ceiling(1) == 5

    await dispatcher.run_once()  # not due yet: nothing sent
    assert len(receiver.received) == 1
    clock.advance(seconds=wait_1)
    await dispatcher.run_once()
    second = await delivery(db, sub, event_id)
    wait_2 = (aware(second.next_attempt_at) - clock.now).total_seconds()
    assert second.attempts == 2 and wait_2 == 10 > wait_1

    clock.advance(seconds=wait_2)
    await dispatcher.run_once()
    done = await delivery(db, sub, event_id)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 3, 200)
    assert receiver.ids() == [event_id] * 3  # one webhook-id across retries
    assert backoff_ceiling(40) == 3600


async def test_a_timeout_is_retried(
    db: Database, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any, clock: Clock
) -> None:
    receiver.script = [2.0]  # the first answer takes two seconds
    sub = await subscribe(org, receiver)
    [event_id] = await emit_many(db, org, 1)
    dispatcher = dispatchers(timeout=0.3)
    await dispatcher.run_once()
    first = await delivery(db, sub, event_id)
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, "timeout")
    clock.advance(seconds=5)
    await dispatcher.run_once()
    assert (await delivery(db, sub, event_id)).status == "delivered"


async def test_gives_up_after_the_last_attempt_or_two_days(
    db: Database, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any, clock: Clock
) -> None:
    receiver.script = [503] * 10
    sub = await subscribe(org, receiver)
    [counted, aged] = await emit_many(db, org, 2)
    dispatcher = dispatchers(max_attempts=3)
    await dispatcher.run_once()
    clock.advance(hours=1)
    await dispatcher.run_once()
    assert (await delivery(db, sub, counted)).status == "pending"
    clock.advance(hours=1)
    await dispatcher.run_once()
    gone = await delivery(db, sub, counted)
    assert (gone.status, gone.attempts, gone.last_status_code) == ("failed", 3, 503)

    dispatcher = dispatchers(max_attempts=15)
    receiver.script = [503] * 10
    [late] = await emit_many(db, org, 1)
    await dispatcher.run_once()
    clock.advance(hours=49)
    await dispatcher.run_once()
    expired = await delivery(db, sub, late)
    assert (expired.status, expired.attempts) == ("failed", 2)
    assert aged  # delivered along the way or failed: never stuck pending
    assert (await delivery(db, sub, aged)).status == "failed"
    async with db.session() as session:
        [record] = [s for s in await service.list_subscriptions(session, org) if s.id == sub]
    assert record.consecutive_failures == 3


async def test_a_crashed_dispatchers_lease_expires_and_the_event_is_redelivered(
    db: Database, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any, clock: Clock
) -> None:
    sub = await subscribe(org, receiver)
    [event_id] = await emit_many(db, org, 1)
    crashed = dispatchers()
    await crashed.fan_out()
    jobs = await crashed.claim()  # ... and then it dies before sending
    assert event_id in {j.webhook_id for j in jobs}
    survivor = dispatchers()
    await survivor.run_once()
    assert event_id not in receiver.ids()  # still leased to the crashed one
    clock.advance(minutes=11)
    await survivor.run_once()
    assert receiver.ids().count(event_id) == 1
    assert (await delivery(db, sub, event_id)).status == "delivered"


@pytest.mark.skipif(BACKEND != "postgresql", reason="concurrent dispatchers need PostgreSQL")
async def test_two_dispatchers_deliver_each_event_exactly_once(
    db: Database, settings: Any, org: str, receiver: Receiver, subscribe: Any, dispatchers: Any
) -> None:
    await subscribe(org, receiver)
    emitted = set(await emit_many(db, org, 200))
    second_db = Database(settings.resolved_database_url)
    try:
        pair = [dispatchers(batch=15), dispatchers(second_db, batch=15)]

        async def work(dispatcher: Any) -> None:
            for _ in range(200):
                if emitted <= set(receiver.ids()):
                    return
                await dispatcher.run_once()
                await asyncio.sleep(0)

        await asyncio.gather(*(work(d) for d in pair))
    finally:
        await second_db.dispose()
    mine = [i for i in receiver.ids() if i in emitted]
    assert sorted(mine) == sorted(emitted)  # none missing, none twice
    assert receiver.failures == []
