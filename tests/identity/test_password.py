"""The password + one-time code login method, over HTTP as a browser and a service use it.

Every flow runs through the real app: authorization request, the login pages with their
CSRF tokens, codes read from a real SMTP server and a real SMS gateway, and the token
exchange at the end. Each test has its own person and its own client address, so the
lockouts and rate limits of one test never touch another.
"""

from __future__ import annotations

import html
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select, update

from felles.db import Database
from felles.identity import housekeeping
from felles.identity import password as pw
from felles.identity.models import AuditEvent, OneTimeCode, PasswordCredential, TotpCredential
from felles.identity.password import (
    LOCK_SECONDS,
    PasswordLogin,
    PasswordProblem,
    password_problems,
)
from felles.identity.password_pages import login_service
from felles.identity.ratelimit import RedisRateLimiter
from felles.notifications.service import Notifier
from felles.registry import service as registry
from tests.identity.conftest import REDIRECT, register
from tests.identity.oidc import SUBSTANTIAL, Pkce, Rp, query_of, verify_id_token
from tests.identity.test_ratelimit import REDIS_URL
from tests.notifications.test_notifications import SmsGateway, SmtpSink

PASSWORD = "lilla elefant danser tango"
_person_numbers = itertools.count(100)


# --- A browser that fills in forms ------------------------------------------------------


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": values.get("action", ""), "fields": {}, "radios": []})
        elif tag == "input" and self.forms and "name" in values:
            if values.get("type") == "radio":
                self.forms[-1]["radios"].append(values["value"])
            else:
                self.forms[-1]["fields"][values["name"]] = values.get("value", "")


def form_fields(page: str, action: str) -> dict[str, str]:
    parser = _Forms()
    parser.feed(page)
    for found in parser.forms:
        if found["action"] == action:
            return dict(found["fields"])
    raise AssertionError(f"no form posting to {action} in the page")


def radio_values(page: str, action: str) -> list[str]:
    parser = _Forms()
    parser.feed(page)
    return next(f["radios"] for f in parser.forms if f["action"] == action)


def error_summary(page: str) -> list[tuple[str, str]]:
    """(field, message) for each error in the summary at the top of the page."""
    box = re.search(r'<div class="ds-error-summary.*?</div>', page, re.S)
    if box is None:
        return []
    links = re.findall(r'<a class="ds-link" href="#([\w-]+)">(.*?)</a>', box.group(0), re.S)
    return [(f, html.unescape(" ".join(m.split()))) for f, m in links]


def only_error(page: str) -> str:
    errors = error_summary(page)
    assert len(errors) == 1, errors
    return errors[0][1]


@dataclass
class Browser:
    """One person's browser: its cookies, its address, and every URL it saw."""

    http: httpx.AsyncClient
    urls: list[str] = field(default_factory=list)

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(path, params=params or None)

    async def submit(self, page: str, action: str, **values: str) -> httpx.Response:
        """Post a form from `page` as a person would: its hidden fields plus `values`."""
        data = form_fields(page, action)
        data.update(values)
        return await self.http.post(action, data=data)


@asynccontextmanager
async def open_browser(app: Any) -> AsyncIterator[Browser]:
    """A new browser with an address of its own (rate limits are per address)."""
    address = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    urls: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        urls.append(str(request.url))

    async def on_response(response: httpx.Response) -> None:
        if "location" in response.headers:
            urls.append(response.headers["location"])

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)),
        base_url="http://testserver",
        cookies={"felles_lang": "en"},  # the tests read English (the source language)
        event_hooks={"request": [on_request], "response": [on_response]},
    ) as client:
        yield Browser(client, urls)


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[Browser]:
    async with open_browser(app) as b:
        yield b


# --- People, services and message sinks ------------------------------------------------


@dataclass
class Person:
    pid: str
    mobile: str | None
    email: str | None


@pytest.fixture
def svc(app: Any) -> PasswordLogin:
    return login_service(app)


MakePerson = Callable[..., Awaitable[Person]]


@pytest.fixture
def make_person(db: Database, svc: PasswordLogin) -> MakePerson:
    """A person of their own for each call, with contact details and a password."""

    async def make(
        *, mobile: bool = True, email: bool = True, password: str | None = PASSWORD
    ) -> Person:
        index = next(_person_numbers)
        async with db.session() as session:
            pid = (await registry.list_people(session, limit=index + 1))[index].pid
            number = f"+479{index:07d}"
            address = f"person{index}.{secrets.token_hex(3)}@example.no"
            await registry.set_contact(
                session,
                pid,
                email=address if email else None,
                mobile=number if mobile else None,
                confirmed_on=date.today(),
            )
        if password:
            await svc.set_password(pid, password)
        return Person(pid, number if mobile else None, address if email else None)

    return make


@pytest.fixture
def sinks(svc: PasswordLogin) -> Iterator[tuple[SmtpSink, SmsGateway]]:
    """Point the app's notifier at a real SMTP server and a real SMS gateway."""
    with SmtpSink() as smtp, SmsGateway() as gateway:
        previous = svc.notifier
        svc.notifier = Notifier(smtp_url=smtp.url, sms_gateway_url=gateway.url)
        try:
            yield smtp, gateway
        finally:
            svc.notifier = previous


@dataclass(frozen=True)
class Service:
    """A registered public service (confidential client)."""

    client_id: str
    secret: str | None

    def rp(self, b: Browser) -> Rp:
        return Rp(b.http, self.client_id, self.secret, REDIRECT)


@pytest.fixture
async def service(db: Database) -> Service:
    client, secret = await register(db)
    return Service(client.client_id, secret)


def code_in(text: str) -> str:
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)


def assert_pid_never_in_urls(b: Browser, pid: str) -> None:
    """Not in a request URL nor a redirect; TestID's own login hint is the exception
    the tests use to start an SSO session."""
    assert b.urls, "the browser saw no URL"
    for url in b.urls:
        if "login_hint=testid" not in url:
            assert pid not in url, url


# --- Flows -----------------------------------------------------------------------------


async def start(b: Browser, service: Service, pkce: Pkce, **extra: str) -> str:
    """An authorization request without an SSO session: the pending login's id."""
    response = await service.rp(b).authorize(pkce, **extra)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/login?auth="), location
    return query_of(location)["auth"]


async def password_page(b: Browser, auth: str) -> str:
    response = await b.get("/login/password", auth=auth)
    assert response.status_code == 200, response.text
    return response.text


async def submit_password(b: Browser, auth: str, pid: str, password: str) -> httpx.Response:
    page = await password_page(b, auth)
    return await b.submit(page, "/login/password", pid=pid, password=password)


async def finish_at_rp(
    b: Browser, service: Service, pkce: Pkce, response: httpx.Response
) -> dict[str, Any]:
    """The redirect back to the service, the token exchange and the ID token's claims."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    tokens = await service.rp(b).token(query_of(location)["code"], pkce)
    assert tokens.status_code == 200, tokens.text
    return await verify_id_token(b.http, tokens.json()["id_token"], service.client_id)


async def login_with_sms(
    b: Browser, service: Service, person: Person, gateway: SmsGateway
) -> dict[str, Any]:
    pkce = Pkce()
    auth = await start(b, service, pkce)
    response = await submit_password(b, auth, person.pid, PASSWORD)
    assert response.status_code == 200, response.text
    page = response.text
    if "/login/password/send" in page:
        page = (await b.submit(page, "/login/password/send", channel="sms")).text
    code = code_in(gateway.texts_to(person.mobile or "")[-1])
    return await finish_at_rp(
        b, service, pkce, await b.submit(page, "/login/password/code", code=code)
    )


# --- The method on the login page -------------------------------------------------------


async def test_the_method_is_offered_for_substantial_only(
    browser: Browser, service: Service
) -> None:
    auth = await start(browser, service, Pkce())
    page = (await browser.get("/login", auth=auth)).text
    assert f'href="/login/password?auth={auth}"' in page
    assert "Password and code" in page
    high = await start(browser, service, Pkce(), acr_values="idporten-loa-high")
    assert "/login/password?" not in (await browser.get("/login", auth=high)).text
    direct = await browser.get("/login/password", auth=high)  # typed in: back to the choice
    assert direct.status_code == 303 and direct.headers["location"] == f"/login?auth={high}"


# --- Enrolment and a first login --------------------------------------------------------


async def test_enrol_a_password_then_log_in_with_it_and_an_sms_code(
    app: Any,
    db: Database,
    svc: PasswordLogin,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(password=None)
    async with open_browser(app) as b:
        # Not logged in: the account page sends the person to log in first.
        response = await b.get("/account/password")
        assert response.status_code == 303
        assert response.headers["location"] == "/account/start?next=%2Faccount%2Fpassword"
        # Log in with TestID (a headless login hint), which starts an SSO session.
        await service.rp(b).login(Pkce(), person.pid)
        page = (await b.get("/account/password")).text
        assert "Set a password" in page

        weak = await b.submit(
            page, "/account/password", password=person.pid[:6] + "x", password_again="other"
        )
        assert weak.status_code == 400
        assert error_summary(weak.text) == [
            ("password", "The password must be at least 10 characters"),
            (
                "password",
                "The password must not contain your national identity number or birth date",
            ),
            ("password_again", "The two passwords are not the same"),
        ]
        assert 'aria-invalid="true"' in weak.text and 'href="#password"' in weak.text
        common = await b.submit(
            page, "/account/password", password="Password123", password_again="Password123"
        )
        assert only_error(common.text).startswith("This password is one of the most common")

        done = await b.submit(page, "/account/password", password=PASSWORD, password_again=PASSWORD)
        assert done.status_code == 200
        assert "Your password is saved" in done.text
        assert re.search(r'class="reference">[A-Z2-9]{4}-[A-Z2-9]{4}<', done.text)
        again = (await b.get("/account/password")).text
        assert "Change your password" in again
        assert_pid_never_in_urls(b, person.pid)

    async with db.session() as session:
        stored = await session.get(PasswordCredential, person.pid)
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash

    async with open_browser(app) as b:
        claims = await login_with_sms(b, service, person, gateway)
        assert claims["acr"] == SUBSTANTIAL
        assert claims["amr"] == ["pwd", "sms"]
        assert_pid_never_in_urls(b, person.pid)


async def test_both_channels_let_the_person_choose_and_email_works(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    smtp, gateway = sinks
    person = await make_person()
    pkce = Pkce()
    auth = await start(browser, service, pkce)
    response = await submit_password(browser, auth, person.pid, PASSWORD)
    assert "Where should we send your code?" in response.text
    assert radio_values(response.text, "/login/password/send") == ["sms", "email"]
    assert "*** ** " in response.text and "p***@example.no" in response.text
    assert person.pid not in response.text and (person.mobile or "") not in response.text

    nothing = await browser.submit(response.text, "/login/password/send")
    assert nothing.status_code == 400
    assert error_summary(nothing.text) == [("channel", "Choose where we should send the code")]

    page = (await browser.submit(response.text, "/login/password/send", channel="email")).text
    assert "We have sent a code by e-mail to p***@example.no" in page
    assert gateway.received == []
    [text] = smtp.texts_to(person.email or "")
    assert smtp.messages[0]["Subject"] == "Your code to log in to Felles"
    assert "/account/password" in text
    claims = await finish_at_rp(
        browser,
        service,
        pkce,
        await browser.submit(page, "/login/password/code", code=code_in(text)),
    )
    assert claims["amr"] == ["pwd", "otp"]
    assert_pid_never_in_urls(browser, person.pid)


async def test_one_channel_sends_the_code_at_once(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(email=False)
    auth = await start(browser, service, Pkce())
    response = await submit_password(browser, auth, person.pid, PASSWORD)
    assert "We have sent a code by SMS to *** ** " in response.text
    [text] = gateway.texts_to(person.mobile or "")
    assert "is your code to log in to Felles" in text
    assert text.endswith(f"@testserver #{code_in(text)}")  # WebOTP: only our site


async def test_no_mobile_and_no_email_means_no_code(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    person = await make_person(mobile=False, email=False)
    auth = await start(browser, service, Pkce())
    response = await submit_password(browser, auth, person.pid, PASSWORD)
    assert response.status_code == 400
    assert only_error(response.text).startswith("We cannot send you a code")


# --- Wrong input -------------------------------------------------------------------------


async def test_wrong_password_and_unknown_person_get_the_same_answer(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    person = await make_person()
    stranger = await make_person(password=None)
    auth = await start(browser, service, Pkce())
    wrong = await submit_password(browser, auth, person.pid, "not the password")
    unknown = await submit_password(browser, auth, stranger.pid, PASSWORD)
    assert wrong.status_code == unknown.status_code == 400
    assert (
        error_summary(wrong.text)
        == error_summary(unknown.text)
        == [("pid", "The national identity number or the password is wrong")]
    )
    assert_pid_never_in_urls(browser, person.pid)
    async with db.session() as session:
        events = (
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.event == "login_failed", AuditEvent.client_id == service.client_id
                )
            )
        ).all()
    reasons = [(e.pid, e.detail["reason"], e.detail["method"]) for e in events]
    assert (person.pid, "wrong_password", "password") in reasons
    assert (None, "wrong_password", "password") in reasons  # no password: no person named


async def test_missing_and_malformed_fields(browser: Browser, service: Service) -> None:
    auth = await start(browser, service, Pkce())
    page = await password_page(browser, auth)
    empty = await browser.submit(page, "/login/password")
    assert empty.status_code == 400
    assert error_summary(empty.text) == [
        ("pid", "Enter your national identity number"),
        ("password", "Enter your password"),
    ]
    bad = await browser.submit(page, "/login/password", pid="12345", password="x")
    assert error_summary(bad.text) == [("pid", "Enter a national identity number of 11 digits")]
    assert 'id="pid-error"' in bad.text and 'aria-describedby="pid-error"' in bad.text


async def test_a_wrong_code_then_the_right_one(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(email=False)
    pkce = Pkce()
    auth = await start(browser, service, pkce)
    page = (await submit_password(browser, auth, person.pid, PASSWORD)).text
    code = code_in(gateway.texts_to(person.mobile or "")[-1])
    wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
    wrong = await browser.submit(page, "/login/password/code", code=wrong_code)
    assert wrong.status_code == 400
    assert error_summary(wrong.text) == [("code", "The code is wrong. You can try 4 more times.")]
    letters = await browser.submit(page, "/login/password/code", code="12ab56")
    assert only_error(letters.text) == "The code must be 6 digits"
    claims = await finish_at_rp(
        browser, service, pkce, await browser.submit(wrong.text, "/login/password/code", code=code)
    )
    assert claims["amr"] == ["pwd", "sms"]


async def test_five_wrong_codes_use_the_code_up(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(email=False)
    auth = await start(browser, service, Pkce())
    page = (await submit_password(browser, auth, person.pid, PASSWORD)).text
    code = code_in(gateway.texts_to(person.mobile or "")[-1])
    wrong_code = f"{(int(code) + 7) % 1_000_000:06d}"
    answers = [
        only_error((await browser.submit(page, "/login/password/code", code=wrong_code)).text)
        for _ in range(5)
    ]
    assert answers[3] == "The code is wrong. You can try 1 more time."
    assert answers[4] == "You have entered a wrong code too many times. Send a new code."
    right = await browser.submit(page, "/login/password/code", code=code)
    assert right.status_code == 400
    assert (
        only_error(right.text) == "You have entered a wrong code too many times. Send a new code."
    )

    # A new code works again.
    resent = await browser.submit(page, "/login/password/resend")
    assert "We have sent you a new code." in resent.text
    new_code = code_in(gateway.texts_to(person.mobile or "")[-1])
    done = await browser.submit(resent.text, "/login/password/code", code=new_code)
    assert done.status_code == 303 and done.headers["location"].startswith(REDIRECT)


async def test_an_expired_code_is_refused(
    browser: Browser,
    svc: PasswordLogin,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(email=False)
    auth = await start(browser, service, Pkce())
    page = (await submit_password(browser, auth, person.pid, PASSWORD)).text
    code = code_in(gateway.texts_to(person.mobile or "")[-1])
    async with db.session() as session:
        await session.execute(
            update(OneTimeCode)
            .where(OneTimeCode.pid == person.pid)
            .values(expires_at=pw.now() - timedelta(seconds=1))
        )
    response = await browser.submit(page, "/login/password/code", code=code)
    assert response.status_code == 400
    assert only_error(response.text) == "The code has expired. Send a new code."
    async with db.session() as session:  # long expired: housekeeping takes it
        await session.execute(
            update(OneTimeCode)
            .where(OneTimeCode.pid == person.pid)
            .values(expires_at=pw.now() - housekeeping.MARGIN - timedelta(seconds=1))
        )
    assert (await housekeeping.purge(db))["one-time codes"] >= 1
    async with db.session() as session:
        left = await session.scalars(select(OneTimeCode).where(OneTimeCode.pid == person.pid))
        assert left.all() == []


async def test_a_code_works_only_once(
    browser: Browser,
    db: Database,
    svc: PasswordLogin,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(email=False)
    auth = await start(browser, service, Pkce())
    page = (await submit_password(browser, auth, person.pid, PASSWORD)).text
    code = code_in(gateway.texts_to(person.mobile or "")[-1])
    first = await browser.submit(page, "/login/password/code", code=code)
    assert first.status_code == 303 and first.headers["location"].startswith(REDIRECT)
    replay = await browser.submit(page, "/login/password/code", code=code)
    assert replay.status_code == 400
    assert "location" not in replay.headers  # no second authorization code
    async with db.session() as session:
        row = (
            await session.scalars(select(OneTimeCode).where(OneTimeCode.pid == person.pid))
        ).one()
        assert row.used_at is not None and row.code_hash != code and code not in row.code_hash
        again = await svc.check_code(session, row.id, person.pid, code)
    assert again.result is pw.CodeResult.used


async def test_the_state_is_bound_to_its_login_and_cannot_be_forged(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person(email=False)
    auth = await start(browser, service, Pkce())
    page = (await submit_password(browser, auth, person.pid, PASSWORD)).text
    code = code_in(gateway.texts_to(person.mobile or "")[-1])
    other = await start(browser, service, Pkce())
    moved = await browser.submit(page, "/login/password/code", auth=other, code=code)
    assert only_error(moved.text).startswith("The login took too long")
    state = form_fields(page, "/login/password/code")["state"]
    forged = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
    tampered = await browser.submit(page, "/login/password/code", state=forged, code=code)
    assert only_error(tampered.text).startswith("The login took too long")
    assert person.pid not in page  # the state is sealed, not signed plain text
    assert (await browser.get("/login/password/code", auth=auth)).status_code == 303


# --- Lockout and rate limits ---------------------------------------------------------------


async def test_five_wrong_passwords_lock_the_account_for_15_minutes(
    app: Any,
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    person = await make_person()
    auth = await start(browser, service, Pkce())
    answers = [
        await submit_password(browser, auth, person.pid, f"wrong password {i}") for i in range(5)
    ]
    assert all(only_error(a.text).startswith("The national identity") for a in answers[:4])
    locked = answers[4]
    assert locked.status_code == 429
    assert only_error(locked.text) == (
        "You have entered a wrong password too many times. You can try again in 15 minutes."
    )
    assert int(locked.headers["retry-after"]) == LOCK_SECONDS

    right = await submit_password(browser, auth, person.pid, PASSWORD)
    assert right.status_code == 429
    assert only_error(right.text).startswith("You have entered a wrong password too many times")
    async with open_browser(app) as elsewhere:
        other_auth = await start(elsewhere, service, Pkce())
        from_elsewhere = await submit_password(elsewhere, other_auth, person.pid, PASSWORD)
        assert from_elsewhere.status_code == 429  # the lock is on the account, not the address

    async with db.session() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.pid == person.pid))
        ).all()
    names = [(e.event, e.detail.get("reason")) for e in events]
    assert ("locked_out", None) in names
    assert ("login_failed", "locked") in names
    assert names.count(("login_failed", "wrong_password")) == 5


async def test_the_lock_ends_and_a_right_password_clears_the_failures(
    browser: Browser,
    db: Database,
    svc: PasswordLogin,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    person = await make_person()
    auth = await start(browser, service, Pkce())
    for i in range(5):
        await submit_password(browser, auth, person.pid, f"wrong {i}")
    await svc.limiter.reset(f"pw-lock:{svc.account_key(person.pid)}")  # 15 minutes pass
    for i in range(4):
        await submit_password(browser, auth, person.pid, f"wrong again {i}")
    ok = await submit_password(browser, auth, person.pid, PASSWORD)
    assert ok.status_code == 200 and "Where should we send your code?" in ok.text
    wrong = await submit_password(browser, auth, person.pid, "wrong once more")
    assert wrong.status_code == 400  # the count started over after the right password


async def test_a_new_password_lifts_the_lock(
    browser: Browser, service: Service, svc: PasswordLogin, make_person: MakePerson
) -> None:
    """Setting a password needs a login by another method: proof enough to start over."""
    person = await make_person()
    auth = await start(browser, service, Pkce())
    for i in range(5):
        await submit_password(browser, auth, person.pid, f"wrong {i}")
    assert (await submit_password(browser, auth, person.pid, PASSWORD)).status_code == 429
    await svc.set_password(person.pid, PASSWORD + " igjen")
    again = await submit_password(browser, auth, person.pid, PASSWORD + " igjen")
    assert again.status_code == 200


async def test_the_lockout_works_the_same_with_redis(
    browser: Browser,
    service: Service,
    svc: PasswordLogin,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    """Scale-out installations count in Redis; the pages cannot tell the difference."""
    redis = RedisRateLimiter(REDIS_URL)
    try:
        await redis.redis.ping()
    except Exception as exc:
        await redis.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL} ({exc})")
    previous, svc.limiter = svc.limiter, redis
    try:
        person = await make_person()
        auth = await start(browser, service, Pkce())
        answers = [await submit_password(browser, auth, person.pid, f"nope {i}") for i in range(5)]
        assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
        right = await submit_password(browser, auth, person.pid, PASSWORD)
        assert right.status_code == 429 and 840 < int(right.headers["retry-after"]) <= 900
        assert await redis.redis.exists(f"felles:rl:pw-lock:{svc.account_key(person.pid)}")
        assert not await redis.redis.keys(f"*{person.pid}*")
    finally:
        svc.limiter = previous
        await redis.aclose()


async def test_too_many_attempts_from_one_address(
    browser: Browser, db: Database, service: Service
) -> None:
    async with db.session() as session:
        # People no other test logs in (each gets one wrong password on their account).
        people = [p.pid for p in await registry.list_people(session, limit=300)][250:]
    auth = await start(browser, service, Pkce())
    page = await password_page(browser, auth)
    statuses = [
        (await browser.submit(page, "/login/password", pid=pid, password="guess guess")).status_code
        for pid in people[:30]
    ]
    assert statuses == [400] * 30
    limited = await browser.submit(page, "/login/password", pid=people[30], password="guess")
    assert limited.status_code == 429
    assert only_error(limited.text).startswith(
        "There have been too many attempts to log in from your network."
    )
    assert 0 < int(limited.headers["retry-after"]) <= 300


# --- The authenticator app ---------------------------------------------------------------


async def test_enrol_an_authenticator_app_log_in_with_it_and_remove_it(
    app: Any,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    _, gateway = sinks
    person = await make_person()
    async with open_browser(app) as b:
        assert (await b.get("/account/totp")).status_code == 303
        await service.rp(b).login(Pkce(), person.pid)
        page = (await b.get("/account/totp")).text
        assert '<img class="qr-code" src="data:image/svg+xml' in page
        secret = re.search(r'<code class="reference" id="secret">([A-Z2-7 ]+)</code>', page)
        assert secret is not None
        totp = pyotp.TOTP(secret.group(1).replace(" ", ""))
        assert (await b.get("/account/totp")).text.count(secret.group(1)) == 1  # same secret
        wrong = await b.submit(page, "/account/totp", code=f"{(int(totp.now()) + 1) % 10**6:06d}")
        assert wrong.status_code == 400 and only_error(wrong.text).startswith("The code is wrong")
        done = await b.submit(page, "/account/totp", code=totp.now())
        assert "Your authenticator app is set up" in done.text
        assert "Remove the authenticator app" in (await b.get("/account/totp")).text

    async with db.session() as session:
        row = await session.get(TotpCredential, person.pid)
        assert row is not None and secret.group(1).replace(" ", "").encode() not in row.secret

    async with open_browser(app) as b:
        pkce = Pkce()
        auth = await start(b, service, pkce)
        page = (await submit_password(b, auth, person.pid, PASSWORD)).text
        assert "Open the authenticator app on your phone" in page
        assert "Send a new code" not in page
        # The enrolment used this step's code; the next step's is within the drift allowed.
        code = totp.at(time.time() + 30)
        claims = await finish_at_rp(
            b, service, pkce, await b.submit(page, "/login/password/code", code=code)
        )
        assert claims["amr"] == ["pwd", "otp"]
        assert gateway.received == []  # no SMS when the app is there

        # The same code again, in another login: refused.
        auth = await start(b, service, Pkce(), prompt="login")
        page = (await submit_password(b, auth, person.pid, PASSWORD)).text
        replay = await b.submit(page, "/login/password/code", code=code)
        assert replay.status_code == 400
        assert only_error(replay.text) in (
            "This code has already been used. Wait until the app shows a new code.",
        )

        # Remove the app: from now on the code comes by SMS (the SSO cookie is from above).
        confirm = await b.get("/account/totp/remove")
        assert "Remove the authenticator app?" in confirm.text
        removed = await b.submit(confirm.text, "/account/totp/remove")
        assert "The authenticator app is removed" in removed.text
        assert_pid_never_in_urls(b, person.pid)

    async with open_browser(app) as b:
        auth = await start(b, service, Pkce())
        page = (await submit_password(b, auth, person.pid, PASSWORD)).text
        assert "Where should we send your code?" in page


def test_totp_drift_and_format() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    at = 1_700_000_000.0
    step = totp.timecode(at)
    assert pw.matching_step(secret, totp.at(at), at) == step
    assert pw.matching_step(secret, totp.at(at - 30), at) == step - 1
    assert pw.matching_step(secret, totp.at(at + 30), at) == step + 1
    assert pw.matching_step(secret, totp.at(at - 90), at) is None
    assert pw.matching_step(secret, "12345", at) is None
    assert pw.matching_step(secret, "abcdef", at) is None


# --- CSRF -------------------------------------------------------------------------------


async def test_every_form_needs_its_csrf_token(
    browser: Browser,
    db: Database,
    service: Service,
    sinks: tuple[SmtpSink, SmsGateway],
    make_person: MakePerson,
) -> None:
    person = await make_person()
    auth = await start(browser, service, Pkce())
    page = await password_page(browser, auth)
    await service.rp(browser).login(Pkce(), person.pid)
    forms = {
        "/login/password": {"auth": auth, "pid": person.pid, "password": PASSWORD},
        "/login/password/send": {"auth": auth, "state": "x", "channel": "sms"},
        "/login/password/resend": {"auth": auth, "state": "x"},
        "/login/password/code": {"auth": auth, "state": "x", "code": "123456"},
        "/account/password": {"password": PASSWORD, "password_again": PASSWORD},
        "/account/totp": {"code": "123456"},
        "/account/totp/remove": {},
    }
    for action, data in forms.items():
        refused = await browser.http.post(action, data=data)
        assert refused.status_code == 403, action
        wrong = await browser.http.post(action, data={**data, "csrf_token": "a.b"})
        assert wrong.status_code == 403, action
    assert "csrf_token" in form_fields(page, "/login/password")
    async with db.session() as session:
        events = set(
            await session.scalars(select(AuditEvent.event).where(AuditEvent.pid == person.pid))
        )
    assert events == {"password_set", "login"}  # the fixture's password and TestID: nothing else


# --- The domain rules --------------------------------------------------------------------


def test_password_rules() -> None:
    pid = "01018012345"  # a synthetic number: born 1 January 19xx/20xx
    assert password_problems("", "", pid) == [PasswordProblem.missing]
    assert password_problems("short", "short", pid) == [PasswordProblem.too_short]
    assert password_problems("x" * 129, "x" * 129, pid) == [PasswordProblem.too_long]
    assert password_problems("Manchester", "Manchester", pid) == [PasswordProblem.too_common]
    assert password_problems("passord123", "passord123", pid) == [PasswordProblem.too_common]
    assert PasswordProblem.personal in password_problems(f"hemmelig {pid}", None, pid)
    assert PasswordProblem.personal in password_problems("kari-010180-hei", None, pid)
    assert password_problems(PASSWORD, "something else", pid) == [PasswordProblem.mismatch]
    assert password_problems(PASSWORD, PASSWORD, pid) == []
    assert len(pw.common_passwords()) >= 1000


async def test_unknown_people_cost_the_same_work(
    db: Database, svc: PasswordLogin, monkeypatch: pytest.MonkeyPatch, make_person: MakePerson
) -> None:
    """Timing: a person without a password is checked against a dummy hash."""
    checked: list[str] = []
    real = pw._verify_hash

    def counting(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(pw, "_verify_hash", counting)
    stranger = await make_person(password=None)
    async with db.session() as session:
        assert not await svc.verify_password(session, stranger.pid, PASSWORD)
    assert checked == [pw._dummy_hash()]


async def test_a_hash_with_old_parameters_is_redone_at_login(
    db: Database, svc: PasswordLogin, make_person: MakePerson
) -> None:
    from argon2 import PasswordHasher

    person = await make_person(password=None)
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await svc.set_password(person.pid, PASSWORD)
    async with db.session() as session:
        row = await session.get(PasswordCredential, person.pid)
        assert row is not None
        row.password_hash = old
    async with db.session() as session:
        assert await svc.verify_password(session, person.pid, PASSWORD)
    async with db.session() as session:
        row = await session.get(PasswordCredential, person.pid)
        assert row is not None and row.password_hash != old
        assert not pw.HASHER.check_needs_rehash(row.password_hash)


async def test_rate_limit_keys_do_not_reveal_the_number(svc: PasswordLogin) -> None:
    pid = "01018012345"
    key = svc.account_key(pid)
    assert pid not in key and key == svc.account_key(pid)
    assert key != svc.account_key("01018012346")
