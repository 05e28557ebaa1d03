"""Imports every part's tables, so Base.metadata (and Alembic) knows them all."""

from felles.registry import models as registry_models

__all__ = ["registry_models"]
