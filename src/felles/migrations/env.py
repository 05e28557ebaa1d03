"""Alembic environment: runs on the connection Felles hands over (see felles.db)."""

from __future__ import annotations

from alembic import context

import felles.models  # noqa: F401  (imports every part's tables)
from felles.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` directly
    raise SystemExit("Run migrations with `felles db upgrade`.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
