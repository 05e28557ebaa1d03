"""Pages of the passkey login method, and the account page where people add passkeys.

The ceremonies need JavaScript (`static/js/passkey.js`): a page carries the WebAuthn
options in a `data-` attribute, the script asks the browser for a passkey and posts the
answer here as JSON (with the CSRF token in `X-CSRF-Token`). The sealed challenge
travels in a short-lived, HttpOnly cookie scoped to the ceremony's path. Every JSON
answer is either `{"redirect": url}`, which the script follows, or
`{"error": text, "options": fresh options}` for another try.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from felles.identity import levels, methods, passkeys
from felles.identity.account import account_login_url, current_person
from felles.identity.api import authorize_error_page
from felles.identity.errors import NO_STORE
from felles.identity.methods import N_, LoginMethod
from felles.identity.pages import finish_login
from felles.identity.passkeys import Ceremony, CloneWarning, PasskeyError, PasskeyRecord, Passkeys
from felles.identity.runtime import IdentityRuntime, runtime
from felles.identity.service import AuthorizeError, SsoState
from felles.web.i18n import translations
from felles.web.keys import load_or_create_secret
from felles.web.observability import log
from felles.web.templating import render, request_language

router = APIRouter(include_in_schema=False)

ACCOUNT_PATH = "/account/passkeys"
LOGIN_PATH = "/login/passkey"
REGISTER_COOKIE = "felles_passkey_register"
LOGIN_COOKIE = "felles_passkey_login"
MAX_AUTH_LENGTH = 100
LOCAL_TIME = ZoneInfo("Europe/Oslo")
BABEL_LOCALES = {"nb": "nb", "nn": "nn", "en": "en_GB"}

methods.register(
    LoginMethod(
        name="passkey",
        label=N_("Passkey"),
        hint=N_("Use the fingerprint, face or PIN of your phone or computer."),
        path=LOGIN_PATH,
        max_acr=levels.HIGH,
        # Browsers refuse WebAuthn on an IP address or plain http other than localhost.
        available=passkeys.available,
        order=20,
    )
)


def passkey_service(rt: IdentityRuntime, request: Request) -> Passkeys:
    """The process's passkey service, made on first use (its key under keys/)."""
    state = request.app.state
    service: Passkeys | None = getattr(state, "passkeys", None)
    if service is None:
        key = load_or_create_secret(rt.settings.keys_dir / "webauthn.key")
        service = Passkeys(rt.settings, key)
        state.passkeys = service
    return service


def _set_ceremony_cookie(
    response: Response, rt: IdentityRuntime, name: str, path: str, ceremony: Ceremony
) -> None:
    response.set_cookie(
        name,
        ceremony.sealed,
        max_age=passkeys.CHALLENGE_SECONDS,
        path=path,
        httponly=True,
        samesite="strict",
        secure=rt.settings.https,
    )


def _gettext(request: Request, message: str) -> str:
    return translations(request_language(request)).gettext(message)


async def _json_body(request: Request) -> dict[str, Any] | None:
    if not request.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _refusal(
    request: Request, rt: IdentityRuntime, message: str, cookie: tuple[str, str, Ceremony] | None
) -> Response:
    """400 with the reason in the person's language, and fresh options to try again."""
    body: dict[str, Any] = {"error": _gettext(request, message)}
    if cookie is not None:
        body["options"] = cookie[2].options_json
    response = JSONResponse(body, status_code=400, headers=NO_STORE)
    if cookie is not None:
        _set_ceremony_cookie(response, rt, *cookie)
    return response


# --- Account: the person's passkeys ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moment:
    iso: str  # for <time datetime>
    text: str  # in the person's language, Norwegian time


def _moment(value: datetime, lang: str, with_time: bool) -> Moment:
    local = value.astimezone(LOCAL_TIME)
    locale = BABEL_LOCALES.get(lang, "nb")
    text = format_date(local, "long", locale=locale)
    if with_time:
        text += ", " + format_time(local, "short", locale=locale)
    return Moment(local.isoformat(timespec="minutes"), text)


def _rows(records: list[PasskeyRecord], lang: str) -> list[dict[str, Any]]:
    return [
        {
            "credential_id": r.credential_id,
            "name": r.name,
            "created": _moment(r.created_at, lang, with_time=False),
            "last_used": _moment(r.last_used_at, lang, with_time=True) if r.last_used_at else None,
        }
        for r in records
    ]


async def _person_at_high(request: Request) -> SsoState | None:
    """The logged-in person, if their session reached level high (a weaker login must not
    add or remove a credential that gives high)."""
    person = await current_person(request)
    if person is None or levels.rank(person.acr) < levels.rank(levels.HIGH):
        return None
    return person


def _step_up_url() -> str:
    return account_login_url(ACCOUNT_PATH, acr=levels.HIGH)


@router.get(ACCOUNT_PATH)
async def account_passkeys(
    request: Request, done: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    person = await _person_at_high(request)
    if person is None:
        return RedirectResponse(_step_up_url(), status_code=303)
    rt = await runtime(request)
    service = passkey_service(rt, request)
    async with rt.db.session() as session:
        records = await service.list_for(session, person.pid)
        ceremony = (
            await service.registration_options(session, person.pid)
            if len(records) < passkeys.MAX_PASSKEYS
            else None
        )
    response = render(
        request,
        "identity/passkey/account.html",
        {
            "passkeys": _rows(records, request_language(request)),
            "options_json": ceremony.options_json if ceremony else None,
            "done": done if done in ("added", "removed") else None,
            "too_many": passkeys.TOO_MANY,
            "name_length": passkeys.NAME_LENGTH,
        },
        headers=NO_STORE,
    )
    if ceremony is not None:
        _set_ceremony_cookie(response, rt, REGISTER_COOKIE, ACCOUNT_PATH, ceremony)
    return response


@router.post(ACCOUNT_PATH + "/register")
async def register_passkey(request: Request) -> Response:
    person = await _person_at_high(request)
    if person is None:
        return JSONResponse({"redirect": _step_up_url()}, status_code=401, headers=NO_STORE)
    rt = await runtime(request)
    service = passkey_service(rt, request)
    body = await _json_body(request)
    credential = body.get("credential") if body else None
    name = body.get("name") if body else None
    if not isinstance(credential, dict) or not isinstance(name, str | None):
        return _refusal(request, rt, passkeys.TRY_AGAIN, None)
    try:
        async with rt.db.session() as session:
            await service.register(
                session, person.pid, request.cookies.get(REGISTER_COOKIE), credential, name
            )
    except PasskeyError as exc:
        log.info("passkey_registration_failed", reason=exc.reason[:200])
        async with rt.db.session() as session:
            fresh = await service.registration_options(session, person.pid)
        return _refusal(request, rt, exc.message, (REGISTER_COOKIE, ACCOUNT_PATH, fresh))
    response = JSONResponse({"redirect": ACCOUNT_PATH + "?done=added"}, headers=NO_STORE)
    response.delete_cookie(REGISTER_COOKIE, path=ACCOUNT_PATH)
    return response


@router.post(ACCOUNT_PATH + "/remove")
async def remove_passkey(
    request: Request, credential_id: Annotated[str, Form(max_length=1400)]
) -> Response:
    person = await _person_at_high(request)
    if person is None:
        return RedirectResponse(_step_up_url(), status_code=303)
    rt = await runtime(request)
    async with rt.db.session() as session:
        removed = await passkey_service(rt, request).remove(session, person.pid, credential_id)
    target = ACCOUNT_PATH + ("?done=removed" if removed else "")
    return RedirectResponse(target, status_code=303)


# --- Login -------------------------------------------------------------------------------


@router.get(LOGIN_PATH)
async def login_page(
    request: Request, auth: Annotated[str, Query(max_length=MAX_AUTH_LENGTH)]
) -> Response:
    rt = await runtime(request)
    try:
        async with rt.db.session() as session:
            pending = await rt.identity.pending(session, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    ceremony = passkey_service(rt, request).login_options(auth)
    response = render(
        request,
        "identity/passkey/login.html",
        {"auth": auth, "client_name": pending.client.name, "options_json": ceremony.options_json},
        headers=NO_STORE,
    )
    _set_ceremony_cookie(response, rt, LOGIN_COOKIE, LOGIN_PATH, ceremony)
    return response


def _back_to_login_page(auth: str) -> Response:
    """The request is gone (finished, expired): its page says so in plain language."""
    return JSONResponse({"redirect": f"{LOGIN_PATH}?auth={quote(auth, safe='')}"}, headers=NO_STORE)


@router.post(LOGIN_PATH + "/verify")
async def verify_login(request: Request) -> Response:
    rt = await runtime(request)
    service = passkey_service(rt, request)
    body = await _json_body(request)
    auth = body.get("auth") if body else None
    credential = body.get("credential") if body else None
    if not isinstance(auth, str) or not auth or len(auth) > MAX_AUTH_LENGTH:
        return _refusal(request, rt, passkeys.TRY_AGAIN, None)
    if not isinstance(credential, dict):
        fresh = service.login_options(auth)
        return _refusal(request, rt, passkeys.TRY_AGAIN, (LOGIN_COOKIE, LOGIN_PATH, fresh))
    try:
        clone: CloneWarning | None = None
        async with rt.db.session() as session:
            await rt.identity.pending(session, auth)
            try:
                who = await service.login(
                    session, auth, request.cookies.get(LOGIN_COOKIE), credential
                )
            except CloneWarning as exc:
                clone = exc  # leave the block normally, so the audit event is committed
        if clone is not None:
            raise clone
    except AuthorizeError:
        return _back_to_login_page(auth)
    except PasskeyError as exc:
        log.warning("passkey_login_failed", reason=exc.reason[:200])
        fresh = service.login_options(auth)
        return _refusal(request, rt, exc.message, (LOGIN_COOKIE, LOGIN_PATH, fresh))
    finished = await finish_login(request, auth, who)
    response = _as_json(finished, auth)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


def _as_json(finished: Response, auth: str) -> Response:
    """`finish_login` answers a form post with a redirect (and the SSO cookie); a script's
    fetch gets the same as JSON, with the same cookies, and follows it itself."""
    location = finished.headers.get("location")
    if finished.status_code not in (302, 303) or not location:
        return _back_to_login_page(auth)
    response = JSONResponse({"redirect": location}, headers=NO_STORE)
    for cookie in finished.headers.getlist("set-cookie"):
        response.headers.append("set-cookie", cookie)
    return response
