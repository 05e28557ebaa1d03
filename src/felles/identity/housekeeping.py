"""Forgetting what has expired, so the login service's tables grow with its traffic, not
with its history.

At a national peak every login leaves a code, an SSO session, a session-client row and
perhaps a refresh token, a revocation or a seen `jti`: tens of millions of rows a day
that are useless once expired. `purge()` deletes them in bounded batches (short
transactions, no long locks); every server process runs it now and then, and
`felles identity purge` runs it by hand. Audit events and the register's access log are
records, not state, and are kept.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, or_, select, tuple_

from felles.db import Database
from felles.identity.models import (
    AuthorizationCode,
    OneTimeCode,
    PendingAuthorization,
    RateCounter,
    RefreshToken,
    RevokedToken,
    SeenJti,
    SsoSession,
    UpstreamLogin,
)
from felles.web.observability import log

# Kept a little past expiry, so that a late arrival still gets the precise error ("the
# code has expired", "already used") rather than "not valid".
MARGIN = timedelta(hours=1)
RATE_WINDOW_KEPT = timedelta(hours=24)
BATCH = 5_000


@dataclass(frozen=True)
class Rule:
    """Rows of `table` that `expired(cutoff)` selects may go; the cutoff is `kept`
    before now."""

    what: str
    table: Table
    expired: Callable[[datetime], ColumnElement[bool]]
    kept: timedelta = MARGIN


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


RULES = (
    Rule(
        "pushed and held requests",
        _table(PendingAuthorization),
        lambda cut: PendingAuthorization.expires_at < cut,
    ),
    Rule("codes", _table(AuthorizationCode), lambda cut: AuthorizationCode.expires_at < cut),
    Rule("refresh tokens", _table(RefreshToken), lambda cut: RefreshToken.expires_at < cut),
    Rule("revocations", _table(RevokedToken), lambda cut: RevokedToken.expires_at < cut),
    Rule("seen jtis", _table(SeenJti), lambda cut: SeenJti.expires_at < cut),
    Rule("one-time codes", _table(OneTimeCode), lambda cut: OneTimeCode.expires_at < cut),
    Rule("upstream logins", _table(UpstreamLogin), lambda cut: UpstreamLogin.expires_at < cut),
    # Their session-client rows go with them (ON DELETE CASCADE).
    Rule(
        "SSO sessions",
        _table(SsoSession),
        lambda cut: or_(SsoSession.expires_at < cut, SsoSession.ended_at < cut),
    ),
    Rule(
        "rate counters",
        _table(RateCounter),
        lambda cut: RateCounter.window_start < cut,
        kept=RATE_WINDOW_KEPT,
    ),
)


async def _purge_rule(db: Database, rule: Rule, at: datetime, batch: int) -> int:
    key = tuple_(*rule.table.primary_key.columns)
    chosen = select(*rule.table.primary_key.columns).where(rule.expired(at - rule.kept))
    chosen = chosen.limit(batch)
    removed = 0
    while True:
        async with db.session() as session:
            result = await session.execute(delete(rule.table).where(key.in_(chosen)))
        count = int(cast(Any, result).rowcount or 0)
        removed += count
        if count < batch:
            return removed


async def purge(db: Database, *, at: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """Delete what expired more than MARGIN before `at` (now; rate counters: a day after
    their window began); how many rows, by kind."""
    at = at or datetime.now(UTC)
    return {rule.what: await _purge_rule(db, rule, at, batch) for rule in RULES}


async def purge_now_and_then(db: Database, every_minutes: float) -> None:
    """Purge every `every_minutes` (jittered, so several processes spread out) until
    cancelled; a failed round is logged and the next one tries again."""
    while True:
        await asyncio.sleep(every_minutes * 60 * random.uniform(0.5, 1.5))
        try:
            removed = await purge(db)
        except Exception as exc:  # housekeeping must never stop the server
            log.warning("purge_failed", error=type(exc).__name__)
            continue
        if any(removed.values()):
            log.info("purged", **{k.replace(" ", "_"): v for k, v in removed.items() if v})
