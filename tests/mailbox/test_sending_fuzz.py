"""Schemathesis against the mailbox's sending API (letters and batches): whatever the
OpenAPI document allows (and much it does not), the answer is never a server error.

As for the portal (tests/portal/test_api_fuzz.py): a second app on the session's
database, driven from schemathesis' own event loop, each operation a plain Hypothesis
test over schemathesis' strategy. Valid cases are aimed at a real letter, an open batch
and a real person, with a real PDF, so they get past "not found" and "not a PDF" into
routing, sealing and storing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from felles.app import create_app
from felles.config import Settings
from felles.db import Database
from felles.mailbox import batches
from felles.mailbox.letters_api import router
from tests.fuzzing import MAX_EXAMPLES, release_abandoned_connections
from tests.mailbox.mail import BATCHES, LETTERS, demo_people, letter, pdf, sender

OPERATIONS = sorted(
    (method, route.path)
    for route in router.routes
    if isinstance(route, APIRoute)
    for method in route.methods or ()
)
PDF_BASE64 = base64.b64encode(pdf("Fuzzed")).decode()


@pytest.fixture(scope="module")
def mailbox_schema(settings: Settings, db: Database) -> Any:
    # Its own sessions on SQLite (see the portal's), and no worker of its own.
    app = create_app(settings.model_copy(update={"mailbox_seconds": 0}), pooled_db=not db.is_sqlite)
    return schemathesis.openapi.from_asgi("/api/openapi.json", app).include(
        path_regex="^/api/mailbox/v1/(letters|batches)"
    )


@dataclass(frozen=True)
class Target:
    headers: dict[str, str]
    letter_id: str
    batch_id: str
    pid: str


@pytest.fixture
async def target(db: Database, client: httpx.AsyncClient) -> Any:
    release_abandoned_connections(db)
    who = await demo_people(db)
    headers = await sender(db, client, "statens-vegvesen")
    sent = await client.post(LETTERS, json=letter(who["felles"]), headers=headers)
    made = await client.post(
        BATCHES, json={"reference": f"fuzz-{sent.json()['id']}"}, headers=headers
    )
    assert sent.status_code == made.status_code == 201
    yield Target(headers, sent.json()["id"], made.json()["id"], who["felles"])
    await batches.release_all(db)  # what the fuzzing committed is not left waiting


def aim(case: Any, target: Target) -> None:
    """Point a valid case at the real letter, batch and person, with real PDFs."""
    ids = case.path_parameters or {}
    if "letter_id" in ids:
        ids["letter_id"] = target.letter_id
    if "batch_id" in ids:
        ids["batch_id"] = target.batch_id
    body = case.body if isinstance(case.body, dict) else {}
    for one in [body, *(body.get("letters") or [])]:
        if isinstance(one, dict) and "recipient" in one:
            one["recipient"] = target.pid
            for document in [one.get("document"), *(one.get("attachments") or [])]:
                if isinstance(document, dict):
                    document["content_base64"] = PDF_BASE64


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors(
    mailbox_schema: Any, target: Target, method: str, path: str, mode: GenerationMode
) -> None:
    operation = mailbox_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            aim(case, target)
        case.call_and_validate(headers=target.headers, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no invalid input exists for this operation")
