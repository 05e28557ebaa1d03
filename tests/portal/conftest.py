"""Fixtures for the portal's tests: agencies' machine tokens and submissions, and a logged-in
portal session without going through the login service (sealed as the portal seals it)."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from felles.db import Database
from felles.portal.models import Attachment, Draft, PartyKind, Submission
from felles.portal.references import new_reference
from felles.portal.session import COOKIE, Party, PortalSession, SessionSealer
from felles.registry import service as registry
from tests.portal.agencies import AgencyAuth, agency_auth


@pytest.fixture
async def oslo(db: Database, client: httpx.AsyncClient) -> AgencyAuth:
    """Oslo kommune, owner of kindergarten-place."""
    return await agency_auth(db, client, "oslo-kommune")


@pytest.fixture
async def skatt(db: Database, client: httpx.AsyncClient) -> AgencyAuth:
    """Skatteetaten, owner of vat-return and change-of-address."""
    return await agency_auth(db, client, "skatteetaten")


@pytest.fixture
async def people(db: Database) -> list[str]:
    async with db.session() as session:
        return [p.pid for p in await registry.list_people(session, limit=5)]


MakeSubmission = Callable[..., Awaitable[Submission]]


@pytest.fixture
def make_submission(db: Database, people: list[str]) -> MakeSubmission:
    """Insert a draft and its submission directly, as the citizens' side will."""

    async def make(
        owner_orgnr: str,
        *,
        service_code: str = "kindergarten-place",
        party_kind: str = "person",
        party_id: str | None = None,
        submitted_at: datetime | None = None,
        data: dict[str, Any] | None = None,
        attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
        receipt_pdf: bytes | None = None,
    ) -> Submission:
        at = submitted_at or datetime.now(UTC)
        pid = people[0]
        draft_id = secrets.token_hex(16)
        submission = Submission(
            id=str(uuid.uuid4()),
            reference=new_reference(),
            draft_id=draft_id,
            service_code=service_code,
            service_version=1,
            owner_orgnr=owner_orgnr,
            party_kind=party_kind,
            party_id=party_id or pid,
            submitted_by=pid,
            data=data if data is not None else {"first_choice": "Solsikken barnehage"},
            status="received",
            submitted_at=at,
            receipt_pdf=receipt_pdf,
            receipt_ready_at=at if receipt_pdf else None,
        )
        async with db.session() as session:
            session.add(
                Draft(
                    id=draft_id,
                    service_code=service_code,
                    service_version=1,
                    party_kind=party_kind,
                    party_id=party_id or pid,
                    created_by=pid,
                    data=submission.data,
                    prefilled={},
                    pages_done=[],
                    revision=1,
                    created_at=at - timedelta(minutes=5),
                    updated_at=at,
                    submitted_at=at,
                )
            )
            session.add(submission)
            await session.flush()
            for filename, content_type, content in attachments:
                session.add(
                    Attachment(
                        id=secrets.token_hex(16),
                        draft_id=draft_id,
                        submission_id=submission.id,
                        filename=filename,
                        content_type=content_type,
                        size=len(content),
                        sha256=hashlib.sha256(content).hexdigest(),
                        content=content,
                        scan_status="clean",
                        created_at=at,
                    )
                )
        return submission

    return make


def portal_session(
    pid: str, name: str = "Test Person", party: Party | None = None
) -> PortalSession:
    now = int(time.time())
    return PortalSession(
        pid=pid,
        name=name,
        acr="idporten-loa-substantial",
        sid="test-sid",
        auth_time=now,
        expires_at=now,
        party=party or Party(PartyKind.person, pid, name),
    ).renewed(now)


def sealed_portal_cookie(
    sealer: SessionSealer, pid: str, party: Party | None = None, name: str = "Test Person"
) -> str:
    return sealer.seal_session(portal_session(pid, name, party))


def portal_cookie(
    app, pid: str, party: Party | None = None, name: str = "Test Person"
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Cookies for an httpx client: logged in to the portal as `pid`, acting for `party`
    (default: themself). Set them with `client.cookies.set(COOKIE, value, path="/")`
    or pass them as `cookies=`."""
    return {COOKIE: sealed_portal_cookie(app.state.portal.sealer, pid, party, name)}


def logged_in(
    client: httpx.AsyncClient, app, pid: str, party: Party | None = None, lang: str = "en"
) -> None:  # type: ignore[no-untyped-def]
    """Make `client` logged in to the portal as `pid` (acting for `party`), in `lang`."""
    client.cookies.clear()  # also the renewed session cookies the app has set
    client.cookies.set(COOKIE, portal_cookie(app, pid, party)[COOKIE], path="/")
    client.cookies.set("felles_lang", lang)


async def csrf(client: httpx.AsyncClient) -> str:
    """The CSRF token for the client's form posts (fetched with a page if not set yet)."""
    if "felles_csrf" not in client.cookies:
        await client.get("/portal/services")
    return str(client.cookies["felles_csrf"])
