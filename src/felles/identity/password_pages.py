"""Pages of the password login method and of its enrolment on the account pages.

The login is three short pages, one question each, that work without JavaScript:
identity number and password (`/login/password`), where to send the code when there
are two choices (`/login/password/send`), and the code (`/login/password/code`). The
state between them travels in a sealed hidden field (see `password.PasswordLogin.seal`),
so nothing about the person appears in a URL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from felles.identity import levels
from felles.identity.account import account_login_url, current_person
from felles.identity.api import authorize_error_page
from felles.identity.methods import N_, LoginMethod, register
from felles.identity.pages import finish_login, use_requested_language
from felles.identity.password import (
    CODE_DIGITS,
    CodeResult,
    LoginState,
    PasswordLogin,
    PasswordProblem,
    PasswordResult,
    Step,
    group_secret,
    password_problems,
    provisioning_uri,
    qr_data_uri,
)
from felles.identity.runtime import runtime
from felles.identity.service import Authenticated, AuthorizationRequest, AuthorizeError
from felles.notifications.service import NotificationError
from felles.registry.numbers import InvalidNumber, parse_pid
from felles.web.i18n import translations
from felles.web.observability import log
from felles.web.templating import render, request_language

router = APIRouter(include_in_schema=False)

register(
    LoginMethod(
        name="password",
        label=N_("Password and code"),
        hint=N_(
            "Your own password, and a code we send to your mobile phone or e-mail, "
            "or one from your authenticator app."
        ),
        path="/login/password",
        max_acr=levels.SUBSTANTIAL,
        order=10,
    )
)


def ngettext(singular: str, plural: str, n: int) -> tuple[str, str, int]:
    """Marks a plural message for extraction; it is translated when rendered."""
    return singular, plural, n


@dataclass(frozen=True, slots=True)
class FieldError:
    """One error: the field it belongs to (the summary links there) and its text."""

    field: str
    text: str
    plural: str | None = None
    n: int = 0

    @classmethod
    def counted(cls, field: str, message: tuple[str, str, int]) -> FieldError:
        singular, plural, n = message
        return cls(field, singular, plural, n)


def _minutes(seconds: int) -> int:
    return max(1, -(-seconds // 60))


# --- Messages -----------------------------------------------------------------------

E_PID_MISSING = N_("Enter your national identity number")
E_PID_INVALID = N_("Enter a national identity number of 11 digits")
E_PASSWORD_MISSING = N_("Enter your password")
E_WRONG = N_("The national identity number or the password is wrong")
E_STATE = N_("The login took too long. Enter your national identity number and password again.")
E_NO_CHANNEL = N_(
    "We cannot send you a code, because the contact register has no mobile number or "
    "e-mail address for you. Choose another way to log in."
)
E_SEND_FAILED = N_("We could not send the code. Try again in a few minutes.")
E_CHANNEL_MISSING = N_("Choose where we should send the code")
E_CODE_MISSING = N_("Enter the code")
E_CODE_FORMAT = N_("The code must be 6 digits")
E_CODE_WRONG = N_("The code is wrong. Check it and try again.")
E_TOTP_WRONG = N_(
    "The code is wrong. Check that you use the code for Felles and that the time on your "
    "phone is right."
)
E_TOTP_REUSED = N_("This code has already been used. Wait until the app shows a new code.")
E_CODE_EXPIRED = N_("The code has expired. Send a new code.")
E_CODE_USED = N_("This code has already been used. Send a new code.")
E_CODE_EXHAUSTED = N_("You have entered a wrong code too many times. Send a new code.")
NOTICE_SENT_AGAIN = N_("We have sent you a new code.")

PASSWORD_MESSAGES: dict[PasswordProblem, tuple[str, str]] = {
    PasswordProblem.missing: ("password", N_("Enter a new password")),
    PasswordProblem.too_short: ("password", N_("The password must be at least 10 characters")),
    PasswordProblem.too_long: ("password", N_("The password must be 128 characters or fewer")),
    PasswordProblem.too_common: (
        "password",
        N_("This password is one of the most common ones. Choose one that is harder to guess"),
    ),
    PasswordProblem.personal: (
        "password",
        N_("The password must not contain your national identity number or birth date"),
    ),
    PasswordProblem.mismatch: ("password_again", N_("The two passwords are not the same")),
}


def _locked(seconds: int) -> FieldError:
    n = _minutes(seconds)
    return FieldError.counted(
        "password",
        ngettext(
            "You have entered a wrong password too many times. "
            "You can try again in %(num)d minute.",
            "You have entered a wrong password too many times. "
            "You can try again in %(num)d minutes.",
            n,
        ),
    )


def _ip_limited(field: str, seconds: int) -> FieldError:
    n = _minutes(seconds)
    return FieldError.counted(
        field,
        ngettext(
            "There have been too many attempts to log in from your network. "
            "You can try again in %(num)d minute.",
            "There have been too many attempts to log in from your network. "
            "You can try again in %(num)d minutes.",
            n,
        ),
    )


def _code_limited(seconds: int) -> FieldError:
    n = _minutes(seconds)
    return FieldError.counted(
        "code",
        ngettext(
            "You have entered a wrong code too many times. You can try again in %(num)d minute.",
            "You have entered a wrong code too many times. You can try again in %(num)d minutes.",
            n,
        ),
    )


def _too_many_sent(field: str, seconds: int) -> FieldError:
    n = _minutes(seconds)
    return FieldError.counted(
        field,
        ngettext(
            "We have sent you many codes already. You can ask for a new one in %(num)d minute.",
            "We have sent you many codes already. You can ask for a new one in %(num)d minutes.",
            n,
        ),
    )


def _wrong_code(attempts_left: int) -> FieldError:
    if attempts_left <= 0:
        return FieldError("code", E_CODE_WRONG)
    return FieldError.counted(
        "code",
        ngettext(
            "The code is wrong. You can try %(num)d more time.",
            "The code is wrong. You can try %(num)d more times.",
            attempts_left,
        ),
    )


# --- Helpers ------------------------------------------------------------------------


def login_service(app: FastAPI) -> PasswordLogin:
    """The process's PasswordLogin, made on first use (it needs the runtime's settings)."""
    existing: PasswordLogin | None = getattr(app.state, "password_login", None)
    if existing is None:
        rt = app.state.identity
        existing = PasswordLogin.create(rt.settings, rt.db)
        app.state.password_login = existing
    return existing


def service(request: Request) -> PasswordLogin:
    return login_service(request.app)


def client_ip(request: Request) -> str:
    """The client's address: the socket peer, or what a trusted proxy (FELLES_TRUSTED_PROXIES,
    applied by the server before the app) says in X-Forwarded-For."""
    return request.client.host if request.client else "unknown"


async def _pending(request: Request, auth: str) -> AuthorizationRequest:
    """The login request waiting for this person; its `ui_locales` sets the pages'
    language unless the person chose one."""
    rt = await runtime(request)
    async with rt.db.session() as session:
        pending = await rt.identity.pending(session, auth)
    use_requested_language(request, pending)
    return pending


def _retry_after(seconds: int) -> dict[str, str]:
    return {"retry-after": str(max(1, seconds))}


def _login_page(
    request: Request,
    auth: str,
    client_name: str,
    *,
    pid: str = "",
    errors: list[FieldError] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "identity/password/login.html",
        {"auth": auth, "client_name": client_name, "pid": pid, "errors": errors or []},
        status_code=status_code,
        headers=headers,
    )


def _code_page(
    request: Request,
    auth: str,
    sealed: str,
    state: LoginState,
    *,
    errors: list[FieldError] | None = None,
    notice: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "identity/password/code.html",
        {
            "auth": auth,
            "state": sealed,
            "step": state.step.value,
            "channel": state.channel,
            "to": state.to,
            "errors": errors or [],
            "notice": notice,
        },
        status_code=status_code,
        headers=headers,
    )


def _choose_page(
    request: Request,
    auth: str,
    sealed: str,
    options: list[tuple[str, str]],
    *,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "identity/password/choose.html",
        {"auth": auth, "state": sealed, "options": options, "errors": errors or []},
        status_code=status_code,
    )


def _state_expired(request: Request, auth: str, client_name: str) -> Response:
    return _login_page(
        request, auth, client_name, errors=[FieldError("pid", E_STATE)], status_code=400
    )


async def _send_code(
    request: Request, svc: PasswordLogin, pid: str, channel: str, address: str, to: str
) -> LoginState | FieldError:
    """Make a code, store it, and send it; the state for the code page, or why not."""
    wait = await svc.may_send(pid)
    if wait:
        return _too_many_sent("code", wait)
    rt = await runtime(request)
    async with rt.db.session() as session:
        otc_id, code = await svc.issue_code(session, pid, channel)
    gettext = translations(request_language(request)).gettext
    text = gettext(
        "%(code)s is your code to log in to Felles. It is valid for 5 minutes. "
        "Never give the code to anyone."
    ) % {"code": code}
    try:
        if channel == "sms":
            host = urlsplit(rt.settings.base_url).netloc
            # The last line lets phones offer the code only on our own site (WebOTP).
            await svc.notifier.send_sms(address, f"{text}\n\n@{host} #{code}")
        else:
            body = gettext(
                "If you did not try to log in, someone may know your password. Change it at %(url)s"
            ) % {"url": f"{rt.settings.base_url}/account/password"}
            await svc.notifier.send_email(
                address, gettext("Your code to log in to Felles"), f"{text}\n\n{body}\n"
            )
    except (NotificationError, ValueError) as exc:
        log.warning("login_code_not_sent", channel=channel, reason=str(exc))
        return FieldError("code", E_SEND_FAILED)
    return LoginState(pid, Step.code, otc_id, channel, to)


async def _second_factor(
    request: Request, svc: PasswordLogin, auth: str, pending: AuthorizationRequest, pid: str
) -> Response:
    """After a correct password: the app's code, a choice of channel, or a sent code."""
    rt = await runtime(request)
    async with rt.db.session() as session:
        if await svc.has_totp(session, pid):
            state = LoginState(pid, Step.totp)
            return _code_page(request, auth, svc.seal(auth, state), state)
        channels = await svc.channels(session, pid)
    available = channels.available()
    if not available:
        return _login_page(
            request,
            auth,
            pending.client.name,
            errors=[FieldError("pid", E_NO_CHANNEL)],
            status_code=400,
        )
    if len(available) > 1:
        choose = svc.seal(auth, LoginState(pid, Step.choose))
        options = [(c, channels.masked(c)) for c in available]
        return _choose_page(request, auth, choose, options)
    channel = available[0]
    outcome = await _send_code(
        request, svc, pid, channel, channels.address(channel) or "", channels.masked(channel)
    )
    if isinstance(outcome, FieldError):
        return _login_page(
            request,
            auth,
            pending.client.name,
            errors=[FieldError("pid", outcome.text, outcome.plural, outcome.n)],
            status_code=429 if outcome.plural else 503,
        )
    return _code_page(request, auth, svc.seal(auth, outcome), outcome)


# --- Login pages --------------------------------------------------------------------


def _too_weak(pending: AuthorizationRequest, auth: str) -> Response | None:
    """A service that needs a higher level than this method gives: back to the choice
    of methods (the method is not offered there), rather than a failed login at the end."""
    if levels.rank(pending.wanted_acr) > levels.rank(levels.SUBSTANTIAL):
        return RedirectResponse("/login?" + urlencode({"auth": auth}), status_code=303)
    return None


@router.get("/login/password")
async def password_form(request: Request, auth: Annotated[str, Query(max_length=100)]) -> Response:
    try:
        pending = await _pending(request, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    return _too_weak(pending, auth) or _login_page(request, auth, pending.client.name)


@router.post("/login/password")
async def password_submit(
    request: Request,
    auth: Annotated[str, Form(max_length=100)],
    pid: Annotated[str, Form(max_length=50)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    svc = service(request)
    try:
        pending = await _pending(request, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    if (elsewhere := _too_weak(pending, auth)) is not None:
        return elsewhere
    name = pending.client.name
    errors: list[FieldError] = []
    number = ""
    if not pid.strip():
        errors.append(FieldError("pid", E_PID_MISSING))
    else:
        try:
            number = parse_pid(pid).value
        except InvalidNumber:
            errors.append(FieldError("pid", E_PID_INVALID))
    if not password:
        errors.append(FieldError("password", E_PASSWORD_MISSING))
    if errors:
        return _login_page(request, auth, name, pid=pid, errors=errors, status_code=400)

    attempt = await svc.attempt_password(
        number, password, ip=client_ip(request), client_id=pending.client.client_id
    )
    if attempt.result is PasswordResult.ip_limited:
        error = _ip_limited("pid", attempt.retry_after)
        headers = _retry_after(attempt.retry_after)
        return _login_page(
            request, auth, name, pid=pid, errors=[error], status_code=429, headers=headers
        )
    if attempt.result is PasswordResult.locked:
        headers = _retry_after(attempt.retry_after)
        error = _locked(attempt.retry_after)
        return _login_page(
            request, auth, name, pid=pid, errors=[error], status_code=429, headers=headers
        )
    if attempt.result is PasswordResult.wrong:
        wrong = [FieldError("pid", E_WRONG)]
        return _login_page(request, auth, name, pid=pid, errors=wrong, status_code=400)
    return await _second_factor(request, svc, auth, pending, number)


@router.post("/login/password/send")
async def send_submit(
    request: Request,
    auth: Annotated[str, Form(max_length=100)],
    state: Annotated[str, Form(max_length=1000)] = "",
    channel: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    svc = service(request)
    try:
        pending = await _pending(request, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    current = svc.unseal(auth, state)
    if current is None or current.step is not Step.choose:
        return _state_expired(request, auth, pending.client.name)
    rt = await runtime(request)
    async with rt.db.session() as session:
        channels = await svc.channels(session, current.pid)
    available = channels.available()
    if not available:
        errors = [FieldError("pid", E_NO_CHANNEL)]
        return _login_page(request, auth, pending.client.name, errors=errors, status_code=400)
    if channel not in available:
        options = [(c, channels.masked(c)) for c in available]
        errors = [FieldError("channel", E_CHANNEL_MISSING)]
        return _choose_page(request, auth, state, options, errors=errors, status_code=400)
    outcome = await _send_code(
        request,
        svc,
        current.pid,
        channel,
        channels.address(channel) or "",
        channels.masked(channel),
    )
    if isinstance(outcome, FieldError):
        options = [(c, channels.masked(c)) for c in available]
        error = FieldError("channel", outcome.text, outcome.plural, outcome.n)
        return _choose_page(request, auth, state, options, errors=[error], status_code=503)
    return _code_page(request, auth, svc.seal(auth, outcome), outcome)


@router.post("/login/password/resend")
async def resend_submit(
    request: Request,
    auth: Annotated[str, Form(max_length=100)],
    state: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    svc = service(request)
    try:
        pending = await _pending(request, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    current = svc.unseal(auth, state)
    if current is None or current.step is not Step.code or current.channel is None:
        return _state_expired(request, auth, pending.client.name)
    rt = await runtime(request)
    async with rt.db.session() as session:
        channels = await svc.channels(session, current.pid)
    address = channels.address(current.channel)
    if not address:
        errors = [FieldError("pid", E_NO_CHANNEL)]
        return _login_page(request, auth, pending.client.name, errors=errors, status_code=400)
    outcome = await _send_code(
        request, svc, current.pid, current.channel, address, channels.masked(current.channel)
    )
    if isinstance(outcome, FieldError):
        status = 429 if outcome.plural else 503
        return _code_page(request, auth, state, current, errors=[outcome], status_code=status)
    sealed = svc.seal(auth, outcome)
    return _code_page(request, auth, sealed, outcome, notice=NOTICE_SENT_AGAIN)


@router.get("/login/password/code")
async def code_form(auth: Annotated[str, Query(max_length=100)] = "") -> Response:
    """The code page only exists as the answer to a form; a bookmark starts over."""
    target = "/login/password?" + urlencode({"auth": auth}) if auth else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/login/password/code")
async def code_submit(
    request: Request,
    auth: Annotated[str, Form(max_length=100)],
    state: Annotated[str, Form(max_length=1000)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    svc = service(request)
    try:
        pending = await _pending(request, auth)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    current = svc.unseal(auth, state)
    if current is None or current.step is Step.choose:
        return _state_expired(request, auth, pending.client.name)
    code = code.replace(" ", "").strip()
    if not code:
        errors = [FieldError("code", E_CODE_MISSING)]
        return _code_page(request, auth, state, current, errors=errors, status_code=400)
    if len(code) != CODE_DIGITS or not code.isdigit():
        errors = [FieldError("code", E_CODE_FORMAT)]
        return _code_page(request, auth, state, current, errors=errors, status_code=400)

    outcome = await svc.attempt_code(
        current, code, ip=client_ip(request), client_id=pending.client.client_id
    )
    if outcome.result is CodeResult.ok:
        second = "sms" if current.channel == "sms" else "otp"
        who = Authenticated(
            pid=current.pid, acr=levels.SUBSTANTIAL, amr=("pwd", second), method="password"
        )
        return await finish_login(request, auth, who)
    totp = current.step is Step.totp
    headers: dict[str, str] | None = None
    status = 400
    if outcome.result is CodeResult.limited:
        error = _code_limited(outcome.retry_after)
        headers, status = _retry_after(outcome.retry_after), 429
    elif outcome.result is CodeResult.wrong:
        error = FieldError("code", E_TOTP_WRONG) if totp else _wrong_code(outcome.attempts_left)
    elif outcome.result is CodeResult.reused:
        error = FieldError("code", E_TOTP_REUSED)
    elif outcome.result is CodeResult.used:
        error = FieldError("code", E_CODE_USED)
    elif outcome.result is CodeResult.exhausted:
        error = FieldError("code", E_CODE_EXHAUSTED)
    else:
        error = FieldError("code", E_CODE_EXPIRED)
    return _code_page(
        request, auth, state, current, errors=[error], status_code=status, headers=headers
    )


# --- Account pages: set a password, add or remove an authenticator app -------------


def _reference() -> str:
    """A reference number people can read out on the phone (no 0/O, 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def _done(
    request: Request, heading: str, text: str, reference: str, links: list[tuple[str, str]]
) -> Response:
    return render(
        request,
        "identity/password/done.html",
        {"heading": heading, "text": text, "reference": reference, "links": links},
    )


FRONT_PAGE_LINK = ("/", N_("Go to the front page"))


@router.get("/account/password")
async def account_password_form(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(account_login_url("/account/password"), status_code=303)
    rt = await runtime(request)
    async with rt.db.session() as session:
        has_password = await service(request).has_password(session, person.pid)
    return _account_password_page(request, person.pid, has_password)


def _account_password_page(
    request: Request,
    pid: str,
    has_password: bool,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> Response:
    heading = N_("Change your password") if has_password else N_("Set a password")
    return render(
        request,
        "identity/password/account_password.html",
        {"heading": heading, "pid": pid, "has_password": has_password, "errors": errors or []},
        status_code=status_code,
    )


@router.post("/account/password")
async def account_password_submit(
    request: Request,
    password: Annotated[str, Form(max_length=1000)] = "",
    password_again: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(account_login_url("/account/password"), status_code=303)
    svc = service(request)
    rt = await runtime(request)
    problems = password_problems(password, password_again, person.pid)
    if problems:
        async with rt.db.session() as session:
            has_password = await svc.has_password(session, person.pid)
        errors = [FieldError(*PASSWORD_MESSAGES[p]) for p in problems]
        return _account_password_page(request, person.pid, has_password, errors, status_code=400)
    reference = _reference()
    changed = await svc.set_password(person.pid, password, reference=reference)
    links = [("/account/totp", N_("Set up an authenticator app")), FRONT_PAGE_LINK]
    return _done(
        request,
        N_("Your password is changed") if changed else N_("Your password is saved"),
        N_(
            "From now on you can log in with your national identity number, your password "
            "and a code."
        ),
        reference,
        links,
    )


async def _totp_page(
    request: Request,
    pid: str,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> Response:
    svc = service(request)
    rt = await runtime(request)
    async with rt.db.session() as session:
        if await svc.has_totp(session, pid):
            return render(request, "identity/password/totp_status.html")
        secret = await svc.begin_totp(session, pid)
    qr, size = qr_data_uri(provisioning_uri(secret, pid))
    return render(
        request,
        "identity/password/totp.html",
        {"secret": group_secret(secret), "qr": qr, "qr_size": size, "errors": errors or []},
        status_code=status_code,
    )


@router.get("/account/totp")
async def account_totp_form(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(account_login_url("/account/totp"), status_code=303)
    return await _totp_page(request, person.pid)


@router.post("/account/totp")
async def account_totp_submit(
    request: Request, code: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(account_login_url("/account/totp"), status_code=303)
    code = code.replace(" ", "").strip()
    if not code:
        return await _totp_page(
            request, person.pid, [FieldError("code", E_CODE_MISSING)], status_code=400
        )
    if len(code) != CODE_DIGITS or not code.isdigit():
        return await _totp_page(
            request, person.pid, [FieldError("code", E_CODE_FORMAT)], status_code=400
        )
    svc = service(request)
    rt = await runtime(request)
    reference = _reference()
    async with rt.db.session() as session:
        confirmed = await svc.confirm_totp(session, person.pid, code, reference=reference)
    if not confirmed:
        return await _totp_page(
            request, person.pid, [FieldError("code", E_TOTP_WRONG)], status_code=400
        )
    return _done(
        request,
        N_("Your authenticator app is set up"),
        N_(
            "When you log in with your password, we will ask for a code from the app "
            "instead of sending you one."
        ),
        reference,
        [FRONT_PAGE_LINK],
    )


@router.get("/account/totp/remove")
async def account_totp_remove_form(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(account_login_url("/account/totp/remove"), status_code=303)
    rt = await runtime(request)
    async with rt.db.session() as session:
        if not await service(request).has_totp(session, person.pid):
            return RedirectResponse("/account/totp", status_code=303)
    return render(request, "identity/password/totp_remove.html")


@router.post("/account/totp/remove")
async def account_totp_remove_submit(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return RedirectResponse(account_login_url("/account/totp/remove"), status_code=303)
    rt = await runtime(request)
    reference = _reference()
    async with rt.db.session() as session:
        await service(request).remove_totp(session, person.pid, reference=reference)
    return _done(
        request,
        N_("The authenticator app is removed"),
        N_("When you log in with your password, we will send you a code by SMS or e-mail."),
        reference,
        [("/account/totp", N_("Set up an authenticator app")), FRONT_PAGE_LINK],
    )
