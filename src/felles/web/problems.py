"""RFC 9457 problem documents: every API error has a stable type, a title and the field."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"

# slug -> (HTTP status, title). The type URI is /problems/<slug>, explained on that page.
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request could not be understood"),
    "validation": (422, "Some of the input is not valid"),
    "invalid-number": (422, "A national identity or organisation number is not valid"),
    "unauthorized": (401, "Authentication is needed"),
    "forbidden": (403, "You may not do this"),
    "csrf": (403, "The form has expired or did not come from this site"),
    "not-found": (404, "Nothing was found at this address"),
    "method-not-allowed": (405, "This method is not allowed here"),
    "not-acceptable": (406, "No acceptable representation"),
    "conflict": (409, "This conflicts with what is already stored"),
    "payload-too-large": (413, "The request body is too large"),
    "unsupported-media-type": (415, "This content type is not supported"),
    "rate-limited": (429, "Too many requests"),
    "internal": (500, "Something went wrong on our side"),
    "unavailable": (503, "The service is temporarily unavailable"),
    # The portal's agency API.
    "invalid-definition": (
        422,
        "The service definition cannot be published; errors lists every problem with a pointer",
    ),
    "unknown-recipient": (422, "The recipient is not in the population or business register"),
    "not-ready": (409, "This is not ready yet; try again in a little while"),
    "infected-file": (409, "The file was found infected by the virus scan and is not handed out"),
}

STATUS_TO_SLUG: dict[int, str] = {}
for _slug, (_status, _title) in PROBLEMS.items():
    STATUS_TO_SLUG.setdefault(_status, _slug)


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


def problem(
    slug: str,
    *,
    detail: str | None = None,
    status: int | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem+json response for a known problem slug."""
    default_status, title = PROBLEMS[slug]
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status or default_status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extensions.items() if v is not None})
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


class ProblemError(Exception):
    """Raise from API code to answer with a problem document."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or PROBLEMS[slug][1])
        self.headers = headers
        self.slug = slug
        self.detail = detail
        self.field = field
        self.extra = extra

    def response(self, instance: str | None = None) -> JSONResponse:
        extra = dict(self.extra)
        # An explicit `errors` list (several problems at once) wins over the one field.
        errors = extra.pop("errors", None)
        if errors is None and self.field:
            errors = [{"field": self.field, "detail": self.detail}]
        return problem(
            self.slug,
            detail=self.detail,
            instance=instance,
            errors=errors,
            headers=self.headers,
            **extra,
        )


# --- For OpenAPI documents --------------------------------------------------------------


class ProblemItem(BaseModel):
    field: str | None = Field(None, description="The input at fault (dotted path)")
    pointer: str | None = Field(None, description="JSON Pointer into the body at fault")
    detail: str = Field(description="What is wrong there")


class Problem(BaseModel):
    """An RFC 9457 problem document; `type` is stable and explained at /problems."""

    type: str = Field(description="Stable problem type, /problems/<slug>")
    title: str = Field(description="What went wrong, in short")
    status: int = Field(description="The HTTP status")
    detail: str | None = Field(None, description="This occurrence, explained")
    instance: str | None = Field(None, description="The path that was called")
    errors: list[ProblemItem] | None = Field(None, description="Each input at fault")


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for a problem answer."""
    return {"model": Problem, "description": description, "content": {PROBLEM_MEDIA_TYPE: {}}}
