"""The person's own entry in the contact and reservation register (like KRR's
"minprofil"): see it, change the e-mail address or mobile number (proved with a code
sent to the new one), reserve against digital communication, choose a digital mailbox,
confirm the details once a year, and see every change. The rules are in `contact.py`.

Logging in is the portal's (the same session cookie, login and layout); always the
logged-in person's own entry, whomever they act for in the portal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from babel.dates import format_date
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from felles.identity.password_pages import login_service
from felles.mailbox import contact
from felles.mailbox.contact import (
    ACCESS,
    CHANGED_BY,
    CODE_SECONDS,
    N_,
    CodeResult,
    ContactCodes,
    InvalidContact,
    Kind,
    PendingChange,
)
from felles.mailbox.providers import PROVIDERS
from felles.notifications.service import NotificationError
from felles.portal.display import moment
from felles.portal.runtime import PortalRuntime
from felles.portal.session import PortalSession
from felles.portal.web import not_found, page, redirect, signed_in
from felles.registry import service as registry
from felles.registry.schemas import ContactRecord
from felles.web.i18n import translations
from felles.web.observability import log
from felles.web.templating import BABEL_LOCALES, request_language

router = APIRouter(include_in_schema=False)
BASE = "/contact"
CODE_COOKIE = "felles_contact_code"
CODE_CONTEXT = b"contact code"
NO_MAILBOX = "none"
KEEP_PENDING_SECONDS = 60 * 60

# Shown on the overview after a change (`?done=`), never text from the address bar.
DONE = {
    "email": N_("Your new e-mail address is saved."),
    "mobile": N_("Your new mobile number is saved."),
    "email-removed": N_("Your e-mail address is removed."),
    "mobile-removed": N_("Your mobile number is removed."),
    "reserved": N_(
        "You are reserved against digital communication. Letters from public agencies "
        "will come on paper, by post."
    ),
    "withdrawn": N_(
        "Your reservation is withdrawn. Public agencies can send you letters digitally again."
    ),
    "mailbox": N_("Your choice of digital mailbox is saved."),
    "confirmed": N_("Thank you. Your contact details are confirmed."),
}
PROBLEMS = {
    (Kind.email, "missing"): N_("Enter your new e-mail address."),
    (Kind.email, "format"): N_(
        "Enter an e-mail address in the right format, like name@example.no."
    ),
    (Kind.email, "same"): N_("This is already your e-mail address. Enter a new one."),
    (Kind.mobile, "missing"): N_("Enter your new mobile number."),
    (Kind.mobile, "format"): N_(
        "Enter a Norwegian mobile number with 8 digits, like 912 34 567, or a number from "
        "another country with + and the country code."
    ),
    (Kind.mobile, "not_mobile"): N_(
        "A Norwegian mobile number starts with 4 or 9. Check the number."
    ),
    (Kind.mobile, "foreign"): N_(
        "Enter a number from another country with + and the country code, like "
        "+46 70 123 45 67. It can have at most 15 digits."
    ),
    (Kind.mobile, "same"): N_("This is already your mobile number. Enter a new one."),
}
SEND_FAILED = N_("We could not send the code just now. Try again in a few minutes.")
CODE_MISSING = N_("Enter the code we sent you.")
CODE_FORMAT = N_("The code has 6 digits. Check that you typed all of them.")
CODE_LOCKED = N_(
    "You have typed a wrong code too many times. Ask for a new code, and use the newest one."
)
CODE_EXPIRED = N_(
    "The code has expired: a code is valid for %(minutes)s minutes. Ask for a new code."
)
REMOVAL_REFUSED = {
    Kind.email: N_(
        "You cannot remove your e-mail address now. You have a digital mailbox and no "
        "mobile number, so we would have no way to tell you that a letter has arrived. "
        "Add a mobile number or give up the digital mailbox first."
    ),
    Kind.mobile: N_(
        "You cannot remove your mobile number now. You have a digital mailbox and no "
        "e-mail address, so we would have no way to tell you that a letter has arrived. "
        "Add an e-mail address or give up the digital mailbox first."
    ),
}
MAILBOX_MISSING = N_("Choose a digital mailbox, or choose to have none.")
MAILBOX_NEEDS_CONTACT = N_(
    "Add an e-mail address or a mobile number first. We use them to tell you when a "
    "letter arrives in your digital mailbox."
)
# The history's words for the register's fields and for who changed them.
FIELDS = {
    "email": N_("E-mail address"),
    "mobile": N_("Mobile number"),
    "last_confirmed_on": N_("Confirmed"),
    "reserved": N_("Reserved against digital communication"),
    "mailbox_provider": N_("Digital mailbox"),
    "mailbox_address": N_("Digital mailbox address"),
    "language": N_("Language"),
}
CHANGED_BY_WHOM = {
    "self": N_("You"),
    "person": N_("You"),
    "operator": N_("Felles support"),
}
LANGUAGE_NAMES = {"nb": N_("Norwegian Bokmål"), "nn": N_("Norwegian Nynorsk"), "en": N_("English")}


def _kind(name: str) -> Kind | None:
    return Kind(name) if name in set(Kind) else None


def _codes(request: Request) -> ContactCodes:
    """The process's ContactCodes, made on first use. It shares the login service's rate
    limiter (one Redis pool per process, closed when the app stops)."""
    app = request.app
    codes: ContactCodes | None = getattr(app.state, "contact_codes", None)
    if codes is None:
        rt = app.state.portal
        codes = ContactCodes.create(rt.settings, rt.db, limiter=login_service(app).limiter)
        app.state.contact_codes = codes
    return codes


async def _entry(rt: PortalRuntime, pid: str) -> ContactRecord | None:
    """The person's own entry (recorded as the portal's lookup, like any other)."""
    async with rt.db.session() as db:
        return await registry.contact(db, pid, ACCESS)


def _gettext(request: Request) -> Callable[[str], str]:
    return translations(request_language(request)).gettext


def _error(field: str, text: str) -> dict[str, str]:
    return {"field": field, "text": text}


# --- The pending code, sealed in a cookie for these pages only ---------------------------


def _pending(request: Request, rt: PortalRuntime, pid: str, kind: Kind) -> PendingChange | None:
    """The change waiting for its code, if it is this person's and of this kind."""
    found = PendingChange.from_dict(rt.sealer.open(request.cookies.get(CODE_COOKIE), CODE_CONTEXT))
    return found if found and found.pid == pid and found.kind == kind.value else None


def _keep_pending(response: Response, rt: PortalRuntime, pending: PendingChange) -> Response:
    response.set_cookie(
        CODE_COOKIE,
        rt.sealer.seal(pending.to_dict(), CODE_CONTEXT),
        # Kept longer than the code is valid, so a late try is told "expired, ask for a
        # new code" instead of being sent back to the start.
        max_age=KEEP_PENDING_SECONDS,
        httponly=True,
        samesite="lax",
        secure=rt.settings.https,
        path=BASE,
    )
    return response


def _forget_pending(response: Response) -> Response:
    response.delete_cookie(CODE_COOKIE, path=BASE)
    return response


# --- Overview and yearly confirmation ------------------------------------------------------


def _overview_context(entry: ContactRecord | None, lang: str, done: str | None) -> dict[str, Any]:
    on = contact.today()
    return {
        "entry": entry,
        "done": DONE.get(done or ""),
        "needs_confirming": contact.needs_confirming(entry, on),
        "confirmed": _date_text(entry.last_confirmed_on, lang) if entry else None,
        "reserved_on": _date_text(entry.reserved_on, lang) if entry else None,
        "provider": PROVIDERS.get(entry.mailbox_provider or "") if entry else None,
    }


def _date_text(value: date | None, lang: str) -> str | None:
    """A date as people here write it, in the page's language."""
    return format_date(value, "long", locale=BABEL_LOCALES.get(lang, "nb")) if value else None


@router.get(BASE)
async def overview(request: Request) -> Response:
    rt, session = await signed_in(request)
    try:
        entry = await _entry(rt, session.pid)
    except registry.NotFound:
        return not_found(request, rt, session)
    context = _overview_context(entry, request_language(request), request.query_params.get("done"))
    return page(request, rt, session, "mailbox/contact.html", context)


@router.get(f"{BASE}/confirm")
async def confirm_form(request: Request) -> Response:
    """The confirmation is a button on the overview (e.g. back here after logging in)."""
    rt, session = await signed_in(request)
    return redirect(rt, session, BASE)


@router.post(f"{BASE}/confirm")
async def confirm(request: Request) -> Response:
    """ "Yes, these are right": the same details, confirmed today."""
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        try:
            entry = await registry.contact(db, session.pid, ACCESS)
        except registry.NotFound:
            return not_found(request, rt, session)
        if entry is None or not (entry.email or entry.mobile):
            return redirect(rt, session, BASE)
        await registry.set_contact(
            db,
            session.pid,
            email=entry.email,
            mobile=entry.mobile,
            confirmed_on=contact.today(),
            language=entry.language,
            changed_by=CHANGED_BY,
        )
    log.info("contact_confirmed")
    return redirect(rt, session, f"{BASE}?done=confirmed")


# --- History -----------------------------------------------------------------------------


async def _who(db: Any, changed_by: str, lang: str) -> tuple[str, bool]:
    """Who made a change, and whether that text is to be translated."""
    if changed_by in CHANGED_BY_WHOM:
        return CHANGED_BY_WHOM[changed_by], True
    try:
        return (await registry.get_agency(db, changed_by)).name(lang), False
    except registry.NotFound:
        return changed_by, False


def _value(field: str, value: str | None, lang: str, gettext: Callable[[str], str]) -> str:
    if value is None:
        return gettext("none")
    if field in ("last_confirmed_on", "reserved_on"):
        try:
            return _date_text(date.fromisoformat(value), lang) or value
        except ValueError:
            return value
    if field == "reserved":
        return gettext("Yes") if value == "True" else gettext("No")
    if field == "mailbox_provider":
        return PROVIDERS.get(value, value)
    if field == "language":
        return gettext(LANGUAGE_NAMES[value]) if value in LANGUAGE_NAMES else value
    return value


@router.get(f"{BASE}/history")
async def history(request: Request) -> Response:
    rt, session = await signed_in(request)
    lang = request_language(request)
    gettext = _gettext(request)
    entries = []
    async with rt.db.session() as db:
        try:
            changes = await registry.contact_history(db, session.pid)
        except registry.NotFound:
            return not_found(request, rt, session)
        for entry in contact.history_entries(changes):
            who, translate = await _who(db, entry.changed_by, lang)
            entries.append(
                {
                    "when": moment(entry.changed_at, lang),
                    "who": gettext(who) if translate else who,
                    "lines": [
                        {
                            "field": gettext(FIELDS.get(line.field, line.field)),
                            "old": _value(line.field, line.old, lang, gettext),
                            "new": _value(line.field, line.new, lang, gettext),
                            "confirmation": line.field == "last_confirmed_on",
                        }
                        for line in entry.lines
                    ],
                }
            )
    return page(request, rt, session, "mailbox/contact_history.html", {"entries": entries})


# --- Reservation ---------------------------------------------------------------------------


@router.get(f"{BASE}/reservation")
async def reservation(request: Request) -> Response:
    rt, session = await signed_in(request)
    try:
        entry = await _entry(rt, session.pid)
    except registry.NotFound:
        return not_found(request, rt, session)
    context = _overview_context(entry, request_language(request), None)
    return page(request, rt, session, "mailbox/contact_reservation.html", context)


@router.post(f"{BASE}/reservation")
async def reserve_or_withdraw(
    request: Request, reserve: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    rt, session = await signed_in(request)
    if reserve not in ("yes", "no"):
        return redirect(rt, session, f"{BASE}/reservation")
    async with rt.db.session() as db:
        try:
            await registry.set_reservation(
                db,
                session.pid,
                reserved=reserve == "yes",
                on=contact.today(),
                changed_by=CHANGED_BY,
            )
        except registry.NotFound:
            return not_found(request, rt, session)
    log.info("contact_reservation", reserved=reserve == "yes")
    return redirect(rt, session, f"{BASE}?done={'reserved' if reserve == 'yes' else 'withdrawn'}")


# --- Digital mailbox -----------------------------------------------------------------------


def _mailbox_page(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    entry: ContactRecord | None,
    *,
    chosen: str | None = None,
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    current = (entry.mailbox_provider if entry else None) or NO_MAILBOX
    context = {
        "entry": entry,
        "providers": list(PROVIDERS.items()),
        "chosen": chosen if chosen is not None else current,
        "errors": errors or [],
        "no_mailbox": NO_MAILBOX,
    }
    return page(
        request, rt, session, "mailbox/contact_mailbox.html", context, status_code=status_code
    )


@router.get(f"{BASE}/mailbox")
async def mailbox(request: Request) -> Response:
    rt, session = await signed_in(request)
    try:
        entry = await _entry(rt, session.pid)
    except registry.NotFound:
        return not_found(request, rt, session)
    return _mailbox_page(request, rt, session, entry)


@router.post(f"{BASE}/mailbox")
async def choose_mailbox(
    request: Request, provider: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    rt, session = await signed_in(request)
    gettext = _gettext(request)
    async with rt.db.session() as db:
        try:
            entry = await registry.contact(db, session.pid, ACCESS)
        except registry.NotFound:
            return not_found(request, rt, session)
        if provider != NO_MAILBOX and provider not in PROVIDERS:
            errors = [_error("provider", gettext(MAILBOX_MISSING))]
            return _mailbox_page(request, rt, session, entry, errors=errors, status_code=400)
        wanted = None if provider == NO_MAILBOX else provider
        if contact.mailbox_refused(entry, wanted):
            errors = [_error("provider", gettext(MAILBOX_NEEDS_CONTACT))]
            return _mailbox_page(
                request, rt, session, entry, chosen=provider, errors=errors, status_code=400
            )
        current = entry.mailbox_provider if entry else None
        if wanted != current:
            address = None
            if wanted is not None:
                person = await registry.get_person(db, session.pid, ACCESS)
                address = _codes(request).mailbox_address(
                    session.pid, person.given_name, person.family_name, wanted
                )
            await registry.set_mailbox(
                db, session.pid, provider=wanted, address=address, changed_by=CHANGED_BY
            )
            log.info("contact_mailbox_chosen", provider=wanted or NO_MAILBOX)
    return redirect(rt, session, f"{BASE}?done=mailbox")


# --- Changing the e-mail address or mobile number ------------------------------------------


def _change_page(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    kind: Kind,
    entry: ContactRecord | None,
    *,
    typed: str = "",
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "kind": kind.value,
        "current": getattr(entry, kind.value) if entry else None,
        "typed": typed,
        "errors": errors or [],
        "may_remove": contact.removal_refused(entry, kind) is None,
    }
    return page(
        request, rt, session, "mailbox/contact_change.html", context, status_code=status_code
    )


@router.get(BASE + "/{kind_name}")
async def change_form(request: Request, kind_name: str) -> Response:
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    try:
        entry = await _entry(rt, session.pid)
    except registry.NotFound:
        return not_found(request, rt, session)
    return _change_page(request, rt, session, kind, entry)


async def _send_code(
    request: Request, pid: str, kind: Kind, value: str
) -> PendingChange | tuple[str, int]:
    """Make a code for the new value and send it there: the pending change, or the
    error to show and the status to answer with."""
    gettext = _gettext(request)
    codes = _codes(request)
    issued = await codes.issue(pid, kind, value)
    if isinstance(issued, int):
        minutes = max(1, -(-issued // 60))
        text = translations(request_language(request)).ngettext(
            "You have asked for many codes. Wait %(num)s minute and try again.",
            "You have asked for many codes. Wait %(num)s minutes and try again.",
            minutes,
        ) % {"num": minutes}
        return text, 429
    pending, code = issued
    try:
        await codes.send(pending, code, gettext)
    except (NotificationError, ValueError) as exc:
        log.warning("contact_code_not_sent", kind=kind.value, reason=type(exc).__name__)
        return gettext(SEND_FAILED), 503
    log.info("contact_code_sent", kind=kind.value, to=pending.masked)
    return pending


@router.post(BASE + "/{kind_name}")
async def change(request: Request, kind_name: str) -> Response:
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    form = await request.form()
    typed = str(form.get(kind.value, ""))[:1000]
    gettext = _gettext(request)
    try:
        entry = await _entry(rt, session.pid)
    except registry.NotFound:
        return not_found(request, rt, session)
    try:
        value = contact.normalise(kind, typed)
        if entry is not None and getattr(entry, kind.value) == value:
            raise InvalidContact("same")
    except InvalidContact as invalid:
        errors = [_error(kind.value, gettext(PROBLEMS[(kind, invalid.reason)]))]
        return _change_page(
            request, rt, session, kind, entry, typed=typed, errors=errors, status_code=400
        )
    outcome = await _send_code(request, session.pid, kind, value)
    if isinstance(outcome, tuple):
        text, status = outcome
        errors = [_error(kind.value, text)]
        return _change_page(
            request, rt, session, kind, entry, typed=typed, errors=errors, status_code=status
        )
    response = redirect(rt, session, f"{BASE}/{kind.value}/code")
    return _keep_pending(response, rt, outcome)


def _code_page(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    pending: PendingChange,
    *,
    errors: list[dict[str, str]] | None = None,
    sent_again: bool = False,
    status_code: int = 200,
) -> Response:
    context = {
        "kind": pending.kind,
        "pending": pending,
        "minutes": CODE_SECONDS // 60,
        "errors": errors or [],
        "sent_again": sent_again,
    }
    return page(request, rt, session, "mailbox/contact_code.html", context, status_code=status_code)


@router.get(BASE + "/{kind_name}/code")
async def code_form(request: Request, kind_name: str) -> Response:
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    pending = _pending(request, rt, session.pid, kind)
    if pending is None:
        return redirect(rt, session, f"{BASE}/{kind.value}")
    return _code_page(
        request, rt, session, pending, sent_again=request.query_params.get("sent") == "again"
    )


@router.post(BASE + "/{kind_name}/code")
async def check_code(
    request: Request, kind_name: str, code: Annotated[str, Form(max_length=100)] = ""
) -> Response:
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    pending = _pending(request, rt, session.pid, kind)
    if pending is None:
        return redirect(rt, session, f"{BASE}/{kind.value}")
    gettext = _gettext(request)
    typed = contact.clean_code(code)
    if typed is None:
        text = CODE_MISSING if not code.strip() else CODE_FORMAT
        return _code_page(
            request, rt, session, pending, errors=[_error("code", gettext(text))], status_code=400
        )
    checked = await _codes(request).check(pending, typed)
    if checked.result is CodeResult.right:
        async with rt.db.session() as db:
            entry = await registry.contact(db, session.pid, ACCESS)
            await registry.set_contact(
                db,
                session.pid,
                email=pending.value if kind is Kind.email else (entry.email if entry else None),
                mobile=pending.value if kind is Kind.mobile else (entry.mobile if entry else None),
                confirmed_on=contact.today(),
                language=entry.language if entry else request_language(request),
                changed_by=CHANGED_BY,
            )
        log.info("contact_changed", kind=kind.value, to=pending.masked)
        return _forget_pending(redirect(rt, session, f"{BASE}?done={kind.value}"))
    if checked.result is CodeResult.used:
        return _forget_pending(redirect(rt, session, BASE))
    if checked.result is CodeResult.wrong:
        text = translations(request_language(request)).ngettext(
            "The code is not right. You can try %(num)s more time.",
            "The code is not right. You can try %(num)s more times.",
            checked.attempts_left,
        ) % {"num": checked.attempts_left}
    elif checked.result is CodeResult.locked:
        text = gettext(CODE_LOCKED)
    else:
        text = gettext(CODE_EXPIRED) % {"minutes": CODE_SECONDS // 60}
    log.info("contact_code_refused", kind=kind.value, result=checked.result.value)
    return _code_page(request, rt, session, pending, errors=[_error("code", text)], status_code=400)


@router.post(BASE + "/{kind_name}/code/resend")
async def resend_code(request: Request, kind_name: str) -> Response:
    """A new code for the same new value (the old code stops working)."""
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    pending = _pending(request, rt, session.pid, kind)
    if pending is None:
        return redirect(rt, session, f"{BASE}/{kind.value}")
    outcome = await _send_code(request, session.pid, kind, pending.value)
    if isinstance(outcome, tuple):
        text, status = outcome
        errors = [_error("code", text)]
        return _code_page(request, rt, session, pending, errors=errors, status_code=status)
    response = redirect(rt, session, f"{BASE}/{kind.value}/code?sent=again")
    return _keep_pending(response, rt, outcome)


# --- Removing the e-mail address or mobile number ------------------------------------------


@router.get(BASE + "/{kind_name}/remove")
async def remove_form(request: Request, kind_name: str) -> Response:
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    try:
        entry = await _entry(rt, session.pid)
    except registry.NotFound:
        return not_found(request, rt, session)
    refused = contact.removal_refused(entry, kind)
    if refused == "nothing" or entry is None:
        return redirect(rt, session, BASE)
    context = {
        "kind": kind.value,
        "current": getattr(entry, kind.value),
        "refused": REMOVAL_REFUSED[kind] if refused else None,
        "last_one": not (entry.mobile if kind is Kind.email else entry.email),
    }
    return page(request, rt, session, "mailbox/contact_remove.html", context)


@router.post(BASE + "/{kind_name}/remove")
async def remove(request: Request, kind_name: str) -> Response:
    rt, session = await signed_in(request)
    kind = _kind(kind_name)
    if kind is None:
        return not_found(request, rt, session)
    async with rt.db.session() as db:
        try:
            entry = await registry.contact(db, session.pid, ACCESS)
        except registry.NotFound:
            return not_found(request, rt, session)
        refused = contact.removal_refused(entry, kind)
        if refused == "nothing" or entry is None:
            return redirect(rt, session, BASE)
        if refused:
            return redirect(rt, session, f"{BASE}/{kind.value}/remove")
        await registry.set_contact(
            db,
            session.pid,
            email=None if kind is Kind.email else entry.email,
            mobile=None if kind is Kind.mobile else entry.mobile,
            confirmed_on=entry.last_confirmed_on or contact.today(),
            language=entry.language,
            changed_by=CHANGED_BY,
        )
    log.info("contact_removed", kind=kind.value)
    return redirect(rt, session, f"{BASE}?done={kind.value}-removed")
