"""Security building blocks for the edge middleware: the CSP, the body size limit and
signed CSRF tokens for every form post."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Message, Receive, Scope

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
CSRF_COOKIE = "felles_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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


async def form_token(scope: Scope, body: bytes) -> str | None:
    """The CSRF token in a form body (urlencoded or multipart), if there is one."""
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
