"""Filling in a service's form: drafts saved at every page, answers checked page by page
against the service's JSON Schema, check-your-answers, and submitting exactly once.

Nothing here knows about HTTP: pages hand in what was posted as strings and get typed
values or errors (a code per field) back.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from felles.portal import authz
from felles.portal.catalogue import CatalogueEntry
from felles.portal.catalogue import definition as definition_of
from felles.portal.definition import Page, Question, ServiceDefinition
from felles.portal.models import Draft, Submission
from felles.portal.prefill import prefill
from felles.portal.session import Party

CHECK = "check"  # the check-your-answers step, after the last page
# The attachments step, after the pages of a service that takes files. Page ids start
# with a letter, so this name can never be a page's.
ATTACHMENTS = "_attachments"
MAX_PASTE_ROWS = 1000


class NotFound(LookupError):
    """No such draft or submission *for this person and party*: never says which."""


class Refused(Exception):
    """The person may not use the service for this party (see `decision`)."""

    def __init__(self, decision: authz.Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


class Conflict(Exception):
    """The draft changed in another tab or request meanwhile; reload and try again."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str  # required, wrong_type, not_a_date, too_long, ... (pages translate them)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    row: int | None = None  # for repeating groups: which row (1-based)


@dataclass
class OpenDraft:
    draft: Draft
    definition: ServiceDefinition

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.draft.data or {})

    @property
    def sources(self) -> dict[str, str]:
        return dict((self.draft.prefilled or {}).get("sources", {}))

    def options(self, field_name: str) -> list[dict[str, str]]:
        return list((self.draft.prefilled or {}).get("options", {}).get(field_name, []))


def now() -> datetime:
    return datetime.now(UTC)


# --- drafts ------------------------------------------------------------------------------


async def start(session: AsyncSession, entry: CatalogueEntry, pid: str, party: Party) -> OpenDraft:
    """A new draft for `party`, prefilled from the registers, if `pid` may use the service."""
    decision = await authz.may_use(session, pid, party, entry.definition, "start")
    if not decision.allowed:
        raise Refused(decision)
    filled = await prefill(session, entry.definition, pid, party)
    at = now()
    draft = Draft(
        id=secrets.token_urlsafe(16),
        service_code=entry.code,
        service_version=entry.version,
        party_kind=party.kind.value,
        party_id=party.id,
        created_by=pid,
        data=filled.data,
        prefilled=filled.as_stored(),
        pages_done=[],
        revision=0,
        created_at=at,
        updated_at=at,
    )
    session.add(draft)
    await session.flush()
    return OpenDraft(draft, entry.definition)


async def open_draft(
    session: AsyncSession, draft_id: str, pid: str, party: Party, action: str = "fill"
) -> OpenDraft:
    """A draft of this party that this person may work on, else NotFound (also when it
    exists for someone else: a stranger must not learn that it exists)."""
    if not isinstance(draft_id, str) or not 10 <= len(draft_id) <= 32:
        raise NotFound(draft_id)
    draft = await session.get(Draft, draft_id)
    if draft is None or draft.party_kind != party.kind.value or draft.party_id != party.id:
        raise NotFound(draft_id)
    definition = await definition_of(session, draft.service_code, draft.service_version)
    if not (await authz.may_use(session, pid, party, definition, action)).allowed:
        raise NotFound(draft_id)
    return OpenDraft(draft, definition)


def visible_pages(definition: ServiceDefinition, data: Mapping[str, Any]) -> list[Page]:
    return [p for p in definition.pages if p.shown(dict(data))]


def next_step(opened: OpenDraft) -> str:
    """The first page still to do, then the attachments (if the service takes files),
    then CHECK."""
    done = set(opened.draft.pages_done or [])
    for page in visible_pages(opened.definition, opened.data):
        if page.id not in done:
            return page.id
    if opened.definition.attachments is not None and ATTACHMENTS not in done:
        return ATTACHMENTS
    return CHECK


def pages_finished(opened: OpenDraft) -> bool:
    """Every shown page is done (the attachments step may be opened)."""
    done = set(opened.draft.pages_done or [])
    return all(p.id in done for p in visible_pages(opened.definition, opened.data))


async def finish_attachments(session: AsyncSession, opened: OpenDraft) -> None:
    """The person is done adding files."""
    done = [p for p in (opened.draft.pages_done or []) if p != ATTACHMENTS] + [ATTACHMENTS]
    await _write(session, opened.draft, pages_done=done)


def may_open(opened: OpenDraft, page_id: str) -> bool:
    """A page can be opened when it is shown and every shown page before it is done (so
    nobody skips ahead by typing a URL or posting out of order)."""
    done = set(opened.draft.pages_done or [])
    for page in visible_pages(opened.definition, opened.data):
        if page.id == page_id:
            return True
        if page.id not in done:
            return False
    return False


def previous_page(opened: OpenDraft, page_id: str) -> str | None:
    """Where a back link goes from `page_id` (or from CHECK)."""
    pages = visible_pages(opened.definition, opened.data)
    ids = [p.id for p in pages]
    if page_id == CHECK and opened.definition.attachments is not None:
        return ATTACHMENTS
    if page_id in (CHECK, ATTACHMENTS):
        return ids[-1] if ids else None
    if page_id in ids and ids.index(page_id) > 0:
        return ids[ids.index(page_id) - 1]
    return None


# --- reading what was posted ------------------------------------------------------------------

_INTEGER = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_NORWEGIAN_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def _convert(schema: Mapping[str, Any], raw: str) -> tuple[Any, str | None]:
    """A posted string as the schema's type: (value, None), or (None, error code)."""
    text = raw.strip()
    kind = schema.get("type")
    if kind == "integer":
        compact = text.replace(" ", "").replace("\u00a0", "")
        return (int(compact), None) if _INTEGER.match(compact) else (None, "not_a_whole_number")
    if kind == "number":
        compact = text.replace(" ", "").replace("\u00a0", "").replace(",", ".")
        return (float(compact), None) if _NUMBER.match(compact) else (None, "not_a_number")
    if kind == "boolean":
        if text in ("yes", "no"):
            return text == "yes", None
        return None, "choose_one"
    if schema.get("format") == "date":
        match = _NORWEGIAN_DATE.match(text)
        if match:
            day, month, year = (int(g) for g in match.groups())
            text = f"{year:04d}-{month:02d}-{day:02d}"
        try:
            return date.fromisoformat(text).isoformat(), None
        except ValueError:
            return None, "not_a_date"
    return text, None


_CODES = {
    "minLength": "too_short",
    "maxLength": "too_long",
    "pattern": "wrong_format",
    "format": "wrong_format",
    "minimum": "too_small",
    "maximum": "too_large",
    "exclusiveMinimum": "too_small",
    "exclusiveMaximum": "too_large",
    "enum": "choose_one",
    "const": "choose_one",
    "type": "wrong_type",
    "minItems": "too_few_rows",
    "maxItems": "too_many_rows",
    "required": "required",
}
_LIMITS = ("minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems")


def _schema_errors(
    definition: ServiceDefinition, values: Mapping[str, Any], fields: list[str]
) -> list[FieldError]:
    """The definition's own constraints on these fields, one error per field."""
    props = definition.properties()
    schema = {
        "type": "object",
        "properties": {f: props[f] for f in fields if f in props},
    }
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors: dict[tuple[str, int | None], FieldError] = {}
    for error in validator.iter_errors(dict(values)):
        path = list(error.absolute_path)
        if not path:
            continue
        name = str(path[0])
        row = int(path[1]) + 1 if len(path) > 1 and isinstance(path[1], int) else None
        limits = {
            k: error.schema[k]
            for k in _LIMITS
            if isinstance(error.schema, dict) and k in error.schema
        }
        if len(path) > 2:
            limits["column"] = str(path[2])
        errors.setdefault(
            (name, row),
            FieldError(name, _CODES.get(str(error.validator), "wrong_format"), limits, row),
        )
    return list(errors.values())


def read_page(
    opened: OpenDraft, page: Page, form: Mapping[str, str]
) -> tuple[dict[str, Any], list[FieldError]]:
    """The answers to one page as typed values, and what is wrong with them."""
    definition = opened.definition
    props = definition.properties()
    required = set(definition.data_schema.get("required", []))
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    for question in page.questions:
        name = question.field
        schema = props[name]
        if schema.get("type") == "array":
            values[name] = list(opened.data.get(name) or [])
            if not values[name] and name in required:
                errors.append(FieldError(name, "too_few_rows", {"minItems": 1}))
            continue
        raw = form.get(name, "")
        if question.options_from:
            raw = _chosen_option(opened.options(name), raw)
        if not raw.strip():
            values[name] = None
            if name in required:
                errors.append(FieldError(name, "required"))
            continue
        value, code = _convert(schema, raw)
        if code:
            errors.append(FieldError(name, code))
        values[name] = value
    if not errors:
        present = {k: v for k, v in values.items() if v is not None}
        errors = _schema_errors(definition, present, list(present))
    return values, errors


def _chosen_option(options: list[dict[str, str]], raw: str) -> str:
    """Choices drawn from a register are posted by position, so identity numbers never
    appear in the page's HTML; the stored value is the register's."""
    if raw.isdigit() and int(raw) < len(options):
        return options[int(raw)]["value"]
    return ""


async def save_page(
    session: AsyncSession, opened: OpenDraft, page: Page, values: Mapping[str, Any]
) -> None:
    """Keep a page's answers and mark it done (an optimistic write: two tabs cannot
    silently overwrite each other)."""
    draft = opened.draft
    data = opened.data
    for name, value in values.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    shown = {p.id for p in visible_pages(opened.definition, data)} | {ATTACHMENTS}
    done = [p for p in (draft.pages_done or []) if p in shown and p != page.id] + [page.id]
    await _write(session, draft, data=data, pages_done=done)


async def _write(session: AsyncSession, draft: Draft, **values: Any) -> None:
    revision = draft.revision
    result = await session.execute(
        update(Draft)
        .where(Draft.id == draft.id, Draft.revision == revision, Draft.submitted_at.is_(None))
        .values(revision=revision + 1, updated_at=now(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(draft.id)
    await session.refresh(draft)


# --- repeating groups -----------------------------------------------------------------------


def read_row(
    opened: OpenDraft, question: Question, form: Mapping[str, str], prefix: str = "new."
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """One row of a repeating group from the posted `new.<column>` fields."""
    items = opened.definition.properties()[question.field]["items"]
    row: dict[str, Any] = {}
    errors: list[FieldError] = []
    for column, schema in items.get("properties", {}).items():
        raw = form.get(prefix + column, "")
        if not raw.strip():
            if column in items.get("required", []):
                errors.append(FieldError(question.field, "required", {"column": column}))
            continue
        value, code = _convert(schema, raw)
        if code:
            errors.append(FieldError(question.field, code, {"column": column}))
        else:
            row[column] = value
    if errors:
        return None, errors
    problems = _schema_errors(opened.definition, {question.field: [row]}, [question.field])
    return (
        (None, [FieldError(e.field, e.code, e.params) for e in problems]) if problems else (row, [])
    )


def read_pasted(
    opened: OpenDraft, question: Question, text: str
) -> tuple[list[dict[str, Any]], list[FieldError]]:
    """Rows pasted from a spreadsheet: tab-, semicolon- or comma-separated, one per line,
    columns in the group's order. Every line is checked; errors name the line."""
    columns = list(opened.definition.properties()[question.field]["items"]["properties"])
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_PASTE_ROWS:
        return [], [FieldError(question.field, "too_many_rows", {"maxItems": MAX_PASTE_ROWS})]
    sample = lines[0] if lines else ""
    delimiter = "\t" if "\t" in sample else ";" if ";" in sample else ","
    rows: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for number, cells in enumerate(
        csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter), 1
    ):
        form = {f"new.{c}": v for c, v in zip(columns, cells, strict=False)}
        row, problems = read_row(opened, question, form)
        if row is None:
            errors += [FieldError(p.field, p.code, p.params, row=number) for p in problems]
        else:
            rows.append(row)
    return rows, errors


async def change_rows(
    session: AsyncSession, opened: OpenDraft, question: Question, rows: list[dict[str, Any]]
) -> None:
    """Store a repeating group's rows (the page itself is not done until continued)."""
    data = opened.data
    data[question.field] = rows
    await _write(session, opened.draft, data=data)


# --- check your answers and submit ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    page: Page
    question: Question
    value: Any
    source: str | None  # the register a prefilled value came from


def answers(opened: OpenDraft) -> list[Answer]:
    """What the person will send, in page order (pages not shown are left out)."""
    data = opened.data
    sources = opened.sources
    result = []
    for page in visible_pages(opened.definition, data):
        for question in page.questions:
            result.append(
                Answer(page, question, data.get(question.field), sources.get(question.field))
            )
    return result


def submitted_data(opened: OpenDraft) -> tuple[dict[str, Any], list[tuple[str, FieldError]]]:
    """The data to send: answers on shown pages plus prefilled values, checked against
    the whole schema. Errors come with the page to fix them on."""
    definition = opened.definition
    data = opened.data
    shown = visible_pages(definition, data)
    keep = {q.field for p in shown for q in p.questions} | {r.field for r in definition.prefill}
    final = {k: v for k, v in data.items() if k in keep}
    page_of = {q.field: p.id for p in shown for q in p.questions}
    problems: list[tuple[str, FieldError]] = []
    for error in definition.validator.iter_errors(final):
        path = list(error.absolute_path)
        name = str(path[0]) if path else ""
        if error.validator == "required":
            match = re.match(r"'([^']+)'", error.message)
            name = match.group(1) if match else name
        page = page_of.get(name, shown[0].id if shown else CHECK)
        problems.append((page, FieldError(name, _CODES.get(str(error.validator), "wrong_format"))))
    return final, problems


async def get_submission(
    session: AsyncSession, submission_id: str, pid: str, party: Party
) -> tuple[Submission, ServiceDefinition]:
    """A submission of this party that this person may see, else NotFound."""
    if not isinstance(submission_id, str) or len(submission_id) > 36:
        raise NotFound(submission_id)
    row = await session.get(Submission, submission_id)
    if row is None or row.party_kind != party.kind.value or row.party_id != party.id:
        raise NotFound(submission_id)
    definition = await definition_of(session, row.service_code, row.service_version)
    if not (await authz.may_use(session, pid, party, definition, "read")).allowed:
        raise NotFound(submission_id)
    return row, definition
