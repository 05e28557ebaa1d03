"""Bulk mailings over the API: a batch is created, filled in calls of numbered lines,
then committed and released by the worker (here called directly), or cancelled. A call
is stored whole or not at all; a line is never stored twice; nothing reaches anybody
before the commit; another agency sees nothing of it."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from felles.db import Database
from felles.events.models import OutboxEvent
from felles.mailbox import batches
from felles.mailbox.models import Letter, LetterContent, Notification
from tests.mailbox.mail import BATCHES, LETTERS, demo_people, letter, pdf, sender
from tests.mailbox.stored import (
    BAD_CHECK_DIGITS,
    NOT_IN_REGISTER,
    PNG,
    events_about,
    problem_of,
)


def lines(people: list[str], start: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "letters": [
            {**letter(pid, f"Line {start + n}", **fields), "line": start + n}
            for n, pid in enumerate(people)
        ]
    }


async def new_batch(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    answer = await client.post(
        BATCHES, json={"reference": f"utsending-{secrets.token_hex(4)}"}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


async def rows(db: Database, batch_id: str) -> list[Letter]:
    async with db.session() as session:
        found = list(
            await session.scalars(
                select(Letter).where(Letter.batch_id == batch_id).order_by(Letter.seq)
            )
        )
        session.expunge_all()
    return found


async def notifications(db: Database, letter_ids: list[str]) -> list[Notification]:
    async with db.session() as session:
        found = list(
            await session.scalars(
                select(Notification).where(Notification.letter_id.in_(letter_ids))
            )
        )
        session.expunge_all()
    return found


async def batch_events(db: Database, batch_id: str) -> list[OutboxEvent]:
    return await events_about(db, batch_id)


async def test_a_batch_from_start_to_release(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    made = await new_batch(client, headers)
    assert (made["status"], made["letters"], made["channels"], made["statuses"]) == (
        "open",
        0,
        {},
        {},
    )
    assert datetime.fromisoformat(made["created_at"]).tzinfo is not None
    batch = f"{BATCHES}/{made['id']}"
    first = await client.post(
        f"{batch}/letters",
        json=lines([who["felles"], who["reserved"], who["felles"]]),
        headers=headers,
    )
    assert first.status_code == 200, first.text
    assert [(x["line"], x["channel"], x["reason"]) for x in first.json()["letters"]] == [
        (0, "digital", None),
        (1, "print", "reserved"),
        (2, "digital", None),
    ]
    second = await client.post(
        f"{batch}/letters",
        json=lines([who["unregistered"], who["reserved"]], start=3, print_allowed=False),
        headers=headers,
    )
    assert second.status_code == 200, second.text
    assert [x["channel"] for x in second.json()["letters"]] == ["none", "none"]
    # Before the commit nothing is delivered and nobody is told.
    stored = await rows(db, made["id"])
    assert [r.seq for r in stored] == [0, 1, 2, 3, 4]
    assert [r.status for r in stored] == ["accepted"] * 3 + ["failed"] * 2
    assert all(r.delivered_at is None for r in stored)
    ids = [r.id for r in stored]
    assert await notifications(db, ids) == [], "nobody is told of a letter not released"
    listed = await client.get(LETTERS, params={"batch_id": made["id"]}, headers=headers)
    assert [x["status"] for x in listed.json()["letters"]] == [
        {r.id: r.status for r in stored}[x["id"]] for x in listed.json()["letters"]
    ]
    assert {x["batch_id"] for x in listed.json()["letters"]} == {made["id"]}
    accepted = await client.get(
        LETTERS, params={"batch_id": made["id"], "status": "accepted"}, headers=headers
    )
    assert {x["id"] for x in accepted.json()["letters"]} == set(ids[:3])
    seen = (await client.get(batch, headers=headers)).json()
    assert (seen["status"], seen["letters"]) == ("open", 5)
    assert seen["channels"] == {"digital": 2, "print": 1, "none": 2}
    assert seen["statuses"] == {"accepted": 3, "failed": 2}

    committed = await client.post(f"{batch}/commit", headers=headers)
    assert committed.status_code == 200, committed.text
    assert committed.json()["status"] == "committed" and committed.json()["committed_at"]
    again = await client.post(f"{batch}/commit", headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "committed"
    late = await client.post(f"{batch}/letters", json=lines([who["felles"]], 9), headers=headers)
    problem_of(late, 409, "conflict")
    problem_of(await client.post(f"{batch}/cancel", headers=headers), 409, "conflict")

    await batches.release_all(db)
    released = (await client.get(batch, headers=headers)).json()
    assert released["status"] == "released", released
    assert datetime.fromisoformat(released["released_at"]).tzinfo is not None
    assert released["statuses"] == {"delivered": 3, "failed": 2}
    stored = await rows(db, made["id"])
    assert all(r.delivered_at is not None for r in stored[:3])
    due = await notifications(db, ids)
    assert due and {n.status for n in due} == {"pending"}
    assert {n.letter_id for n in due} == {ids[0], ids[2]}, "digital letters only"
    [event] = await batch_events(db, made["id"])
    assert event.type == "no.felles.mailbox.batch.released"
    assert event.data == {
        "batch_id": made["id"],
        "status": "released",
        "letters": {"digital": 2, "print": 1, "none": 2},
    }
    for letter_id in ids:
        assert await events_about(db, letter_id) == [], "the batch's event tells of them all"
    problem_of(
        await client.post(f"{batch}/letters", json=lines([who["felles"]], 9), headers=headers),
        409,
        "conflict",
    )
    assert (await client.post(f"{batch}/commit", headers=headers)).json()["status"] == "released"


async def test_references_are_unique_per_sender(db: Database, client: httpx.AsyncClient) -> None:
    headers = await sender(db, client)
    reference = f"mars-{secrets.token_hex(4)}"
    first = await client.post(BATCHES, json={"reference": reference}, headers=headers)
    assert first.status_code == 201, first.text
    problem_of(
        await client.post(BATCHES, json={"reference": reference}, headers=headers), 409, "conflict"
    )
    theirs = await sender(db, client, "skatteetaten")
    assert (
        await client.post(BATCHES, json={"reference": reference}, headers=theirs)
    ).status_code == 201
    keyed = headers | {"idempotency-key": f"batch-{reference}"}
    other = {"reference": reference + "-2"}
    made = await client.post(BATCHES, json=other, headers=keyed)
    replay = await client.post(BATCHES, json=other, headers=keyed)
    assert made.status_code == replay.status_code == 201
    assert replay.json() == made.json() and replay.headers.get("idempotent-replayed") == "true"
    for bad in ({"reference": ""}, {"reference": "x" * 201}, {}, {"reference": "a", "x": 1}):
        problem_of(await client.post(BATCHES, json=bad, headers=headers), 422, "validation")


async def test_a_call_is_stored_whole_or_not_at_all(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    made = await new_batch(client, headers)
    fill = f"{BATCHES}/{made['id']}/letters"
    assert (
        await client.post(fill, json=lines([who["felles"]] * 3), headers=headers)
    ).status_code == 200

    repeated = lines([who["felles"], who["reserved"]], start=2)  # lines 2 and 3: 2 is stored
    problem_of(await client.post(fill, json=repeated, headers=headers), 409, "conflict")

    def bad(at: int, **change: Any) -> dict[str, Any]:
        body = lines([who["felles"], who["reserved"], who["felles"]], start=10)
        body["letters"][at - 10].update(change)
        return body

    png = {"name": "v.pdf", "content_base64": base64.b64encode(PNG).decode()}
    for body, slug, field in (
        (bad(11, document=png), "validation", "letters[11].document.content_base64"),
        (bad(12, recipient=BAD_CHECK_DIGITS), "invalid-number", "letters[12].recipient"),
        (bad(11, recipient=NOT_IN_REGISTER), "unknown-recipient", "letters[11].recipient"),
        (
            bad(12, document={"name": "v.pdf", "content_base64": "%%"}),
            "validation",
            "letters[12].document.content_base64",
        ),
        (bad(10, title="   "), "validation", "letters[10].title"),
        (bad(12, line=10), "validation", "letters"),
    ):
        answer = await client.post(fill, json=body, headers=headers)
        problem_of(answer, 422, slug, field)
    broken_for_print = {
        "name": "v.pdf",
        "content_base64": base64.b64encode(b"%PDF-1.7\nbroken\n%%EOF").decode(),
    }
    answer = await client.post(fill, json=bad(11, document=broken_for_print), headers=headers)
    problem_of(answer, 422, "validation", "letters[11].document.content_base64")
    problem_of(await client.post(fill, json={"letters": []}, headers=headers), 422, "validation")
    stored = await rows(db, made["id"])
    assert [r.seq for r in stored] == [0, 1, 2], "nothing of a refused call is stored"
    seen = (await client.get(f"{BATCHES}/{made['id']}", headers=headers)).json()
    assert seen["letters"] == 3
    # The same call again with its Idempotency-Key is answered as the first time.
    keyed = headers | {"idempotency-key": f"fill-{made['id']}"}
    more = lines([who["felles"]], start=3)
    first = await client.post(fill, json=more, headers=keyed)
    retry = await client.post(fill, json=more, headers=keyed)
    assert first.status_code == retry.status_code == 200 and first.json() == retry.json()
    assert [r.seq for r in await rows(db, made["id"])] == [0, 1, 2, 3]


async def test_cancelling(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    made = await new_batch(client, headers)
    batch = f"{BATCHES}/{made['id']}"
    filled = await client.post(
        f"{batch}/letters", json=lines([who["felles"], who["reserved"]]), headers=headers
    )
    ids = [x["id"] for x in filled.json()["letters"]]
    cancelled = await client.post(f"{batch}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    assert cancelled.json()["letters"] == 0 and cancelled.json()["channels"] == {}
    async with db.session() as session:
        for model, column in (
            (Letter, Letter.id),
            (LetterContent, LetterContent.letter_id),
            (Notification, Notification.letter_id),
        ):
            left = await session.scalar(
                select(func.count()).select_from(model).where(column.in_(ids))
            )
            assert left == 0, f"{model.__tablename__} keeps nothing of a cancelled batch"
    for letter_id in ids:
        problem_of(await client.get(f"{LETTERS}/{letter_id}", headers=headers), 404, "not-found")
    [event] = await batch_events(db, made["id"])
    assert event.type == "no.felles.mailbox.batch.cancelled"
    assert (await client.post(f"{batch}/cancel", headers=headers)).status_code == 200
    problem_of(await client.post(f"{batch}/commit", headers=headers), 409, "conflict")
    late = await client.post(f"{batch}/letters", json=lines([who["felles"]], 5), headers=headers)
    problem_of(late, 409, "conflict")
    assert await batches.release_all(db) >= 0
    assert not await rows(db, made["id"]), "the worker releases nothing of it"


async def test_release_in_chunks_delivers_each_letter_once(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    await batches.release_all(db)  # whatever else waits, so the chunks here are this batch's
    made = await new_batch(client, headers)
    people = [who["felles"], who["reserved"], who["unregistered"], who["felles"]] * 3
    filled = await client.post(
        f"{BATCHES}/{made['id']}/letters",
        json=lines(people, repeat_after_days=None),
        headers=headers,
    )
    assert filled.status_code == 200, filled.text
    assert (await client.post(f"{BATCHES}/{made['id']}/commit", headers=headers)).status_code == 200
    delivered_at: dict[str, datetime] = {}
    for _ in range(100):
        count = await batches.release_some(db, limit=5)
        assert count is not None
        now = {r.id: r.delivered_at for r in await rows(db, made["id"]) if r.delivered_at}
        for letter_id, at in delivered_at.items():
            assert now[letter_id] == at, "a letter released once is not released again"
        assert len(now) - len(delivered_at) == count, "a chunk is the letters it released"
        assert count <= 5
        delivered_at = now
        if count == 0:
            break
    stored = await rows(db, made["id"])
    assert {r.status for r in stored} == {"delivered"} and len(stored) == len(people)
    notes = await notifications(db, [r.id for r in stored])
    per_letter = Counter((n.letter_id, n.channel, n.repetition) for n in notes)
    assert set(per_letter.values()) == {1} and {n.status for n in notes} == {"pending"}
    assert {n.repetition for n in notes} == {0}, "no reminders were asked for"
    [event] = await batch_events(db, made["id"])
    assert event.data["letters"] == {"digital": 6, "print": 6}
    assert await batches.release_some(db, limit=5) is None, "nothing waits any more"


async def test_an_empty_batch_is_released_too(db: Database, client: httpx.AsyncClient) -> None:
    headers = await sender(db, client)
    made = await new_batch(client, headers)
    await client.post(f"{BATCHES}/{made['id']}/commit", headers=headers)
    await batches.release_all(db)
    seen = (await client.get(f"{BATCHES}/{made['id']}", headers=headers)).json()
    assert seen["status"] == "released"
    [event] = await batch_events(db, made["id"])
    assert event.data["letters"] == {}


async def test_another_agency_sees_nothing(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    mine, theirs = await sender(db, client), await sender(db, client, "udi")
    made = await new_batch(client, mine)
    batch = f"{BATCHES}/{made['id']}"
    filled = await client.post(f"{batch}/letters", json=lines([who["felles"]]), headers=mine)
    assert filled.status_code == 200
    for method, path, body in (
        ("GET", batch, None),
        ("POST", f"{batch}/letters", lines([who["felles"]], start=1)),
        ("POST", f"{batch}/commit", None),
        ("POST", f"{batch}/cancel", None),
    ):
        answer = await client.request(method, path, json=body, headers=theirs)
        problem_of(answer, 404, "not-found")
    listed = await client.get(LETTERS, params={"batch_id": made["id"]}, headers=theirs)
    assert listed.status_code == 200 and listed.json()["letters"] == []
    [stored] = await rows(db, made["id"])
    problem_of(await client.get(f"{LETTERS}/{stored.id}", headers=theirs), 404, "not-found")
    seen = (await client.get(batch, headers=mine)).json()
    assert (seen["status"], seen["letters"]) == ("open", 1)
    unknown = "01a00000-0000-7000-8000-000000000000"
    problem_of(await client.get(f"{BATCHES}/{unknown}", headers=mine), 404, "not-found")
    problem_of(await client.get(f"{BATCHES}/nope", headers=mine), 422, "validation")


@pytest.mark.parametrize("count", [1000, 1001])
async def test_a_thousand_letters_a_call(
    db: Database, client: httpx.AsyncClient, count: int
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    made = await new_batch(client, headers)
    small = base64.b64encode(pdf("x")).decode()
    body = {
        "letters": [
            {
                "recipient": who["felles"],
                "title": "t",
                "document": {"name": "a.pdf", "content_base64": small},
                "line": n,
            }
            for n in range(count)
        ]
    }
    answer = await client.post(f"{BATCHES}/{made['id']}/letters", json=body, headers=headers)
    if count > batches.MAX_LETTERS_PER_CALL:
        problem_of(answer, 422, "validation", "letters")
    else:
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["letters"]) == count


# --- At the same time -----------------------------------------------------------------
# Each race is run a few times: before the batch was locked for these (PostgreSQL: a
# stale status in the session; SQLite: reads outside the write lock), most runs broke.
ROUNDS = 6


async def test_filling_while_it_is_committed_or_cancelled(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    for round_ in range(ROUNDS):
        action = "commit" if round_ % 2 else "cancel"
        made = await new_batch(client, headers)
        batch = f"{BATCHES}/{made['id']}"
        filled, acted = await asyncio.gather(
            client.post(f"{batch}/letters", json=lines([who["felles"]] * 3), headers=headers),
            client.post(f"{batch}/{action}", headers=headers),
        )
        assert acted.status_code == 200, acted.text
        assert filled.status_code in (200, 409), filled.text
        await batches.release_all(db)
        stored = await rows(db, made["id"])
        if action == "cancel":
            assert stored == [], "a cancelled batch keeps nothing, whenever the letters came"
        elif filled.status_code == 200:
            assert [r.status for r in stored] == ["delivered"] * 3
        else:
            assert stored == [], "letters refused after the commit are not stored"


async def test_committing_and_cancelling_at_once(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    for _ in range(ROUNDS):
        made = await new_batch(client, headers)
        batch = f"{BATCHES}/{made['id']}"
        await client.post(f"{batch}/letters", json=lines([who["felles"]] * 2), headers=headers)
        committed, cancelled = await asyncio.gather(
            client.post(f"{batch}/commit", headers=headers),
            client.post(f"{batch}/cancel", headers=headers),
        )
        assert sorted([committed.status_code, cancelled.status_code]) == [200, 409], (
            "one of them wins"
        )
        await batches.release_all(db)
        events = [e.type.rsplit(".", 1)[1] for e in await batch_events(db, made["id"])]
        final = (await client.get(batch, headers=headers)).json()["status"]
        if committed.status_code == 200:
            assert (final, events) == ("released", ["released"])
            assert [r.status for r in await rows(db, made["id"])] == ["delivered"] * 2
        else:
            assert (final, events) == ("cancelled", ["cancelled"])
            assert await rows(db, made["id"]) == []


async def test_two_workers_release_each_letter_once(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    await batches.release_all(db)

    async def worker() -> int:
        released = 0
        while (count := await batches.release_some(db, limit=2)) is not None:
            released += count
        return released

    for _ in range(ROUNDS):
        made = await new_batch(client, headers)
        batch = f"{BATCHES}/{made['id']}"
        await client.post(f"{batch}/letters", json=lines([who["felles"]] * 7), headers=headers)
        await client.post(f"{batch}/commit", headers=headers)
        assert sum(await asyncio.gather(worker(), worker())) == 7
        [event] = await batch_events(db, made["id"])
        assert event.data["letters"] == {"digital": 7}
        notes = await notifications(db, [r.id for r in await rows(db, made["id"])])
        assert {n.status for n in notes} == {"pending"}


async def test_the_same_call_twice_at_once(db: Database, client: httpx.AsyncClient) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    for round_ in range(ROUNDS):
        made = await new_batch(client, headers)
        fill = f"{BATCHES}/{made['id']}/letters"
        first, second = await asyncio.gather(
            client.post(fill, json=lines([who["felles"]] * 3), headers=headers),
            client.post(fill, json=lines([who["felles"]] * 3, start=2), headers=headers),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        assert len(await rows(db, made["id"])) == 3
        keyed = headers | {"idempotency-key": f"same-{made['id']}"}
        body = lines([who["felles"]] * 2, start=10)
        first, second = await asyncio.gather(
            client.post(fill, json=body, headers=keyed),
            client.post(fill, json=body, headers=keyed),
        )
        # The second waits for the first and gets its answer, or (like a request whose
        # key is still being worked on) a conflict; a retry then gets the first answer.
        answers = sorted([first, second], key=lambda a: a.status_code)
        assert answers[0].status_code == 200, answers[0].text
        assert answers[1].status_code in (200, 409), answers[1].text
        if answers[1].status_code == 200:
            assert answers[1].json() == answers[0].json()
        retry = await client.post(fill, json=body, headers=keyed)
        assert retry.status_code == 200 and retry.json() == answers[0].json()
        assert len(await rows(db, made["id"])) == 5
        single = letter(who["felles"])
        key = headers | {"idempotency-key": f"letter-{made['id']}-{round_}"}
        first, second = await asyncio.gather(
            client.post(LETTERS, json=single, headers=key),
            client.post(LETTERS, json=single, headers=key),
        )
        assert first.status_code == second.status_code == 201
        assert first.json()["id"] == second.json()["id"]


async def test_notifications_wait_for_release_and_visibility(
    db: Database, client: httpx.AsyncClient
) -> None:
    who = await demo_people(db)
    headers = await sender(db, client)
    made = await new_batch(client, headers)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    body = lines([who["felles"]], repeat_after_days=5)
    body["letters"] += lines([who["felles"]], start=1, visible_from=later.isoformat())["letters"]
    body["letters"][1]["repeat_after_days"] = 5
    filled = await client.post(f"{BATCHES}/{made['id']}/letters", json=body, headers=headers)
    assert filled.status_code == 200, filled.text
    await client.post(f"{BATCHES}/{made['id']}/commit", headers=headers)
    released_after = datetime.now(UTC)
    await batches.release_all(db)
    now_letter, later_letter = await rows(db, made["id"])

    def dues(letter_id: str, notes: list[Notification]) -> list[datetime]:
        return sorted(
            {
                n.due_at if n.due_at.tzinfo else n.due_at.replace(tzinfo=UTC)
                for n in notes
                if n.letter_id == letter_id
            }
        )

    notes = await notifications(db, [now_letter.id, later_letter.id])
    first, reminder = dues(now_letter.id, notes)
    assert first >= released_after, "told when released, not when the batch was filled"
    assert reminder - first == timedelta(days=5)
    assert dues(later_letter.id, notes) == [later, later + timedelta(days=5)]
