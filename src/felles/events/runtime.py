"""The events part's long-lived pieces for one process: the secret box and the dispatcher
running in the background (every `felles serve` worker, or `felles worker` alone)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from fastapi import Request

from felles.config import Environment, Settings
from felles.db import Database
from felles.events.dispatcher import Dispatcher
from felles.events.webhooks import SecretBox
from felles.web.keys import load_or_create_secret


class EventsRuntime:
    """Built once per process by create_app (or `felles worker`); reached via `events()`."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.box = SecretBox(load_or_create_secret(settings.keys_dir / "events.key"))
        # http:// to this machine is for development and tests, never production.
        self.local_http = settings.env is not Environment.prod
        # In production webhooks go to public addresses only, unless the operator says
        # agencies' receivers sit on a private network (FELLES_WEBHOOKS_PRIVATE).
        self.public_only = settings.env is Environment.prod and not settings.webhooks_private
        self._dispatcher: Dispatcher | None = None
        self._task: asyncio.Task[None] | None = None

    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            self._dispatcher = Dispatcher(
                self.db,
                self.box,
                interval=self.settings.events_poll_seconds,
                keep_events=timedelta(days=self.settings.events_keep_days),
                purge_every=self.settings.purge_minutes * 60 or None,
                public_only=self.public_only,
            )
        return self._dispatcher

    async def start(self) -> None:
        """Start delivering in the background, unless FELLES_EVENTS_DISPATCH is off."""
        if self.settings.events_dispatch and self._task is None:
            self._task = asyncio.create_task(self.dispatcher().run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._dispatcher is not None:
            await self._dispatcher.aclose()
            self._dispatcher = None


def events(request: Request) -> EventsRuntime:
    rt: EventsRuntime = request.app.state.events
    return rt
