"""The migrations build exactly the tables the models describe (no drift either way)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import felles.models  # noqa: F401  (every part's tables)
from felles.db import Base, Database


async def test_the_migrated_schema_matches_the_models(db: Database) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as connection:
        found = await connection.run_sync(differences)
    assert found == [], found
