"""Felles' digital mailbox for people, under /mailbox: the inbox and archive (search and
paging in the address, so it works without JavaScript), one letter with its documents,
and the buttons that mark, move and delete letters.

Logging in is the portal's (the same session cookie, the same step-up to a higher
level); a person sees only letters to themself, whoever they act for in the portal.
Decrypted documents go straight into the response: never cached, never logged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import structlog
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from felles.mailbox import inbox
from felles.mailbox.inbox import Folder, LetterItem
from felles.mailbox.letters import Opened
from felles.mailbox.runtime import mailbox
from felles.portal.attachments import content_disposition
from felles.portal.display import Names, moment
from felles.portal.login import login_url
from felles.portal.runtime import PortalRuntime
from felles.portal.session import PortalSession
from felles.portal.web import current, not_found, page, redirect, signed_in, to_login
from felles.web.pages import safe_next
from felles.web.templating import request_language

router = APIRouter(include_in_schema=False)
log = structlog.get_logger("felles.mailbox.inbox")
HOME = "/mailbox"
MAX_PAGE = 100_000
# What the list says after an action (`?done=`); the texts are in the template.
NOTICES = ("read", "unread", "archived", "restored", "deleted")
PDF = "application/pdf"


def _folder(value: str) -> Folder:
    return Folder(value) if value in Folder.__members__ else Folder.inbox


def list_href(folder: Folder, query: str = "", page_number: int = 1) -> str:
    params: dict[str, str] = {}
    if folder is not Folder.inbox:
        params["folder"] = folder.value
    if query:
        params["q"] = query
    if page_number > 1:
        params["page"] = str(page_number)
    return HOME + ("?" + urlencode(params) if params else "")


def letter_href(letter_id: str) -> str:
    return f"{HOME}/letters/{quote(letter_id, safe='')}"


def _back(value: str | None, letter: LetterItem | None = None) -> str:
    """Where an action returns to: a mailbox list the form came from, else the letter's
    folder. Never anywhere outside /mailbox (no open redirect)."""
    target = safe_next(value)
    if target == HOME or target.startswith(HOME + "?"):
        return target
    return list_href(letter.folder if letter else Folder.inbox)


def _with_notice(target: str, done: str) -> str:
    parts = urlsplit(target)
    params = [(k, v) for k, v in parse_qsl(parts.query) if k != "done"]
    return parts.path + "?" + urlencode([*params, ("done", done)])


# --- the list ------------------------------------------------------------------------


@router.get("/mailbox")
async def letters_page(
    request: Request,
    folder: Annotated[str, Query(max_length=20)] = "inbox",
    q: Annotated[str, Query(max_length=500)] = "",
    page_number: Annotated[str, Query(alias="page", max_length=7)] = "1",
    done: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    rt, session = await signed_in(request)
    lang = request_language(request)
    chosen = _folder(folder)
    query = " ".join(q.split())[: inbox.MAX_QUERY]
    wanted = int(page_number) if page_number.isdigit() else 1
    async with rt.db.session() as db:
        found = await inbox.list_letters(
            db,
            session.pid,
            folder=chosen,
            query=query,
            lang=lang,
            page=min(max(wanted, 1), MAX_PAGE),
        )
        names = Names(db, lang)
        rows = [
            {
                "letter": item,
                "href": letter_href(item.id),
                "sender": await names.agency(item.sender_orgnr),
                "when": moment(item.received_at, lang),
            }
            for item in found.items
        ]
    here = list_href(chosen, query, found.page)
    return page(
        request,
        rt,
        session,
        "mailbox/inbox.html",
        {
            "rows": rows,
            "found": found,
            "folder": chosen.value,
            "query": query,
            "here": here,
            "notice": done if done in NOTICES else None,
            "inbox_href": list_href(Folder.inbox),
            "archive_href": list_href(Folder.archive),
            "clear_href": list_href(chosen),
            "previous_href": list_href(chosen, query, found.page - 1) if found.page > 1 else None,
            "next_href": list_href(chosen, query, found.page + 1)
            if found.page < found.pages
            else None,
        },
    )


# --- one letter ----------------------------------------------------------------------


async def _open(
    request: Request, rt: PortalRuntime, session: PortalSession, letter_id: str
) -> tuple[inbox.Sealed, Opened] | Response:
    """Decrypt the person's letter and record that they opened it; or the answer
    instead (not found, log in at a higher level, cannot be opened)."""
    async with rt.db.session() as db:
        try:
            found = await inbox.sealed(db, session.pid, letter_id, session.acr)
        except inbox.NotFound:
            return not_found(request, rt, session)
        except inbox.StepUpNeeded as needed:
            return to_login(request, needed.level)
    keys_dir = (await mailbox(request)).settings.keys_dir
    try:
        opened = await inbox.unseal(found, keys_dir)
    except inbox.Unreadable as error:
        log.warning("mailbox letter unreadable", letter_id=found.letter.id, error=str(error))
        return page(
            request,
            rt,
            session,
            "mailbox/inbox_unreadable.html",
            {"letter_id": found.letter.id},
            status_code=500,
        )
    async with rt.db.session() as db:
        await inbox.mark_opened(db, session.pid, found.letter.id)
    return found, opened


@router.get("/mailbox/letters/{letter_id}")
async def letter_page(request: Request, letter_id: str) -> Response:
    rt, session = await signed_in(request)
    lang = request_language(request)
    result = await _open(request, rt, session, letter_id)
    if isinstance(result, Response):
        return result
    found, opened = result
    letter = replace(found.letter, unread=False)  # opening it has just marked it read
    async with rt.db.session() as db:
        sender = await Names(db, lang).agency(letter.sender_orgnr)
    href = letter_href(letter.id)
    documents = [
        {
            "name": document.name,
            "kilobytes": max(1, -(-len(document.content) // 1024)),
            "open_href": f"{href}/documents/{index}",
            "download_href": f"{href}/documents/{index}/download",
            "main": index == 0,
        }
        for index, document in enumerate(opened.documents)
    ]
    return page(
        request,
        rt,
        session,
        "mailbox/letter.html",
        {
            "letter": letter,
            "title": opened.title,
            "sender": sender,
            "when": moment(letter.received_at, lang),
            "main": documents[:1],
            "attachments": documents[1:],
            "href": href,
            "back": list_href(letter.folder),
        },
    )


async def _document(request: Request, letter_id: str, number: str, disposition: str) -> Response:
    rt, session = await signed_in(request)
    result = await _open(request, rt, session, letter_id)
    if isinstance(result, Response):
        return result
    _found, opened = result
    index = int(number) if number.isdigit() and len(number) < 4 else -1
    if not 0 <= index < len(opened.documents):
        return not_found(request, rt, session)
    document = opened.documents[index]
    attachment = content_disposition(document.name)
    return Response(
        document.content,
        media_type=PDF if document.media_type == PDF else "application/octet-stream",
        headers={
            "content-disposition": disposition + attachment.removeprefix("attachment"),
            # Opened in the browser, a PDF gets no script, forms or same-origin rights.
            "content-security-policy": "sandbox",
            "cache-control": "no-store",
        },
    )


@router.get("/mailbox/letters/{letter_id}/documents/{index}")
async def open_document(request: Request, letter_id: str, index: str) -> Response:
    return await _document(request, letter_id, index, "inline")


@router.get("/mailbox/letters/{letter_id}/documents/{index}/download")
async def download_document(request: Request, letter_id: str, index: str) -> Response:
    return await _document(request, letter_id, index, "attachment")


# --- what the person does with a letter ---------------------------------------------


async def _session_for_post(
    request: Request, back: str | None
) -> tuple[PortalRuntime, PortalSession] | Response:
    """The logged-in person; if the session has ended, log in and return to the list
    (a button pressed after logging in again is pressed again, not replayed)."""
    rt, session = await current(request)
    if session is None:
        return RedirectResponse(login_url(_back(back)), status_code=303)
    return rt, session


async def _act(request: Request, letter_id: str, back: str | None, action: str) -> Response:
    signed = await _session_for_post(request, back)
    if isinstance(signed, Response):
        return signed
    rt, session = signed
    async with rt.db.session() as db:
        try:
            if action == "read":
                letter = await inbox.mark_read(db, session.pid, letter_id)
            elif action == "unread":
                letter = await inbox.mark_unread(db, session.pid, letter_id)
            elif action == "archived":
                letter = await inbox.move(db, session.pid, letter_id, Folder.archive)
            else:
                letter = await inbox.move(db, session.pid, letter_id, Folder.inbox)
        except inbox.NotFound:
            return not_found(request, rt, session)
    return redirect(rt, session, _with_notice(_back(back, letter), action))


Back = Annotated[str | None, Form(max_length=2000)]


@router.post("/mailbox/letters/{letter_id}/read")
async def mark_read(request: Request, letter_id: str, back: Back = None) -> Response:
    return await _act(request, letter_id, back, "read")


@router.post("/mailbox/letters/{letter_id}/unread")
async def mark_unread(request: Request, letter_id: str, back: Back = None) -> Response:
    return await _act(request, letter_id, back, "unread")


@router.post("/mailbox/letters/{letter_id}/archive")
async def archive(request: Request, letter_id: str, back: Back = None) -> Response:
    return await _act(request, letter_id, back, "archived")


@router.post("/mailbox/letters/{letter_id}/restore")
async def restore(request: Request, letter_id: str, back: Back = None) -> Response:
    return await _act(request, letter_id, back, "restored")


@router.get("/mailbox/letters/{letter_id}/delete")
async def confirm_delete(
    request: Request, letter_id: str, back: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """Are you sure? Deleting cannot be undone."""
    rt, session = await signed_in(request)
    lang = request_language(request)
    async with rt.db.session() as db:
        try:
            letter = await inbox.find(db, session.pid, letter_id)
        except inbox.NotFound:
            return not_found(request, rt, session)
        sender = await Names(db, lang).agency(letter.sender_orgnr)
    context: dict[str, Any] = {
        "letter": letter,
        "sender": sender,
        "when": moment(letter.received_at, lang),
        "href": letter_href(letter.id),
        "back": _back(back, letter),
    }
    return page(request, rt, session, "mailbox/inbox_delete.html", context)


@router.post("/mailbox/letters/{letter_id}/delete")
async def delete(request: Request, letter_id: str, back: Back = None) -> Response:
    signed = await _session_for_post(request, back)
    if isinstance(signed, Response):
        return signed
    rt, session = signed
    async with rt.db.session() as db:
        try:
            letter = await inbox.delete_letter(db, session.pid, letter_id)
        except inbox.NotFound:
            return not_found(request, rt, session)
    return redirect(rt, session, _with_notice(_back(back, letter), "deleted"))
