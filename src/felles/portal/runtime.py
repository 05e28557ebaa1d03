"""The portal's long-lived parts for one app process: its sealer, its identity as an
OpenID Connect client of Felles' login service, and its background work."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import Request
from joserfc.jwk import KeySet

from felles.config import Settings
from felles.db import Database
from felles.identity import clients
from felles.identity.crypto import b64url, master_key, token_hash
from felles.identity.models import Client
from felles.portal import receipts
from felles.portal.session import SessionSealer

PORTAL_CLIENT_ID = "felles-portal"


def client_id_for(base_url: str) -> str:
    """The portal's client id at one address. Each address the portal answers at is a
    client of its own, so portals at several addresses on one database (a test's live
    server beside its in-process app, a staging host) never overwrite each other's
    redirect addresses; the sector identifier keeps people's subject ids the same."""
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:10]
    return f"{PORTAL_CLIENT_ID}-{digest}"


JWKS_SECONDS = 300


class PortalRuntime:
    """Built once per process by create_app; handlers reach it through `portal()`."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        master = master_key(settings)
        self.sealer = SessionSealer(master)
        # The client secret is derived, not stored: every process of every host that
        # shares the master key knows it, and the database keeps only its hash.
        self.client_secret = b64url(
            hmac.new(master, b"felles-portal client secret", hashlib.sha256).digest()
        )
        # How the portal reaches the login service: over the network by default; tests
        # that run the app in-process hand it the app itself.
        self.provider_transport: httpx.AsyncBaseTransport | None = None
        self._jwks: tuple[float, KeySet] | None = None
        self._client_ready = False
        self._receipts: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Render receipt PDFs in the background, never while a person waits."""
        self._warming = asyncio.create_task(receipts.warm_pool())
        if self.settings.receipts_seconds > 0 and self._receipts is None:
            self._receipts = asyncio.create_task(
                receipts.run_now_and_then(self.db, self.settings.receipts_seconds, self.settings)
            )

    async def close(self) -> None:
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warming
        if self._receipts is not None:
            self._receipts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receipts
            self._receipts = None
        receipts.shutdown_pool()

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def client_id(self) -> str:
        return client_id_for(self.base_url)

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/portal/callback"

    def provider(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.issuer, transport=self.provider_transport, timeout=10
        )

    async def jwks(self, provider: httpx.AsyncClient, *, refresh: bool = False) -> KeySet:
        """The provider's signing keys, kept a few minutes (fetched again on a new kid)."""
        if self._jwks and not refresh and self._jwks[0] > time.monotonic():
            return self._jwks[1]
        answer = await provider.get("/jwks")
        answer.raise_for_status()
        keys = KeySet.import_key_set(answer.json())
        self._jwks = (time.monotonic() + JWKS_SECONDS, keys)
        return keys

    async def ensure_client(self) -> None:
        """Register the portal as a confidential client of the login service (once)."""
        if self._client_ready:
            return
        base = self.base_url
        wanted: dict[str, Any] = {
            "redirect_uris": [self.redirect_uri],
            "post_logout_redirect_uris": [f"{base}/portal"],
            "frontchannel_logout_uri": f"{base}/portal/logout/frontchannel",
            "secret_hash": token_hash(self.client_secret),
        }
        async with self.db.session() as session:
            row = await session.get(Client, self.client_id)
            now = datetime.now(UTC)
            if row is None:
                session.add(
                    Client(
                        client_id=self.client_id,
                        name="Felles portal",
                        auth_method="client_secret_basic",
                        grant_types=["authorization_code"],
                        scopes=["openid", "profile"],
                        sector_identifier="felles-portal",
                        created_at=now,
                        updated_at=now,
                        **wanted,
                    )
                )
            elif any(getattr(row, k) != v for k, v in wanted.items()):
                for key, value in wanted.items():
                    setattr(row, key, value)
                row.updated_at = now
                clients.forget(self.client_id)
        self._client_ready = True


async def portal(request: Request) -> PortalRuntime:
    rt: PortalRuntime = request.app.state.portal
    await rt.ensure_client()
    return rt
