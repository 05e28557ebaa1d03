"""The login service's long-lived parts for one app process: keys, signer, settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.db import Database
from felles.identity.crypto import master_key
from felles.identity.housekeeping import purge_now_and_then
from felles.identity.keys import KeyStore
from felles.identity.sealed import Sealer
from felles.identity.service import Authenticated, Identity
from felles.identity.tokens import TokenIssuer
from felles.registry import service as registry
from felles.web.keys import load_or_create_secret

TESTID_AMR = ("TestID",)


class IdentityRuntime:
    """Built once per process by create_app; handlers reach it through `runtime()`."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.keys_master = master_key(settings)
        self.keys = KeyStore(db, self.keys_master)
        self.tokens = TokenIssuer(self.keys, settings.issuer)
        salt = load_or_create_secret(settings.keys_dir / "pairwise.key")
        self.identity = Identity(settings, self.tokens, salt, Sealer(self.keys_master))
        self.testid_enabled = settings.demo_allowed()
        self._discovery: dict[str, Any] | None = None
        self._discovery_json: bytes | None = None
        self._ready = False
        self._purging: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        """Make sure signing keys exist (first start); cheap after the first call."""
        if not self._ready:
            await self.keys.ensure_keys()
            await self.keys.jwks()  # load the keys now, not in the first login
            self._ready = True

    async def start(self) -> None:
        """In a server process (the app's lifespan): keys ready and kept fresh, expired
        rows purged now and then."""
        await self.ready()
        self.keys.start_refreshing()
        if self.settings.purge_minutes > 0 and self._purging is None:
            self._purging = asyncio.create_task(
                purge_now_and_then(self.db, self.settings.purge_minutes)
            )

    async def close(self) -> None:
        if self._purging is not None:
            self._purging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purging
            self._purging = None
        await self.keys.stop_refreshing()

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            from felles.identity.api import discovery_document

            self._discovery = discovery_document(self.settings.issuer, [])
        return self._discovery

    def discovery_json(self) -> bytes:
        """The discovery document serialised once: it never changes while we run."""
        if self._discovery_json is None:
            self._discovery_json = json.dumps(self.discovery(), separators=(",", ":")).encode()
        return self._discovery_json

    async def testid_login(self, session: AsyncSession, pid: str, acr: str) -> Authenticated | None:
        """TestID (dev and test only): any synthetic person in the register, any level."""
        if not self.testid_enabled:
            return None
        if not await registry.person_exists(
            session, pid, registry.Access("identity", "TestID login")
        ):
            return None
        return Authenticated(pid=pid, acr=acr, amr=TESTID_AMR, method="testid")


async def runtime(request: Request) -> IdentityRuntime:
    """The process's login service, with its signing keys in place."""
    rt: IdentityRuntime = request.app.state.identity
    await rt.ready()
    return rt
