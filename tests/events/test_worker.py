"""`felles worker`: the dispatcher on its own, as a real process, until Ctrl+C."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from typing import Any

from felles.config import Settings
from felles.db import Database
from tests.conftest import felles_command, felles_env
from tests.events.conftest import Receiver, emit_many


def run_worker_until(settings: Settings, receiver: Receiver, event_id: str) -> tuple[int, str]:
    """Start `felles worker`, wait for the event to arrive, press Ctrl+C; (code, output)."""
    process = subprocess.Popen(
        felles_command("worker"),
        env=felles_env(settings, FELLES_EVENTS_POLL_SECONDS="0.2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl+C reaches it as at a terminal, however pytest was started: a shell that
        # starts pytest in the background makes it (and so its children) ignore SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while event_id not in receiver.ids() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # where it hangs: every thread's stack
            time.sleep(1)
            process.kill()
            output, _ = process.communicate()
            raise AssertionError(f"felles worker did not stop on Ctrl+C:\n{output}") from None
    return process.returncode, output


async def test_felles_worker_delivers_until_interrupted(
    db: Database, settings: Settings, org: str, receiver: Receiver, subscribe: Any
) -> None:
    await subscribe(org, receiver)
    [event_id] = await emit_many(db, org, 1)
    code, output = await asyncio.to_thread(run_worker_until, settings, receiver, event_id)
    assert receiver.ids() == [event_id], output
    assert receiver.failures == []
    assert code == 130 and "Traceback" not in output, output
