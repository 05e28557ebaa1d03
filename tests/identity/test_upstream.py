"""Brokered login through an upstream OpenID Connect provider, end to end.

The upstream is a second, real Felles: `felles serve` in a subprocess with its own data
folder and its own fresh database (SQLite, or a fresh PostgreSQL database on the
PostgreSQL run), seeded with the same synthetic country as the session database so the
same people exist in both registers. Felles-downstream is registered there as a client
with the upstream's own CLI.

The downstream is the app in-process (httpx ASGITransport) with the base URL registered
at the upstream; it reaches the upstream's discovery, JWKS and token endpoints over real
HTTP. The test plays the browser and carries it between the two by hand. Nothing of
ours is mocked: the nasty cases are made by a real upstream or by a browser that
tampers with what it carries.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import random
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from sqlalchemy import select, update
from typer.testing import CliRunner

from felles import config
from felles.app import create_app
from felles.config import Settings
from felles.db import Database
from felles.identity import crypto
from felles.identity import upstream as broker
from felles.identity.models import AuditEvent, UpstreamLogin, UpstreamProvider
from felles.identity.upstream_cli import app as upstream_cli_app
from felles.identity.upstream_pages import STATE_COOKIE
from felles.registry import service as registry
from felles.registry.models import Person
from felles.registry.numbers import synthetic_pid
from tests.conftest import (
    DEMO_PERSONS,
    DEMO_SEED,
    felles_command,
    felles_env,
    free_port,
    scratch_database,
)
from tests.identity.conftest import REDIRECT, register
from tests.identity.oidc import HIGH, SUBSTANTIAL, Pkce, Rp, query_of

PROVIDER = "testbank"  # HIGH, through the upstream's "Broker" client


@dataclass
class Upstream:
    base_url: str
    database_url: str
    env: dict[str, str]
    broker_id: str
    broker_secret: str
    other_id: str  # a second client of the upstream, same redirect URI
    other_secret: str


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)


def run_all(
    env: dict[str, str], *commands: tuple[list[str], str | None]
) -> list[subprocess.CompletedProcess[str]]:
    """Several commands at once (each CLI start costs most of a second)."""
    started = [
        (
            args,
            text,
            subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for args, text in commands
    ]
    results = []
    for args, text, process in started:
        out, err = process.communicate(text, timeout=120)
        results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return results


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


# The assertions read the English page texts.
ENGLISH = {"accept-language": "en"}


def upstream_cli(*args: str) -> list[str]:
    """Our `felles upstream` commands (runnable as a module until `felles` registers them)."""
    return [sys.executable, "-m", "felles.identity.upstream_cli", *args]


def fresh_database(folder: Path) -> contextlib.AbstractContextManager[str]:
    return scratch_database(folder, "upstream")


@pytest.fixture(scope="module")
def downstream_base() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, downstream_base: str) -> Iterator[Upstream]:
    folder = tmp_path_factory.mktemp("upstream")
    with fresh_database(folder) as database_url:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FELLES_")}
        env.update(
            FELLES_ENV="test",
            FELLES_DATA_DIR=str(folder / "var"),
            FELLES_DATABASE_URL=database_url,
            FELLES_BASE_URL=base_url,
            # The same synthetic country as the session database: the same people.
            FELLES_DEMO_PERSONS=str(DEMO_PERSONS),
            FELLES_DEMO_SEED=str(DEMO_SEED),
        )
        log_path = folder / "serve.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                felles_command("serve", "--demo", "--port", str(port)),
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 60
                while True:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(log_path.read_text())
                    try:
                        if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                # Felles-downstream (and a second service) as clients of the upstream.
                callback = f"{downstream_base}{broker.CALLBACK_PATH}"
                add = ("clients", "add", "--redirect-uri", callback, "--name")
                broker_client, other_client = (
                    json.loads(ok(result))
                    for result in run_all(
                        env,
                        (felles_command(*add, "Broker"), None),
                        (felles_command(*add, "Other service"), None),
                    )
                )
                yield Upstream(
                    base_url=base_url,
                    database_url=database_url,
                    env=env,
                    broker_id=broker_client["client_id"],
                    broker_secret=broker_client["client_secret"],
                    other_id=other_client["client_id"],
                    other_secret=other_client["client_secret"],
                )
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture(scope="module")
def testbank(
    upstream: Upstream, settings: Settings, db: Database, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The upstream, configured in the downstream with our CLI (secret from a file)."""
    secret_file = tmp_path_factory.mktemp("secret") / "testbank.secret"
    secret_file.write_text(upstream.broker_secret + "\n")
    add = upstream_cli(
        "add",
        PROVIDER,
        "--issuer",
        upstream.base_url,
        "--client-id",
        upstream.broker_id,
        "--client-secret-file",
        str(secret_file),
        "--acr",
        HIGH,
        "--display-name",
        "Test Bank",
    )
    shown = json.loads(ok(run(add, felles_env(settings))))
    assert shown["has_client_secret"] is True
    assert upstream.broker_secret not in json.dumps(shown)
    return PROVIDER


@pytest.fixture(scope="module")
async def downstream(
    settings: Settings, db: Database, downstream_base: str
) -> AsyncIterator[FastAPI]:
    """The downstream app with the base URL the upstream knows (its callback's origin)."""
    app = create_app(settings.model_copy(update={"base_url": downstream_base}))
    yield app
    await app.state.db.dispose()


@dataclass
class Browser:
    down: httpx.AsyncClient  # the downstream, in-process
    up: httpx.AsyncClient  # the upstream, over real HTTP
    rp: Rp  # a service of the downstream, driven through `down`


@pytest.fixture
async def browser(
    downstream: FastAPI, downstream_base: str, upstream: Upstream, testbank: str, db: Database
) -> AsyncIterator[Browser]:
    transport = httpx.ASGITransport(app=downstream)
    async with (
        httpx.AsyncClient(transport=transport, base_url=downstream_base, headers=ENGLISH) as down,
        httpx.AsyncClient(base_url=upstream.base_url, timeout=10) as up,
    ):
        client, secret = await register(db)
        yield Browser(down, up, Rp(down, client.client_id, secret, REDIRECT, downstream_base))


@pytest.fixture
async def person(db: Database) -> str:
    async with db.session() as session:
        people = await registry.list_people(session, limit=20)
    return people[len(people) // 2].pid


# --- Helpers: the browser's way through both -----------------------------------------------


@dataclass
class Started:
    auth: str  # the downstream's pending request
    pkce: Pkce  # the service's PKCE
    upstream_url: str  # where the start link sent the browser

    @property
    def state(self) -> str:
        return query_of(self.upstream_url)["state"]


async def start(
    b: Browser, hint: str | None, provider: str = PROVIDER, **authorize: str
) -> Started:
    """The service's request → the login page → our method's page → the start link."""
    pkce = Pkce()
    asked = await b.rp.authorize(pkce, **authorize)
    assert asked.status_code == 303 and asked.headers["location"].startswith("/login?auth=")
    auth = query_of(asked.headers["location"])["auth"]
    methods = await b.down.get(asked.headers["location"])
    assert 'href="/login/upstream?auth=' in methods.text
    page = await b.down.get("/login/upstream", params={"auth": auth})
    assert page.status_code == 200
    link = re.search(rf'href="(/login/upstream/{provider}/start\?auth=[^"]+)"', page.text)
    assert link is not None, page.text
    url = html.unescape(link.group(1)) + (f"&login_hint={quote(hint)}" if hint else "")
    went = await b.down.get(url)
    assert went.status_code == 303, went.text
    return Started(auth, pkce, went.headers["location"])


async def at_upstream(b: Browser, url: str) -> str:
    """The upstream logs the TestID person in headless and sends the browser back."""
    answer = await b.up.get(url)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


async def back(b: Browser, callback: str) -> httpx.Response:
    assert callback.startswith(str(b.down.base_url).rstrip("/") + broker.CALLBACK_PATH)
    return await b.down.get(callback)


async def downstream_claims(b: Browser, done: httpx.Response, pkce: Pkce) -> dict[str, Any]:
    """The service's side: the code from the redirect → tokens → verified ID token."""
    assert done.status_code == 303, done.text
    assert done.headers["location"].startswith(REDIRECT)
    result = query_of(done.headers["location"])
    tokens = await b.rp.token(result["code"], pkce)
    assert tokens.status_code == 200, tokens.text
    keys = KeySet.import_key_set((await b.down.get("/jwks")).json())
    claims = dict(jwt.decode(tokens.json()["id_token"], keys, algorithms=["RS256"]).claims)
    assert claims["iss"] == str(b.down.base_url).rstrip("/")
    assert claims["aud"] == b.rp.client_id
    return claims


async def last_failure(db: Database) -> AuditEvent:
    async with db.session() as session:
        event = await session.scalar(
            select(AuditEvent)
            .where(AuditEvent.event == "upstream_failed")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
    assert event is not None
    return event


async def login_row(db: Database, state: str) -> UpstreamLogin | None:
    async with db.session() as session:
        return await session.get(UpstreamLogin, state)


async def add_provider(
    db: Database, settings: Settings, upstream: Upstream, name: str, acr: str, **extra: Any
) -> None:
    values: dict[str, Any] = {
        "name": name,
        "issuer": upstream.base_url,
        "client_id": upstream.broker_id,
        "client_secret": upstream.broker_secret,
        "acr": acr,
    }
    values.update(extra)
    async with db.session() as session:
        if await session.get(UpstreamProvider, name) is None:
            master = crypto.master_key(settings)
            await broker.add_provider(session, master, broker.NewProvider(**values))


async def set_enabled(db: Database, name: str, enabled: bool) -> None:
    async with db.session() as session:
        if enabled:
            await broker.enable_provider(session, name)
        else:
            await broker.disable_provider(session, name)


# --- The happy path ------------------------------------------------------------------------


async def test_brokered_login_gives_the_service_the_person_level_and_method(
    browser: Browser, upstream: Upstream, db: Database, person: str
) -> None:
    begun = await start(browser, f"testid:{person}_{HIGH}", acr_values=HIGH)
    sent = query_of(begun.upstream_url)
    assert sent["client_id"] == upstream.broker_id  # Felles' own client id upstream
    assert sent["login_hint"] == f"testid:{person}_{HIGH}"  # demo only: headless upstream
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert sent["acr_values"] == HIGH and sent["nonce"] and sent["state"]
    assert sent["redirect_uri"] == str(browser.down.base_url).rstrip("/") + broker.CALLBACK_PATH
    callback = await at_upstream(browser, begun.upstream_url)
    done = await back(browser, callback)
    claims = await downstream_claims(browser, done, begun.pkce)
    assert claims["pid"] == person
    assert claims["acr"] == HIGH
    assert claims["amr"] == [f"upstream:{PROVIDER}"]
    assert await login_row(db, begun.state) is None  # single use: gone

    # The same callback again: this browser no longer holds the state ...
    replayed = await back(browser, callback)
    assert replayed.status_code == 400
    assert "expired or was already used" in replayed.text
    assert "location" not in replayed.headers
    assert (await last_failure(db)).detail["reason"] == "state_not_bound"
    # ... and with the state cookie put back, the spent state is still refused.
    browser.down.cookies.set(STATE_COOKIE, begun.state, path="/login/upstream")
    replayed = await back(browser, callback)
    assert replayed.status_code == 400 and "location" not in replayed.headers
    assert (await last_failure(db)).detail["reason"] == "unknown_state"


async def test_level_is_capped_at_the_providers_configured_level(
    browser: Browser, upstream: Upstream, db: Database, settings: Settings, person: str
) -> None:
    await add_provider(db, settings, upstream, "subbank", SUBSTANTIAL, display_name="Sub Bank")
    begun = await start(browser, f"testid:{person}_{HIGH}", provider="subbank")
    assert query_of(begun.upstream_url)["acr_values"] == SUBSTANTIAL
    done = await back(browser, await at_upstream(browser, begun.upstream_url))
    claims = await downstream_claims(browser, done, begun.pkce)
    # The upstream said high; this provider is trusted for substantial only.
    assert claims["acr"] == SUBSTANTIAL and claims["amr"] == ["upstream:subbank"]


async def test_choose_page_offers_only_providers_that_reach_the_level(
    browser: Browser, upstream: Upstream, db: Database, settings: Settings
) -> None:
    await add_provider(db, settings, upstream, "subbank", SUBSTANTIAL, display_name="Sub Bank")
    pending = await browser.rp.authorize(Pkce(), acr_values=HIGH)
    auth = query_of(pending.headers["location"])["auth"]
    page = await browser.down.get("/login/upstream", params={"auth": auth})
    assert "Test Bank" in page.text and "Sub Bank" not in page.text
    # A start link for a provider below the level is refused, not followed.
    low = await browser.down.get("/login/upstream/subbank/start", params={"auth": auth})
    assert low.status_code == 400 and "cannot be used now" in low.text
    assert 'href="/login?auth=' in low.text  # the way back to the other methods

    async with db.session() as session:
        high = [
            p.name for p in await broker.list_providers(session, enabled_only=True) if p.acr == HIGH
        ]
    try:
        for name in high:
            await set_enabled(db, name, False)
        none = await browser.down.get("/login/upstream", params={"auth": auth})
        assert none.status_code == 200
        assert "No other login provider can be used for this service right now." in none.text
        assert "/start?" not in none.text
    finally:
        for name in high:
            await set_enabled(db, name, True)


# --- The nasty cases -----------------------------------------------------------------------


async def test_wrong_state_is_refused_and_audited_without_secrets(
    browser: Browser, db: Database
) -> None:
    code, state = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    answer = await browser.down.get(broker.CALLBACK_PATH, params={"state": state, "code": code})
    assert answer.status_code == 400
    assert "expired or was already used" in answer.text
    event = await last_failure(db)
    assert event.detail["reason"] == "state_not_bound"
    assert code not in json.dumps(event.detail) and state not in json.dumps(event.detail)
    no_state = await browser.down.get(broker.CALLBACK_PATH, params={"code": code})
    assert no_state.status_code == 400


async def test_callback_only_counts_in_the_browser_that_started_the_login(
    browser: Browser, downstream: FastAPI, db: Database, person: str
) -> None:
    begun = await start(browser, f"testid:{person}_{HIGH}")
    callback = await at_upstream(browser, begun.upstream_url)
    # Someone sends the link with the code to another browser (login CSRF): refused,
    # and the login stays usable for the browser that started it.
    transport = httpx.ASGITransport(app=downstream)
    async with httpx.AsyncClient(
        transport=transport, base_url=browser.down.base_url, headers=ENGLISH
    ) as other:
        planted = await other.get(callback)
    assert planted.status_code == 400
    assert "felles_sso" not in planted.headers.get("set-cookie", "")
    assert await login_row(db, begun.state) is not None
    done = await back(browser, callback)
    assert (await downstream_claims(browser, done, begun.pkce))["pid"] == person


async def test_upstream_error_is_a_plain_page_and_spends_the_state(
    browser: Browser, db: Database, person: str
) -> None:
    # testbank asks the upstream for high; a substantial login there is refused by it.
    begun = await start(browser, f"testid:{person}_{SUBSTANTIAL}")
    callback = await at_upstream(browser, begun.upstream_url)
    assert query_of(callback)["error"] == "access_denied"
    answer = await back(browser, callback)
    assert answer.status_code == 400
    assert "The login was not completed" in answer.text
    assert "Traceback" not in answer.text
    assert f'href="/login?auth={begun.auth}"' in answer.text  # try another way
    event = await last_failure(db)
    assert event.detail["reason"] == "cancelled"
    assert event.detail["upstream_error"] == "access_denied"
    assert event.detail["provider"] == PROVIDER and event.client_id == browser.rp.client_id
    assert await login_row(db, begun.state) is None


async def test_tampered_nonce_is_caught_in_the_id_token(
    browser: Browser, db: Database, person: str
) -> None:
    begun = await start(browser, f"testid:{person}_{HIGH}")
    # The browser changes the nonce on its way to the upstream: the code still works
    # (state and PKCE are intact), but the ID token carries the other nonce.
    params = query_of(begun.upstream_url)
    params["nonce"] = secrets.token_urlsafe(16)
    tampered = begun.upstream_url.split("?", 1)[0] + "?" + urlencode(params)
    answer = await back(browser, await at_upstream(browser, tampered))
    assert answer.status_code == 502
    assert "We could not complete the login" in answer.text
    event = await last_failure(db)
    assert event.detail["reason"] == "invalid_id_token" and "nonce" in event.detail["detail"]


async def test_code_issued_to_another_client_is_refused(
    browser: Browser, upstream: Upstream, db: Database, person: str
) -> None:
    begun = await start(browser, f"testid:{person}_{HIGH}")
    params = query_of(begun.upstream_url)
    params["client_id"] = upstream.other_id  # same redirect URI, another client
    swapped = begun.upstream_url.split("?", 1)[0] + "?" + urlencode(params)
    answer = await back(browser, await at_upstream(browser, swapped))
    assert answer.status_code == 502
    event = await last_failure(db)
    assert event.detail["reason"] == "token_exchange_failed"
    assert "invalid_grant" in event.detail["detail"]


async def test_provider_disabled_mid_flow(browser: Browser, db: Database, person: str) -> None:
    begun = await start(browser, f"testid:{person}_{HIGH}")
    await set_enabled(db, PROVIDER, False)
    try:
        callback = await at_upstream(browser, begun.upstream_url)
        answer = await back(browser, callback)
        assert answer.status_code == 400
        assert "This login provider cannot be used now" in answer.text
        assert (await last_failure(db)).detail["reason"] == "provider_unavailable"
        # Disabled providers are not offered either.
        page = await browser.down.get("/login/upstream", params={"auth": begun.auth})
        assert f"/login/upstream/{PROVIDER}/start" not in page.text
    finally:
        await set_enabled(db, PROVIDER, True)


async def test_expired_login_is_refused(browser: Browser, db: Database, person: str) -> None:
    begun = await start(browser, f"testid:{person}_{HIGH}")
    async with db.session() as session:
        await session.execute(
            update(UpstreamLogin)
            .where(UpstreamLogin.state == begun.state)
            .values(expires_at=broker.now().replace(year=2000))
        )
    answer = await back(browser, await at_upstream(browser, begun.upstream_url))
    assert answer.status_code == 400 and "expired or was already used" in answer.text
    assert (await last_failure(db)).detail["reason"] == "expired"


async def test_person_unknown_to_our_register_is_refused(
    browser: Browser, upstream: Upstream, db: Database
) -> None:
    # Someone the upstream knows (added to its register only), but our register does not.
    async with db.session() as session:
        model = (await registry.list_people(session, limit=1))[0]
    rng = random.Random()
    while True:
        stranger = synthetic_pid(model.birth_date, rng)
        async with db.session() as session:
            if await session.get(Person, stranger) is None:
                break
    theirs = Database(upstream.database_url)
    try:
        async with theirs.session() as session:
            await registry.register_person(session, model.model_copy(update={"pid": stranger}))
    finally:
        await theirs.dispose()
    begun = await start(browser, f"testid:{stranger}_{HIGH}")
    answer = await back(browser, await at_upstream(browser, begun.upstream_url))
    assert answer.status_code == 403
    assert "We cannot find you in the population register" in answer.text
    assert stranger not in answer.text
    event = await last_failure(db)
    assert event.detail["reason"] == "unknown_person"
    assert event.detail["pid_masked"] == stranger[:6] + "*****"
    assert stranger not in json.dumps(event.detail) and event.pid is None


async def test_unreachable_provider_and_wrong_issuer_give_a_plain_page(
    browser: Browser, upstream: Upstream, db: Database, settings: Settings
) -> None:
    nowhere = f"broken-{secrets.token_hex(3)}"
    mixed_up = f"mixed-{secrets.token_hex(3)}"
    await add_provider(
        db, settings, upstream, nowhere, HIGH, issuer=f"http://127.0.0.1:{free_port()}"
    )
    # Discovery works, but names the issuer without the slash we were configured with.
    await add_provider(db, settings, upstream, mixed_up, HIGH, issuer=upstream.base_url + "/")
    try:
        pending = await browser.rp.authorize(Pkce())
        auth = query_of(pending.headers["location"])["auth"]
        for name, reason in ((nowhere, "unreachable"), (mixed_up, "bad_discovery")):
            answer = await browser.down.get(f"/login/upstream/{name}/start", params={"auth": auth})
            assert answer.status_code == 502
            assert "We could not complete the login" in answer.text
            assert "Traceback" not in answer.text
            event = await last_failure(db)
            assert event.detail["reason"] == reason and event.detail["provider"] == name
    finally:
        await set_enabled(db, nowhere, False)
        await set_enabled(db, mixed_up, False)


async def test_testid_hint_is_forwarded_only_where_demo_features_are_allowed() -> None:
    hint = "testid:01810012345_idporten-loa-high"
    assert broker.forwarded_login_hint(True, hint) == hint
    assert broker.forwarded_login_hint(True, None, hint) == hint
    assert broker.forwarded_login_hint(False, hint) is None  # production
    assert broker.forwarded_login_hint(True, "someone@example.com") is None


# --- The ID token checks, against real upstream tokens ------------------------------------


async def upstream_id_token(
    b: Browser, upstream: Upstream, client_id: str, secret: str, pid: str, nonce: str
) -> str:
    """The test as the upstream's client: a headless login and a code exchange there."""
    pkce = Pkce()
    callback = str(b.down.base_url).rstrip("/") + broker.CALLBACK_PATH
    answer = await b.up.get(
        "/authorize",
        params={
            "client_id": client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": callback,
            "state": "s",
            "nonce": nonce,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "login_hint": f"testid:{pid}_{HIGH}",
        },
    )
    code = query_of(answer.headers["location"])["code"]
    tokens = await b.up.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
            "code_verifier": pkce.verifier,
        },
        auth=(client_id, secret),
    )
    assert tokens.status_code == 200, tokens.text
    return str(tokens.json()["id_token"])


def record(upstream: Upstream, client_id: str, **changes: Any) -> broker.ProviderRecord:
    values: dict[str, Any] = {
        "name": "probe",
        "display_name": "Probe",
        "issuer": upstream.base_url,
        "client_id": client_id,
        "acr": HIGH,
        "scope": "openid",
        "pid_claim": "pid",
        "enabled": True,
        "has_client_secret": True,
        "created_at": broker.now(),
    }
    values.update(changes)
    return broker.ProviderRecord(**values)


async def test_id_token_verification_refuses_every_kind_of_bad_token(
    browser: Browser, upstream: Upstream, person: str
) -> None:
    cache = broker.UpstreamCache()
    metadata = await cache.metadata(upstream.base_url)
    nonce = secrets.token_urlsafe(16)
    token = await upstream_id_token(
        browser, upstream, upstream.other_id, upstream.other_secret, person, nonce
    )
    theirs = record(upstream, upstream.other_id)
    ours = record(upstream, upstream.broker_id)

    claims = await broker.verify_id_token(cache, theirs, metadata, token, nonce)
    assert claims["pid"] == person  # the control: the right client and nonce pass
    assert broker.pid_from_claims(theirs, claims) == person
    assert cache.jwks_fetches == 1

    async def refused(provider: broker.ProviderRecord, value: str, expect: str) -> None:
        with pytest.raises(broker.UpstreamError) as caught:
            await broker.verify_id_token(cache, provider, metadata, value, nonce)
        assert caught.value.reason == "invalid_id_token"
        assert expect in caught.value.detail, caught.value.detail

    await refused(ours, token, "aud")  # a token meant for another client
    wrong_issuer = record(upstream, upstream.other_id, issuer=upstream.base_url + "/x")
    await refused(wrong_issuer, token, "not valid")
    with pytest.raises(broker.UpstreamError, match="nonce"):
        await broker.verify_id_token(cache, theirs, metadata, token, "another nonce")

    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = dict(body, pid="01810012345")
    forged_payload = crypto.b64url(json.dumps(forged).encode())
    await refused(theirs, f"{header}.{forged_payload}.{signature}", "not valid")

    unsigned = crypto.b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    await refused(theirs, f"{unsigned}.{payload}.", "algorithm")
    hs256 = jwt.encode(
        {"alg": "HS256"}, body, OctKey.import_key(upstream.other_secret), algorithms=["HS256"]
    )
    await refused(theirs, hs256, "algorithm")

    # A key the upstream never published: the key set is fetched once more, then refused.
    stranger = RSAKey.generate_key(2048, auto_kid=True)
    foreign = jwt.encode({"alg": "RS256", "kid": stranger.kid}, body, stranger)
    await refused(theirs, foreign, "no key")
    assert cache.jwks_fetches == 2
    # The upstream's kid on a token signed by another key: the signature fails.
    upstream_kid = json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]
    impostor = jwt.encode({"alg": "RS256", "kid": upstream_kid}, body, stranger)
    await refused(theirs, impostor, "not valid")

    # A provider whose identity number claim is not there.
    with pytest.raises(broker.UpstreamError, match="pid"):
        broker.pid_from_claims(record(upstream, "x", pid_claim="sub"), claims)


def test_level_from_the_upstream_acr() -> None:
    high = broker.ProviderRecord(
        name="p",
        display_name="P",
        issuer="https://op.example",
        client_id="c",
        acr=HIGH,
        scope="openid",
        pid_claim="pid",
        enabled=True,
        has_client_secret=False,
        created_at=broker.now(),
    )
    substantial = high.model_copy(update={"acr": SUBSTANTIAL})
    assert broker.level_of(high, {}) == HIGH  # no acr: as configured
    assert broker.level_of(high, {"acr": SUBSTANTIAL}) == SUBSTANTIAL  # lower: as said
    assert broker.level_of(high, {"acr": "Level3"}) == SUBSTANTIAL
    assert broker.level_of(substantial, {"acr": HIGH}) == SUBSTANTIAL  # never above config
    assert broker.level_of(high, {"acr": "urn:bank:whatever"}) == HIGH
    with pytest.raises(broker.UpstreamError) as caught:
        broker.level_of(high, {"acr": "idporten-loa-low"})
    assert caught.value.reason == "level_too_low"


# --- The CLI and the registry -------------------------------------------------------------


async def test_secret_given_to_the_cli_is_encrypted_at_rest(
    testbank: str, upstream: Upstream, db: Database, settings: Settings
) -> None:
    """`testbank` was added by the real command with the secret in a file."""
    async with db.session() as session:
        row = await session.get(UpstreamProvider, testbank)
        assert row is not None and row.client_secret is not None
        assert upstream.broker_secret.encode() not in row.client_secret
        config = await broker.provider_for_login(session, testbank)
    assert config is not None
    assert config.client_secret(crypto.master_key(settings)) == upstream.broker_secret
    with pytest.raises(broker.UpstreamError) as caught:
        config.client_secret(bytes(32))  # another installation's master key
    assert caught.value.reason == "misconfigured"


@pytest.fixture
def cli_env(settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's settings point at the test database (get_settings is cached: reset it)."""
    for key, value in felles_env(settings).items():
        if key.startswith("FELLES_"):
            monkeypatch.setenv(key, value)
    config.get_settings.cache_clear()
    yield
    config.get_settings.cache_clear()


def cli(*args: str, stdin: str | None = None) -> Any:
    result = CliRunner().invoke(upstream_cli_app, list(args), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.stderr
    return result


def test_cli_adds_lists_updates_disables_and_enables_providers(
    cli_env: None, tmp_path: Path
) -> None:
    name = f"cli-{secrets.token_hex(3)}"
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret-value\n")
    base = ["add", name, "--issuer", "https://op.example", "--client-id", "felles"]
    extra = ["--client-secret-file", str(secret_file), "--scope", "openid profile"]
    added = cli(*base, "--acr", SUBSTANTIAL, *extra, "--pid-claim", "nin")
    assert added.exit_code == 0, added.stderr
    shown = json.loads(added.stdout)
    assert shown["scope"] == "openid profile" and shown["pid_claim"] == "nin"
    assert shown["display_name"] == name and shown["enabled"] is True
    assert shown["has_client_secret"] is True and "s3cret-value" not in added.stdout

    assert "is disabled" in cli("disable", name).stdout
    listing = cli("list", "--json")
    mine = next(p for p in json.loads(listing.stdout) if p["name"] == name)
    assert mine["enabled"] is False and "s3cret-value" not in listing.stdout
    assert name in cli("list").stdout
    assert "is enabled" in cli("enable", name).stdout
    updated = cli("update", name, "--client-secret-file", "-", "--acr", HIGH, stdin="new\n")
    assert updated.exit_code == 0, updated.stderr
    assert json.loads(updated.stdout)["acr"] == HIGH
    cli("disable", name)  # keep it off the login pages

    def refused(code: int, needle: str, *args: str) -> None:
        result = cli(*args)
        assert result.exit_code == code, (result.stdout, result.stderr)
        assert needle in " ".join(result.stderr.split()) and result.stdout == ""

    refused(2, "already exists", *base, "--acr", SUBSTANTIAL)
    refused(2, "idporten-loa-low", *base, "--acr", "idporten-loa-low")
    plain_http = ["--issuer", "http://op.example", "--client-id", "c", "--acr", HIGH]
    refused(2, "(--issuer)", "add", "other", *plain_http)
    refused(
        2,
        "(NAME)",
        "add",
        "Bad Name",
        "--issuer",
        "https://op.example",
        "--client-id",
        "c",
        "--acr",
        HIGH,
    )
    refused(2, "Nothing to change", "update", name)
    refused(1, "no upstream provider", "enable", "no-such-provider")


async def test_registry_rules(db: Database, settings: Settings) -> None:
    master = crypto.master_key(settings)
    name = f"reg-{secrets.token_hex(3)}"
    new = broker.NewProvider(name=name, issuer="https://op.example", client_id="c", acr=HIGH)
    async with db.session() as session:
        made = await broker.add_provider(session, master, new)
        assert made.has_client_secret is False and made.scope == "openid"
        for field, change in (
            ("scope", {"scope": "profile"}),
            ("issuer", {"issuer": "https://user:pw@op.example"}),
            ("issuer", {"issuer": "https://op.example/#x"}),
            ("acr", {"acr": "idporten-loa-low"}),
            ("pid_claim", {"pid_claim": "pid claim"}),
            ("client_id", {"client_id": " "}),
        ):
            with pytest.raises(broker.ProviderError) as caught:
                await broker.update_provider(session, master, name, broker.ProviderUpdate(**change))
            assert caught.value.field == field
        changed = await broker.update_provider(
            session, master, name, broker.ProviderUpdate(client_secret="x", display_name="Op")
        )
        assert changed.has_client_secret and changed.display_name == "Op"
        removed = await broker.update_provider(
            session, master, name, broker.ProviderUpdate(client_secret="")
        )
        assert removed.has_client_secret is False
        await broker.disable_provider(session, name)
        with pytest.raises(broker.UnknownProvider):
            await broker.get_provider(session, "no-such-provider")
