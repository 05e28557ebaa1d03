"""The demo's services: the example definitions shipped in `portal/examples/`."""

from __future__ import annotations

from pathlib import Path

import yaml

from felles.db import Database
from felles.portal import catalogue
from felles.portal.definition import DefinitionError
from felles.web.observability import log

EXAMPLES = Path(__file__).parent / "examples"


def example_documents() -> list[dict[str, object]]:
    return [yaml.safe_load(p.read_text("utf-8")) for p in sorted(EXAMPLES.glob("*.yaml"))]


async def publish_examples(db: Database) -> int:
    """Publish the example services that are not published yet; how many were new."""
    added = 0
    for document in example_documents():
        try:
            async with db.session() as session:
                added += (await catalogue.publish(session, document, published_by="demo")).created
        except DefinitionError as exc:  # an older copy of an example is published: keep it
            log.warning("example service not published", code=document.get("code"), why=str(exc))
    return added
