"""The mailbox's background work: releasing committed batches and sending the
notifications due. Runs in every `felles serve` process, or in `felles worker`."""

from __future__ import annotations

import asyncio
import contextlib
import random

from felles.config import Settings
from felles.db import Database
from felles.mailbox import batches, notifying
from felles.web.observability import log


async def work_once(db: Database, settings: Settings) -> int:
    """One round: every committed batch released, then every notification due sent;
    how many letters were released."""
    released = await batches.release_all(db)
    if released:
        log.info("mailbox_released", letters=released)
    while await notifying.send_due(db, settings) >= notifying.LIMIT:
        pass
    return released


async def run_now_and_then(
    db: Database, seconds: float, settings: Settings, wake: asyncio.Event | None = None
) -> None:
    """A round about every `seconds` (jittered), or at once when woken; a failed round
    is logged and the next one tries again."""
    wake = wake or asyncio.Event()
    while True:
        try:
            await work_once(db, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the worker must never stop the server
            log.warning("mailbox_round_failed", error=type(exc).__name__)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds * random.uniform(0.5, 1.5))
