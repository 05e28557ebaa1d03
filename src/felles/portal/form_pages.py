"""Filling in a form in the browser: a service's start page, one page at a time, repeating
groups, check your answers, submit, and the confirmation with its reference number.

Every page works without JavaScript. A page posted after the login session ended is
kept (PendingPost) and applied once the person has logged in again: nothing typed is lost.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import delete, select

from felles.identity import levels
from felles.portal import attachments, authz, catalogue, forms, receipts, sending
from felles.portal.definition import Page, Question, ServiceDefinition
from felles.portal.form_texts import describe
from felles.portal.forms import ATTACHMENTS, CHECK, FieldError, OpenDraft
from felles.portal.login import login_url
from felles.portal.models import PendingPost, Submission
from felles.portal.runtime import PortalRuntime
from felles.portal.session import PortalSession
from felles.portal.web import current, not_found, page, redirect, signed_in, to_login
from felles.registry import service as registry
from felles.web.i18n import translations
from felles.web.templating import request_language

router = APIRouter(include_in_schema=False)
# Where files are uploaded: the edge lets these bodies be as big as the largest file a
# definition may allow (each service's own, smaller limit is checked on the way in).
UPLOAD_PATHS = ((re.compile(r"^/portal/drafts/[A-Za-z0-9_-]{10,32}/attachments$"), 51_000_000),)
PENDING_SECONDS = 8 * 3600
MAX_FIELDS = 200
# A long paste with an error on every line lists the first ones, then how many more.
MAX_ERRORS_SHOWN = 15


def _level_too_low(session: PortalSession, definition: ServiceDefinition) -> bool:
    return levels.rank(session.acr) < levels.rank(definition.level)


def _draft_url(draft_id: str, step: str | None) -> str:
    if step == CHECK:
        return f"/portal/drafts/{draft_id}/check"
    if step == ATTACHMENTS:
        return f"/portal/drafts/{draft_id}/attachments"
    return f"/portal/drafts/{draft_id}/pages/{step}"


def _back_url(opened: OpenDraft, step: str) -> str | None:
    back = forms.previous_page(opened, step)
    return _draft_url(opened.draft.id, back) if back else None


# --- the service's start page ------------------------------------------------------------


@router.get("/portal/services/{code}")
async def service_start(request: Request, code: str) -> Response:
    rt, session = await current(request)
    lang = request_language(request)
    async with rt.db.session() as db:
        try:
            entry = await catalogue.current(db, code[:63])
        except catalogue.ServiceNotFound:
            return not_found(request, rt, session)
        agency = await registry.agency_name(db, entry.owner_orgnr, lang)
        decision = None
        if session is not None:
            decision = await authz.may_use(db, session.pid, session.party, entry.definition, "view")
    return page(
        request,
        rt,
        session,
        "portal/service.html",
        {
            "service": entry.definition,
            "agency": agency,
            "decision": decision,
            "login": login_url(request.url.path, entry.definition.level),
            "step_up": session is not None and _level_too_low(session, entry.definition),
        },
    )


@router.post("/portal/services/{code}/start")
async def service_begin(request: Request, code: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        try:
            entry = await catalogue.current(db, code[:63])
        except catalogue.ServiceNotFound:
            return not_found(request, rt, session)
        if _level_too_low(session, entry.definition):
            return redirect(
                rt, session, login_url(f"/portal/services/{code}", entry.definition.level)
            )
        try:
            opened = await forms.start(db, entry, session.pid, session.party)
        except forms.Refused:
            return redirect(rt, session, f"/portal/services/{code}")
    return redirect(rt, session, _draft_url(opened.draft.id, forms.next_step(opened)))


# --- pages of a draft ----------------------------------------------------------------------


@router.get("/portal/drafts/{draft_id}")
async def draft_continue(request: Request, draft_id: str) -> Response:
    """Continue a draft where the person left off."""
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        opened = await _unsent(request, rt, session, db, draft_id, "view")
        if not isinstance(opened, OpenDraft):
            return opened
    return redirect(rt, session, _draft_url(draft_id, forms.next_step(opened)))


async def _unsent(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    db: Any,
    draft_id: str,
    action: str,
) -> OpenDraft | Response:
    """The draft, if this person may work on it and it is not sent yet; otherwise the
    answer to give instead: "not found", or the receipt of what was sent."""
    try:
        opened = await forms.open_draft(db, draft_id, session.pid, session.party, action)
    except forms.NotFound:
        return not_found(request, rt, session)
    if opened.draft.submitted_at is not None:
        return redirect(rt, session, await _receipt_url(db, opened))
    return opened


async def _receipt_url(db: Any, opened: OpenDraft) -> str:
    sid = await db.scalar(select(Submission.id).where(Submission.draft_id == opened.draft.id))
    return f"/portal/submissions/{sid}/receipt" if sid else "/portal/inbox"


@router.get("/portal/drafts/{draft_id}/pages/{page_id}")
async def draft_page(request: Request, draft_id: str, page_id: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        opened = await _unsent(request, rt, session, db, draft_id, "view")
        if not isinstance(opened, OpenDraft):
            return opened
        if _level_too_low(session, opened.definition):
            return to_login(request, opened.definition.level)
        current_page = opened.definition.page(page_id)
        if current_page is None or not forms.may_open(opened, page_id):
            return redirect(rt, session, _draft_url(draft_id, forms.next_step(opened)))
        return _render_page(request, rt, session, opened, current_page, {}, [])


def _form_values(opened: OpenDraft, page_: Page) -> dict[str, str]:
    """The saved answers as the form shows them."""
    values: dict[str, str] = {}
    for question in page_.questions:
        value = opened.data.get(question.field)
        if value is None:
            continue
        if question.options_from:
            options = opened.options(question.field)
            values[question.field] = next(
                (str(i) for i, o in enumerate(options) if o["value"] == value), ""
            )
        elif isinstance(value, bool):
            values[question.field] = "yes" if value else "no"
        elif not isinstance(value, list | dict):
            values[question.field] = str(value)
    return values


def _label(question: Question, column: str | None, lang: str) -> str:
    if column and question.columns and column in question.columns:
        return question.columns[column](lang)
    return question.label(lang)


def _messages(
    page_: Page, errors: list[FieldError], lang: str, gettext: Any
) -> list[dict[str, Any]]:
    questions = {q.field: q for q in page_.questions}
    shown = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        question = questions.get(error.field)
        label = _label(question, error.params.get("column"), lang) if question else error.field
        target = error.field
        if question and question.columns and "column" in error.params and error.row is None:
            target = f"new.{error.params['column']}"
        shown.append({"field": target, "text": describe(error, label, gettext), "of": error.field})
    if len(errors) > MAX_ERRORS_SHOWN:
        more = len(errors) - MAX_ERRORS_SHOWN
        text = gettext("And %(num)s more problems of the same kind") % {"num": more}
        shown.append({"field": errors[0].field, "text": text, "of": errors[0].field})
    return shown


def _render_page(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    opened: OpenDraft,
    page_: Page,
    posted: dict[str, str],
    errors: list[FieldError],
    *,
    status_code: int = 200,
) -> Response:
    lang = request_language(request)
    gettext = translations(lang).gettext
    group = next((q for q in page_.questions if q.columns), None)
    values = {**_form_values(opened, page_), **posted}
    props = opened.definition.properties()
    return page(
        request,
        rt,
        session,
        "portal/group.html" if group else "portal/question.html",
        {
            "service": opened.definition,
            "draft": opened.draft,
            "page_": page_,
            "group": group,
            "rows": opened.data.get(group.field, []) if group else [],
            "schema": props,
            "values": values,
            "errors": _messages(page_, errors, lang, gettext),
            "sources": opened.sources,
            "options": {q.field: opened.options(q.field) for q in page_.questions},
            "back_url": _back_url(opened, page_.id),
            "step": _step_number(opened, page_.id),
            "editable_prefill": {r.field for r in opened.definition.prefill if r.editable},
        },
        status_code=status_code,
    )


def _step_number(opened: OpenDraft, page_id: str) -> tuple[int, int]:
    ids = [p.id for p in forms.visible_pages(opened.definition, opened.data)]
    return (ids.index(page_id) + 1 if page_id in ids else len(ids), len(ids))


async def _posted(request: Request) -> dict[str, str]:
    form = await request.form()
    values: dict[str, str] = {}
    for key, value in list(form.multi_items())[:MAX_FIELDS]:
        if isinstance(value, str) and key != "csrf_token":
            values[key] = value[:100_000]
    return values


@router.post("/portal/drafts/{draft_id}/pages/{page_id}")
async def draft_page_post(request: Request, draft_id: str, page_id: str) -> Response:
    rt, session = await current(request)
    posted = await _posted(request)
    if session is None:
        return await _keep_for_later(request, rt, draft_id, page_id, posted)
    return await _apply(request, rt, session, draft_id, page_id, posted)


async def _apply(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    draft_id: str,
    page_id: str,
    posted: dict[str, str],
) -> Response:
    async with rt.db.session() as db:
        opened = await _unsent(request, rt, session, db, draft_id, "fill")
        if not isinstance(opened, OpenDraft):
            return opened
        page_ = opened.definition.page(page_id)
        if page_ is None or not forms.may_open(opened, page_id):
            # Posted out of order (or to a page the answers now skip): nothing is saved,
            # and the person is taken to where they should be.
            return redirect(rt, session, _draft_url(draft_id, forms.next_step(opened)))
        group = next((q for q in page_.questions if q.columns), None)
        action = posted.get("action", "continue")
        try:
            if group is not None and action != "continue":
                return await _group_action(request, rt, session, db, opened, page_, group, posted)
            values, errors = forms.read_page(opened, page_, posted)
            if errors:
                return _render_page(
                    request,
                    rt,
                    session,
                    opened,
                    page_,
                    posted,
                    errors,
                )
            await forms.save_page(db, opened, page_, values)
        except forms.Conflict:
            return redirect(rt, session, _draft_url(draft_id, page_id))
        target = forms.next_step(opened)
    if posted.get("return_to") == "check" and target == CHECK:
        target = CHECK
    return redirect(rt, session, _draft_url(draft_id, target))


async def _group_action(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    db: Any,
    opened: OpenDraft,
    page_: Page,
    group: Question,
    posted: dict[str, str],
) -> Response:
    """Add a row, paste many, or remove one; the page stays open."""
    rows = list(opened.data.get(group.field) or [])
    action = posted.get("action", "")
    limit = int(opened.definition.properties()[group.field].get("maxItems", 1000))
    errors: list[FieldError] = []
    if action == "add":
        row, errors = forms.read_row(opened, group, posted)
        if row is not None:
            rows.append(row)
    elif action == "paste":
        pasted, errors = forms.read_pasted(opened, group, posted.get("paste", ""))
        if not errors:
            rows.extend(pasted)
    elif action.startswith("remove:") and action[7:].isdigit():
        index = int(action[7:])
        if index < len(rows):
            rows.pop(index)
    if len(rows) > limit:
        errors = [FieldError(group.field, "too_many_rows", {"maxItems": limit})]
    if errors:
        return _render_page(request, rt, session, opened, page_, posted, errors)
    await forms.change_rows(db, opened, group, rows)
    anchor = "#rows" if action != "add" else "#new-row"
    return redirect(rt, session, _draft_url(opened.draft.id, page_.id) + anchor)


# --- a page posted after the session ended --------------------------------------------------


async def _keep_for_later(
    request: Request, rt: PortalRuntime, draft_id: str, page_id: str, posted: dict[str, str]
) -> Response:
    """Keep what was posted until the person has logged in again (we cannot tell who
    they are now, so it is applied only if the draft turns out to be theirs)."""
    pending_id = secrets.token_urlsafe(16)
    async with rt.db.session() as db:
        await db.execute(
            delete(PendingPost).where(
                PendingPost.created_at
                < datetime.fromtimestamp(datetime.now(UTC).timestamp() - PENDING_SECONDS, UTC)
            )
        )
        db.add(
            PendingPost(
                id=pending_id,
                draft_id=draft_id[:32],
                page_id=page_id[:41],
                form=posted,
                created_at=datetime.now(UTC),
            )
        )
    return redirect(rt, None, login_url(f"/portal/drafts/{draft_id}/resume/{pending_id}"))


@router.get("/portal/drafts/{draft_id}/resume/{pending_id}")
async def draft_resume(request: Request, draft_id: str, pending_id: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        pending = await db.get(PendingPost, pending_id[:32])
        if pending is not None:
            await db.delete(pending)
    if pending is None or pending.draft_id != draft_id:
        return redirect(rt, session, f"/portal/drafts/{draft_id}")
    return await _apply(request, rt, session, draft_id, pending.page_id, dict(pending.form))


# --- check your answers, submit, receipt -------------------------------------------------------


@router.get("/portal/drafts/{draft_id}/check")
async def draft_check(request: Request, draft_id: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        opened = await _unsent(request, rt, session, db, draft_id, "view")
        if not isinstance(opened, OpenDraft):
            return opened
        if forms.next_step(opened) != CHECK:
            return redirect(rt, session, _draft_url(draft_id, forms.next_step(opened)))
        files = await attachments.list_for_draft(db, draft_id)
        return _render_check(request, rt, session, opened, [], files)


def _render_check(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    opened: OpenDraft,
    problems: list[tuple[str, FieldError]],
    files: list[attachments.AttachmentRecord],
) -> Response:
    lang = request_language(request)
    gettext = translations(lang).gettext
    asked = {q.field for p in opened.definition.pages for q in p.questions}
    from_registers = [
        (rule, opened.data.get(rule.field), opened.sources.get(rule.field))
        for rule in opened.definition.prefill
        if rule.field not in asked and opened.data.get(rule.field) is not None
    ]
    errors = []
    for page_id, error in problems:
        page_ = opened.definition.page(page_id)
        question = (
            next((q for q in page_.questions if q.field == error.field), None) if page_ else None
        )
        label = question.label(lang) if question else error.field
        errors.append(
            {"href": _draft_url(opened.draft.id, page_id), "text": describe(error, label, gettext)}
        )
    return page(
        request,
        rt,
        session,
        "portal/check.html",
        {
            "service": opened.definition,
            "draft": opened.draft,
            "answers": forms.answers(opened),
            "schema": opened.definition.properties(),
            "from_registers": from_registers,
            "options": {
                q.field: {o["value"]: o for o in opened.options(q.field)}
                for p in opened.definition.pages
                for q in p.questions
                if q.options_from
            },
            "errors": errors,
            "back_url": _back_url(opened, CHECK),
            "files": files,
            "attachments_url": _draft_url(opened.draft.id, ATTACHMENTS),
        },
    )


@router.post("/portal/drafts/{draft_id}/submit")
async def draft_submit(request: Request, draft_id: str) -> Response:
    """Send: the receipt page at once (a second click gets the first one's receipt)."""
    rt, session = await signed_in(request)
    try:
        sent = await sending.send(rt.db, draft_id, session.pid, session.party, session.name)
    except forms.NotFound:
        return not_found(request, rt, session)
    except sending.Incomplete as incomplete:
        return redirect(rt, session, _draft_url(draft_id, incomplete.step))
    except forms.Conflict:  # changed in another tab meanwhile: look again before sending
        return redirect(rt, session, _draft_url(draft_id, CHECK))
    except sending.Invalid as invalid:
        async with rt.db.session() as db:
            opened = await forms.open_draft(db, draft_id, session.pid, session.party, "view")
            files = await attachments.list_for_draft(db, draft_id)
            return _render_check(request, rt, session, opened, invalid.problems, files)
    return redirect(rt, session, f"/portal/submissions/{sent.submission_id}/receipt")


async def _own_submission(
    db: Any, session: PortalSession, submission_id: str
) -> tuple[Submission, ServiceDefinition] | None:
    """A submission of the party the person acts for, or None (whoever else's it is)."""
    try:
        return await forms.get_submission(db, submission_id, session.pid, session.party)
    except forms.NotFound:
        return None


@router.get("/portal/submissions/{submission_id}/receipt")
async def receipt(request: Request, submission_id: str) -> Response:
    """The confirmation: it says plainly that the task is done, with the reference."""
    rt, session = await signed_in(request)
    lang = request_language(request)
    async with rt.db.session() as db:
        found = await _own_submission(db, session, submission_id)
        if found is None:
            return not_found(request, rt, session)
        submission, definition = found
        agency = await registry.agency_name(db, submission.owner_orgnr, lang)
    return page(
        request,
        rt,
        session,
        "portal/receipt.html",
        {"submission": submission, "service": definition, "agency": agency},
    )


# --- attachments ----------------------------------------------------------------------------


async def _open_for_files(
    request: Request, draft_id: str, action: str
) -> tuple[PortalRuntime, PortalSession, OpenDraft | Response]:
    """The draft whose files are shown or changed, or the answer to give instead."""
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        opened = await _unsent(request, rt, session, db, draft_id, action)
    if not isinstance(opened, OpenDraft):
        return rt, session, opened
    if opened.definition.attachments is None or not forms.pages_finished(opened):
        return rt, session, redirect(rt, session, _draft_url(draft_id, forms.next_step(opened)))
    return rt, session, opened


def _render_files(
    request: Request,
    rt: PortalRuntime,
    session: PortalSession,
    opened: OpenDraft,
    files: list[attachments.AttachmentRecord],
    error: str | None = None,
) -> Response:
    lang = request_language(request)
    gettext = translations(lang).gettext
    rules = opened.definition.attachments
    assert rules is not None
    return page(
        request,
        rt,
        session,
        "portal/attachments.html",
        {
            "service": opened.definition,
            "draft": opened.draft,
            "rules": rules,
            "files": files,
            "error": error,
            "max_size": attachments.format_size(rules.max_bytes, lang),
            "types": ", ".join(
                sorted({gettext(attachments.TYPE_NAMES.get(t, t)) for t in rules.types})
            ),
            "back_url": _back_url(opened, ATTACHMENTS),
        },
    )


@router.get("/portal/drafts/{draft_id}/attachments")
async def draft_files(request: Request, draft_id: str) -> Response:
    rt, session, opened = await _open_for_files(request, draft_id, "view")
    if not isinstance(opened, OpenDraft):
        return opened
    async with rt.db.session() as db:
        files = await attachments.list_for_draft(db, draft_id)
    return _render_files(request, rt, session, opened, files)


@router.post("/portal/drafts/{draft_id}/attachments")
async def draft_files_post(request: Request, draft_id: str) -> Response:
    """Add a file, remove one, or say you are done (the button says which)."""
    rt, session, opened = await _open_for_files(request, draft_id, "fill")
    if not isinstance(opened, OpenDraft):
        return opened
    assert opened.definition.attachments is not None
    rules = opened.definition.attachments
    form = await request.form(max_files=1, max_fields=10)
    action = str(form.get("action", "add"))
    lang = request_language(request)
    async with rt.db.session() as db:
        opened = await forms.open_draft(db, draft_id, session.pid, session.party, "fill")
        files = await attachments.list_for_draft(db, draft_id)
        if action == "done":
            await forms.finish_attachments(db, opened)
            return redirect(rt, session, _draft_url(draft_id, CHECK))
        if action.startswith("remove:"):
            with contextlib.suppress(attachments.NotFound):  # already gone, or not this draft's
                await attachments.remove_from_draft(db, draft_id, action[7:][:64])
            return redirect(rt, session, _draft_url(draft_id, ATTACHMENTS))
        upload = form.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            message = translations(lang).gettext("Choose a file to add")
            return _render_files(request, rt, session, opened, files, message)
        content = await upload.read()
        try:
            checked = await attachments.check_and_scan(
                upload.filename,
                content,
                rules,
                len(files),
                attachments.scanner_from_settings(rt.settings),
            )
            await attachments.add_to_draft(db, draft_id, checked, content)
        except attachments.AttachmentRefused as refused:
            return _render_files(request, rt, session, opened, files, refused.message(lang))
    return redirect(rt, session, _draft_url(draft_id, ATTACHMENTS))


@router.get("/portal/submissions/{submission_id}/receipt.pdf")
async def receipt_download(request: Request, submission_id: str) -> Response:
    """The receipt with the answers as a PDF: stored by the worker, or made now."""
    rt, session = await signed_in(request)
    lang = request_language(request)
    async with rt.db.session() as db:
        found = await _own_submission(db, session, submission_id)
        if found is None:
            return not_found(request, rt, session)
        reference = found[0].reference
    pdf = await receipts.receipt_pdf(rt.db, submission_id, lang=lang)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": f'attachment; filename="receipt-{reference}.pdf"',
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        },
    )
