"""EdgeMiddleware: what every HTTP request gets, in one plain-ASGI layer.

A correlation id, one JSON log line and Prometheus counters; security headers; the
body size limit and CSRF on unsafe requests; the last-resort 500. One layer with one
`send` wrapper, one pass over the request headers and headers added as ready-made
bytes: four separate middlewares each wrapping `send` and rebuilding `Headers` cost
more server CPU than a small protocol endpoint spends on its own work.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from secrets import token_hex
from time import perf_counter

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, unbind_contextvars

from felles.web.errors import guard_rejection, internal_error
from felles.web.observability import (
    count_request,
    log,
    mask_identity_numbers,
    route_template,
)
from felles.web.security import (
    CSP,
    CSRF_COOKIE,
    CSRF_HEADER,
    SAFE_METHODS,
    BodyTooLarge,
    CsrfState,
    CsrfTokens,
    form_token,
    read_body,
    replay,
)

REQUEST_ID_PATTERN = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")
# Routes answered often and of no interest line by line (still counted in the metrics).
UNLOGGED_ROUTES = frozenset({"/healthz", "/metrics", "/static"})

CSP_NAME = b"content-security-policy"
CSP_HEADER = (CSP_NAME, CSP.encode())
# No response sets these itself; a page may set its own CSP (it then wins).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
HSTS_HEADER = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class EdgeMiddleware:
    """The edge of every HTTP request.

    - Correlation id: a valid incoming X-Request-ID, else a new one; in `request.state`,
      in every log line of the request and echoed in the response.
    - Security headers: CSP without inline scripts, no framing, no referrer; HSTS when
      the site is served over `https` or the request came over https (Secure cookies
      only for the former).
    - Guard: refuses a body over `max_body` bytes (declared or streamed), and an unsafe
      request without a valid CSRF token unless its path starts with one of
      `exempt_prefixes` (machine APIs authenticated by tokens, not cookies) or is one of
      `exempt_paths` (OAuth endpoints other sites post to). The CSRF cookie is set only
      when a page minted a token (to put in a form); refusals never set it.
    - Catch-all: an unhandled error becomes a 500 page or problem JSON, logged once as
      JSON (Starlette's own handler would re-raise to the server, which logs it again).
    - One log line and the Prometheus counters per request, labelled with the route
      template, never the raw path.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: CsrfTokens,
        max_body: int,
        exempt_prefixes: Iterable[str],
        exempt_paths: Iterable[str] = (),
        https: bool,
        upload_paths: Iterable[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body
        # Paths that take files (pattern, limit): the only ones allowed bigger bodies.
        self.upload_paths = tuple(upload_paths)
        self.exempt = tuple(exempt_prefixes)
        self.exempt_paths = frozenset(exempt_paths)
        self.https = https
        self.plain_headers = SECURITY_HEADERS
        self.https_headers = [*SECURITY_HEADERS, HSTS_HEADER]
        self.cookie_attributes = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if https else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        incoming: bytes | None = None
        declared: bytes | None = None
        for name, value in scope["headers"]:  # the first of each, as Headers.get() gives
            if name == b"x-request-id":
                if incoming is None:
                    incoming = value
            elif name == b"content-length" and declared is None:
                declared = value
        if incoming is not None and REQUEST_ID_PATTERN.match(incoming):
            request_id = incoming.decode("latin-1")
        else:
            request_id = token_hex(16)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        bind_contextvars(request_id=request_id)

        https = self.https or scope.get("scheme") == "https"
        security_headers = self.https_headers if https else self.plain_headers
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        csrf: CsrfState | None = None
        refused = False  # a refusal's answer carries no CSRF cookie
        status = 0  # 0: no response started yet

        async def send_at_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                has_csp = any(name == CSP_NAME for name, _ in headers)
                if csrf is not None and csrf.fresh is not None and not refused:
                    cookie = f"{CSRF_COOKIE}={csrf.fresh}{self.cookie_attributes}"
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                if not has_csp:
                    headers.append(CSP_HEADER)
                headers += security_headers
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        max_body = self.max_body
        if self.upload_paths and scope["method"] == "POST":
            for pattern, limit in self.upload_paths:
                if pattern.match(scope["path"]):
                    max_body = limit
        try:
            if declared and (not declared.isdigit() or int(declared) > max_body):
                refused = True
                await guard_rejection(scope, "payload-too-large")(scope, receive, send_at_edge)
                return
            csrf = state["csrf"] = CsrfState(self.tokens, scope)
            if scope["method"] not in SAFE_METHODS:
                try:
                    body = await read_body(receive, max_body)
                except BodyTooLarge:
                    refused = True
                    await guard_rejection(scope, "payload-too-large")(scope, receive, send_at_edge)
                    return
                receive = replay(body)
                path: str = scope["path"]
                exempt = path.startswith(self.exempt) or path in self.exempt_paths
                if not exempt and not await self._csrf_valid(scope, csrf, body):
                    refused = True
                    await guard_rejection(scope, "csrf")(scope, receive, send_at_edge)
                    return
            try:
                await self.app(scope, receive, send_at_edge)
            except Exception as exc:
                log.error(
                    "unhandled_error",
                    route=getattr(scope.get("route"), "path", "unmatched"),
                    error=type(exc).__name__,
                    exc_info=exc,
                )
                if status:
                    raise
                await internal_error(scope)(scope, receive, send_at_edge)
        finally:
            elapsed = perf_counter() - started
            route = route_template(scope)
            count_request(scope["method"], route, status or 500, elapsed)
            if route not in UNLOGGED_ROUTES:
                # Unmatched paths are logged (masked) so operators can see what was asked.
                fields = {"method": scope["method"], "route": route}
                if route == "unmatched":
                    fields["path"] = mask_identity_numbers(scope["path"][:200])
                log.info("request", status=status or 500, ms=round(elapsed * 1000, 2), **fields)
            unbind_contextvars("request_id")

    @staticmethod
    async def _csrf_valid(scope: Scope, csrf: CsrfState, body: bytes) -> bool:
        """The token in the header or form matches the one in the browser's cookie."""
        expected = csrf.cookie_token()
        sent = Headers(scope=scope).get(CSRF_HEADER) or await form_token(scope, body)
        return bool(expected and sent and hmac.compare_digest(sent, expected))
