"""Schemathesis against the portal's agency API: whatever the OpenAPI document allows
(and much it does not), the answer is never a server error.

The app under test is a second one on the session's database: schemathesis drives ASGI
apps from its own event loop thread, and an app's connection pool belongs to one loop.
Each operation runs as a plain Hypothesis test over schemathesis' strategy (its lazy
pytest fixture loader does not work with pytest 9).
"""

from __future__ import annotations

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
from sqlalchemy import select

from felles.app import create_app
from felles.config import Settings
from felles.db import Database
from felles.events import api as events_api
from felles.portal.api import SCOPE, router
from felles.portal.models import Attachment
from tests.fuzzing import MAX_EXAMPLES, release_abandoned_connections
from tests.portal.agencies import AgencyAuth, agency_auth
from tests.portal.conftest import MakeSubmission

PREFIX = "/api/portal/v1"
# The portal's own routes and the event routes mounted under its prefix.
OPERATIONS = sorted(
    (method, route.path)
    for route in [*router.routes, *events_api.router_for(PREFIX, SCOPE, "x.", "events").routes]
    if isinstance(route, APIRoute)
    for method in route.methods
)


@pytest.fixture(scope="module")
def portal_schema(settings: Settings, db: Database) -> Any:
    # Schemathesis calls the app from event loops of its own: on SQLite every session
    # gets its own connection, so none is left holding the write lock between loops.
    app = create_app(settings, pooled_db=not db.is_sqlite)
    return schemathesis.openapi.from_asgi("/api/openapi.json", app).include(
        path_regex="^/api/portal/v1/"
    )


@dataclass(frozen=True)
class Target:
    """A token (fresh per operation: tokens live two minutes) and real things to aim at,
    so generated bodies reach the domain code instead of stopping at "not found"."""

    auth: AgencyAuth
    submission_id: str
    attachment_id: str
    pid: str


@pytest.fixture
async def target(
    db: Database, client: httpx.AsyncClient, make_submission: MakeSubmission, people: list[str]
) -> Target:
    release_abandoned_connections(db)
    auth = await agency_auth(db, client, "oslo-kommune")
    made = await make_submission(
        auth.orgnr, attachments=[("a.txt", "text/plain", b"hei")], receipt_pdf=b"%PDF-1.7"
    )
    async with db.session() as session:
        attachment_id = await session.scalar(
            select(Attachment.id).where(Attachment.submission_id == made.id)
        )
    assert attachment_id is not None
    return Target(auth, made.id, attachment_id, people[0])


def aim(case: Any, target: Target) -> None:
    """Point a valid case at the real submission, attachment and person."""
    ids = case.path_parameters or {}
    if "submission_id" in ids:
        ids["submission_id"] = target.submission_id
    if "attachment_id" in ids:
        ids["attachment_id"] = target.attachment_id
    recipient = case.body.get("recipient") if isinstance(case.body, dict) else None
    if isinstance(recipient, dict) and recipient.get("kind") == "person":
        recipient["id"] = target.pid


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_no_server_errors(
    portal_schema: Any, target: Target, method: str, path: str, mode: GenerationMode
) -> None:
    operation = portal_schema[path][method]

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
        case.call_and_validate(headers=target.auth.headers, checks=[not_a_server_error])

    try:
        run()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no body, no constrained
        # parameter): the positive run covers it.
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no invalid input exists for this operation")
