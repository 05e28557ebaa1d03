"""Pushed requests sealed into their request_uri (felles.identity.sealed): only values we
sealed open, unaltered, for their own client, until they expire, and once; a request
too long to seal is stored instead and behaves the same."""

from __future__ import annotations

import os
import secrets
import time

import httpx

from felles.config import Settings
from felles.db import Database
from felles.identity.crypto import master_key
from felles.identity.sealed import DAY_SECONDS, SEALED_PREFIX, Sealer
from felles.identity.service import PAR_URN
from tests.identity.conftest import REDIRECT, register
from tests.identity.oidc import SUBSTANTIAL, Pkce, Rp, query_of

PAYLOAD = {"c": "client", "x": 1_900_000_000, "i": "id", "p": {"login_hint": "testid:1"}}


def test_sealed_values_open_only_unaltered_and_with_our_key() -> None:
    sealer = Sealer(os.urandom(32))
    at = time.time()
    sealed = sealer.seal(PAYLOAD, at)
    assert sealed.startswith(SEALED_PREFIX)
    assert "testid" not in sealed  # the request is encrypted, not merely signed
    assert sealer.open(sealed, at) == PAYLOAD
    assert sealer.open(sealed, at + DAY_SECONDS) == PAYLOAD  # yesterday's key still opens
    assert sealer.open(sealed, at + 2 * DAY_SECONDS) is None  # older days do not
    assert Sealer(os.urandom(32)).open(sealed, at) is None  # another service's key
    day, _, blob = sealed[len(SEALED_PREFIX) :].partition(".")
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    for broken in (
        f"{SEALED_PREFIX}{day}.{flipped}",
        f"{SEALED_PREFIX}{int(day) - 1}.{blob}",  # another day's key
        f"{SEALED_PREFIX}{day}.",
        f"{SEALED_PREFIX}{'9' * 5000}.{blob}",
        f"{SEALED_PREFIX}x.{blob}",
        blob,
        "",
    ):
        assert sealer.open(broken, at) is None, broken[:40]


def test_each_seal_is_different() -> None:
    sealer = Sealer(os.urandom(32))
    assert sealer.seal(PAYLOAD, 0) != sealer.seal(PAYLOAD, 0)  # a fresh nonce each time


async def push(http: httpx.AsyncClient, rp: Rp, **extra: str) -> str:
    response = await http.post("/par", data=rp.authorize_params(Pkce(), **extra), auth=rp.auth)
    assert response.status_code == 201, response.text
    return str(response.json()["request_uri"])


async def authorize(http: httpx.AsyncClient, rp: Rp, request_uri: str) -> httpx.Response:
    params = {"client_id": rp.client_id, "request_uri": request_uri}
    return await http.get("/authorize", params=params)


async def test_a_tampered_request_uri_is_refused(rp: Rp, http: httpx.AsyncClient, pid: str) -> None:
    uri = await push(http, rp, login_hint=f"testid:{pid}_{SUBSTANTIAL}")
    assert uri.startswith(PAR_URN + SEALED_PREFIX)
    tampered = uri[:-5] + ("AAAAA" if not uri.endswith("AAAAA") else "BBBBB")
    response = await authorize(http, rp, tampered)
    assert response.status_code == 400 and "location" not in response.headers
    assert (await authorize(http, rp, uri)).status_code == 303  # the real one is unharmed


async def test_an_expired_sealed_request_is_refused(
    rp: Rp, http: httpx.AsyncClient, settings: Settings, pid: str
) -> None:
    params = rp.authorize_params(Pkce(), login_hint=f"testid:{pid}_{SUBSTANTIAL}")
    sealer = Sealer(master_key(settings))  # the service's own key: only the expiry is wrong
    stored = {
        "redirect_uri": params["redirect_uri"],
        "scope": params["scope"].split(),
        "state": params["state"],
        "nonce": params.get("nonce"),
        "code_challenge": params["code_challenge"],
        "login_hint": params["login_hint"],
    }
    now = time.time()
    late = sealer.seal({"c": rp.client_id, "x": int(now) - 1, "i": "late", "p": stored}, now)
    response = await authorize(http, rp, PAR_URN + late)
    assert response.status_code == 400 and "location" not in response.headers
    fresh_id = secrets.token_urlsafe(16)
    fresh = sealer.seal({"c": rp.client_id, "x": int(now) + 60, "i": fresh_id, "p": stored}, now)
    assert (await authorize(http, rp, PAR_URN + fresh)).status_code == 303


async def test_a_held_request_uri_cannot_start_a_second_login(
    rp: Rp, http: httpx.AsyncClient
) -> None:
    uri = await push(http, rp)  # no hint: the person goes to the login pages
    first = await authorize(http, rp, uri)
    assert first.status_code == 303 and first.headers["location"].startswith("/login")
    again = await authorize(http, rp, uri)
    assert again.status_code == 400 and "location" not in again.headers


async def test_a_request_too_long_to_seal_is_stored_and_used_once(
    rp: Rp, http: httpx.AsyncClient, db: Database, pid: str
) -> None:
    state = "s" * 1900
    uri = await push(http, rp, login_hint=f"testid:{pid}_{SUBSTANTIAL}", state=state)
    assert not uri.startswith(PAR_URN + SEALED_PREFIX) and len(uri) < 100
    first = await authorize(http, rp, uri)
    assert first.status_code == 303
    assert query_of(first.headers["location"])["state"] == state
    assert (await authorize(http, rp, uri)).status_code == 400
    other, secret = await register(db)
    long_uri = await push(http, rp, state=state)
    stolen = await authorize(http, Rp(http, other.client_id, secret, REDIRECT), long_uri)
    assert stolen.status_code == 400


async def test_another_client_cannot_use_a_sealed_request(
    rp: Rp, http: httpx.AsyncClient, db: Database, pid: str
) -> None:
    uri = await push(http, rp, login_hint=f"testid:{pid}_{SUBSTANTIAL}")
    other, secret = await register(db)
    thief = Rp(http, other.client_id, secret, REDIRECT)
    stolen = await authorize(http, thief, uri)
    assert stolen.status_code == 400 and "location" not in stolen.headers
    assert (await authorize(http, rp, uri)).status_code == 303
