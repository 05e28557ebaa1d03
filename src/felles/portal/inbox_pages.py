"""The inbox's pages: the list (search, filters, paging, all in the address so it works
without JavaScript), one message, its attachments, and the read/confirm buttons."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from felles.portal import attachments, authz, inbox
from felles.portal.display import Names, moment
from felles.portal.inbox import Filters, InboxItem, ItemKind, Show
from felles.portal.web import not_found, page, redirect, signed_in
from felles.web.templating import request_language

router = APIRouter(include_in_schema=False)
ORGNR = re.compile(r"^[0-9]{9}$")
MAX_PAGE = 100_000
INBOX = "/portal/inbox"


def _filters(q: str, show: str, unread: str, agency: str) -> Filters:
    """Whatever is in the address, read leniently: a wrong value means "no filter"."""
    return Filters(
        query=" ".join(q.split())[:200],
        show=Show(show) if show in Show.__members__ else Show.all,
        unread_only=unread in ("1", "on", "true"),
        agency=agency if ORGNR.match(agency) else None,
    )


def _query(f: Filters, page_number: int | None = None) -> str:
    params: dict[str, str] = {}
    if f.query:
        params["q"] = f.query
    if f.show is not Show.all:
        params["show"] = f.show.value
    if f.unread_only:
        params["unread"] = "1"
    if f.agency:
        params["agency"] = f.agency
    if page_number and page_number > 1:
        params["page"] = str(page_number)
    return "?" + urlencode(params) if params else ""


async def _row(item: InboxItem, names: Names, lang: str) -> dict[str, Any]:
    service = await names.service(item.service_code, item.service_version)
    if item.kind is ItemKind.draft:
        href = f"/portal/drafts/{quote(item.id)}"
        title = service
    elif item.kind is ItemKind.submission:
        href = f"/portal/submissions/{quote(item.id)}/receipt"
        title = service
    else:
        href = f"/portal/inbox/messages/{quote(item.id)}"
        title = item.title
    return {
        "item": item,
        "href": href,
        "title": title,
        "agency": await names.agency(item.agency_orgnr),
        "when": moment(item.at, lang),
    }


@router.get("/portal/inbox")
async def inbox_page(
    request: Request,
    q: Annotated[str, Query(max_length=500)] = "",
    show: Annotated[str, Query(max_length=20)] = "all",
    unread: Annotated[str, Query(max_length=5)] = "",
    agency: Annotated[str, Query(max_length=20)] = "",
    page_number: Annotated[str, Query(alias="page", max_length=7)] = "1",
) -> Response:
    rt, session = await signed_in(request)
    lang = request_language(request)
    filters = _filters(q, show, unread, agency)
    wanted = int(page_number) if page_number.isdigit() else 1
    async with rt.db.session() as db:
        if not (await authz.may_act_for(db, session.pid, session.party, "inbox")).allowed:
            return redirect(rt, session, "/portal/party?next=/portal/inbox")
        found = await inbox.list_inbox(
            db, session.pid, session.party, filters, min(max(wanted, 1), MAX_PAGE)
        )
        names = Names(db, lang)
        rows = [await _row(item, names, lang) for item in found.items]
        orgnrs = found.agencies
        if filters.agency and filters.agency not in orgnrs:
            orgnrs = [*orgnrs, filters.agency]  # keep the chosen one in the list
        agencies = [(orgnr, await names.agency(orgnr)) for orgnr in orgnrs]
    return page(
        request,
        rt,
        session,
        "portal/inbox.html",
        {
            "rows": rows,
            "found": found,
            "filters": filters,
            "agencies": sorted(agencies, key=lambda a: a[1]),
            "previous_href": INBOX + _query(filters, found.page - 1) if found.page > 1 else None,
            "next_href": INBOX + _query(filters, found.page + 1)
            if found.page < found.pages
            else None,
            "clear_href": INBOX,
        },
    )


def _paragraphs(body: str) -> list[str]:
    """Plain text into paragraphs at blank lines (single line breaks are kept by CSS)."""
    parts = re.split(r"\n\s*\n", body.replace("\r\n", "\n").strip())
    return [p.strip("\n") for p in parts if p.strip()]


@router.get("/portal/inbox/messages/{message_id}")
async def message_page(request: Request, message_id: str) -> Response:
    rt, session = await signed_in(request)
    lang = request_language(request)
    async with rt.db.session() as db:
        try:
            opened = await inbox.open_message(db, message_id, session.pid, session.party)
        except inbox.NotFound:
            return not_found(request, rt, session)
        names = Names(db, lang)
        message = opened.message
        context = {
            "message": message,
            "paragraphs": _paragraphs(message.body),
            "sender": await names.agency(message.sender_orgnr),
            "when": moment(message.created_at, lang),
            "confirmed_when": moment(message.confirmed_at, lang) if message.confirmed_at else None,
            "attachments": opened.attachments,
            "submission": opened.submission,
            "service": opened.definition.name(lang) if opened.definition else "",
            "confirmed": request.query_params.get("confirmed") == "1",
        }
    return page(request, rt, session, "portal/message.html", context)


@router.post("/portal/inbox/messages/{message_id}/unread")
async def mark_unread(request: Request, message_id: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        try:
            await inbox.mark_unread(db, message_id, session.pid, session.party)
        except inbox.NotFound:
            return not_found(request, rt, session)
    return redirect(rt, session, "/portal/inbox")


@router.post("/portal/inbox/messages/{message_id}/confirm")
async def confirm_read(request: Request, message_id: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        try:
            await inbox.confirm_read(db, message_id, session.pid, session.party)
        except inbox.NotFound:
            return not_found(request, rt, session)
    return redirect(rt, session, f"/portal/inbox/messages/{quote(message_id)}?confirmed=1")


@router.get("/portal/inbox/messages/{message_id}/attachments/{attachment_id}")
async def download(request: Request, message_id: str, attachment_id: str) -> Response:
    rt, session = await signed_in(request)
    async with rt.db.session() as db:
        try:
            found = await inbox.attachment(
                db, message_id, attachment_id, session.pid, session.party
            )
        except inbox.NotFound:
            return not_found(request, rt, session)
    return Response(
        found.content,
        media_type=found.content_type,
        headers={
            "content-disposition": attachments.content_disposition(found.filename),
            "cache-control": "no-store",
        },
    )
