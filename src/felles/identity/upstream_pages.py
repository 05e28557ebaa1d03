"""Pages of the upstream login method: choose a provider, go there, come back.

One login method, "Other login providers", lists the enabled upstream providers that
reach the level the service asked for. Its start link sends the browser to the
provider; the provider sends it back to `/login/upstream/callback`, where the state
finds the login, the code is exchanged and the ID token checked (`felles.identity.upstream`),
and `finish_login` ends the login as every method does.

Anything that goes wrong becomes a plain-language page and an `upstream_failed` audit
event, never a traceback; the audit event holds no token, code or identity number.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from felles.identity import levels
from felles.identity import upstream as broker
from felles.identity.api import authorize_error_page
from felles.identity.crypto import constant_time_equal
from felles.identity.methods import N_, LoginMethod, register
from felles.identity.models import AuditEvent, PendingAuthorization
from felles.identity.pages import LEVEL_LABELS, finish_login, use_requested_language
from felles.identity.runtime import IdentityRuntime, runtime
from felles.identity.service import AuthorizeError
from felles.registry import service as registry
from felles.registry.numbers import mask_pid
from felles.web.observability import log
from felles.web.templating import render

router = APIRouter(include_in_schema=False)

register(
    LoginMethod(
        name=broker.METHOD,
        label=N_("Other login providers"),
        hint=N_("Log in with an electronic ID from another provider that Felles trusts."),
        path="/login/upstream",
        max_acr=levels.HIGH,
        available=lambda settings: True,
        order=30,
    )
)

# The states of this browser's logins in progress: the callback is accepted only in the
# browser that started the login (RFC 6749 10.12), so a link with someone else's code
# cannot log a person in as someone else.
STATE_COOKIE = "felles_upstream"
STATE_COOKIE_PATH = "/login/upstream"
MAX_STATES = 4

# What a person reads when a brokered login fails: a heading, what to do next, status.
SESSION_GONE = (
    N_("This login has expired or was already used"),
    N_("Go back to the service you came from and start the login again."),
    400,
)
NOT_COMPLETED = (
    N_("The login was not completed"),
    N_(
        "The login at the other provider was cancelled or did not succeed. "
        "You can try again, or choose another way to log in."
    ),
    400,
)
TECHNICAL = (
    N_("We could not complete the login"),
    N_(
        "Something went wrong between Felles and the other login provider. Nothing you did "
        "caused this. Try again in a few minutes, or choose another way to log in."
    ),
    502,
)
MESSAGES: dict[str, tuple[str, str, int]] = {
    "unknown_state": SESSION_GONE,
    "state_not_bound": SESSION_GONE,
    "expired": SESSION_GONE,
    "cancelled": NOT_COMPLETED,
    "upstream_error": NOT_COMPLETED,
    "provider_unavailable": (
        N_("This login provider cannot be used now"),
        N_("Choose another way to log in."),
        400,
    ),
    "level_too_low": (
        N_("The login was not secure enough"),
        N_(
            "The other provider logged you in at a lower level of security than this "
            "service needs. Choose another way to log in."
        ),
        403,
    ),
    "unknown_person": (
        N_("We cannot find you in the population register"),
        N_(
            "The other provider logged you in, but your national identity number is not in "
            "the population register that Felles uses, so we cannot log you in to the "
            "service. Choose another way to log in, or contact the service."
        ),
        403,
    ),
    "invalid_pid": (
        N_("We could not complete the login"),
        N_(
            "The other provider did not tell us your national identity number, so we cannot "
            "log you in to the service. Choose another way to log in."
        ),
        502,
    ),
}


def _states(request: Request) -> list[str]:
    raw = request.cookies.get(STATE_COOKIE, "")
    return [s for s in raw.split(".") if s][:MAX_STATES] if len(raw) <= 400 else []


def _set_states(response: Response, rt: IdentityRuntime, states: list[str]) -> None:
    if states:
        response.set_cookie(
            STATE_COOKIE,
            ".".join(states[-MAX_STATES:]),
            max_age=broker.LOGIN_SECONDS,
            path=STATE_COOKIE_PATH,
            httponly=True,
            samesite="lax",  # sent on the provider's top-level redirect back to us
            secure=rt.settings.https,
        )
    else:
        response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)


async def _pending_still_open(rt: IdentityRuntime, pending_id: str | None) -> bool:
    if not pending_id:
        return False
    try:
        async with rt.db.session() as session:
            await rt.identity.pending(session, pending_id)
    except AuthorizeError:
        return False
    return True


async def _failed(
    request: Request,
    error: broker.UpstreamError,
    *,
    pid: str | None = None,
    keep_states: list[str] | None = None,
) -> Response:
    """Record the failure (audit event, log line) and show a plain-language page."""
    rt = await runtime(request)
    detail: dict[str, str] = {"reason": error.reason, "detail": error.detail[:300], **error.extra}
    if error.provider:
        detail["provider"] = error.provider
    if pid:
        detail["pid_masked"] = mask_pid(pid)
    async with rt.db.session() as session:
        client_id = None
        if error.pending_id:
            pending = await session.get(PendingAuthorization, error.pending_id)
            client_id = pending.client_id if pending is not None else None
        session.add(
            AuditEvent(
                at=broker.now(),
                event="upstream_failed",
                pid=None,
                client_id=client_id,
                session_id=None,
                detail=detail,
            )
        )
    log.warning(
        "upstream_failed",
        provider=error.provider,
        reason=error.reason,
        detail=error.detail,
        client_id=client_id,
    )
    heading, advice, status = MESSAGES.get(error.reason, TECHNICAL)
    retry = error.pending_id if await _pending_still_open(rt, error.pending_id) else None
    response = render(
        request,
        "identity/upstream/error.html",
        {"heading": heading, "advice": advice, "auth": retry},
        status_code=status,
    )
    if keep_states is not None:
        _set_states(response, rt, keep_states)
    return response


@router.get("/login/upstream")
async def choose_provider(
    request: Request, auth: Annotated[str, Query(max_length=100)]
) -> Response:
    """The providers that reach the level the service asked for, one button each."""
    rt = await runtime(request)
    try:
        async with rt.db.session() as session:
            pending = await rt.identity.pending(session, auth)
            providers = await broker.list_providers(session, enabled_only=True)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    use_requested_language(request, pending)
    offered = [p for p in providers if levels.satisfies(p.acr, pending.acr_values)]
    return render(
        request,
        "identity/upstream/choose.html",
        {
            "auth": auth,
            "client_name": pending.client.name,
            "providers": offered,
            "levels": LEVEL_LABELS,
        },
    )


@router.get("/login/upstream/{name}/start")
async def start(
    request: Request,
    name: Annotated[str, Path(max_length=50)],
    auth: Annotated[str, Query(max_length=100)],
    login_hint: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """Keep state, nonce and PKCE verifier, and send the browser to the provider."""
    rt = await runtime(request)
    try:
        async with rt.db.session() as session:
            pending = await rt.identity.pending(session, auth)
            record = await broker.find_provider(session, name)
    except AuthorizeError as exc:
        return authorize_error_page(request, exc.error, exc.description)
    if record is None or not record.enabled or not levels.satisfies(record.acr, pending.acr_values):
        return await _failed(
            request,
            broker.UpstreamError(
                "provider_unavailable",
                "the provider is unknown, disabled or below the level asked for",
                pending_id=auth,
                provider=name if record is not None else None,
            ),
        )
    try:
        metadata = await broker.CACHE.metadata(record.issuer)
    except broker.UpstreamError as exc:
        exc.pending_id, exc.provider = auth, record.name
        return await _failed(request, exc)
    hint = broker.forwarded_login_hint(rt.settings.demo_allowed(), login_hint, pending.login_hint)
    async with rt.db.session() as session:
        begun = await broker.begin_login(
            session,
            record,
            metadata,
            pending_id=auth,
            redirect_uri=broker.callback_url(rt.settings.base_url),
            login_hint=hint,
            ui_locales=pending.ui_locales,
        )
    response = RedirectResponse(begun.url, status_code=303)
    _set_states(response, rt, [*_states(request), begun.state])
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/login/upstream/callback")
async def callback(request: Request) -> Response:
    """The provider sends the person back here with a code (or an error)."""
    rt = await runtime(request)
    query: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in query or len(value) > 4096:
            return await _failed(
                request,
                broker.UpstreamError(
                    "unknown_state", f"the parameter {key[:30]!r} is repeated or too long"
                ),
            )
        query[key] = value
    state = query.get("state", "")
    states = _states(request)
    if not any(constant_time_equal(state, known) for known in states):
        return await _failed(
            request,
            broker.UpstreamError(
                "state_not_bound" if state else "unknown_state",
                "the state is missing or was not started in this browser",
            ),
        )
    remaining = [s for s in states if s != state]
    try:
        async with rt.db.session() as session:
            login = await broker.claim_login(session, state)
            config = await broker.provider_for_login(session, login.provider)
    except broker.UpstreamError as exc:
        return await _failed(request, exc, keep_states=remaining)

    def failure(reason: str, detail: str) -> broker.UpstreamError:
        return broker.UpstreamError(
            reason, detail, pending_id=login.pending_id, provider=login.provider
        )

    if login.expired:
        return await _failed(
            request, failure("expired", "the login took too long"), keep_states=remaining
        )
    if "error" in query:
        error = broker.callback_error(query["error"], login.provider, login.pending_id)
        return await _failed(request, error, keep_states=remaining)
    if config is None:
        return await _failed(
            request,
            failure("provider_unavailable", "the provider was disabled or removed"),
            keep_states=remaining,
        )
    code = query.get("code")
    if not code:
        return await _failed(
            request, failure("upstream_error", "the callback has no code"), keep_states=remaining
        )
    try:
        who = await broker.finish_login(
            broker.CACHE,
            config,
            login,
            master_key=rt.keys_master,
            code=code,
            iss=query.get("iss"),
            redirect_uri=broker.callback_url(rt.settings.base_url),
        )
    except broker.UpstreamError as exc:
        exc.pending_id, exc.provider = login.pending_id, login.provider
        return await _failed(request, exc, keep_states=remaining)
    async with rt.db.session() as session:
        person = await registry.find_person(
            session, who.pid, registry.Access("identity", f"login through {login.provider}")
        )
    if person is None:
        return await _failed(
            request,
            failure("unknown_person", "the person is not in the population register"),
            pid=who.pid,
            keep_states=remaining,
        )
    response = await finish_login(request, login.pending_id, who)
    _set_states(response, rt, remaining)
    return response
