"""The admin API: clients and scopes over HTTP, with machine tokens and Idempotency-Key."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from felles.db import Database
from felles.identity import clients
from felles.identity.admin_api import ADMIN_SCOPE, SCOPES_SCOPE
from felles.registry import service as registry
from tests.identity.oidc import client_assertion, keyset

ISSUER = "http://testserver"


async def machine_token(
    db: Database, http: httpx.AsyncClient, scope: str, *, agency: int = 0
) -> tuple[str, str]:
    """A machine client of an agency that owns (or was granted) `scope`; its token."""
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    async with db.session() as session:
        orgnr = (await registry.list_agencies(session))[agency].orgnr
        if scope not in {s.name for s in await clients.list_scopes(session)}:
            await clients.add_scope(session, scope, owner_orgnr=orgnr)
        owner = next(s for s in await clients.list_scopes(session) if s.name == scope).owner_orgnr
        if owner != orgnr:
            await clients.grant_scope(session, scope, orgnr)
        client, _ = await clients.add_client(
            session,
            clients.NewClient(
                name="Automation",
                orgnr=orgnr,
                auth_method="private_key_jwt",
                jwks=keyset(key),
                scopes=[scope],
                grant_types=[clients.GRANT_JWT_BEARER],
            ),
        )
    assertion = client_assertion(key, client.client_id, ISSUER, scope=scope, sub=None)
    response = await http.post(
        "/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"], orgnr


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


NEW_CLIENT: dict[str, Any] = {
    "name": "Kommunens skjema",
    "redirect_uris": ["https://skjema.example/callback"],
    "scopes": ["openid"],
}


async def test_register_and_manage_a_client(db: Database, http: httpx.AsyncClient) -> None:
    token, _ = await machine_token(db, http, ADMIN_SCOPE)
    created = await http.post("/api/identity/v1/clients", json=NEW_CLIENT, headers=bearer(token))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["client_secret"] and body["redirect_uris"] == NEW_CLIENT["redirect_uris"]
    client_id = body["client_id"]
    shown = (await http.get(f"/api/identity/v1/clients/{client_id}", headers=bearer(token))).json()
    assert "client_secret" not in shown
    changed = await http.patch(
        f"/api/identity/v1/clients/{client_id}", json={"require_par": True}, headers=bearer(token)
    )
    assert changed.json()["require_par"] is True
    disabled = await http.post(
        f"/api/identity/v1/clients/{client_id}/disable", headers=bearer(token)
    )
    assert disabled.json()["disabled"] is True
    listed = (await http.get("/api/identity/v1/clients", headers=bearer(token))).json()
    assert client_id in {c["client_id"] for c in listed}


async def test_idempotency_key_makes_one_client(db: Database, http: httpx.AsyncClient) -> None:
    token, _ = await machine_token(db, http, ADMIN_SCOPE)
    headers = bearer(token, **{"Idempotency-Key": "create-skjema-1"})
    first = await http.post("/api/identity/v1/clients", json=NEW_CLIENT, headers=headers)
    again = await http.post("/api/identity/v1/clients", json=NEW_CLIENT, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["client_id"] == first.json()["client_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "client_secret" not in again.json()  # secrets are never stored for replay
    other_body = await http.post(
        "/api/identity/v1/clients", json={**NEW_CLIENT, "name": "Else"}, headers=headers
    )
    assert other_body.status_code == 409
    assert other_body.json()["type"] == "/problems/conflict"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**NEW_CLIENT, "redirect_uris": ["https://*.example/cb"]}, "redirect_uris"),
        ({**NEW_CLIENT, "auth_method": "magic"}, "auth_method"),
        ({**NEW_CLIENT, "client_id": "chosen"}, "client_id"),
        ({"name": 5}, "name"),
    ],
)
async def test_bad_clients_get_problem_documents(
    db: Database, http: httpx.AsyncClient, payload: dict[str, Any], field: str
) -> None:
    token, _ = await machine_token(db, http, ADMIN_SCOPE)
    response = await http.post("/api/identity/v1/clients", json=payload, headers=bearer(token))
    assert response.status_code == 422
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert any(field in (e.get("field") or "") for e in body["errors"]), body


async def test_tokens_without_the_scope_are_refused(db: Database, http: httpx.AsyncClient) -> None:
    token, _ = await machine_token(db, http, "test:unrelated.scope")
    refused = await http.get("/api/identity/v1/clients", headers=bearer(token))
    assert refused.status_code == 403
    assert "insufficient_scope" in refused.headers["www-authenticate"]
    anonymous = await http.get("/api/identity/v1/clients")
    assert anonymous.status_code == 401 and anonymous.json()["type"] == "/problems/unauthorized"
    garbage = await http.get("/api/identity/v1/clients", headers=bearer("not.a.token"))
    assert garbage.status_code == 401


async def test_an_agency_manages_only_its_own_scopes(db: Database, http: httpx.AsyncClient) -> None:
    token, orgnr = await machine_token(db, http, SCOPES_SCOPE, agency=2)
    created = await http.post(
        "/api/identity/v1/scopes",
        json={"name": "vegvesen:kjoretoy.read", "description": "Vehicles"},
        headers=bearer(token),
    )
    assert created.status_code == 201 and created.json()["owner_orgnr"] == orgnr
    async with db.session() as session:
        agencies = await registry.list_agencies(session)
        consumer = agencies[3].orgnr
        await clients.add_scope(session, "someone:else", owner_orgnr=agencies[0].orgnr)
    put = await http.put(
        f"/api/identity/v1/scopes/vegvesen:kjoretoy.read/grants/{consumer}", headers=bearer(token)
    )
    assert put.status_code == 204
    mine = (await http.get("/api/identity/v1/scopes", headers=bearer(token))).json()
    assert {"name": "vegvesen:kjoretoy.read", "grants": [consumer]}.items() <= next(
        s for s in mine if s["name"] == "vegvesen:kjoretoy.read"
    ).items()
    someone_elses = await http.put(
        f"/api/identity/v1/scopes/someone:else/grants/{consumer}", headers=bearer(token)
    )
    assert someone_elses.status_code == 403
    bad_org = await http.put(
        "/api/identity/v1/scopes/vegvesen:kjoretoy.read/grants/123456789", headers=bearer(token)
    )
    assert bad_org.status_code == 422
