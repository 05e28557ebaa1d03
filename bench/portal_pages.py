"""How fast the portal's pages stay with big repeating groups (the issue: "200 rows of
employees stay fast to fill and to review"): `python bench/portal_pages.py`.

A general manager logs in with TestID against `felles serve`, starts the VAT-style
return, pastes 200 lines, then 800 more, opens the page of 1000 lines, checks the
answers, sends, and downloads the receipt PDF of 1000 lines. Each step is timed (wall
clock, one person, nothing else running: what a person waits for), `--runs` times, and
the median and range printed as a table and written to bench/results/portal-pages.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from _common import fresh_database, start_felles, stop_group

RESULTS = Path(__file__).parent / "results"
STEPS = (
    "paste 200 lines (post, page)",
    "page of 200 lines",
    "paste 800 more (post, page)",
    "page of 1000 lines",
    "check your answers, 1000 lines",
    "send (post, receipt page)",
    "receipt PDF of 1000 lines",
)


async def prepare(url: str, persons: int) -> tuple[str, str]:
    """A migrated, seeded database with the example services; a general manager and
    their business."""
    from felles.db import Database
    from felles.demo.service import seed_if_empty
    from felles.portal.demo import publish_examples
    from felles.registry.models import Role

    db = Database(url.replace("postgresql://", "postgresql+asyncpg://"))
    await db.upgrade()
    await seed_if_empty(db, persons=persons, seed=2016)
    await publish_examples(db)
    async with db.session() as session:
        row = (
            await session.execute(
                select(Role.pid, Role.orgnr).where(Role.code == "DAGL").order_by(Role.orgnr)
            )
        ).first()
    await db.dispose()
    assert row is not None
    return row[0], row[1]


async def follow(http: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    while response.status_code in (302, 303):
        response = await http.get(response.headers["location"])
    return response


async def journey(base: str, pid: str, orgnr: str) -> dict[str, float]:
    timings: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        start = await http.get("/portal/login", params={"next": "/portal"})
        chooser = await http.get(start.headers["location"])
        auth = httpx.URL(chooser.headers["location"]).params["auth"]
        await http.get(f"/login/testid?auth={auth}")
        token = http.cookies["felles_csrf"]
        logged_in = await http.post(
            "/login/testid",
            data={"auth": auth, "pid": pid, "acr": "idporten-loa-substantial", "csrf_token": token},
        )
        await follow(http, logged_in)

        async def post(path: str, **data: str) -> httpx.Response:
            return await follow(http, await http.post(path, data={**data, "csrf_token": token}))

        await post("/portal/party", party=f"organisation:{orgnr}", next="/portal")
        started = await post("/portal/services/vat-return/start")
        found = re.search(r"/portal/drafts/[^/]+", str(started.url))
        assert found, started.url
        draft = found.group(0)
        await post(f"{draft}/pages/period", period="2026-5")

        async def timed(step: str, work: Any) -> httpx.Response:
            began = time.perf_counter()
            response: httpx.Response = await work
            timings[step] = (time.perf_counter() - began) * 1000
            assert response.status_code == 200, (step, response.status_code)
            return response

        def lines(first: int, count: int) -> str:
            return "\n".join(f"Sale {i}\t{1000 + i}\t25" for i in range(first, first + count))

        page = f"{draft}/pages/lines"
        await timed(STEPS[0], post(page, action="paste", paste=lines(0, 200)))
        await timed(STEPS[1], http.get(page))
        await timed(STEPS[2], post(page, action="paste", paste=lines(200, 800)))
        shown = await timed(STEPS[3], http.get(page))
        assert shown.text.count("<tr>") == 1001, "the page shows every line"
        await post(page, action="continue")
        await post(f"{draft}/pages/comment")
        await timed(STEPS[4], http.get(f"{draft}/check"))
        sent = await timed(STEPS[5], post(f"{draft}/submit"))
        await timed(STEPS[6], http.get(str(sent.url) + ".pdf"))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--persons", type=int, default=2000)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    console = Console()
    with (
        tempfile.TemporaryDirectory() as temp,
        fresh_database(args.backend, args.pg_url, Path(temp), bench="portal_pages") as (url, _name),
    ):
        pid, orgnr = asyncio.run(prepare(url, args.persons))
        proc, port, _log = start_felles(url, Path(temp), 1)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            asyncio.run(journey(base, pid, orgnr))  # warm-up
            runs = [asyncio.run(journey(base, pid, orgnr)) for _ in range(args.runs)]
        finally:
            stop_group(proc)
    table = Table(
        title=f"Portal pages with big repeating groups ({args.backend}, {args.runs} runs)"
    )
    table.add_column("step")
    table.add_column("median ms", justify="right")
    table.add_column("range ms", justify="right")
    results = {}
    for step in STEPS:
        values = [run[step] for run in runs]
        results[step] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }
        table.add_row(
            step, f"{results[step]['median']:.0f}", f"{min(values):.0f}-{max(values):.0f}"
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"portal-pages-{args.backend}.json"
    target.write_text(
        json.dumps({"backend": args.backend, "runs": args.runs, "steps": results}, indent=2)
    )
    console.print(f"Wrote {target}")


if __name__ == "__main__":
    main()
