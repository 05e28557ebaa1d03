"""The mailbox's long-lived parts for one app process."""

from __future__ import annotations

import asyncio

from fastapi import Request

from felles.config import Settings
from felles.db import Database
from felles.mailbox.providers import ensure_providers


class MailboxRuntime:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._ready = False
        self._lock = asyncio.Lock()

    async def ready(self) -> None:
        """The providers' certificates are in place (made at first use)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                async with self.db.session() as session:
                    await ensure_providers(session, self.settings.keys_dir)
                self._ready = True


async def mailbox(request: Request) -> MailboxRuntime:
    rt: MailboxRuntime = request.app.state.mailbox
    await rt.ready()
    return rt
