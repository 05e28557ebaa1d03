"""Security middleware: response headers, body size limit and CSRF for every form post.

Plain ASGI, so it sees every request before FastAPI does and costs little per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
CSRF_COOKIE = "felles_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class SecurityHeadersMiddleware:
    """CSP without inline scripts, no framing, no referrer leaks; HSTS over https."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self.hsts or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", CSP)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("x-frame-options", "DENY")
                headers.setdefault("referrer-policy", "no-referrer")
                headers.setdefault("cross-origin-opener-policy", "same-origin")
                headers.setdefault("permissions-policy", "camera=(), microphone=(), geolocation=()")
                if https:
                    headers.setdefault(
                        "strict-transport-security", "max-age=63072000; includeSubDomains"
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read a whole request body, refusing one larger than `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BodyTooLarge("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class CsrfTokens:
    """Signed double-submit tokens: a random value and its HMAC under the server key."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.key, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def new(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 1 or len(token) > 100:
            return False
        nonce, signature = token.split(".")
        return hmac.compare_digest(signature, self._sign(nonce))


Rejection = Callable[[Scope, str], Any]


class CsrfState:
    """This request's CSRF token: the browser's valid cookie, or a fresh one minted the
    first time a page asks for it (to put in a form)."""

    __slots__ = ("_cookie", "_scope", "fresh", "tokens")

    def __init__(self, tokens: CsrfTokens, scope: Scope) -> None:
        self.tokens = tokens
        self._scope = scope
        self._cookie: str | bool | None = False  # False: not read yet
        self.fresh: str | None = None

    def cookie_token(self) -> str | None:
        """The token the browser sent in its cookie, if it is one of ours."""
        if self._cookie is False:
            value = Request(self._scope).cookies.get(CSRF_COOKIE)
            self._cookie = value if self.tokens.valid(value) else None
        return self._cookie or None  # type: ignore[return-value]

    def token(self) -> str:
        """The token for a form on this page."""
        existing = self.cookie_token()
        if existing:
            return existing
        if self.fresh is None:
            self.fresh = self.tokens.new()
        return self.fresh


class GuardMiddleware:
    """Limits body size everywhere and checks the CSRF token on every unsafe page request.

    Paths under an exempt prefix (machine APIs authenticated by tokens, not cookies)
    and exempt exact paths (OAuth endpoints other sites post to) skip the CSRF check
    but not the size limit. `reject(scope, reason)` builds the
    response for a refused request ("csrf" or "payload-too-large").
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: CsrfTokens,
        max_body: int,
        exempt_prefixes: Iterable[str],
        exempt_paths: Iterable[str] = (),
        reject: Rejection,
        secure_cookie: bool,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body
        self.exempt = tuple(exempt_prefixes)
        self.exempt_paths = frozenset(exempt_paths)
        self.reject = reject
        self.secure_cookie = secure_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared and (not declared.isdigit() or int(declared) > self.max_body):
            await self.reject(scope, "payload-too-large")(scope, receive, send)
            return

        csrf = CsrfState(self.tokens, scope)
        scope.setdefault("state", {})["csrf"] = csrf

        method = scope["method"]
        path: str = scope["path"]
        if method not in SAFE_METHODS:
            try:
                body = await read_body(receive, self.max_body)
            except BodyTooLarge:
                await self.reject(scope, "payload-too-large")(scope, receive, send)
                return
            receive = replay(body)
            if not (path.startswith(self.exempt) or path in self.exempt_paths):
                expected = csrf.cookie_token()
                sent = headers.get(CSRF_HEADER) or await self._form_token(scope, body)
                if not expected or not sent or not hmac.compare_digest(sent, expected):
                    await self.reject(scope, "csrf")(scope, receive, send)
                    return

        secure = "; Secure" if self.secure_cookie else ""

        async def send_with_cookie(message: Message) -> None:
            # Only a response that rendered a form (and so minted a token) sets the cookie:
            # protocol and API answers carry none.
            if message["type"] == "http.response.start" and csrf.fresh is not None:
                MutableHeaders(scope=message).append(
                    "set-cookie",
                    f"{CSRF_COOKIE}={csrf.fresh}; Path=/; HttpOnly; SameSite=Lax{secure}",
                )
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    @staticmethod
    async def _form_token(scope: Scope, body: bytes) -> str | None:
        content_type = Headers(scope=scope).get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            try:
                values = parse_qs(body.decode("latin-1"), max_num_fields=1000).get(CSRF_FIELD)
            except ValueError:
                return None
            return values[0] if values else None
        if content_type.startswith("multipart/form-data"):
            form = await Request(scope, replay(body)).form()
            value = form.get(CSRF_FIELD)
            return value if isinstance(value, str) else None
        return None
