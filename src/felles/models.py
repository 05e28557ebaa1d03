"""Imports every part's tables, so Base.metadata (and Alembic) knows them all."""

from felles.events import models as events_models
from felles.identity import models as identity_models
from felles.mailbox import models as mailbox_models
from felles.portal import models as portal_models
from felles.registry import models as registry_models
from felles.web import idempotency

__all__ = [
    "events_models",
    "idempotency",
    "identity_models",
    "mailbox_models",
    "portal_models",
    "registry_models",
]
