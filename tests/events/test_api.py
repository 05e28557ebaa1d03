"""The subscription API and the pull feed over HTTP, with real machine tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from felles.db import Database
from felles.events import service
from felles.events.models import OutboxEvent
from tests.identity.test_admin_api import bearer, machine_token

API = "/api/portal/v1"
SCOPE = "felles:portal.submissions"
HOOK = {"endpoint": "https://fagsystem.example.no/hooks", "types": ["no.felles.portal."]}


@pytest.fixture
async def agency(db: Database, client: httpx.AsyncClient) -> AsyncIterator[tuple[str, str]]:
    """A token of the first agency; its subscriptions are removed afterwards."""
    token, orgnr = await machine_token(db, client, SCOPE)
    yield token, orgnr
    await _forget_subscriptions(db, orgnr)


@pytest.fixture
async def other_agency(db: Database, client: httpx.AsyncClient) -> AsyncIterator[tuple[str, str]]:
    token, orgnr = await machine_token(db, client, SCOPE, agency=1)
    yield token, orgnr
    await _forget_subscriptions(db, orgnr)


async def _forget_subscriptions(db: Database, orgnr: str) -> None:
    async with db.session() as session:
        for record in await service.list_subscriptions(session, orgnr):
            await service.delete_subscription(session, orgnr, record.id)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].startswith("/problems/") and body["title"]
    return body


async def test_subscribe_list_and_remove(
    client: httpx.AsyncClient, agency: tuple[str, str], other_agency: tuple[str, str]
) -> None:
    token, _ = agency
    created = await client.post(f"{API}/subscriptions", json=HOOK, headers=bearer(token))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["types"] == HOOK["types"]
    listed = (await client.get(f"{API}/subscriptions", headers=bearer(token))).json()
    assert [s["id"] for s in listed] == [body["id"]]
    assert "secret" not in listed[0]

    other_token, _ = other_agency
    assert (await client.get(f"{API}/subscriptions", headers=bearer(other_token))).json() == []
    theirs = await client.delete(f"{API}/subscriptions/{body['id']}", headers=bearer(other_token))
    problem(theirs, 404)
    gone = await client.delete(f"{API}/subscriptions/{body['id']}", headers=bearer(token))
    assert gone.status_code == 204
    problem(await client.delete(f"{API}/subscriptions/{body['id']}", headers=bearer(token)), 404)


async def test_idempotency_key_makes_one_subscription_and_never_stores_the_secret(
    client: httpx.AsyncClient, agency: tuple[str, str]
) -> None:
    token, _ = agency
    headers = bearer(token, **{"Idempotency-Key": "hook-1"})
    first = await client.post(f"{API}/subscriptions", json=HOOK, headers=headers)
    again = await client.post(f"{API}/subscriptions", json=HOOK, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert "secret" not in again.json() and again.json()["secret_redacted"] is True
    listed = (await client.get(f"{API}/subscriptions", headers=bearer(token))).json()
    assert len(listed) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**HOOK, "endpoint": "not a url"}, "endpoint"),
        ({**HOOK, "endpoint": "http://fagsystem.example.no/hooks"}, "endpoint"),
        ({**HOOK, "endpoint": "https://user:pw@fagsystem.example.no/hooks"}, "endpoint"),
        ({**HOOK, "endpoint": "ftp://fagsystem.example.no/hooks"}, "endpoint"),
        ({**HOOK, "endpoint": "https://example.no/" + "a" * 2000}, "endpoint"),
        ({**HOOK, "types": ["no.felles.mailbox.letter."]}, "types"),
        ({**HOOK, "types": []}, "types"),
        ({**HOOK, "types": "no.felles.portal."}, "types"),
        ({**HOOK, "types": [5]}, "types"),
        ({**HOOK, "secret": "mine"}, "secret"),
        ({"types": HOOK["types"]}, "endpoint"),
    ],
)
async def test_bad_subscriptions_get_problem_documents(
    client: httpx.AsyncClient, agency: tuple[str, str], payload: dict[str, Any], field: str
) -> None:
    token, _ = agency
    response = await client.post(f"{API}/subscriptions", json=payload, headers=bearer(token))
    body = problem(response, 422)
    assert any(field in (e.get("field") or "") for e in body["errors"]), body


async def test_http_to_this_machine_is_allowed_outside_production(
    client: httpx.AsyncClient, agency: tuple[str, str]
) -> None:
    token, _ = agency
    local = {**HOOK, "endpoint": "http://127.0.0.1:9/hook"}
    assert (
        await client.post(f"{API}/subscriptions", json=local, headers=bearer(token))
    ).status_code == 201


async def test_a_huge_body_is_refused(client: httpx.AsyncClient, agency: tuple[str, str]) -> None:
    token, _ = agency
    huge = {**HOOK, "types": ["no.felles.portal." + "x" * 100] * 20_000}
    problem(await client.post(f"{API}/subscriptions", json=huge, headers=bearer(token)), 413)


async def test_no_token_no_access(client: httpx.AsyncClient) -> None:
    problem(await client.get(f"{API}/events"), 401)
    problem(await client.post(f"{API}/subscriptions", json=HOOK), 401)


async def test_pull_pages_through_the_organisations_own_events(
    db: Database, client: httpx.AsyncClient, agency: tuple[str, str], other_agency: tuple[str, str]
) -> None:
    token, orgnr = agency
    other_token, other_orgnr = other_agency
    async with db.session() as session:
        start = await session.scalar(select(func.max(OutboxEvent.seq))) or 0
        mine = [
            await service.emit(
                session,
                type="no.felles.portal.submission.created",
                source="/portal/services/test",
                subject=f"s-{i}",
                recipient_orgnr=orgnr,
                data={"i": i},
            )
            for i in range(5)
        ]
        await service.emit(
            session,
            type="no.felles.mailbox.letter.read",
            source="/m",
            recipient_orgnr=orgnr,
            data={},
        )
        theirs = await service.emit(
            session,
            type="no.felles.portal.submission.created",
            source="/portal/services/test",
            recipient_orgnr=other_orgnr,
            data={},
        )

    seen: list[str] = []
    after = start
    for _ in range(5):
        page = await client.get(
            f"{API}/events", params={"after": after, "limit": 2}, headers=bearer(token)
        )
        assert page.status_code == 200, page.text
        body = page.json()
        if not body["events"]:
            assert body["next_after"] == after
            break
        assert len(body["events"]) <= 2 and body["next_after"] > after
        seen += [e["id"] for e in body["events"]]
        after = body["next_after"]
    assert seen == mine  # in order, no mailbox event, nobody else's
    first = (
        await client.get(f"{API}/events", params={"after": start}, headers=bearer(token))
    ).json()["events"][0]
    assert first["specversion"] == "1.0" and first["subject"] == "s-0"
    assert first["data"] == {"i": 0} and first["type"] == "no.felles.portal.submission.created"

    filtered = await client.get(
        f"{API}/events",
        params={"after": start, "type": "no.felles.portal.submission.created"},
        headers=bearer(other_token),
    )
    assert [e["id"] for e in filtered.json()["events"]] == [theirs]
    wrong = await client.get(
        f"{API}/events", params={"type": "no.felles.mailbox."}, headers=bearer(token)
    )
    assert problem(wrong, 422)["errors"][0]["field"] == "type"
    problem(await client.get(f"{API}/events", params={"limit": 1001}, headers=bearer(token)), 422)
