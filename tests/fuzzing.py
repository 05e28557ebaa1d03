"""What the schemathesis tests (tests/portal/test_api_fuzz.py,
tests/mailbox/test_sending_fuzz.py) share."""

from __future__ import annotations

import gc
import os

from felles.db import Database

# Examples per operation and mode (valid, invalid), each a real request through the app
# and its database: 20 in `make test` (on both databases), more for a deeper search
# with FELLES_FUZZ_EXAMPLES=500 make test-postgresql.
MAX_EXAMPLES = int(os.environ.get("FELLES_FUZZ_EXAMPLES", "20"))


def release_abandoned_connections(db: Database) -> None:
    """Before a fixture writes on SQLite: collect connections the fuzzed app (driven from
    schemathesis' own event-loop thread) let go of without closing. CI twice saw such a
    fixture's first INSERT wait 10 s for the write lock and fail with "database is
    locked" while no test held it; a SQLite connection that is collected rolls back and
    lets the lock go. The cause is not found yet; this keeps the tests' own setup out of
    its way."""
    if db.is_sqlite:
        gc.collect()
