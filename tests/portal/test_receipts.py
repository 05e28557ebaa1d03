"""Receipts are made in the background, once each, and the download link always works."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pypdf
import pytest
from sqlalchemy import delete, select

from felles.config import Settings
from felles.db import Database
from felles.portal import attachments, receipts
from felles.portal.definition import Attachments
from felles.portal.models import PartyKind, Submission
from felles.registry import service as registry
from tests.portal.factories import make_draft, make_submission, some_organisation, some_person

KINDERGARTEN = {
    "applicant_name": "Kari Nordmann",
    "child": "",
    "start_date": "2027-08-15",
    "hours": "full",
    "first_choice": "Blåbærtoppen barnehage",
    "special_needs": False,
}


class CountingPool(concurrent.futures.ThreadPoolExecutor):
    """Renders in threads and counts each render by reference; each render is slowed
    a little so that two workers really overlap, and `started` is set (on the event
    loop's thread, where work is handed over) once the first render is handed over."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(max_workers=4)
        self.rendered: list[str] = []
        self.delay = delay
        self.started = asyncio.Event()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if fn is receipts.render_batch_in_worker:  # (jobs,): (code, version, doc, facts, lang)
            self.rendered.extend(job[3].reference for job in args[0])
        else:  # render_in_worker(code, version, doc, facts, lang)
            self.rendered.append(args[3].reference)
        self.started.set()

        def slowly() -> Any:
            time.sleep(self.delay)
            return fn(*args, **kwargs)

        return super().submit(slowly)


async def stored(db: Database, submission_id: str) -> tuple[bytes | None, Any]:
    async with db.session() as session:
        row = (
            await session.execute(
                select(Submission.receipt_pdf, Submission.receipt_ready_at).where(
                    Submission.id == submission_id
                )
            )
        ).one()
    return row[0], row[1]


def text_of(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return " ".join(page.extract_text() for page in reader.pages).replace("\u00a0", " ")


async def test_generate_pending_renders_and_stores(db: Database) -> None:
    pid = await some_person(db, 3)
    orgnr = await some_organisation(db)
    mine = await make_submission(db, "kindergarten-place", KINDERGARTEN, submitted_by=pid)
    business = await make_submission(
        db,
        "vat-return",
        {
            "business_name": "x",
            "business_orgnr": orgnr,
            "period": "2026-2",
            "lines": [{"description": "Salg", "basis": 1000, "rate": 25}],
        },
        party_kind=PartyKind.organisation,
        party_id=orgnr,
        submitted_by=pid,
    )
    with CountingPool() as pool:
        assert await receipts.generate_pending(db, pool=pool) >= 2
    async with db.session() as session:
        person = await registry.get_person(session, pid, registry.Access("test", "test"))
        organisation = await registry.get_organisation(session, orgnr)
        kommune = (await registry.get_agency(session, mine.owner_orgnr)).name("nb")
        log = await registry.data_access_log(session, pid)
    assert any(a.accessed_by == "felles-portal" and a.purpose == "receipt" for a in log)
    pdf, ready = await stored(db, mine.id)
    assert pdf is not None and pdf.startswith(b"%PDF-") and ready is not None
    text = text_of(pdf)
    assert mine.reference in text and "Kvittering" in text and kommune in text
    assert person.full_name in text and pid[:6] + "*****" in text and pid not in text
    assert "Hele uken (5 dager)" in text
    pdf, ready = await stored(db, business.id)
    assert pdf is not None and ready is not None
    text = text_of(pdf)
    assert organisation.name in text and orgnr in text and person.full_name in text


async def test_the_default_process_pool(db: Database) -> None:
    submission = await make_submission(db, "kindergarten-place", KINDERGARTEN)
    try:
        assert await receipts.generate_pending(db) >= 1
    finally:
        receipts.shutdown_pool()
    pdf, _ = await stored(db, submission.id)
    assert pdf is not None and submission.reference in text_of(pdf)


async def test_two_workers_never_render_the_same_receipt(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serves one process")
    # Older than anything other tests leave waiting in the shared database, so the first
    # worker's twelve are the oldest twelve of these.
    long_ago = datetime(1990, 1, 1, tzinfo=UTC)
    made = [
        await make_submission(
            db, "kindergarten-place", KINDERGARTEN, submitted_at=long_ago + timedelta(minutes=i)
        )
        for i in range(24)
    ]
    with CountingPool(delay=0.2) as first_pool, CountingPool() as second_pool:

        async def second_while_the_first_holds_its_claim() -> int:
            await first_pool.started.wait()
            return await receipts.generate_pending(db, pool=second_pool, limit=1000)

        first, second = await asyncio.gather(
            receipts.generate_pending(db, pool=first_pool, limit=12),
            second_while_the_first_holds_its_claim(),
        )
    ours = [s.reference for s in made]
    by_first = [r for r in first_pool.rendered if r in ours]
    by_second = [r for r in second_pool.rendered if r in ours]
    assert by_first == ours[:12] and first == 12
    assert sorted(by_second) == sorted(ours[12:]) and second >= 12
    for submission in made:
        assert (await stored(db, submission.id))[1] is not None


async def test_the_download_renders_when_the_worker_has_not(db: Database) -> None:
    submission = await make_submission(db, "kindergarten-place", KINDERGARTEN)
    with CountingPool() as pool:
        english = await receipts.receipt_pdf(db, submission.id, lang="en", pool=pool)
        assert "Receipt" in text_of(english)
        assert (await stored(db, submission.id))[1] is None  # other languages: not stored
        pdf = await receipts.receipt_pdf(db, submission.id, pool=pool)
        assert submission.reference in text_of(pdf) and "Kvittering" in text_of(pdf)
        # Only the worker stores a receipt (it also sends the e-mail about it).
        assert (await stored(db, submission.id))[1] is None
        assert await receipts.generate_pending(db, pool=pool) >= 1
        stored_pdf = (await stored(db, submission.id))[0]
        assert await receipts.receipt_pdf(db, submission.id, pool=pool) == stored_pdf
    assert pool.rendered.count(submission.reference) == 3  # the last came from the table
    with pytest.raises(receipts.SubmissionNotFound):
        await receipts.receipt_pdf(db, "no-such-submission")


async def test_attachments_are_listed(db: Database) -> None:
    draft = await make_draft(db)
    submission = await make_submission(db, "kindergarten-place", KINDERGARTEN)
    content = b"%PDF-1.4\n%%EOF\n"
    rules = Attachments(types=["application/pdf"])
    upload = attachments.check_upload("legeerklæring.pdf", content, rules, 0)
    async with db.session() as session:
        await attachments.add_to_draft(session, draft, upload, content)
        assert await attachments.move_to_submission(session, draft, submission.id) == 1
    with CountingPool() as pool:
        text = text_of(await receipts.receipt_pdf(db, submission.id, pool=pool))
    assert "legeerklæring.pdf" in text and "Vedlegg" in text


async def test_a_failing_receipt_is_logged_and_skipped(db: Database) -> None:
    broken = await make_submission(db, "kindergarten-place", KINDERGARTEN)
    async with db.session() as session:
        row = await session.get(Submission, broken.id)
        assert row is not None
        row.service_version = 99  # no such version: the render fails
        row.submitted_at = datetime(2000, 1, 1, tzinfo=UTC)  # first in line
    with CountingPool() as pool:  # a batch of nothing but the broken one: no error
        assert await receipts.generate_pending(db, pool=pool, limit=1) == 0
    fine = await make_submission(db, "kindergarten-place", KINDERGARTEN)
    try:
        with CountingPool() as pool:
            assert await receipts.generate_pending(db, pool=pool) >= 1
        assert (await stored(db, fine.id))[1] is not None
        assert (await stored(db, broken.id))[1] is None
    finally:
        async with db.session() as session:
            await session.execute(delete(Submission).where(Submission.id == broken.id))


async def test_run_now_and_then_until_cancelled(db: Database, settings: Settings) -> None:
    submission = await make_submission(db, "change-of-address", {"street": "Storgata 1"})
    task = asyncio.create_task(receipts.run_now_and_then(db, 0.05, settings))
    try:
        for _ in range(200):
            if (await stored(db, submission.id))[1] is not None:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the receipt was not made")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        receipts.shutdown_pool()
