"""Demo data of the login service: the API scopes Felles' parts expose, and who may
use them, so agencies' servers in the demo country can get machine tokens at once."""

from __future__ import annotations

from felles.db import Database
from felles.identity import clients
from felles.registry import service as registry

# (scope, owning agency's slug, description, public)
DEMO_SCOPES: tuple[tuple[str, str, str, bool], ...] = (
    ("felles:identity.admin", "digdir", "Register and change clients of the login service", False),
    ("felles:identity.scopes", "digdir", "Manage the API scopes your organisation owns", True),
    ("felles:registry.read", "brreg", "Look up people and organisations in the registers", False),
    ("felles:portal.submissions", "digdir", "Publish services and fetch submissions", True),
    ("felles:mailbox.send", "digdir", "Send digital mail to people", True),
    ("felles:krr.contact", "digdir", "Look up people's contact details and reservation", True),
    ("felles:krr.mailbox", "digdir", "Look up people's digital mailbox and its certificate", True),
    ("felles:mailbox.print", "digdir", "Fetch letters to print and confirm them posted", False),
    ("felles:signing.jobs", "digdir", "Create signature jobs", True),
)
# Which agencies get which non-public scopes.
DEMO_GRANTS: tuple[tuple[str, str], ...] = (
    ("felles:identity.admin", "digdir"),
    ("felles:mailbox.print", "digdir"),
    ("felles:registry.read", "skatteetaten"),
    ("felles:registry.read", "nav"),
)


async def seed_scopes(db: Database) -> int:
    """Add the demo scopes and grants that are missing; returns how many were added."""
    added = 0
    async with db.session() as session:
        agencies = {a.slug: a.orgnr for a in await registry.list_agencies(session)}
        existing = {s.name for s in await clients.list_scopes(session)}
        for name, owner, description, public in DEMO_SCOPES:
            if name in existing or owner not in agencies:
                continue
            await clients.add_scope(
                session, name, owner_orgnr=agencies[owner], description=description, public=public
            )
            added += 1
        for name, consumer in DEMO_GRANTS:
            if consumer in agencies and (name in existing or added):
                await clients.grant_scope(session, name, agencies[consumer])
    return added
