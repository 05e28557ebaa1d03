"""Agencies' servers in tests: a machine client of an agency and a token for the portal's
API, from the login service of the app under test (in-process or a live server)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from joserfc.jwk import ECKey

from felles.db import Database
from felles.identity import clients
from felles.portal.api import SCOPE
from felles.registry import service as registry
from tests.identity.oidc import client_assertion, keyset

ISSUER = "http://testserver"


@dataclass(frozen=True)
class AgencyAuth:
    """An agency's server: its organisation number and a machine token for the API."""

    orgnr: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def ensure_scope(db: Database, name: str = SCOPE) -> None:
    """The portal's scope as the demo has it: owned by digdir, public."""
    async with db.session() as session:
        if name in {s.name for s in await clients.list_scopes(session)}:
            return
        owner = (await registry.get_agency(session, "digdir")).orgnr
        await clients.add_scope(session, name, owner_orgnr=owner, public=True)


async def machine_token(
    db: Database, http: httpx.AsyncClient, orgnr: str, scope: str = SCOPE, issuer: str = ISSUER
) -> str:
    """A new machine client of `orgnr` registered for `scope`, and a token from /token."""
    await ensure_scope(db, scope)
    async with db.session() as session:  # whoever made the scope first, this org may use it
        await clients.grant_scope(session, scope, orgnr)
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    async with db.session() as session:
        client, _ = await clients.add_client(
            session,
            clients.NewClient(
                name="Agency server",
                orgnr=orgnr,
                auth_method="private_key_jwt",
                jwks=keyset(key),
                scopes=[scope],
                grant_types=[clients.GRANT_JWT_BEARER],
            ),
        )
    assertion = client_assertion(key, client.client_id, issuer, scope=scope, sub=None)
    response = await http.post(
        "/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def agency_auth(
    db: Database, http: httpx.AsyncClient, slug: str, issuer: str = ISSUER
) -> AgencyAuth:
    async with db.session() as session:
        orgnr = (await registry.get_agency(session, slug)).orgnr
    return AgencyAuth(orgnr, await machine_token(db, http, orgnr, issuer=issuer))
