"""Passkeys (WebAuthn), server side: registration and login ceremonies with a software
authenticator (an EC P-256 key that builds real attestation and assertion objects),
the refusals that matter (wrong origin or RP ID, replayed, expired or foreign challenges,
unknown credentials, counters going backwards, no user verification), and the pages
and JSON endpoints over HTTP up to an ID token at level high.

py_webauthn checks the ceremonies; these tests feed it what browsers would send.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from felles.config import Settings
from felles.db import Database
from felles.identity import levels, passkeys
from felles.identity.methods import methods_for
from felles.identity.models import AuditEvent, PasskeyCredential
from felles.identity.passkey_pages import ACCOUNT_PATH, LOGIN_COOKIE, REGISTER_COOKIE
from felles.identity.passkeys import (
    LOGIN,
    REGISTER,
    CloneWarning,
    PasskeyError,
    Passkeys,
    RelyingParty,
)
from felles.registry import service as registry
from felles.web.keys import load_or_create_secret
from felles.web.security import CSRF_COOKIE
from tests.identity.conftest import REDIRECT, register
from tests.identity.oidc import Pkce, Rp, query_of, verify_id_token

ORIGIN = "http://testserver"  # the test app's base URL: RP ID "testserver"
FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftKey:
    """A software authenticator: what a phone's passkey would answer, byte for byte."""

    rp_id: str = "testserver"
    origin: str = ORIGIN
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    counter: int = 0
    user_handle: bytes = b""

    @property
    def id(self) -> str:
        return b64(self.credential_id)

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, rp_id: str | None, flags: int, counter: int, attested: bool) -> bytes:
        data = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        data += bytes([flags]) + counter.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big")
            data += self.credential_id + self._cose_key()
        return data

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        ).encode()

    def create(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verified: bool = True,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.create(options)."""
        options = json.loads(options_json)
        self.user_handle = unb64(options["user"]["id"])
        flags = FLAG_UP | FLAG_AT | (FLAG_UV if verified else 0)
        auth_data = self._auth_data(rp_id, flags, self.counter, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal", "not-a-transport"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verified: bool = True,
        counter: int | None = None,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.get(options); the counter goes up by one
        unless told otherwise."""
        options = json.loads(options_json)
        if counter is None:
            self.counter += 1
            counter = self.counter
        flags = FLAG_UP | (FLAG_UV if verified else 0)
        auth_data = self._auth_data(rp_id, flags, counter, attested=False)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(user_handle if user_handle is not None else self.user_handle),
            },
            "clientExtensionResults": {},
        }


# --- fixtures ------------------------------------------------------------------------------

_next_person = itertools.count(100)  # people 100.. of the demo register, one per test


@pytest.fixture
async def person(db: Database) -> str:
    """A person nobody else in this run has given passkeys to."""
    async with db.session() as session:
        (record,) = await registry.list_people(session, limit=1, offset=next(_next_person))
    return record.pid


@pytest.fixture
def service(settings: Settings) -> Passkeys:
    """The same service (same key file) the test app uses."""
    return Passkeys(settings, load_or_create_secret(settings.keys_dir / "webauthn.key"))


async def enrol(db: Database, service: Passkeys, pid: str, name: str = "My phone") -> SoftKey:
    """A registered passkey for `pid`."""
    softkey = SoftKey()
    async with db.session() as session:
        ceremony = await service.registration_options(session, pid)
    async with db.session() as session:
        await service.register(
            session, pid, ceremony.sealed, softkey.create(ceremony.options_json), name
        )
    return softkey


async def login(
    db: Database, service: Passkeys, softkey: SoftKey, pending_id: str = "pending", **answer: Any
) -> Any:
    """A login ceremony from options to the service's verdict (a fresh challenge each time)."""
    ceremony = service.login_options(pending_id)
    async with db.session() as session:
        return await service.login(
            session, pending_id, ceremony.sealed, softkey.get(ceremony.options_json, **answer)
        )


async def stored(db: Database, softkey: SoftKey) -> PasskeyCredential | None:
    async with db.session() as session:
        return await session.get(PasskeyCredential, softkey.id)


# --- the relying party ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "rp_id", "usable"),
    [
        ("http://localhost:8000", "localhost", True),
        ("https://login.felles.example", "login.felles.example", True),
        ("https://felles.example/base/path", "felles.example", True),
        ("http://127.0.0.1:8000", "127.0.0.1", False),  # browsers refuse IP addresses
        ("https://[::1]:8443", "::1", False),
        ("http://felles.example", "felles.example", False),  # not a secure context
    ],
)
def test_relying_party_is_the_base_url_host(base_url: str, rp_id: str, usable: bool) -> None:
    rp = RelyingParty.from_settings(Settings(base_url=base_url))
    assert rp.id == rp_id
    assert rp.usable is usable
    assert not rp.origin.endswith("/path")


def test_passkey_is_offered_for_high_only_where_browsers_allow_it(settings: Settings) -> None:
    local = settings.model_copy(update={"base_url": "http://localhost:8000"})
    offered = [m.name for m in methods_for(local, levels.HIGH)]
    assert "passkey" in offered
    passkey = next(m for m in methods_for(local, levels.HIGH) if m.name == "passkey")
    assert passkey.path == "/login/passkey" and passkey.max_acr == levels.HIGH
    on_ip = settings.model_copy(update={"base_url": "http://127.0.0.1:8000"})
    assert "passkey" not in [m.name for m in methods_for(on_ip, levels.SUBSTANTIAL)]


# --- registration and login --------------------------------------------------------------


async def test_registration_options_demand_user_verification_and_hide_the_number(
    db: Database, service: Passkeys, person: str
) -> None:
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    options = json.loads(ceremony.options_json)
    assert options["rp"] == {"id": "testserver", "name": "Felles"}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"
    assert person not in ceremony.options_json and person not in ceremony.sealed
    assert unb64(options["user"]["id"]) == service.user_handle(person)
    assert options["excludeCredentials"] == []
    assert ceremony.expires_at - datetime.now(UTC) <= timedelta(minutes=5)


async def test_register_then_log_in_gives_level_high_by_hardware_key(
    db: Database, service: Passkeys, person: str
) -> None:
    softkey = await enrol(db, service, person, name="  My\tphone\x00 ")
    async with db.session() as session:
        (record,) = await service.list_for(session, person)
    assert record.name == "My phone" and record.last_used_at is None
    row = await stored(db, softkey)
    assert row is not None and row.transports == ["internal"] and row.sign_count == 0

    who = await login(db, service, softkey)
    assert (who.pid, who.acr, who.amr, who.method) == (person, levels.HIGH, ("hwk",), "passkey")
    row = await stored(db, softkey)
    assert row is not None and row.sign_count == 1 and row.last_used_at is not None

    # The next registration excludes the passkey already there.
    async with db.session() as session:
        again = json.loads((await service.registration_options(session, person)).options_json)
    assert [c["id"] for c in again["excludeCredentials"]] == [softkey.id]


async def test_a_passkey_that_does_not_count_keeps_working(
    db: Database, service: Passkeys, person: str
) -> None:
    """Synced passkeys report 0 every time: no counter to compare, and no clone warning."""
    softkey = await enrol(db, service, person)
    for _ in range(2):
        assert (await login(db, service, softkey, counter=0)).pid == person


async def test_wrong_origin_is_refused(db: Database, service: Passkeys, person: str) -> None:
    softkey = SoftKey()
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    answer = softkey.create(ceremony.options_json, origin="https://testserver.evil.example")
    with pytest.raises(PasskeyError, match="origin"):
        async with db.session() as session:
            await service.register(session, person, ceremony.sealed, answer)
    assert await stored(db, softkey) is None

    softkey = await enrol(db, service, person)
    with pytest.raises(PasskeyError, match="origin"):
        await login(db, service, softkey, origin="http://testserver:8080")


async def test_wrong_rp_id_is_refused(db: Database, service: Passkeys, person: str) -> None:
    softkey = SoftKey()
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    answer = softkey.create(ceremony.options_json, rp_id="evil.example")
    with pytest.raises(PasskeyError, match="RP ID"):
        async with db.session() as session:
            await service.register(session, person, ceremony.sealed, answer)

    softkey = await enrol(db, service, person)
    with pytest.raises(PasskeyError, match="RP ID"):
        await login(db, service, softkey, rp_id="evil.example")


async def test_user_not_verified_is_refused(db: Database, service: Passkeys, person: str) -> None:
    softkey = SoftKey()
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    answer = softkey.create(ceremony.options_json, verified=False)
    with pytest.raises(PasskeyError) as refused:
        async with db.session() as session:
            await service.register(session, person, ceremony.sealed, answer)
    assert refused.value.message == passkeys.NOT_VERIFIED

    softkey = await enrol(db, service, person)
    with pytest.raises(PasskeyError) as refused:
        await login(db, service, softkey, verified=False)
    assert refused.value.message == passkeys.NOT_VERIFIED
    row = await stored(db, softkey)
    assert row is not None and row.sign_count == 0 and row.last_used_at is None


async def test_replayed_login_challenge_is_refused(
    db: Database, service: Passkeys, person: str
) -> None:
    softkey = await enrol(db, service, person)
    ceremony = service.login_options("pending-1")
    async with db.session() as session:
        await service.login(
            session, "pending-1", ceremony.sealed, softkey.get(ceremony.options_json)
        )
    # Even a fresh signature (counter higher) over the spent challenge is refused.
    with pytest.raises(PasskeyError, match="already used"):
        async with db.session() as session:
            await service.login(
                session, "pending-1", ceremony.sealed, softkey.get(ceremony.options_json)
            )


async def test_replayed_registration_is_refused(
    db: Database, service: Passkeys, person: str
) -> None:
    softkey = SoftKey()
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    answer = softkey.create(ceremony.options_json)
    async with db.session() as session:
        await service.register(session, person, ceremony.sealed, answer)
    with pytest.raises(PasskeyError, match="already used"):
        async with db.session() as session:
            await service.register(session, person, ceremony.sealed, answer)


async def test_expired_challenge_is_refused(db: Database, service: Passkeys, person: str) -> None:
    softkey = await enrol(db, service, person)
    challenge = secrets.token_bytes(32)
    past = datetime.now(UTC) - timedelta(seconds=1)
    sealed = service.seal.seal(LOGIN, "pending-2", challenge, past)
    options = json.dumps({"challenge": b64(challenge)})
    with pytest.raises(PasskeyError, match="expired"):
        async with db.session() as session:
            await service.login(session, "pending-2", sealed, softkey.get(options))
    # The seal's own clock: a live challenge is refused once its time is up.
    live = service.login_options("pending-3")
    later = live.expires_at + timedelta(seconds=1)
    with pytest.raises(PasskeyError, match="expired"):
        service.seal.open(live.sealed, LOGIN, "pending-3", at=later)


async def test_challenge_is_bound_to_its_purpose_and_its_owner(
    db: Database, service: Passkeys, person: str, people: list[str]
) -> None:
    softkey = await enrol(db, service, person)
    ceremony = service.login_options("pending-a")
    answer = softkey.get(ceremony.options_json)
    with pytest.raises(PasskeyError, match="not issued"):  # another pending request
        async with db.session() as session:
            await service.login(session, "pending-b", ceremony.sealed, answer)
    with pytest.raises(PasskeyError, match="not issued"):  # a login seal used to register
        service.seal.open(ceremony.sealed, REGISTER, "pending-a")

    async with db.session() as session:
        registration = await service.registration_options(session, person)
    other = next(p for p in people if p != person)
    with pytest.raises(PasskeyError, match="not issued"):  # another person's ceremony
        async with db.session() as session:
            await service.register(
                session, other, registration.sealed, SoftKey().create(registration.options_json)
            )

    tampered = ceremony.sealed[:-2] + ("AA" if not ceremony.sealed.endswith("AA") else "BB")
    for sealed in (tampered, None, "", "a.b", "x" * 400, "!!.1.x"):
        with pytest.raises(PasskeyError):
            service.seal.open(sealed, LOGIN, "pending-a")


async def test_unknown_credential_is_refused(db: Database, service: Passkeys) -> None:
    stranger = SoftKey(user_handle=b"someone")
    with pytest.raises(PasskeyError) as refused:
        await login(db, service, stranger)
    assert refused.value.message == passkeys.UNKNOWN


async def test_counter_going_backwards_is_refused_and_audited(
    db: Database, service: Passkeys, person: str
) -> None:
    softkey = await enrol(db, service, person)
    await login(db, service, softkey, counter=5)
    for counter in (5, 3, 0):
        ceremony = service.login_options("pending-c")
        caught: CloneWarning | None = None
        async with db.session() as session:
            try:
                await service.login(
                    session,
                    "pending-c",
                    ceremony.sealed,
                    softkey.get(ceremony.options_json, counter=counter),
                )
            except CloneWarning as exc:
                caught = exc  # as the page does: keep the audit event
        assert caught is not None and caught.message == passkeys.REFUSED
    async with db.session() as session:
        events = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.pid == person, AuditEvent.event == "passkey_clone_warning"
                )
            )
        ).all()
    assert [(e.detail["stored"], e.detail["presented"]) for e in events] == [(5, 5), (5, 3), (5, 0)]
    row = await stored(db, softkey)
    assert row is not None and row.sign_count == 5  # the genuine key goes on from here
    assert (await login(db, service, softkey, counter=6)).pid == person


async def test_user_handle_must_be_the_owners(db: Database, service: Passkeys, person: str) -> None:
    softkey = await enrol(db, service, person)
    with pytest.raises(PasskeyError, match="user handle"):
        await login(db, service, softkey, user_handle=service.user_handle("someone else"))


async def test_malformed_answers_are_refused_not_crashed_on(
    db: Database, service: Passkeys, person: str
) -> None:
    softkey = await enrol(db, service, person)
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    good = softkey.get(service.login_options("p").options_json)
    broken: list[Any] = [
        {},
        "not json",
        {"id": "x", "rawId": "y", "type": "public-key", "response": {}},
        {**good, "response": {**good["response"], "signature": b64(b"\x30\x00")}},
        {**good, "response": {**good["response"], "authenticatorData": "AAAA"}},
        {**good, "type": "password"},
    ]
    for answer in broken:
        with pytest.raises(PasskeyError):
            async with db.session() as session:
                await service.register(session, person, ceremony.sealed, answer)
        login_ceremony = service.login_options("p")
        with pytest.raises(PasskeyError):
            async with db.session() as session:
                await service.login(session, "p", login_ceremony.sealed, answer)


async def test_the_same_passkey_cannot_be_added_twice(
    db: Database, service: Passkeys, person: str, people: list[str]
) -> None:
    softkey = await enrol(db, service, person)
    other = next(p for p in people if p != person)
    async with db.session() as session:
        ceremony = await service.registration_options(session, other)
    with pytest.raises(PasskeyError) as refused:
        async with db.session() as session:
            await service.register(
                session, other, ceremony.sealed, softkey.create(ceremony.options_json)
            )
    assert refused.value.message == passkeys.ALREADY_ADDED
    row = await stored(db, softkey)
    assert row is not None and row.pid == person


async def test_a_person_has_at_most_ten_passkeys(
    db: Database, service: Passkeys, person: str
) -> None:
    async with db.session() as session:
        for _ in range(passkeys.MAX_PASSKEYS):
            session.add(
                PasskeyCredential(
                    credential_id=b64(secrets.token_bytes(16)),
                    pid=person,
                    public_key=b"",
                    transports=[],
                    created_at=datetime.now(UTC),
                )
            )
    async with db.session() as session:
        ceremony = await service.registration_options(session, person)
    with pytest.raises(PasskeyError) as refused:
        async with db.session() as session:
            await service.register(
                session, person, ceremony.sealed, SoftKey().create(ceremony.options_json)
            )
    assert refused.value.message == passkeys.TOO_MANY


async def test_people_remove_only_their_own_passkeys(
    db: Database, service: Passkeys, person: str, people: list[str]
) -> None:
    softkey = await enrol(db, service, person)
    other = next(p for p in people if p != person)
    async with db.session() as session:
        assert not await service.remove(session, other, softkey.id)
        assert not await service.remove(session, person, "no-such-credential")
    async with db.session() as session:
        assert await service.remove(session, person, softkey.id)
    assert await stored(db, softkey) is None
    with pytest.raises(PasskeyError):
        await login(db, service, softkey)


# --- over HTTP: the account page, the login page and the JSON endpoints --------------------


async def logged_in(rp: Rp, pid: str, acr: str) -> None:
    """A TestID login at `acr` through an ordinary authorization request: the client's
    cookie jar then holds the SSO cookie."""
    await rp.login(Pkce(), pid, acr)


def csrf(http: httpx.AsyncClient) -> dict[str, str]:
    return {"x-csrf-token": http.cookies[CSRF_COOKIE]}


def options_in(page: str) -> str:
    """The data-options attribute of the page (HTML-escaped JSON)."""
    import html

    start = page.index('data-options="') + len('data-options="')
    return html.unescape(page[start : page.index('"', start)])


async def test_account_page_needs_a_session_at_level_high(
    rp: Rp, http: httpx.AsyncClient, person: str
) -> None:
    step_up = "/account/start?next=%2Faccount%2Fpasskeys&acr=idporten-loa-high"
    response = await http.get(ACCOUNT_PATH)
    assert response.status_code == 303 and response.headers["location"] == step_up
    await logged_in(rp, person, levels.SUBSTANTIAL)
    response = await http.get(ACCOUNT_PATH)  # a weaker login cannot add a strong credential
    assert response.status_code == 303 and response.headers["location"] == step_up
    await http.get("/")  # a page with a form gives the browser its CSRF cookie
    registered = await http.post(
        ACCOUNT_PATH + "/register", json={"credential": {}}, headers=csrf(http)
    )
    assert registered.status_code == 401 and registered.json() == {"redirect": step_up}
    # The step-up goes through the login page, at level high.
    start = await http.get(step_up)
    authorize = await http.get(start.headers["location"])
    assert authorize.headers["location"].startswith("/login?auth=")


async def test_add_list_and_remove_a_passkey_through_the_pages(
    rp: Rp, http: httpx.AsyncClient, db: Database, person: str
) -> None:
    await logged_in(rp, person, levels.HIGH)
    page = await http.get(ACCOUNT_PATH, headers={"accept-language": "en"})
    assert page.status_code == 200 and "You have not added any passkeys yet." in page.text
    assert page.headers["cache-control"] == "no-store"
    cookie = next(c for c in page.headers.get_list("set-cookie") if REGISTER_COOKIE in c)
    assert (
        "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/account/passkeys" in cookie
    )
    softkey = SoftKey()
    body = {"credential": softkey.create(options_in(page.text)), "name": "Work laptop"}

    refused = await http.post(ACCOUNT_PATH + "/register", json=body)  # no CSRF token
    assert refused.status_code == 403
    added = await http.post(ACCOUNT_PATH + "/register", json=body, headers=csrf(http))
    assert added.status_code == 200, added.text
    assert added.json() == {"redirect": "/account/passkeys?done=added"}
    again = await http.post(ACCOUNT_PATH + "/register", json=body, headers=csrf(http))
    assert again.status_code == 400  # the challenge is spent (and its cookie gone)
    assert "options" in again.json() and again.json()["error"]

    page = await http.get(ACCOUNT_PATH + "?done=added", headers={"accept-language": "en"})
    assert "Your passkey has been added." in page.text and "Work laptop" in page.text
    assert "Not used yet" in page.text
    assert softkey.id in options_in(page.text)  # excluded from the next registration

    removed = await http.post(
        ACCOUNT_PATH + "/remove",
        data={"credential_id": softkey.id, "csrf_token": http.cookies[CSRF_COOKIE]},
    )
    assert removed.status_code == 303 and removed.headers["location"].endswith("?done=removed")
    assert await stored(db, softkey) is None


async def test_registration_errors_come_back_in_the_persons_language(
    rp: Rp, http: httpx.AsyncClient, person: str
) -> None:
    await logged_in(rp, person, levels.HIGH)
    page = await http.get(ACCOUNT_PATH)
    answer = SoftKey().create(options_in(page.text), verified=False)
    refused = await http.post(
        ACCOUNT_PATH + "/register",
        json={"credential": answer, "name": None},
        headers={**csrf(http), "accept-language": "en"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == passkeys.NOT_VERIFIED
    fresh = json.loads(refused.json()["options"])
    assert fresh["challenge"] != json.loads(options_in(page.text))["challenge"]
    # The fresh options work (their challenge is in the new cookie).
    retry = await http.post(
        ACCOUNT_PATH + "/register",
        json={"credential": SoftKey().create(refused.json()["options"])},
        headers=csrf(http),
    )
    assert retry.status_code == 200, retry.text
    junk: list[Any] = [{"credential": "text"}, {"name": 5, "credential": {}}, []]
    for body in junk:
        bad = await http.post(ACCOUNT_PATH + "/register", json=body, headers=csrf(http))
        assert bad.status_code == 400


async def test_log_in_with_a_passkey_to_a_service_gives_high_and_hwk(
    db: Database, http: httpx.AsyncClient, service: Passkeys, person: str
) -> None:
    softkey = await enrol(db, service, person)
    client, secret = await register(db)
    rp = Rp(http, client.client_id, secret, REDIRECT)
    pkce = Pkce()
    start = await rp.authorize(pkce, acr_values=levels.HIGH)
    auth = query_of(start.headers["location"])["auth"]
    page = await http.get(f"/login/passkey?auth={auth}", headers={"accept-language": "en"})
    assert page.status_code == 200 and "Log in with a passkey" in page.text
    assert "<noscript>" in page.text and f"/login?auth={auth}" in page.text
    options = json.loads(options_in(page.text))
    assert options["allowCredentials"] == [] and options["userVerification"] == "required"
    assert http.cookies.get(LOGIN_COOKIE, path="/login/passkey")

    answer = {"auth": auth, "credential": softkey.get(options_in(page.text))}
    assert (await http.post("/login/passkey/verify", json=answer)).status_code == 403  # CSRF
    done = await http.post("/login/passkey/verify", json=answer, headers=csrf(http))
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    assert any(c.startswith("felles_sso=") for c in done.headers.get_list("set-cookie"))
    result = query_of(done.json()["redirect"])
    assert done.json()["redirect"].startswith(REDIRECT)
    tokens = (await rp.token(result["code"], pkce)).json()
    claims = await verify_id_token(http, tokens["id_token"], rp.client_id)
    assert claims["acr"] == levels.HIGH and claims["amr"] == ["hwk"] and claims["pid"] == person

    # The request is finished: a second answer is sent back to its page, which says so.
    again = await http.post(
        "/login/passkey/verify",
        json={"auth": auth, "credential": softkey.get(options_in(page.text))},
        headers=csrf(http),
    )
    assert again.json() == {"redirect": f"/login/passkey?auth={auth}"}
    assert (await http.get(again.json()["redirect"])).status_code == 400


async def test_a_clone_warning_at_login_is_audited_and_refused(
    db: Database, http: httpx.AsyncClient, rp: Rp, service: Passkeys, person: str
) -> None:
    softkey = await enrol(db, service, person)
    await login(db, service, softkey, counter=10)
    start = await rp.authorize(Pkce(), acr_values=levels.HIGH)
    auth = query_of(start.headers["location"])["auth"]
    page = await http.get(f"/login/passkey?auth={auth}")
    answer = {"auth": auth, "credential": softkey.get(options_in(page.text), counter=9)}
    refused = await http.post(
        "/login/passkey/verify", json=answer, headers={**csrf(http), "accept-language": "en"}
    )
    assert refused.status_code == 400 and refused.json()["error"] == passkeys.REFUSED
    assert "felles_sso" not in refused.headers.get("set-cookie", "")
    async with db.session() as session:
        event = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.pid == person, AuditEvent.event == "passkey_clone_warning"
            )
        )
    assert event is not None and event.detail["presented"] == 9
    # The genuine key, counting on, still logs in with the fresh options.
    retry = {"auth": auth, "credential": softkey.get(refused.json()["options"], counter=11)}
    done = await http.post("/login/passkey/verify", json=retry, headers=csrf(http))
    assert done.status_code == 200 and done.json()["redirect"].startswith(REDIRECT)


async def test_login_endpoint_refuses_junk_and_unknown_requests(http: httpx.AsyncClient) -> None:
    page = await http.get("/login/passkey?auth=no-such-request")
    assert page.status_code == 400  # the plain-language error page
    await http.get("/")  # a CSRF cookie
    for body in ({}, {"auth": ""}, {"auth": "x" * 101, "credential": {}}):
        refused = await http.post("/login/passkey/verify", json=body, headers=csrf(http))
        assert refused.status_code == 400 and "error" in refused.json()
    gone = await http.post(
        "/login/passkey/verify",
        json={
            "auth": "no-such-request",
            "credential": SoftKey().get(json.dumps({"challenge": "AA"})),
        },
        headers=csrf(http),
    )
    assert gone.json() == {"redirect": "/login/passkey?auth=no-such-request"}
    form = await http.post(
        "/login/passkey/verify",
        data={"auth": "x", "csrf_token": http.cookies[CSRF_COOKIE]},
    )
    assert form.status_code == 400  # JSON only
