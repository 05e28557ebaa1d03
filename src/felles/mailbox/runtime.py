"""The mailbox's long-lived parts for one app process."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import Request

from felles.config import Settings
from felles.db import Database
from felles.mailbox import worker
from felles.mailbox.providers import ensure_providers


class MailboxRuntime:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._ready = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def ready(self) -> None:
        """The providers' certificates are in place (made at first use)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                async with self.db.session() as session:
                    await ensure_providers(session, self.settings.keys_dir)
                self._ready = True

    async def start(self) -> None:
        """Release batches and send notifications in the background."""
        if self.settings.mailbox_seconds > 0 and self._worker is None:
            await self.ready()
            self._worker = asyncio.create_task(
                worker.run_now_and_then(
                    self.db, self.settings.mailbox_seconds, self.settings, self._wake
                )
            )

    def nudge(self) -> None:
        """Work has arrived (a batch was committed): start a round now."""
        self._wake.set()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


async def mailbox(request: Request) -> MailboxRuntime:
    rt: MailboxRuntime = request.app.state.mailbox
    await rt.ready()
    return rt
