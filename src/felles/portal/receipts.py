"""Receipt PDFs made in the background, so a submission never waits for one.

A submission is stored with `receipt_ready_at` empty; `generate_pending` (run now and
then by a worker) renders those receipts and stores them, a batch at a time. Several
workers may run: on PostgreSQL each claims its batch with `FOR UPDATE SKIP LOCKED`, so
no receipt is rendered twice. `receipt_pdf` serves the download link and renders at once when the
worker has not got there yet, so the link always works.

Rendering is CPU work (pure-Python fpdf2) and runs in a process pool, not on the event
loop and not in a thread: a thread would hold the GIL and slow every request the process
serves. A batch is split over one process per core, so a backlog after a rush uses
every core. Where processes cannot be made (some sandboxes lack the semaphores
multiprocessing needs) it falls back to a thread.

Language: the stored copy is in bokmål, the official record, and needs no table change
and no lookup of the submitter's preferences. A download in nynorsk or English renders
on demand and is not stored; it costs a few milliseconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.config import Settings
from felles.db import Database
from felles.portal import attachments, catalogue, notify
from felles.portal.definition import ServiceDefinition
from felles.portal.models import Draft, PartyKind, Submission
from felles.portal.receipt_pdf import AttachedFile, ReceiptFacts, render_receipt
from felles.process_pool import process_pool
from felles.registry import service as registry
from felles.registry.numbers import mask_pid
from felles.web.observability import log

STORED_LANGUAGE = "nb"
ACCESS = registry.Access(accessed_by="felles-portal", purpose="receipt")

# One rendering process per core (at most four): a backlog of receipts after a rush is
# rendered on every core, and between rushes the processes sleep.
RENDER_PROCESSES = max(1, min(4, os.cpu_count() or 1))
_pool: concurrent.futures.Executor | None = None
_pool_lock = threading.Lock()


class SubmissionNotFound(LookupError):
    """No submission with that id."""


def default_pool() -> concurrent.futures.Executor | None:
    """The process pool receipts render in, made on first use; None if this platform
    cannot make one (then rendering runs in a thread)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            try:
                _pool = process_pool(RENDER_PROCESSES)
            except (OSError, NotImplementedError, ImportError) as exc:
                log.warning("receipt_pool_unavailable", error=type(exc).__name__)
                return None
        return _pool


async def warm_pool() -> None:
    """Start the rendering processes now (spawning one and importing Felles takes about
    a second), so the first receipt after start-up is as quick as the rest."""
    pool = default_pool()
    if pool is not None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(concurrent.futures.BrokenExecutor):
            await asyncio.gather(
                *(
                    loop.run_in_executor(pool, render_batch_in_worker, [])
                    for _ in range(RENDER_PROCESSES)
                )
            )


def shutdown_pool() -> None:
    """Stop the rendering processes and wait for them (a render under way takes
    milliseconds), so none outlives this process; the next render starts new ones."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


_definitions: dict[tuple[str, int], ServiceDefinition] = {}


def render_in_worker(
    code: str, version: int, document: Mapping[str, Any], facts: ReceiptFacts, lang: str
) -> bytes:
    """What the worker process runs. The definition travels as its stored JSON (plain data
    pickles cheaply and safely) and is parsed once per version in the worker."""
    definition = _definitions.get((code, version))
    if definition is None:
        definition = ServiceDefinition.model_validate(document)
        _definitions[(code, version)] = definition
    return render_receipt(definition, facts, lang)


async def _name_of_person(session: AsyncSession, pid: str) -> str:
    try:
        return (await registry.get_person(session, pid, ACCESS)).full_name
    except (registry.NotFound, ValueError):
        return mask_pid(pid)


async def _facts_looked_up(
    session: AsyncSession, submission: Submission, lang: str
) -> ReceiptFacts:
    """The facts of a submission sent before they were kept with it: names looked up in
    the registers (each lookup recorded as the portal's, for a receipt), the draft's
    prefill sources, the files."""
    definition = await catalogue.definition(
        session, submission.service_code, submission.service_version
    )
    agency = await registry.agency_name(session, submission.owner_orgnr, lang)
    is_person = submission.party_kind == PartyKind.person.value
    submitted_by = await _name_of_person(session, submission.submitted_by)
    if not is_person:
        try:
            party = (await registry.get_organisation(session, submission.party_id)).name
        except (registry.NotFound, ValueError):
            party = submission.party_id
    elif submission.party_id == submission.submitted_by:
        party = submitted_by
    else:
        party = await _name_of_person(session, submission.party_id)
    chosen: dict[str, str] = {}
    for page in definition.pages:
        for question in page.questions:
            value = submission.data.get(question.field)
            if question.options_from and isinstance(value, str) and value:
                chosen[question.field] = await _name_of_person(session, value)
    prefilled = await session.scalar(select(Draft.prefilled).where(Draft.id == submission.draft_id))
    files = await attachments.list_for_submission(session, submission.id)
    return ReceiptFacts(
        reference=submission.reference,
        submitted_at=submission.submitted_at,
        agency=agency,
        party_name=party,
        party_is_person=is_person,
        party_number=submission.party_id,
        submitted_by=submitted_by,
        data=submission.data,
        attachments=tuple(AttachedFile(f.filename, f.size) for f in files),
        prefilled={str(k): str(v) for k, v in (prefilled or {}).items()},
        chosen=chosen,
    )


class ReceiptFailed(RuntimeError):
    """The renderer could not make this receipt (logged by reference)."""


async def _render_submission(
    session: AsyncSession,
    submission: Submission,
    lang: str,
    pool: concurrent.futures.Executor | None,
) -> bytes:
    [pdf] = await _render_batch(pool, [await _job(session, submission, lang, None, {})])
    if pdf is None:
        log.warning("receipt_failed", reference=submission.reference)
        raise ReceiptFailed(submission.reference)
    return pdf


_SUBMISSIONS = cast(Table, Submission.__table__)
# Store a batch's PDFs (one statement, many rows), each only if still missing.
STORE = (
    update(_SUBMISSIONS)
    .where(_SUBMISSIONS.c.id == bindparam("b_id"), _SUBMISSIONS.c.receipt_ready_at.is_(None))
    .values(receipt_pdf=bindparam("b_pdf"), receipt_ready_at=bindparam("b_at"))
)


# One receipt to render: service code, version, published document, facts, language.
Job = tuple[str, int, Mapping[str, Any], ReceiptFacts, str]


def render_batch_in_worker(
    jobs: list[Job],
) -> list[bytes | None]:
    """Many receipts in one trip to the worker process; None where one failed."""
    done: list[bytes | None] = []
    for code, version, document, facts, lang in jobs:
        try:
            done.append(render_in_worker(code, version, document, facts, lang))
        except Exception:  # one bad receipt must not cost the batch its others
            done.append(None)
    return done


async def _render_batch(
    pool: concurrent.futures.Executor | None, jobs: list[Job]
) -> list[bytes | None]:
    """The batch split over the rendering processes, results in the batch's order."""
    global _pool
    if not jobs:
        return []
    chosen = pool or default_pool()
    if chosen is not None:
        loop = asyncio.get_running_loop()
        size = -(-len(jobs) // RENDER_PROCESSES)  # ceiling division
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        try:
            parts = await asyncio.gather(
                *(loop.run_in_executor(chosen, render_batch_in_worker, c) for c in chunks)
            )
            return [pdf for part in parts for pdf in part]
        except concurrent.futures.BrokenExecutor:
            if pool is not None:
                raise
            log.warning("receipt_pool_broken")
            with _pool_lock:
                _pool = None
    return await asyncio.to_thread(render_batch_in_worker, jobs)


async def _job(
    session: AsyncSession,
    submission: Submission,
    lang: str,
    files: dict[str, list[attachments.AttachmentRecord]] | None,
    agencies: dict[str, str],
) -> Job:
    """What the renderer needs for one receipt: from the facts kept when it was sent, or
    looked up for an older submission. `files` (None: look them up) and `agencies` are a
    batch's, read once for all of it. Raises ServiceNotFound for an unknown version."""
    version = await catalogue.version(session, submission.service_code, submission.service_version)
    if submission.receipt_facts is None:  # sent before facts were kept
        facts = await _facts_looked_up(session, submission, lang)
    else:
        owner = submission.owner_orgnr
        if owner not in agencies:
            agencies[owner] = await registry.agency_name(session, owner, lang)
        found = (
            files.get(submission.id, [])
            if files is not None
            else await attachments.list_for_submission(session, submission.id)
        )
        attached = [AttachedFile(f.filename, f.size) for f in found]
        facts = _facts_kept(submission, attached, agencies[owner])
    return (submission.service_code, submission.service_version, version.document, facts, lang)


def _facts_kept(submission: Submission, files: list[AttachedFile], agency: str) -> ReceiptFacts:
    """The facts from what the submission kept when it was sent (no lookups)."""
    kept = submission.receipt_facts or {}
    return ReceiptFacts(
        reference=submission.reference,
        submitted_at=submission.submitted_at,
        agency=agency,
        party_name=str(kept.get("party", "")),
        party_is_person=submission.party_kind == PartyKind.person.value,
        party_number=submission.party_id,
        submitted_by=str(kept.get("submitted_by", "")),
        data=submission.data,
        attachments=tuple(files),
        prefilled={str(k): str(v) for k, v in (kept.get("sources") or {}).items()},
        chosen={str(k): str(v) for k, v in (kept.get("chosen") or {}).items()},
    )


async def generate_pending(
    db: Database,
    *,
    limit: int = 50,
    pool: concurrent.futures.Executor | None = None,
    settings: Settings | None = None,
) -> int:
    """Render and store up to `limit` receipts still missing, in one batch (one claim,
    one trip to the renderer, one store), each with the e-mail owed to its sender; then
    (given the `settings` that say how to send mail) send the e-mails due. How many
    receipts were stored. A receipt that fails is logged and tried again next round."""
    stored = await _render_and_store(db, limit, pool)
    if settings is not None:  # after the commit: no rows held while a mail server answers
        while await notify.send_due(db, settings) == notify.LIMIT:
            pass
    return stored


async def _render_and_store(
    db: Database, limit: int, pool: concurrent.futures.Executor | None
) -> int:
    statement = (
        select(Submission)
        .where(Submission.receipt_ready_at.is_(None))
        .order_by(Submission.submitted_at)
        .limit(limit)
    )
    if not db.is_sqlite:  # several workers: each takes receipts nobody else holds
        statement = statement.with_for_update(skip_locked=True)
    async with db.session() as session:
        batch = list((await session.scalars(statement)).all())
        if not batch:
            return 0
        files = await attachments.files_of_submissions(session, [s.id for s in batch])
        agencies: dict[str, str] = {}
        jobs: list[Job] = []
        for submission in list(batch):
            try:
                jobs.append(await _job(session, submission, STORED_LANGUAGE, files, agencies))
            except catalogue.ServiceNotFound:
                log.warning("receipt_failed", reference=submission.reference)
                batch.remove(submission)
        rendered = await _render_batch(pool, jobs)
        at = datetime.now(UTC)
        stored = []
        for submission, pdf in zip(batch, rendered, strict=True):
            if pdf is None:  # the reference, never the person, goes to the log
                log.warning("receipt_failed", reference=submission.reference)
            else:
                stored.append({"b_id": submission.id, "b_pdf": pdf, "b_at": at})
        if stored:
            connection = await session.connection()
            await connection.execute(STORE, stored)
            await connection.execute(notify.OWE, {"ids": [row["b_id"] for row in stored], "at": at})
    return len(stored)


async def receipt_pdf(
    db: Database,
    submission_id: str,
    *,
    lang: str = STORED_LANGUAGE,
    pool: concurrent.futures.Executor | None = None,
) -> bytes:
    """The receipt for the download link: the stored copy, or rendered now if the worker
    has not made it yet (only the worker stores it: it also sends the e-mail); another
    language is always rendered now. The caller has checked the person may see it."""
    async with db.session() as session:
        statement = select(Submission).where(Submission.id == submission_id)
        submission = await session.scalar(statement)
        if submission is None:
            raise SubmissionNotFound(submission_id)
        if lang == STORED_LANGUAGE and submission.receipt_ready_at is not None:
            stored = await session.scalar(statement.with_only_columns(Submission.receipt_pdf))
            if stored is not None:
                return bytes(stored)
        return await _render_submission(session, submission, lang, pool)


async def run_now_and_then(db: Database, seconds: float, settings: Settings) -> None:
    """Make pending receipts about every `seconds` (jittered, so several processes
    spread out) until cancelled; a failed round is logged and the next one tries again."""
    while True:
        try:
            while await generate_pending(db, settings=settings) > 0:
                pass  # a full batch: more may be waiting
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the worker must never stop the server
            log.warning("receipts_round_failed", error=type(exc).__name__)
        await asyncio.sleep(seconds * random.uniform(0.5, 1.5))
