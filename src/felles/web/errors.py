"""Error responses: problem JSON for machines, a plain-language page for people."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Scope

from felles.registry.numbers import InvalidNumber
from felles.web.problems import PROBLEMS, STATUS_TO_SLUG, ProblemError, problem
from felles.web.templating import render


def wants_json(request: Request) -> bool:
    """APIs always get problem JSON; elsewhere, only clients that prefer JSON."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "json" in accept and "text/html" not in accept


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def N_(message: str) -> str:
    """Marks a string for translation; it is translated when the page is rendered."""
    return message


# What a person reads for each kind of error: a heading and what to do next.
PAGE_TEXTS: dict[str, tuple[str, str]] = {
    "not-found": (
        N_("We could not find that page"),
        N_(
            "Check that the address is spelled correctly. "
            "If you followed a link, it may be out of date."
        ),
    ),
    "csrf": (
        N_("The form has expired"),
        N_(
            "For your safety, we could not accept the form. Go back, reload the page and try again."
        ),
    ),
    "payload-too-large": (
        N_("What you sent is too large"),
        N_("Go back and send less, for example a smaller file."),
    ),
    "bad-request": (
        N_("We did not understand the request"),
        N_("Go back and try again. If you typed the address, check it."),
    ),
    "forbidden": (
        N_("You do not have access to this page"),
        N_("You may need to log in, or to act for someone else."),
    ),
    "rate-limited": (N_("Too many attempts"), N_("Wait a few minutes and try again.")),
    "internal": (
        N_("Sorry, something went wrong on our side"),
        N_("Nothing you did caused this. Try again in a few minutes."),
    ),
}


def error_page(request: Request, status: int, slug: str | None = None) -> Response:
    slug = slug or STATUS_TO_SLUG.get(status, "internal" if status >= 500 else "bad-request")
    fallback = "internal" if status >= 500 else "bad-request"
    heading, advice = PAGE_TEXTS.get(slug, PAGE_TEXTS[fallback])
    return render(
        request,
        "error.html",
        {
            "status": status,
            "heading": heading,
            "advice": advice,
            "request_id": request_id(request),
        },
        status_code=status,
    )


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = STATUS_TO_SLUG.get(exc.status_code, "bad-request")
    headers = dict(exc.headers or {})
    if wants_json(request):
        detail: str | None = exc.detail if isinstance(exc.detail, str) else None
        if detail == PROBLEMS[slug][1] or detail in ("Not Found", "Method Not Allowed"):
            detail = None
        return problem(
            slug,
            status=exc.status_code,
            detail=detail,
            instance=request.url.path,
            headers=headers or None,
        )
    response = error_page(request, exc.status_code, slug)
    response.headers.update(headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_name(e.get("loc", ())), "detail": e.get("msg", "invalid")}
        for e in exc.errors()
    ]
    if wants_json(request):
        return problem("validation", instance=request.url.path, errors=errors)
    return error_page(request, 400, "bad-request")


async def _problem_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.response(instance=request.url.path)


async def _invalid_number(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidNumber)
    if wants_json(request):
        return problem(
            "invalid-number",
            detail=str(exc),
            instance=request.url.path,
            errors=[{"field": exc.kind, "detail": exc.reason}],
        )
    return error_page(request, 400, "bad-request")


def internal_error(scope: Scope) -> Response:
    """The 500 answer to an unhandled error, with the correlation id to quote."""
    request = Request(scope)
    if wants_json(request):
        return problem("internal", instance=request.url.path, request_id=request_id(request))
    return error_page(request, 500, "internal")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(InvalidNumber, _invalid_number)


def guard_rejection(scope: Scope, slug: str) -> ASGIApp:
    """The answer to a request the edge refuses (e.g. "csrf"), in the right format."""
    request = Request(scope)
    status = PROBLEMS[slug][0]
    if wants_json(request):
        return problem(slug, instance=request.url.path)
    return error_page(request, status, slug)
