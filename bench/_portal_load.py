"""The load generator of bench/portal.py: one process of virtual people submitting drafts.

bench/portal.py starts two of these processes (spawn) and sends each one command per run:
its own share of ready drafts (id and the sealed portal session of the person who owns
it), the CSRF cookie and token, how many clients, when to start and for how long. The
clients (one keep-alive connection each, bench/_load.py's RawClient: no cookie jar, the
two cookies written into the header) take the next draft from the process's list and
POST its submit until the deadline or until the list is empty. A success is the portal's
303 to `/portal/submissions/{id}/receipt`.

Drafts are taken in list order, so the ones not attempted are the list's tail: the
parent gets back how many were taken and hands the rest to the next run.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx

from _load import MAX_ERROR_SAMPLES, FlowError, RawClient, Tally, expect, run_clients, serve

SESSION_COOKIE = "felles_portal"
CSRF_COOKIE = "felles_csrf"
CSRF_FIELD = "csrf_token"


async def _person(
    client: RawClient,
    command: dict[str, Any],
    drafts: list[tuple[str, str]],
    cursor: list[int],
    tally: Tally,
    first_last: list[float],
) -> None:
    base, csrf, deadline = command["base_url"], command["csrf"], command["deadline"]
    form = {CSRF_FIELD: csrf}
    while time.time() < deadline and cursor[0] < len(drafts):
        draft_id, sealed = drafts[cursor[0]]
        cursor[0] += 1
        headers = {"cookie": f"{SESSION_COOKIE}={sealed}; {CSRF_COOKIE}={csrf}"}
        first_last[0] = min(first_last[0], time.time())
        started = time.perf_counter()
        try:
            status, answer, body = await client.request(
                "POST", f"{base}/portal/drafts/{draft_id}/submit", headers=headers, form=form
            )
            expect(status, 303, body, "submit")
            location = answer.get("location", "")
            if not (location.startswith("/portal/submissions/") and location.endswith("/receipt")):
                raise FlowError(f"submit: redirected to {location[:200]!r}")
        except (FlowError, httpx.HTTPError, OSError) as exc:
            tally.errors += 1
            if len(tally.error_samples) < MAX_ERROR_SAMPLES:
                tally.error_samples.append(f"{type(exc).__name__}: {exc}"[:400])
            await asyncio.sleep(0.01)  # a refusing server must not be hammered in a spin
            continue
        tally.ok += 1
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        first_last[1] = time.time()


async def run(command: dict[str, Any]) -> dict[str, Any]:
    drafts = [(d, s) for d, s in command["drafts"]]
    tally = Tally()
    cursor = [0]
    first_last = [float("inf"), 0.0]  # the first request's start, the last answer
    await run_clients(
        [RawClient() for _ in range(command["clients"])],
        command["start_at"],
        command["deadline"] - command["start_at"],
        lambda c: _person(c, command, drafts, cursor, tally, first_last),
    )
    return {
        "ok": tally.ok,
        "errors": tally.errors,
        "taken": cursor[0],
        "first_request_at": first_last[0] if first_last[0] != float("inf") else None,
        "last_answer_at": first_last[1],
        "latencies_ms": tally.latencies_ms,
        "error_samples": tally.error_samples,
    }


def worker_main(conn: Connection) -> None:
    serve(conn, run)
