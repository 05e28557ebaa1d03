"""The person's own contact details (like KRR's "minprofil") over HTTP: changing e-mail and
mobile with a code sent to the new one, reservation, digital mailbox, the yearly
confirmation, history; login, CSRF, and nobody else's data."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from felles.db import Database
from felles.mailbox import contact
from felles.mailbox.contact import CONFIRM_EVERY, ContactCodes, InvalidContact, Kind
from felles.mailbox.contact_pages import BASE, CODE_CONTEXT, CODE_COOKIE
from felles.notifications.service import read_outbox
from felles.portal.models import PartyKind
from felles.portal.session import Party
from felles.registry import service as registry
from felles.registry.numbers import synthetic_pid
from felles.registry.schemas import ContactChangeRecord, ContactRecord, PersonRecord
from tests.portal.conftest import csrf, logged_in
from tests.portal.flow import log_in, post_form, use_app_as_provider

rng = random.Random()


async def new_person(
    db: Database,
    *,
    given: str = "Kari Anne",
    family: str = "Nordmann Li",
    email: str | None = None,
    mobile: str | None = None,
    confirmed_on: date | None = None,
    mailbox: str | None = None,
    language: str = "nb",
) -> str:
    """A fresh adult (so tests never share an entry), with contact details if given."""
    born = date(1970 + rng.randrange(30), rng.randrange(1, 13), rng.randrange(1, 28))
    person = PersonRecord.model_validate(
        {
            "pid": synthetic_pid(born, rng),
            "given_name": given,
            "middle_name": None,
            "family_name": family,
            "birth_date": born,
            "sex": "F",
            "citizenship": "NO",
            "street": "Storgata 1",
            "postal_code": "0155",
            "postal_town": "OSLO",
            "municipality_number": "0301",
            "municipality_name": "Oslo",
            "deceased_on": None,
        }
    )
    async with db.session() as session:
        await registry.register_person(session, person)
        if email or mobile:
            await registry.set_contact(
                session,
                person.pid,
                email=email,
                mobile=mobile,
                confirmed_on=confirmed_on or contact.today(),
                language=language,
            )
        if mailbox:
            await registry.set_mailbox(session, person.pid, provider=mailbox, address="x#1234")
    return person.pid


async def entry(db: Database, pid: str) -> ContactRecord | None:
    async with db.session() as session:
        return await registry.contact(session, pid, registry.Access("tests", "check"))


async def changes(db: Database, pid: str) -> list[ContactChangeRecord]:
    async with db.session() as session:
        return await registry.contact_history(session, pid)


def unique_email(name: str = "kari") -> str:
    return f"{name}.{rng.randrange(10**9)}@example.no"


def unique_mobile() -> str:
    return f"9{rng.randrange(10**7):07d}"


def sent_code(outbox: Any, to: str) -> str:
    """The code in the newest message to `to` in the dev outbox."""
    messages = [m for m in read_outbox(outbox) if m["to"] == to]
    assert messages, f"no message to {to}"
    found = re.search(r"\b(\d{6})\b", messages[-1]["text"])
    assert found, messages[-1]["text"]
    return found.group(1)


def error_summary(html: str) -> str:
    found = re.search(r'<div class="ds-error-summary.*?</div>', html, re.S)
    assert found, "the page has an error summary"
    return found.group(0)


def set_code_cookie(client: httpx.AsyncClient, value: str) -> None:
    """Put this pending change in the browser instead of the one it holds."""
    for cookie in list(client.cookies.jar):
        if cookie.name == CODE_COOKIE:
            client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    client.cookies.set(CODE_COOKIE, value, path=BASE)


async def post(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    return await client.post(path, data={**data, "csrf_token": await csrf(client)})


@pytest.fixture
def outbox(settings) -> Any:  # type: ignore[no-untyped-def]
    return settings.data_dir / "outbox"


# --- The rules, without HTTP ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Kari.Nordmann@Example.NO", "Kari.Nordmann@example.no"),
        ("  ola+post@sub.example.com ", "ola+post@sub.example.com"),
        ("ola@blåbær.no", "ola@blåbær.no"),
    ],
)
def test_good_email_addresses(typed: str, stored: str) -> None:
    assert contact.normalise_email(typed) == stored


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "missing"),
        ("   ", "missing"),
        ("kari", "format"),
        ("kari@", "format"),
        ("@example.no", "format"),
        ("kari@example", "format"),
        ("kari@@example.no", "format"),
        ("kari nordmann@example.no", "format"),
        ("kari..n@example.no", "format"),
        ("kari@-example.no", "format"),
        ("kari@example.no.", "format"),
        ("kari@example.n0", "format"),
        ("k" * 65 + "@example.no", "format"),
    ],
)
def test_bad_email_addresses(typed: str, reason: str) -> None:
    with pytest.raises(InvalidContact) as refused:
        contact.normalise_email(typed)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("91234567", "+47 91234567"),
        ("912 34 567", "+47 91234567"),
        ("+47 412 34 567", "+47 41234567"),
        ("0047 91234567", "+47 91234567"),
        ("+46 70 123 45 67", "+46701234567"),
        ("0044 7700 900123", "+447700900123"),
        ("(+1) 202-555-0123", "+12025550123"),
    ],
)
def test_good_mobile_numbers(typed: str, stored: str) -> None:
    assert contact.normalise_mobile(typed) == stored


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "missing"),
        ("1234567", "format"),
        ("912345678", "format"),
        ("22123456", "not_mobile"),
        ("+47 22123456", "not_mobile"),
        ("+47 9123456", "format"),
        ("9123456a", "format"),
        ("+46 123", "foreign"),
        ("+1234567890123456", "foreign"),
        ("٩١٢٣٤٥٦٧", "format"),  # digits, but not ASCII ones
    ],
)
def test_bad_mobile_numbers(typed: str, reason: str) -> None:
    with pytest.raises(InvalidContact) as refused:
        contact.normalise_mobile(typed)
    assert refused.value.reason == reason


def record(**values: Any) -> ContactRecord:
    base: dict[str, Any] = {
        "pid": "01018012345",
        "email": "kari@example.no",
        "mobile": None,
        "last_confirmed_on": date(2026, 1, 1),
        "reserved": False,
        "reserved_on": None,
        "mailbox_provider": None,
        "mailbox_address": None,
        "language": "nb",
    }
    return ContactRecord.model_validate({**base, **values})


def test_when_to_ask_for_confirmation_and_what_may_be_removed() -> None:
    on = date(2026, 6, 1)
    assert timedelta(days=365) == CONFIRM_EVERY
    assert not contact.needs_confirming(record(last_confirmed_on=on - timedelta(days=30)), on)
    assert contact.needs_confirming(record(last_confirmed_on=on - timedelta(days=400)), on)
    assert contact.needs_confirming(record(last_confirmed_on=None), on)
    assert not contact.needs_confirming(record(email=None, last_confirmed_on=None), on)
    assert not contact.needs_confirming(None, on)

    assert contact.removal_refused(record(), Kind.email) is None  # no mailbox
    assert contact.removal_refused(record(), Kind.mobile) == "nothing"
    with_box = record(mailbox_provider="felles")
    assert contact.removal_refused(with_box, Kind.email) == "needed_for_mailbox"
    assert contact.removal_refused(record(mobile="+47 91234567"), Kind.email) is None
    assert contact.mailbox_refused(record(email=None), "felles") == "no_contact"
    assert contact.mailbox_refused(record(email=None), None) is None


async def test_mailbox_addresses_follow_the_demo_convention_and_are_stable(settings, db) -> None:  # type: ignore[no-untyped-def]
    codes = ContactCodes.create(settings, db)
    pid = "01018012345"
    felles = codes.mailbox_address(pid, "Kari Anne", "Nordmann Ødegård", "felles")
    assert re.fullmatch(r"kari\.nordmannodegaard#[0-9A-HJ-NP-Z]{4}", felles), felles
    assert codes.mailbox_address(pid, "Kari Anne", "Nordmann Ødegård", "felles") == felles
    assert codes.mailbox_address("01018054321", "Kari", "Nordmann", "felles") != felles
    assert re.fullmatch(r"EB\d{10}", codes.mailbox_address(pid, "Kari", "Nordmann", "eboks"))


# --- Login, CSRF and whose data --------------------------------------------------------------


async def test_not_logged_in_is_sent_to_log_in(client: httpx.AsyncClient) -> None:
    for path in (BASE, f"{BASE}/email", f"{BASE}/history", f"{BASE}/mailbox"):
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/portal/login?next=%2Fcontact")


async def test_the_real_login_leads_back_to_the_contact_page(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    email = unique_email()
    pid = await new_person(db, email=email)
    use_app_as_provider(app)
    assert (await client.get(BASE)).headers["location"].startswith("/portal/login?")
    page = await log_in(client, pid, next_path=BASE)
    assert page.status_code == 200 and page.url.path == BASE
    assert "Your contact details" in page.text and email in page.text
    assert 'href="/contact">Contact details</a>' in page.text  # in the portal bar


async def test_a_post_without_csrf_token_is_refused(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    pid = await new_person(db, email=unique_email())
    logged_in(client, app, pid)
    await csrf(client)
    refused = await client.post(f"{BASE}/reservation", data={"reserve": "yes"})
    assert refused.status_code == 403
    bad = await client.post(f"{BASE}/reservation", data={"reserve": "yes", "csrf_token": "x"})
    assert bad.status_code == 403
    found = await entry(db, pid)
    assert found is not None and not found.reserved


async def test_only_your_own_details_whomever_you_act_for(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    mine, theirs = unique_email("mine"), unique_email("theirs")
    me = await new_person(db, email=mine)
    other = await new_person(db, email=theirs, mobile="+47 98765432")
    business = Party(PartyKind.organisation, "999999999", "Fjordlys Bygg AS")
    logged_in(client, app, me, business)
    page = await client.get(BASE)
    assert mine in page.text and theirs not in page.text and "98765432" not in page.text
    assert "These are your own contact details, not the business" in page.text

    # The other person's code cookie, in my browser, is no use to me.
    logged_in(client, app, other)
    started = await post(client, f"{BASE}/email", {"email": unique_email("new")})
    assert started.status_code == 303
    their_cookie = client.cookies[CODE_COOKIE]
    logged_in(client, app, me)
    set_code_cookie(client, their_cookie)
    code_page = await client.get(f"{BASE}/email/code")
    assert code_page.status_code == 303 and code_page.headers["location"] == f"{BASE}/email"
    history = await client.get(f"{BASE}/history")
    assert "t***@example.no" not in history.text
    assert (await entry(db, other)) is not None
    assert (await entry(db, other)).email == theirs  # type: ignore[union-attr]


# --- Changing the e-mail address and mobile number ---------------------------------------------


async def test_change_email_with_the_right_code(
    app: Any,
    client: httpx.AsyncClient,
    db: Database,
    outbox: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = unique_email("old"), unique_email("New.Address")
    pid = await new_person(db, email=old, confirmed_on=contact.today() - timedelta(days=40))
    logged_in(client, app, pid)
    form = await client.get(f"{BASE}/email")
    assert form.status_code == 200 and "Change your e-mail address" in form.text
    sent = await post(
        client, f"{BASE}/email", {"email": new.upper().replace("@EXAMPLE", "@Example")}
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"{BASE}/email/code"
    stored = new.upper().split("@")[0] + "@example.no"  # the domain in lower case
    code = sent_code(outbox, stored)
    message = [m for m in read_outbox(outbox) if m["to"] == stored][-1]
    assert message["channel"] == "email" and "15 minutes" in message["text"]
    assert not [m for m in read_outbox(outbox) if m["to"] == old], "the code goes to the NEW one"
    assert new not in client.cookies[CODE_COOKIE]  # sealed, not readable

    page = await client.get(f"{BASE}/email/code")
    assert "Type the code we sent you" in page.text and stored in page.text
    done = await post(client, f"{BASE}/email/code", {"code": f" {code[:3]} {code[3:]} "})
    assert done.status_code == 303 and done.headers["location"] == f"{BASE}?done=email"
    assert CODE_COOKIE not in client.cookies  # the pending change is gone
    overview = await client.get(done.headers["location"])
    assert "Your new e-mail address is saved." in overview.text and stored in overview.text

    saved = await entry(db, pid)
    assert saved is not None and saved.email == stored
    assert saved.last_confirmed_on == contact.today() and saved.language == "nb"
    rows = [c for c in await changes(db, pid) if c.field == "email"]
    assert (rows[-1].old_value, rows[-1].new_value, rows[-1].changed_by) == (old, stored, "self")

    # The same code cannot be used twice.
    again = await post(client, f"{BASE}/email/code", {"code": code})
    assert again.status_code == 303 and again.headers["location"] == f"{BASE}/email"
    logs = capsys.readouterr().err
    assert "contact_code_sent" in logs and "contact_changed" in logs
    assert code not in logs and stored not in logs and old not in logs and pid not in logs


async def test_change_mobile_by_sms(
    app: Any, client: httpx.AsyncClient, db: Database, outbox: Any
) -> None:
    pid = await new_person(db, email=unique_email(), language="nn")
    logged_in(client, app, pid)
    number = unique_mobile()
    sent = await post(
        client, f"{BASE}/mobile", {"mobile": f"{number[:3]} {number[3:5]} {number[5:]}"}
    )
    assert sent.status_code == 303
    stored = f"+47 {number}"
    sms = [m for m in read_outbox(outbox) if m["to"] == stored][-1]
    assert sms["channel"] == "sms"
    done = await post(client, f"{BASE}/mobile/code", {"code": sent_code(outbox, stored)})
    assert done.headers["location"] == f"{BASE}?done=mobile"
    saved = await entry(db, pid)
    assert saved is not None and saved.mobile == stored and saved.language == "nn"

    foreign = await post(client, f"{BASE}/mobile", {"mobile": "+46 70 123 45 67"})
    assert foreign.status_code == 303
    assert [m for m in read_outbox(outbox) if m["to"] == "+46701234567"]


async def test_a_wrong_code_five_times_locks_it_and_saves_nothing(
    app: Any, client: httpx.AsyncClient, db: Database, outbox: Any
) -> None:
    old, new = unique_email("old"), unique_email("new")
    pid = await new_person(db, email=old)
    logged_in(client, app, pid)
    await post(client, f"{BASE}/email", {"email": new})
    code = sent_code(outbox, new)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        answer = await post(client, f"{BASE}/email/code", {"code": wrong})
        assert answer.status_code == 400
        summary = error_summary(answer.text)
        assert 'href="#code"' in summary
        assert f"You can try {left} more time" in summary
    fifth = await post(client, f"{BASE}/email/code", {"code": wrong})
    assert "too many times" in error_summary(fifth.text)
    # Now even the right code is refused: a new one is needed.
    right = await post(client, f"{BASE}/email/code", {"code": code})
    assert right.status_code == 400 and "too many times" in right.text
    # Neither does sending the first cookie again give more tries.
    saved = await entry(db, pid)
    assert saved is not None and saved.email == old
    assert not [c for c in await changes(db, pid) if c.changed_by == "self"]

    # Not a code at all: said so, and not counted.
    short = await post(client, f"{BASE}/email/code", {"code": "123"})
    assert "The code has 6 digits" in error_summary(short.text)
    empty = await post(client, f"{BASE}/email/code", {"code": ""})
    assert "Enter the code we sent you" in error_summary(empty.text)

    # A new code works.
    resent = await post(client, f"{BASE}/email/code/resend", {})
    assert resent.headers["location"] == f"{BASE}/email/code?sent=again"
    assert "We have sent you a new code" in (await client.get(resent.headers["location"])).text
    fresh = sent_code(outbox, new)
    done = await post(client, f"{BASE}/email/code", {"code": fresh})
    assert done.headers["location"] == f"{BASE}?done=email"
    assert (await entry(db, pid)).email == new  # type: ignore[union-attr]


async def test_an_old_cookie_does_not_give_more_tries(
    app: Any, client: httpx.AsyncClient, db: Database, outbox: Any
) -> None:
    new = unique_email("new")
    pid = await new_person(db, email=unique_email())
    logged_in(client, app, pid)
    await post(client, f"{BASE}/email", {"email": new})
    cookie = client.cookies[CODE_COOKIE]
    code = sent_code(outbox, new)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        set_code_cookie(client, cookie)
        await post(client, f"{BASE}/email/code", {"code": wrong})
    set_code_cookie(client, cookie)
    answer = await post(client, f"{BASE}/email/code", {"code": code})
    assert answer.status_code == 400 and "too many times" in answer.text
    assert (await entry(db, pid)).email != new  # type: ignore[union-attr]


async def test_an_expired_code_is_refused(
    app: Any, client: httpx.AsyncClient, db: Database, outbox: Any
) -> None:
    old, new = unique_email("old"), unique_email("new")
    pid = await new_person(db, email=old)
    logged_in(client, app, pid)
    await post(client, f"{BASE}/email", {"email": new})
    sealer = app.state.portal.sealer
    pending = sealer.open(client.cookies[CODE_COOKIE], CODE_CONTEXT)
    assert pending is not None and pending["value"] == new
    pending["expires_at"] -= 15 * 60 + 1  # sent 15 minutes and a second ago
    set_code_cookie(client, sealer.seal(pending, CODE_CONTEXT))
    answer = await post(client, f"{BASE}/email/code", {"code": sent_code(outbox, new)})
    assert answer.status_code == 400
    assert "The code has expired" in error_summary(answer.text)
    assert (await entry(db, pid)).email == old  # type: ignore[union-attr]
    # A tampered cookie is no pending change at all.
    set_code_cookie(client, client.cookies[CODE_COOKIE][:-4] + "AAAA")
    tampered = await post(client, f"{BASE}/email/code", {"code": "123456"})
    assert tampered.status_code == 303 and tampered.headers["location"] == f"{BASE}/email"


@pytest.mark.parametrize(
    ("kind", "typed", "message"),
    [
        ("email", "", "Enter your new e-mail address."),
        ("email", "kari@example", "Enter an e-mail address in the right format"),
        ("email", "kari.nordmann@example", "Enter an e-mail address in the right format"),
        ("mobile", "", "Enter your new mobile number."),
        ("mobile", "22 12 34 56", "A Norwegian mobile number starts with 4 or 9."),
        ("mobile", "9123 456", "Enter a Norwegian mobile number with 8 digits"),
        ("mobile", "+46 12", "Enter a number from another country with +"),
    ],
)
async def test_invalid_addresses_and_numbers_get_an_error_summary(
    app: Any, client: httpx.AsyncClient, db: Database, kind: str, typed: str, message: str
) -> None:
    pid = await new_person(db, email=unique_email())
    logged_in(client, app, pid)
    answer = await post(client, f"{BASE}/{kind}", {kind: typed})
    assert answer.status_code == 400
    assert "<title>Error:" in answer.text
    summary = error_summary(answer.text)
    assert message in summary and f'href="#{kind}"' in summary
    assert f'id="{kind}"' in answer.text and 'aria-invalid="true"' in answer.text
    assert f'value="{typed}"' in answer.text  # what they typed is kept
    assert CODE_COOKIE not in client.cookies


async def test_the_same_email_again_is_not_a_change(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    email = unique_email()
    pid = await new_person(db, email=email)
    logged_in(client, app, pid)
    answer = await post(client, f"{BASE}/email", {"email": email})
    assert answer.status_code == 400 and "already your e-mail address" in answer.text


async def test_codes_are_limited_per_hour(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    pid = await new_person(db, email=unique_email())
    logged_in(client, app, pid)
    for _ in range(contact.SENDS):
        assert (await post(client, f"{BASE}/email", {"email": unique_email()})).status_code == 303
    refused = await post(client, f"{BASE}/email", {"email": unique_email()})
    assert refused.status_code == 429
    assert "You have asked for many codes" in error_summary(refused.text)
    again = await post(client, f"{BASE}/email/code/resend", {})
    assert again.status_code == 429


async def test_removing_email_or_mobile(app: Any, client: httpx.AsyncClient, db: Database) -> None:
    email = unique_email()
    pid = await new_person(db, email=email, mobile="+47 41234567", mailbox="felles")
    logged_in(client, app, pid)
    ask = await client.get(f"{BASE}/mobile/remove")
    assert "Remove your mobile number?" in ask.text and "Yes, remove my mobile number" in ask.text
    removed = await post(client, f"{BASE}/mobile/remove", {})
    assert removed.headers["location"] == f"{BASE}?done=mobile-removed"
    assert (await entry(db, pid)).mobile is None  # type: ignore[union-attr]
    # The e-mail address is now the only way to say a letter has arrived in the mailbox.
    refused = await client.get(f"{BASE}/email/remove")
    assert "You cannot remove your e-mail address now" in refused.text
    assert "Yes, remove" not in refused.text
    kept = await post(client, f"{BASE}/email/remove", {})
    assert kept.headers["location"] == f"{BASE}/email/remove"
    assert (await entry(db, pid)).email == email  # type: ignore[union-attr]
    # Without the mailbox it may go, and the page says what that means.
    await post(client, f"{BASE}/mailbox", {"provider": "none"})
    last = await client.get(f"{BASE}/email/remove")
    assert "This is the last way public agencies can reach you digitally" in last.text
    await post(client, f"{BASE}/email/remove", {})
    gone = await entry(db, pid)
    assert gone is not None and gone.email is None and gone.mobile is None


# --- Reservation, mailbox, confirmation, history ----------------------------------------------


async def test_reserve_and_withdraw(app: Any, client: httpx.AsyncClient, db: Database) -> None:
    pid = await new_person(db, email=unique_email())
    logged_in(client, app, pid)
    overview = await client.get(BASE)
    assert "Not reserved" in overview.text
    ask = await client.get(f"{BASE}/reservation")
    assert "Reserve against digital communication?" in ask.text
    assert "on paper, by post" in ask.text and 'value="yes"' in ask.text
    assert (await entry(db, pid)).reserved is False  # type: ignore[union-attr]  # asking saves nothing
    reserved = await post(client, f"{BASE}/reservation", {"reserve": "yes"})
    assert reserved.headers["location"] == f"{BASE}?done=reserved"
    page = await client.get(reserved.headers["location"])
    assert "You are reserved against digital communication" in page.text
    assert "Reserved since" in page.text
    saved = await entry(db, pid)
    assert saved is not None and saved.reserved and saved.reserved_on == contact.today()

    ask = await client.get(f"{BASE}/reservation")
    assert "Withdraw your reservation" in ask.text and 'value="no"' in ask.text
    withdrawn = await post(client, f"{BASE}/reservation", {"reserve": "no"})
    assert withdrawn.headers["location"] == f"{BASE}?done=withdrawn"
    saved = await entry(db, pid)
    assert saved is not None and not saved.reserved and saved.reserved_on is None
    rows = [(c.field, c.new_value, c.changed_by) for c in await changes(db, pid)]
    assert ("reserved", "True", "self") in rows and ("reserved", "False", "self") in rows
    nonsense = await post(client, f"{BASE}/reservation", {"reserve": "maybe"})
    assert nonsense.headers["location"] == f"{BASE}/reservation"


async def test_choose_the_felles_mailbox(app: Any, client: httpx.AsyncClient, db: Database) -> None:
    pid = await new_person(db, given="Åse Marie", family="Bø", email=unique_email())
    logged_in(client, app, pid)
    page = await client.get(f"{BASE}/mailbox")
    for name in ("Felles digital postkasse", "Digipost", "e-Boks", "No digital mailbox"):
        assert name in page.text
    assert 'value="none" checked' in page.text
    chosen = await post(client, f"{BASE}/mailbox", {"provider": "felles"})
    assert chosen.headers["location"] == f"{BASE}?done=mailbox"
    saved = await entry(db, pid)
    assert saved is not None and saved.mailbox_provider == "felles"
    assert saved.mailbox_address and re.fullmatch(r"aase\.bo#[0-9A-Z]{4}", saved.mailbox_address)
    assert "Felles digital postkasse" in (await client.get(BASE)).text
    rows = [(c.field, c.changed_by) for c in await changes(db, pid)]
    assert ("mailbox_provider", "self") in rows and ("mailbox_address", "self") in rows
    # Away and back: the same address (it is derived, not drawn).
    await post(client, f"{BASE}/mailbox", {"provider": "eboks"})
    assert (await entry(db, pid)).mailbox_address.startswith("EB")  # type: ignore[union-attr]
    await post(client, f"{BASE}/mailbox", {"provider": "felles"})
    assert (await entry(db, pid)).mailbox_address == saved.mailbox_address  # type: ignore[union-attr]

    missing = await post(client, f"{BASE}/mailbox", {"provider": "nowhere"})
    assert missing.status_code == 400 and 'href="#provider"' in error_summary(missing.text)


async def test_a_mailbox_needs_an_email_or_mobile(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    pid = await new_person(db)
    logged_in(client, app, pid)
    overview = await client.get(BASE)
    assert overview.status_code == 200 and "Are these still right?" not in overview.text
    refused = await post(client, f"{BASE}/mailbox", {"provider": "digipost"})
    assert refused.status_code == 400
    assert "Add an e-mail address or a mobile number first" in error_summary(refused.text)
    assert await entry(db, pid) is None


async def test_yearly_confirmation(app: Any, client: httpx.AsyncClient, db: Database) -> None:
    email = unique_email()
    long_ago = contact.today() - CONFIRM_EVERY - timedelta(days=30)
    pid = await new_person(db, email=email, mobile="+47 91234567", confirmed_on=long_ago)
    logged_in(client, app, pid)
    page = await client.get(BASE)
    assert "Are these still right?" in page.text and "Yes, they are right" in page.text
    confirmed = await post(client, f"{BASE}/confirm", {})
    assert confirmed.headers["location"] == f"{BASE}?done=confirmed"
    page = await client.get(confirmed.headers["location"])
    assert "Are these still right?" not in page.text
    assert "Your contact details are confirmed" in page.text
    saved = await entry(db, pid)
    assert saved is not None and saved.last_confirmed_on == contact.today()
    assert (saved.email, saved.mobile) == (email, "+47 91234567")
    rows = [(c.field, c.changed_by) for c in await changes(db, pid)]
    assert rows[-1] == ("last_confirmed_on", "self")


async def test_history_newest_first_and_masked(
    app: Any, client: httpx.AsyncClient, db: Database, outbox: Any
) -> None:
    old, new = unique_email("old"), unique_email("new")
    pid = await new_person(db, email=old, mobile="+47 91234567")
    logged_in(client, app, pid)
    await post(client, f"{BASE}/reservation", {"reserve": "yes"})
    await post(client, f"{BASE}/email", {"email": new})
    await post(client, f"{BASE}/email/code", {"code": sent_code(outbox, new)})
    page = await client.get(f"{BASE}/history")
    assert page.status_code == 200
    html = page.text.split("<main", 1)[1]
    assert old not in html and new not in html and "91234567" not in html
    assert "o***@example.no" in html and "n***@example.no" in html and "*** ** 567" in html
    assert html.index("E-mail address") < html.index("Reserved against digital communication")
    assert html.count("<dd>You</dd>") == 2
    assert "Felles support" in html  # the first entry, made by an operator
    logged_in(client, app, pid, lang="nn")
    nynorsk = await client.get(f"{BASE}/history")
    assert "Endringar i kontaktopplysningane dine" in nynorsk.text


async def test_pages_in_norwegian(app: Any, client: httpx.AsyncClient, db: Database) -> None:
    pid = await new_person(db, email=unique_email(), confirmed_on=date(2020, 1, 1))
    for lang, words in (("nb", "Er disse fortsatt riktige?"), ("nn", "Er desse framleis rette?")):
        logged_in(client, app, pid, lang=lang)
        page = await client.get(BASE)
        assert words in page.text, lang
        assert '<html lang="' + lang + '"' in page.text
        for path in ("email", "mobile", "reservation", "mailbox", "history"):
            assert (await client.get(f"{BASE}/{path}")).status_code == 200


async def test_unknown_pages_are_not_found(
    app: Any, client: httpx.AsyncClient, db: Database
) -> None:
    pid = await new_person(db, email=unique_email())
    logged_in(client, app, pid)
    assert (await client.get(f"{BASE}/fax")).status_code == 404
    assert (await client.get(f"{BASE}/fax/code")).status_code == 404
    assert (await client.get(f"{BASE}/confirm")).headers["location"] == BASE
    # Nothing pending: the code page leads back to the form.
    assert (await client.get(f"{BASE}/mobile/code")).headers["location"] == f"{BASE}/mobile"
    result = await post_form(client, f"{BASE}/mobile/code", {"code": "123456"})
    assert result.url.path == f"{BASE}/mobile"
