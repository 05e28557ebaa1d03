"""Fixtures for the login service: registered clients and people to log in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from joserfc.jwk import ECKey

from felles.db import Database
from felles.identity import clients
from felles.registry import service as registry
from tests.identity.oidc import Rp, keyset

REDIRECT = "https://rp.example/callback"


@pytest.fixture
async def http(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def register(db: Database, **fields: object) -> tuple[clients.ClientRecord, str | None]:
    values: dict[str, object] = {
        "name": "Test service",
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://rp.example/bye"],
        "scopes": ["openid", "profile"],
    }
    values.update(fields)
    async with db.session() as session:
        return await clients.add_client(session, clients.NewClient.model_validate(values))


@pytest.fixture
async def rp(db: Database, http: httpx.AsyncClient) -> Rp:
    client, secret = await register(db)
    return Rp(http, client.client_id, secret, REDIRECT)


@pytest.fixture
async def people(db: Database) -> list[str]:
    async with db.session() as session:
        return [p.pid for p in await registry.list_people(session, limit=5)]


@pytest.fixture
async def pid(people: list[str]) -> str:
    return people[0]


@pytest.fixture
def machine_key() -> ECKey:
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    return key


@pytest.fixture
async def machine(db: Database, machine_key: ECKey) -> clients.ClientRecord:
    """An agency's server (Maskinporten client) with a scope it has been granted."""
    async with db.session() as session:
        agencies = await registry.list_agencies(session)
        owner, consumer = agencies[0].orgnr, agencies[1].orgnr
        name = f"test:{machine_key.kid[:8].lower()}"
        await clients.add_scope(session, name, owner_orgnr=owner, description="test API")
        await clients.add_scope(session, name + ".other", owner_orgnr=owner)
        await clients.grant_scope(session, name, consumer)
        client, _ = await clients.add_client(
            session,
            clients.NewClient(
                name="Agency server",
                orgnr=consumer,
                auth_method="private_key_jwt",
                jwks=keyset(machine_key),
                scopes=[name, name + ".other"],
                grant_types=[clients.GRANT_JWT_BEARER],
            ),
        )
    return client
