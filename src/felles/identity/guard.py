"""Protecting Felles' own APIs with the machine tokens the login service issues.

Every agency-facing API (`/api/<part>/v1/...`) declares the scopes it needs with
`require_scopes(...)`; the caller presents a Maskinporten-style access token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from felles.identity.dpop import InvalidProof, check_binding
from felles.identity.runtime import runtime
from felles.identity.tokens import InvalidToken
from felles.web.problems import ProblemError


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling an API: the client, its organisation and the granted scopes."""

    client_id: str
    orgnr: str | None
    scopes: frozenset[str]
    claims: dict[str, Any]


def _orgnr(claims: dict[str, Any]) -> str | None:
    consumer = claims.get("consumer")
    if isinstance(consumer, dict):
        ident = consumer.get("ID")
        if isinstance(ident, str) and ident.startswith("0192:"):
            return ident[5:]
    return None


def require_scopes(*needed: str) -> Callable[[Request], Awaitable[Caller]]:
    """A FastAPI dependency: a valid access token holding every one of `needed`."""

    async def dependency(request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        challenge = {"www-authenticate": 'Bearer realm="felles"'}
        if scheme.lower() not in ("bearer", "dpop") or not token.strip():
            raise ProblemError(
                "unauthorized",
                "Send an access token: Authorization: Bearer <token>",
                headers=challenge,
            )
        rt = await runtime(request)
        try:
            # Autocommit: a revocation read and perhaps a DPoP proof's jti, one statement
            # each, on the driver pool (every agency API call passes here).
            async with rt.db.session(autocommit=True) as session:
                claims = await rt.identity.access_claims(session, token.strip())
                await check_binding(
                    session,
                    claims,
                    scheme=scheme.lower(),
                    token=token.strip(),
                    proof=request.headers.get("dpop"),
                    method=request.method,
                    url=rt.settings.base_url + request.url.path,
                )
        except InvalidProof as exc:
            raise ProblemError(
                "unauthorized",
                exc.description,
                headers={"www-authenticate": f'DPoP error="{exc.error}"'},
            ) from None
        except InvalidToken:
            raise ProblemError(
                "unauthorized",
                "The access token is not valid, has expired or was revoked",
                headers={"www-authenticate": 'Bearer error="invalid_token"'},
            ) from None
        scopes = frozenset(str(claims.get("scope", "")).split())
        missing = [s for s in needed if s not in scopes]
        if missing:
            wanted = " ".join(needed)
            raise ProblemError(
                "forbidden",
                f"The access token lacks the scope {' '.join(missing)}",
                headers={
                    "www-authenticate": f'Bearer error="insufficient_scope", scope="{wanted}"'
                },
            )
        return Caller(
            client_id=str(claims.get("client_id", "")),
            orgnr=_orgnr(claims),
            scopes=scopes,
            claims=claims,
        )

    return dependency
