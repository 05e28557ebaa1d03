"""Portal test helpers: a logged-in portal session without going through the login
service (sealed exactly as the portal seals its own cookie)."""

from __future__ import annotations

import time

import httpx

from felles.portal.models import PartyKind
from felles.portal.session import COOKIE, Party, PortalSession, SessionSealer


def portal_session(
    pid: str, name: str = "Test Person", party: Party | None = None
) -> PortalSession:
    now = int(time.time())
    return PortalSession(
        pid=pid,
        name=name,
        acr="idporten-loa-substantial",
        sid="test-sid",
        auth_time=now,
        expires_at=now,
        party=party or Party(PartyKind.person, pid, name),
    ).renewed(now)


def sealed_portal_cookie(
    sealer: SessionSealer, pid: str, party: Party | None = None, name: str = "Test Person"
) -> str:
    return sealer.seal_session(portal_session(pid, name, party))


def portal_cookie(
    app, pid: str, party: Party | None = None, name: str = "Test Person"
) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Cookies for an httpx client: logged in to the portal as `pid`, acting for `party`
    (default: themself). Set them with `client.cookies.set(COOKIE, value, path="/portal")`
    or pass them as `cookies=`."""
    return {COOKIE: sealed_portal_cookie(app.state.portal.sealer, pid, party, name)}


def logged_in(
    client: httpx.AsyncClient, app, pid: str, party: Party | None = None, lang: str = "en"
) -> None:  # type: ignore[no-untyped-def]
    """Make `client` logged in to the portal as `pid` (acting for `party`), in `lang`."""
    client.cookies.clear()  # also the renewed session cookies the app has set
    client.cookies.set(COOKIE, portal_cookie(app, pid, party)[COOKIE], path="/portal")
    client.cookies.set("felles_lang", lang)


async def csrf(client: httpx.AsyncClient) -> str:
    """The CSRF token for the client's form posts (fetched with a page if not set yet)."""
    if "felles_csrf" not in client.cookies:
        await client.get("/portal/services")
    return str(client.cookies["felles_csrf"])
